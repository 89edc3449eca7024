package model

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Action is what an AuthorizationPolicy does with the requests its rules
// match, as in Istio's security.istio.io AuthorizationPolicy.
type Action string

// Actions. The empty Action means ALLOW, Istio's default.
const (
	ActionAllow Action = "ALLOW"
	ActionDeny  Action = "DENY"
	ActionAudit Action = "AUDIT"
	// ActionCustom (external authorization) exists so that translation can
	// carry it and Validate can reject it with a clear message: meshway has
	// no extension providers.
	ActionCustom Action = "CUSTOM"
)

// Effective returns the action a policy takes: ALLOW when a is empty.
func (a Action) Effective() Action {
	if a == "" {
		return ActionAllow
	}
	return a
}

// AuthorizationPolicy is one Istio AuthorizationPolicy as it applies to a
// proxy. A policy matches a request when at least one of its rules does; a
// policy without rules matches nothing (so an ALLOW policy without rules
// denies everything, while `rules: [{}]` allows everything).
type AuthorizationPolicy struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Action    Action `json:"action,omitempty"`
	Rules     []Rule `json:"rules,omitempty"`
}

// Rule matches when at least one From source, at least one To operation and
// every When condition match. An empty list matches anything, so an empty
// rule matches every request.
type Rule struct {
	From []Source    `json:"from,omitempty"`
	To   []Operation `json:"to,omitempty"`
	When []Condition `json:"when,omitempty"`
}

// Source matches the peer of a request. Set fields are ANDed; the values of
// one field are ORed; a not-field matches when none of its values do.
//
// Principals are peer identities without the spiffe:// scheme, e.g.
// "cluster.local/ns/default/sa/sleep"; namespaces are the identity's
// namespace. IPBlocks hold single IPs or CIDRs of the connection's source
// address, RemoteIPBlocks of the original client (X-Forwarded-For).
type Source struct {
	Principals        []string `json:"principals,omitempty"`
	NotPrincipals     []string `json:"notPrincipals,omitempty"`
	Namespaces        []string `json:"namespaces,omitempty"`
	NotNamespaces     []string `json:"notNamespaces,omitempty"`
	IPBlocks          []string `json:"ipBlocks,omitempty"`
	NotIPBlocks       []string `json:"notIpBlocks,omitempty"`
	RemoteIPBlocks    []string `json:"remoteIpBlocks,omitempty"`
	NotRemoteIPBlocks []string `json:"notRemoteIpBlocks,omitempty"`
}

// Operation matches what a request asks for. Set fields are ANDed; the values
// of one field are ORed. Hosts, methods and paths are HTTP-only; ports are
// destination ports.
type Operation struct {
	Hosts      []string `json:"hosts,omitempty"`
	NotHosts   []string `json:"notHosts,omitempty"`
	Ports      []string `json:"ports,omitempty"`
	NotPorts   []string `json:"notPorts,omitempty"`
	Methods    []string `json:"methods,omitempty"`
	NotMethods []string `json:"notMethods,omitempty"`
	Paths      []string `json:"paths,omitempty"`
	NotPaths   []string `json:"notPaths,omitempty"`
}

// Condition is one `when` entry: the attribute named by Key must match one of
// Values (if set) and none of NotValues.
type Condition struct {
	Key       string   `json:"key"`
	Values    []string `json:"values,omitempty"`
	NotValues []string `json:"notValues,omitempty"`
}

// Attribute is a request attribute a Condition key names.
type Attribute int

// Attributes supported in `when` conditions.
const (
	AttrUnknown         Attribute = iota
	AttrRequestHeader             // request.headers[NAME]
	AttrSourceIP                  // source.ip
	AttrRemoteIP                  // remote.ip
	AttrSourceNamespace           // source.namespace
	AttrSourcePrincipal           // source.principal
	AttrDestinationIP             // destination.ip
	AttrDestinationPort           // destination.port
)

const headerKeyPrefix = "request.headers["

