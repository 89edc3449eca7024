package hbone

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Authority is a parsed CONNECT :authority: the original destination, an
// IP address or a hostname, with a port.
type Authority struct {
	// Addr is the destination IP; invalid when Host is a hostname.
	Addr netip.Addr
	// Host is the hostname (lowercase, no trailing dot); empty when Addr
	// is set.
	Host string
	// Port is never 0.
	Port uint16
}

// IsIP reports whether the authority names an IP address.
func (a Authority) IsIP() bool { return a.Addr.IsValid() }

// AddrPort returns the IP destination; it is invalid for a hostname.
func (a Authority) AddrPort() netip.AddrPort {
	if !a.Addr.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Addr, a.Port)
}

// String formats the authority as it travels: ip:port, [ipv6]:port or
// hostname:port.
func (a Authority) String() string {
	if a.Addr.IsValid() {
		return netip.AddrPortFrom(a.Addr, a.Port).String()
	}
	return a.Host + ":" + strconv.Itoa(int(a.Port))
}

// ParseAuthority parses a CONNECT :authority. Accepted forms: ip:port,
// [ipv6]:port (zone allowed) and hostname:port with an RFC 1123 hostname.
// The error names what was wrong.
func ParseAuthority(s string) (Authority, error) {
	if s == "" {
		return Authority{}, fmt.Errorf("empty :authority: want ip:port, [ipv6]:port or hostname:port")
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Authority{}, fmt.Errorf(":authority %q has no port: want ip:port, [ipv6]:port or hostname:port", s)
	}
	host, portStr := s[:i], s[i+1:]
	port, err := parsePort(portStr)
	if err != nil {
		return Authority{}, fmt.Errorf(":authority %q: %w", s, err)
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return Authority{}, fmt.Errorf(":authority %q: missing ']' after IPv6 address", s)
		}
		ip, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !ip.Is6() {
			return Authority{}, fmt.Errorf(":authority %q: %q is not an IPv6 address", s, host[1:len(host)-1])
		}
		return Authority{Addr: ip, Port: port}, nil
	}
	if strings.Contains(host, ":") {
		return Authority{}, fmt.Errorf(":authority %q: an IPv6 address must be in brackets, as [addr]:port", s)
	}
	if host == "" {
		return Authority{}, fmt.Errorf(":authority %q has no host before the port", s)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return Authority{Addr: ip, Port: port}, nil
	}
	if looksNumeric(host) {
		return Authority{}, fmt.Errorf(":authority %q: %q is not a valid IPv4 address", s, host)
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if err := checkHostname(name); err != nil {
		return Authority{}, fmt.Errorf(":authority %q: %w", s, err)
	}
	return Authority{Host: name, Port: port}, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("empty port after ':'")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("port %q is not a number 1-65535", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q is not a number 1-65535", s)
	}
	return uint16(n), nil
}

// looksNumeric reports whether s has only digits and dots: a mistyped
// IPv4 address rather than a hostname.
func looksNumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// checkHostname validates an RFC 1123 hostname: dot-separated labels of
// 1-63 letters, digits and '-' (not at either end), 253 bytes at most.
func checkHostname(name string) error {
	if name == "" {
		return fmt.Errorf("empty hostname")
	}
	if len(name) > 253 {
		return fmt.Errorf("hostname longer than 253 bytes")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return fmt.Errorf("hostname %q has an empty label", name)
		}
		if len(label) > 63 {
			return fmt.Errorf("hostname label %q longer than 63 bytes", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("hostname label %q starts or ends with '-'", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return fmt.Errorf("hostname %q has invalid character %q", name, c)
			}
		}
	}
	return nil
}
