package authz

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/meshway/meshway/internal/model"
)

// What a proxy answers to a denied HTTP request, as Envoy's RBAC filter does.
const (
	DeniedStatus = 403
	DeniedBody   = "RBAC: access denied"
)

// HeaderGetter gives the values of a request header; http.Header satisfies
// it. Names are passed in canonical MIME form ("X-User"), so an http.Header
// lookup does not allocate.
type HeaderGetter interface {
	Values(name string) []string
}

// Request is what a policy can look at. For ztunnel (L4) HTTP is false and
// only the peer, addresses and destination port are set.
type Request struct {
	// Source is the peer's identity from the HBONE (mTLS) peer certificate;
	// zero for plaintext.
	Source PeerIdentity
	// SourceIP is the connection's peer address; RemoteIP the original
	// client (first X-Forwarded-For / forwarded address), invalid when
	// absent, in which case remoteIpBlocks match SourceIP.
	SourceIP, RemoteIP netip.Addr
	DestinationIP      netip.Addr
	DestinationPort    uint16
	// HTTP says whether the HTTP fields below are known.
	HTTP bool
	// Host is the Host/:authority as sent; Path may include a query string.
	Host, Method, Path string
	Headers            HeaderGetter
}

// Decision is the outcome of [Engine.Evaluate].
type Decision struct {
	Allowed bool
	// Audit is set when an AUDIT policy matched, whatever the outcome.
	Audit bool
	// Policy is "namespace/name" of the policy that decided: the matching
	// DENY or ALLOW policy; empty when no ALLOW policy applies (default
	// allow) or none matched.
	Policy string
	// Reason says why, for logs and debugging.
	Reason string
}

// Reasons that no single rule gives.
const (
	reasonNoAllowPolicies = "allowed: no ALLOW policy applies"
	reasonNoAllowMatched  = "denied: no ALLOW policy matched"
)

// Engine is a compiled set of policies, safe for concurrent use. A nil
// Engine allows everything, like an empty one.
type Engine struct {
	audit, deny, allow []policy
}

type policy struct {
	id    string // namespace/name
	rules []rule
}

// rule is a compiled model.Rule: every when check, one of the from entries
// and one of the to entries must hold (an empty list holds).
type rule struct {
	from, to [][]check
	when     []check
	// httpOnly is set when some check needs HTTP; such an ALLOW rule never
	// matches a non-HTTP request.
	httpOnly bool
	reason   string
}

// Compile validates and compiles policies. Their order does not matter.
func Compile(policies []model.AuthorizationPolicy) (*Engine, error) {
	var errs []error
	for i := range policies {
		if err := policies[i].Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e := &Engine{}
	for i := range policies {
		p := &policies[i]
		cp := compilePolicy(p)
		switch p.Action.Effective() {
		case model.ActionDeny:
			e.deny = append(e.deny, cp)
		case model.ActionAudit:
			e.audit = append(e.audit, cp)
		default:
			e.allow = append(e.allow, cp)
		}
	}
	return e, nil
}

func compilePolicy(p *model.AuthorizationPolicy) policy {
	action := p.Action.Effective()
	verb := map[model.Action]string{model.ActionAllow: "allowed", model.ActionDeny: "denied", model.ActionAudit: "audited"}[action]
	cp := policy{id: p.Namespace + "/" + p.Name}
	for i := range p.Rules {
		mr := &p.Rules[i]
		r := rule{reason: fmt.Sprintf("%s by %s policy %s rules[%d]", verb, action, cp.id, i)}
		for j := range mr.From {
			r.from = append(r.from, compileSource(&mr.From[j]))
		}
		for j := range mr.To {
			r.to = append(r.to, compileOperation(&mr.To[j]))
		}
		for j := range mr.When {
			r.when = compileCondition(r.when, &mr.When[j])
		}
		for _, list := range [][][]check{r.from, r.to, {r.when}} {
			for _, cs := range list {
				for _, c := range cs {
					r.httpOnly = r.httpOnly || c.attr.httpOnly()
				}
			}
		}
		cp.rules = append(cp.rules, r)
	}
	return cp
}

// Evaluate decides a request: DENY policies first, then ALLOW; AUDIT policies
// only set Decision.Audit. It does not allocate.
func (e *Engine) Evaluate(r *Request) Decision {
	if e == nil {
		return Decision{Allowed: true, Reason: reasonNoAllowPolicies}
	}
	audit := false
	for i := range e.audit {
		if e.audit[i].match(r, false) != nil {
			audit = true
			break
		}
	}
	for i := range e.deny {
		if ru := e.deny[i].match(r, false); ru != nil {
			return Decision{Allowed: false, Audit: audit, Policy: e.deny[i].id, Reason: ru.reason}
		}
	}
	if len(e.allow) == 0 {
		return Decision{Allowed: true, Audit: audit, Reason: reasonNoAllowPolicies}
	}
	for i := range e.allow {
		if ru := e.allow[i].match(r, true); ru != nil {
			return Decision{Allowed: true, Audit: audit, Policy: e.allow[i].id, Reason: ru.reason}
		}
	}
	return Decision{Allowed: false, Audit: audit, Reason: reasonNoAllowMatched}
}

// match returns the first rule of p matching r, or nil.
func (p *policy) match(r *Request, allow bool) *rule {
	for i := range p.rules {
		if p.rules[i].match(r, allow) {
			return &p.rules[i]
		}
	}
	return nil
}

func (ru *rule) match(r *Request, allow bool) bool {
	if ru.httpOnly && !r.HTTP && allow {
		return false
	}
	// Cheapest first: header conditions look into a map.
	return anyOf(ru.from, r) && anyOf(ru.to, r) && allOf(ru.when, r)
}

// allOf is true when every check holds; checks on HTTP-only attributes are
// skipped for non-HTTP requests (only DENY and AUDIT rules get that far).
func allOf(cs []check, r *Request) bool {
	for i := range cs {
		if !r.HTTP && cs[i].attr.httpOnly() {
			continue
		}
		if !cs[i].eval(r) {
			return false
		}
	}
	return true
}

func anyOf(entries [][]check, r *Request) bool {
	if len(entries) == 0 {
		return true
	}
	for _, cs := range entries {
		if allOf(cs, r) {
			return true
		}
	}
	return false
}