// ParseConditionKey returns the attribute a `when` key names and, for
// request.headers[NAME], the header name. Keys Istio knows but meshway does
// not implement (request.auth.*, connection.sni, experimental.*) are errors
// saying so.
func ParseConditionKey(key string) (Attribute, string, error) {
	switch key {
	case "source.ip":
		return AttrSourceIP, "", nil
	case "remote.ip":
		return AttrRemoteIP, "", nil
	case "source.namespace":
		return AttrSourceNamespace, "", nil
	case "source.principal":
		return AttrSourcePrincipal, "", nil
	case "destination.ip":
		return AttrDestinationIP, "", nil
	case "destination.port":
		return AttrDestinationPort, "", nil
	case "":
		return AttrUnknown, "", errors.New("key is empty; set an attribute such as source.ip or request.headers[x-user]")
	}
	switch {
	case strings.HasPrefix(key, headerKeyPrefix):
		name, ok := strings.CutSuffix(key[len(headerKeyPrefix):], "]")
		if !ok || name == "" || strings.ContainsAny(name, "[] \t\r\n:") {
			return AttrUnknown, "", fmt.Errorf("key %q is not a valid header attribute; write request.headers[NAME] with a header name, e.g. request.headers[x-user]", key)
		}
		return AttrRequestHeader, name, nil
	case strings.HasPrefix(key, "request.auth."):
		return AttrUnknown, "", fmt.Errorf("key %q is not supported: meshway does not implement RequestAuthentication (JWT) yet; remove the condition", key)
	case key == "connection.sni" || strings.HasPrefix(key, "experimental."):
		return AttrUnknown, "", fmt.Errorf("key %q is not supported by meshway; remove the condition", key)
	}
	return AttrUnknown, "", fmt.Errorf("key %q is not a known attribute; use one of request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, destination.ip, destination.port", key)
}

// ParseIPBlock parses a single IP ("203.0.113.4", an exact match) or a CIDR
// ("203.0.113.0/24"); host bits of a CIDR are ignored, as Envoy does.
func ParseIPBlock(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR; write e.g. 203.0.113.0/24 or 2001:db8::/32", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR; write a single IP such as 203.0.113.4 or a CIDR such as 203.0.113.0/24", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParsePort parses a destination port number, 0 to 65535 as Istio accepts.
func ParsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number; write a number from 0 to 65535 (names and ranges are not supported)", s)
	}
	return uint16(n), nil
}

// checkPattern validates a string match value: exact "abc", prefix "abc*",
// suffix "*abc" or presence "*". A '*' anywhere else would be matched
// literally by Istio, which is never what was meant, so it is an error.
func checkPattern(v string) error {
	if v == "" {
		return errors.New("value is empty; remove it, or use \"*\" to match any non-empty value")
	}
	if v == "*" {
		return nil
	}
	stars := strings.Count(v, "*")
	if stars > 1 || stars == 1 && v[0] != '*' && v[len(v)-1] != '*' {
		return fmt.Errorf("%q: '*' is allowed only once, as the first character (suffix match) or the last (prefix match), or alone (presence)", v)
	}
	return nil
}

type valueKind int

const (
	kindPattern valueKind = iota
	kindPrincipal
	kindPath
	kindIP
	kindPort
)

func checkValue(kind valueKind, v string) error {
	switch kind {
	case kindIP:
		_, err := ParseIPBlock(v)
		return err
	case kindPort:
		_, err := ParsePort(v)
		return err
	case kindPrincipal:
		if strings.HasPrefix(v, "spiffe://") {
			return fmt.Errorf("%q: write principals without the spiffe:// prefix, e.g. %q", v, strings.TrimPrefix(v, "spiffe://"))
		}
	case kindPath:
		if strings.Contains(v, "{*}") || strings.Contains(v, "{**}") {
			return fmt.Errorf("%q: path templates ({*}, {**}) are not supported; use a prefix (\"/api/*\") or suffix (\"*.png\") match", v)
		}
	}
	return checkPattern(v)
}

// fieldErrs validates every value of one field and returns errors prefixed
// with where they are.
func fieldErrs(where string, kind valueKind, values []string) []error {
	var errs []error
	for i, v := range values {
		if err := checkValue(kind, v); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", where, i, err))
		}
	}
	return errs
}

