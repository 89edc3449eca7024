package authz

import (
	"net/netip"
	"net/textproto"
	"strings"

	"github.com/meshway/meshway/internal/model"
)

// matchKind is how a strMatcher compares.
type matchKind uint8

const (
	matchExact matchKind = iota
	matchPrefix
	matchSuffix
	matchPresence
)

// strMatcher is one compiled string value: "abc", "abc*", "*abc" or "*".
type strMatcher struct {
	kind matchKind
	s    string
	fold bool // case-insensitive (hosts)
}

func compileString(v string, fold bool) strMatcher {
	if fold {
		v = strings.ToLower(v)
	}
	switch {
	case v == "*":
		return strMatcher{kind: matchPresence}
	case strings.HasPrefix(v, "*"):
		return strMatcher{kind: matchSuffix, s: v[1:], fold: fold}
	case strings.HasSuffix(v, "*"):
		return strMatcher{kind: matchPrefix, s: v[:len(v)-1], fold: fold}
	}
	return strMatcher{kind: matchExact, s: v, fold: fold}
}

func (m *strMatcher) match(v string) bool {
	switch m.kind {
	case matchPresence:
		return v != ""
	case matchPrefix:
		return len(v) >= len(m.s) && m.equal(v[:len(m.s)])
	case matchSuffix:
		return len(v) >= len(m.s) && m.equal(v[len(v)-len(m.s):])
	}
	return len(v) == len(m.s) && m.equal(v)
}

func (m *strMatcher) equal(v string) bool {
	if m.fold {
		return strings.EqualFold(v, m.s)
	}
	return v == m.s
}

// attr is the request attribute a check reads.
type attr uint8

const (
	attrPrincipal attr = iota
	attrNamespace
	attrSourceIP
	attrRemoteIP
	attrDestIP
	attrDestPort
	attrHost // HTTP-only from here on
	attrMethod
	attrPath
	attrHeader
)

// httpOnly reports whether the attribute exists only for HTTP requests.
func (a attr) httpOnly() bool { return a >= attrHost }

// check is one compiled field (or `when` condition): it holds when the
// attribute matches one of the values, or, negated, when it matches none.
// Exactly one of strs, prefixes, ports is used, by attr.
type check struct {
	attr     attr
	not      bool
	header   string // canonical MIME header name for attrHeader
	strs     []strMatcher
	prefixes []netip.Prefix
	ports    []uint16
}

func (c *check) eval(r *Request) bool {
	return c.matchAny(r) != c.not
}

func (c *check) matchAny(r *Request) bool {
	switch c.attr {
	case attrPrincipal:
		return anyString(c.strs, r.Source.Principal)
	case attrNamespace:
		return anyString(c.strs, r.Source.Namespace)
	case attrSourceIP:
		return anyPrefix(c.prefixes, r.SourceIP)
	case attrRemoteIP:
		ip := r.RemoteIP
		if !ip.IsValid() {
			ip = r.SourceIP
		}
		return anyPrefix(c.prefixes, ip)
	case attrDestIP:
		return anyPrefix(c.prefixes, r.DestinationIP)
	case attrDestPort:
		for _, p := range c.ports {
			if p == r.DestinationPort {
				return true
			}
		}
		return false
	case attrHost:
		return anyString(c.strs, r.Host)
	case attrMethod:
		return anyString(c.strs, r.Method)
	case attrPath:
		return anyString(c.strs, stripQuery(r.Path))
	case attrHeader:
		return c.matchHeader(r.Headers)
	}
	return false
}

// matchHeader is true when the header is present and one of its values
// matches one of the patterns ("*" needs only presence). Values are matched
// one by one, never joined.
func (c *check) matchHeader(h HeaderGetter) bool {
	if h == nil {
		return false
	}
	vals := h.Values(c.header)
	if len(vals) == 0 {
		return false
	}
	for i := range c.strs {
		if c.strs[i].kind == matchPresence {
			return true
		}
		for _, v := range vals {
			if c.strs[i].match(v) {
				return true
			}
		}
	}
	return false
}

func anyString(ms []strMatcher, v string) bool {
	for i := range ms {
		if ms[i].match(v) {
			return true
		}
	}
	return false
}

func anyPrefix(ps []netip.Prefix, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// stripQuery drops the query string and fragment: Istio's paths match the
// path alone.
func stripQuery(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// compileChecks appends the checks for one field (values and notValues) to
// dst. Values were validated by model.Validate, so parse errors cannot occur.
func compileChecks(dst []check, a attr, header string, values, notValues []string) []check {
	for i, vs := range [][]string{values, notValues} {
		if len(vs) == 0 {
			continue
		}
		c := check{attr: a, not: i == 1, header: header}
		for _, v := range vs {
			switch a {
			case attrSourceIP, attrRemoteIP, attrDestIP:
				p, _ := model.ParseIPBlock(v)
				c.prefixes = append(c.prefixes, p)
			case attrDestPort:
				n, _ := model.ParsePort(v)
				c.ports = append(c.ports, n)
			default:
				c.strs = append(c.strs, compileString(v, a == attrHost))
			}
		}
		dst = append(dst, c)
	}
	return dst
}

func compileSource(s *model.Source) []check {
	var cs []check
	cs = compileChecks(cs, attrPrincipal, "", s.Principals, s.NotPrincipals)
	cs = compileChecks(cs, attrNamespace, "", s.Namespaces, s.NotNamespaces)
	cs = compileChecks(cs, attrSourceIP, "", s.IPBlocks, s.NotIPBlocks)
	cs = compileChecks(cs, attrRemoteIP, "", s.RemoteIPBlocks, s.NotRemoteIPBlocks)
	return cs
}

func compileOperation(o *model.Operation) []check {
	var cs []check
	cs = compileChecks(cs, attrDestPort, "", o.Ports, o.NotPorts)
	cs = compileChecks(cs, attrMethod, "", o.Methods, o.NotMethods)
	cs = compileChecks(cs, attrHost, "", o.Hosts, o.NotHosts)
	cs = compileChecks(cs, attrPath, "", o.Paths, o.NotPaths)
	return cs
}

func compileCondition(dst []check, c *model.Condition) []check {
	kind, header, _ := model.ParseConditionKey(c.Key)
	var a attr
	switch kind {
	case model.AttrRequestHeader:
		a, header = attrHeader, textproto.CanonicalMIMEHeaderKey(header)
	case model.AttrSourceIP:
		a = attrSourceIP
	case model.AttrRemoteIP:
		a = attrRemoteIP
	case model.AttrSourceNamespace:
		a = attrNamespace
	case model.AttrSourcePrincipal:
		a = attrPrincipal
	case model.AttrDestinationIP:
		a = attrDestIP
	case model.AttrDestinationPort:
		a = attrDestPort
	}
	return compileChecks(dst, a, header, c.Values, c.NotValues)
}
