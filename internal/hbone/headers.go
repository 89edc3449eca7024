package hbone

import (
	"fmt"
	"net/netip"
	"strings"
)

// Limits of the W3C baggage header.
const (
	maxBaggageMembers = 180
	maxBaggageBytes   = 8192
)

// Member is one baggage list member, key=value with optional properties.
type Member struct {
	Key   string
	Value string // decoded (percent-encoding removed)
	// Properties are kept as written ("k" or "k=v"), without the ';'.
	Properties []string
}

// Baggage is a W3C baggage header: an ordered list of members. Istio puts
// the source workload's k8s.cluster.name, k8s.namespace.name,
// k8s.<kind>.name, service.name, service.version, cloud.region and
// cloud.availability_zone in it.
type Baggage []Member

// Get returns the value of the first member named key.
func (b Baggage) Get(key string) (string, bool) {
	for _, m := range b {
		if m.Key == key {
			return m.Value, true
		}
	}
	return "", false
}

// ParseBaggage parses a W3C baggage header value. Whitespace around
// members, keys, values and properties is ignored; empty list members are
// skipped. The error names the offending member.
func ParseBaggage(s string) (Baggage, error) {
	if len(s) > maxBaggageBytes {
		return nil, fmt.Errorf("baggage is %d bytes, more than %d", len(s), maxBaggageBytes)
	}
	var out Baggage
	for _, raw := range strings.Split(s, ",") {
		item := strings.TrimSpace(raw)
		if item == "" {
			continue
		}
		if len(out) == maxBaggageMembers {
			return nil, fmt.Errorf("baggage has more than %d members", maxBaggageMembers)
		}
		parts := strings.Split(item, ";")
		k, v, ok := strings.Cut(parts[0], "=")
		if !ok {
			return nil, fmt.Errorf("baggage member %q has no '='", item)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !isToken(k) {
			return nil, fmt.Errorf("baggage member %q: key %q is not a token", item, k)
		}
		val, err := decodeBaggageValue(v)
		if err != nil {
			return nil, fmt.Errorf("baggage member %q: %w", item, err)
		}
		m := Member{Key: k, Value: val}
		for _, p := range parts[1:] {
			p = strings.TrimSpace(p)
			pk, pv, hasVal := strings.Cut(p, "=")
			pk = strings.TrimSpace(pk)
			if !isToken(pk) {
				return nil, fmt.Errorf("baggage member %q: property %q is not key or key=value", item, p)
			}
			if hasVal {
				pv = strings.TrimSpace(pv)
				if _, err := decodeBaggageValue(pv); err != nil {
					return nil, fmt.Errorf("baggage member %q: property %q: %w", item, p, err)
				}
				p = pk + "=" + pv
			} else {
				p = pk
			}
			m.Properties = append(m.Properties, p)
		}
		out = append(out, m)
	}
	return out, nil
}

// FormatBaggage formats b as a baggage header value, percent-encoding
// values. Members with an invalid key are dropped.
func FormatBaggage(b Baggage) string {
	var sb strings.Builder
	for _, m := range b {
		if !isToken(m.Key) {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(m.Key)
		sb.WriteByte('=')
		encodeBaggageValue(&sb, m.Value)
		for _, p := range m.Properties {
			sb.WriteByte(';')
			sb.WriteString(p)
		}
	}
	return sb.String()
}

// String is FormatBaggage(b).
func (b Baggage) String() string { return FormatBaggage(b) }

// isToken reports whether s is an RFC 7230 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// isBaggageOctet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E.
func isBaggageOctet(c byte) bool {
	return c == 0x21 || c >= 0x23 && c <= 0x2B || c >= 0x2D && c <= 0x3A || c >= 0x3C && c <= 0x5B || c >= 0x5D && c <= 0x7E
}

func decodeBaggageValue(v string) (string, error) {
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '%':
			if i+2 >= len(v) || unhex(v[i+1]) < 0 || unhex(v[i+2]) < 0 {
				return "", fmt.Errorf("bad percent-encoding in value %q", v)
			}
			sb.WriteByte(byte(unhex(v[i+1])<<4 | unhex(v[i+2])))
			i += 2
		case isBaggageOctet(c):
			sb.WriteByte(c)
		default:
			return "", fmt.Errorf("value %q has character %q that must be percent-encoded", v, c)
		}
	}
	return sb.String(), nil
}

func encodeBaggageValue(sb *strings.Builder, v string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(v); i++ {
		c := v[i]
		if isBaggageOctet(c) && c != '%' {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Forwarded is the HBONE forwarded header: the original client and, for
// service-addressed traffic, the intended service hostname.
type Forwarded struct {
	For  netip.AddrPort
	Host string // empty when workload-addressed
}

// FormatForwarded formats f as Istio does: for="<ip:port>"[;host=<host>].
func FormatForwarded(f Forwarded) string {
	s := `for="` + f.For.String() + `"`
	if f.Host != "" {
		if isToken(f.Host) {
			s += ";host=" + f.Host
		} else {
			s += `;host="` + strings.ReplaceAll(strings.ReplaceAll(f.Host, `\`, `\\`), `"`, `\"`) + `"`
		}
	}
	return s
}

// ParseForwarded parses the first element of a forwarded header (RFC 7239)
// and returns its for (which must be ip:port) and host parameters.
func ParseForwarded(s string) (Forwarded, error) {
	var f Forwarded
	first, _, _ := strings.Cut(s, ",")
	for _, pair := range strings.Split(first, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return Forwarded{}, fmt.Errorf("forwarded %q: pair %q has no '='", s, pair)
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = strings.ReplaceAll(v[1:len(v)-1], `\`, "")
		}
		switch strings.ToLower(k) {
		case "for":
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				return Forwarded{}, fmt.Errorf("forwarded %q: for=%q is not ip:port", s, v)
			}
			f.For = ap
		case "host":
			f.Host = v
		}
	}
	if !f.For.IsValid() {
		return Forwarded{}, fmt.Errorf("forwarded %q has no for=", s)
	}
	return f, nil
}