// Validate reports every problem in the policy, each naming the policy, the
// rule and field, and what to do.
func (p *AuthorizationPolicy) Validate() error {
	var errs []error
	if p.Name == "" {
		errs = append(errs, errors.New("name is empty; every policy needs the name of its AuthorizationPolicy"))
	}
	if p.Namespace == "" {
		errs = append(errs, errors.New("namespace is empty; every policy needs the namespace of its AuthorizationPolicy"))
	}
	switch p.Action.Effective() {
	case ActionAllow, ActionDeny, ActionAudit:
	case ActionCustom:
		errs = append(errs, errors.New("action CUSTOM is not supported: meshway has no external authorization providers; use ALLOW or DENY"))
	default:
		errs = append(errs, fmt.Errorf("action %q is unknown; use ALLOW, DENY or AUDIT", p.Action))
	}
	for i := range p.Rules {
		errs = append(errs, p.Rules[i].validate(fmt.Sprintf("rules[%d]", i))...)
	}
	if len(errs) == 0 {
		return nil
	}
	for i, err := range errs {
		errs[i] = fmt.Errorf("authorization policy %s/%s: %w", p.Namespace, p.Name, err)
	}
	return errors.Join(errs...)
}

func (r *Rule) validate(where string) []error {
	var errs []error
	for j, s := range r.From {
		w := fmt.Sprintf("%s.from[%d]", where, j)
		if s.empty() {
			errs = append(errs, fmt.Errorf("%s is empty; set at least one field, or remove the entry to match any source", w))
		}
		errs = append(errs, fieldErrs(w+".principals", kindPrincipal, s.Principals)...)
		errs = append(errs, fieldErrs(w+".notPrincipals", kindPrincipal, s.NotPrincipals)...)
		errs = append(errs, fieldErrs(w+".namespaces", kindPattern, s.Namespaces)...)
		errs = append(errs, fieldErrs(w+".notNamespaces", kindPattern, s.NotNamespaces)...)
		errs = append(errs, fieldErrs(w+".ipBlocks", kindIP, s.IPBlocks)...)
		errs = append(errs, fieldErrs(w+".notIpBlocks", kindIP, s.NotIPBlocks)...)
		errs = append(errs, fieldErrs(w+".remoteIpBlocks", kindIP, s.RemoteIPBlocks)...)
		errs = append(errs, fieldErrs(w+".notRemoteIpBlocks", kindIP, s.NotRemoteIPBlocks)...)
	}
	for j, o := range r.To {
		w := fmt.Sprintf("%s.to[%d]", where, j)
		if o.empty() {
			errs = append(errs, fmt.Errorf("%s is empty; set at least one field, or remove the entry to match any operation", w))
		}
		errs = append(errs, fieldErrs(w+".hosts", kindPattern, o.Hosts)...)
		errs = append(errs, fieldErrs(w+".notHosts", kindPattern, o.NotHosts)...)
		errs = append(errs, fieldErrs(w+".ports", kindPort, o.Ports)...)
		errs = append(errs, fieldErrs(w+".notPorts", kindPort, o.NotPorts)...)
		errs = append(errs, fieldErrs(w+".methods", kindPattern, o.Methods)...)
		errs = append(errs, fieldErrs(w+".notMethods", kindPattern, o.NotMethods)...)
		errs = append(errs, fieldErrs(w+".paths", kindPath, o.Paths)...)
		errs = append(errs, fieldErrs(w+".notPaths", kindPath, o.NotPaths)...)
	}
	for j, c := range r.When {
		w := fmt.Sprintf("%s.when[%d]", where, j)
		attr, _, err := ParseConditionKey(c.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", w, err))
			continue
		}
		if len(c.Values) == 0 && len(c.NotValues) == 0 {
			errs = append(errs, fmt.Errorf("%s (%s): set values or notValues", w, c.Key))
		}
		kind := kindPattern
		switch attr {
		case AttrSourceIP, AttrRemoteIP, AttrDestinationIP:
			kind = kindIP
		case AttrDestinationPort:
			kind = kindPort
		case AttrSourcePrincipal:
			kind = kindPrincipal
		}
		errs = append(errs, fieldErrs(w+".values", kind, c.Values)...)
		errs = append(errs, fieldErrs(w+".notValues", kind, c.NotValues)...)
	}
	return errs
}

func (s *Source) empty() bool {
	return len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces)+len(s.NotNamespaces)+
		len(s.IPBlocks)+len(s.NotIPBlocks)+len(s.RemoteIPBlocks)+len(s.NotRemoteIPBlocks) == 0
}

func (o *Operation) empty() bool {
	return len(o.Hosts)+len(o.NotHosts)+len(o.Ports)+len(o.NotPorts)+
		len(o.Methods)+len(o.NotMethods)+len(o.Paths)+len(o.NotPaths) == 0
}
