package model

import (
	"fmt"
	"strings"
	"time"
)

// LocalRateLimit is one meshway LocalRateLimitPolicy
// (ratelimit.meshway.io/v1alpha1) as it applies to a proxy: requests matched
// by a rule are limited by that rule's token bucket. Every rule that matches
// a request must allow it (the most restrictive rule wins). The limit is
// local: each waypoint replica counts on its own.
type LocalRateLimit struct {
	Name      string          `json:"name"`
	Namespace string          `json:"namespace"`
	Rules     []RateLimitRule `json:"rules"`
}

// RateLimitRule limits the requests it matches: those from the clients its
// ClientSelectors select (all of them must hold; none means every client),
// and, when Route is set, only those the route (rule) matched. Fields are
// named as in Envoy Gateway's BackendTrafficPolicy local rate limit.
type RateLimitRule struct {
	ClientSelectors []RateLimitSelector `json:"clientSelectors,omitempty"`
	Route           *RateLimitRoute     `json:"route,omitempty"`
	Limit           RateLimitValue      `json:"limit"`
	// Burst is the token bucket's size: how many requests can be sent at
	// once after a quiet period. 0 means Limit.Requests.
	Burst int `json:"burst,omitempty"`
}

// RateLimitSelector selects clients: every set field must match. A
// selector using Distinct gives each distinct value (each client) its own
// bucket; otherwise all requests the rule matches share one.
type RateLimitSelector struct {
	Headers         []RateLimitHeaderMatch   `json:"headers,omitempty"`
	SourceCIDR      *RateLimitSourceMatch    `json:"sourceCIDR,omitempty"`
	SourcePrincipal *RateLimitPrincipalMatch `json:"sourcePrincipal,omitempty"`
}

// MatchDistinct is a match type of rate limit selectors: any value matches
// and each distinct value gets its own bucket.
const MatchDistinct = "Distinct"

// RateLimitHeaderMatch matches a request header. Type is Exact (the
// default when empty), RegularExpression (RE2, matching the whole value) or
// Distinct (any value; one bucket per value). A request without the header
// never matches, whatever the type.
type RateLimitHeaderMatch struct {
	Type string `json:"type,omitempty"`
	Name string `json:"name"`
	// Value is required for Exact and RegularExpression and must be empty
	// for Distinct.
	Value string `json:"value,omitempty"`
}

// RateLimitSourceMatch matches the connection's source IP against a CIDR
// ("10.0.0.0/8", or a single IP). Type Exact (the default when empty): all
// addresses in Value share the rule's bucket; Distinct: each address in
// Value gets its own bucket ("0.0.0.0/0" and "::/0": per client IP).
type RateLimitSourceMatch struct {
	Type  string `json:"type,omitempty"`
	Value string `json:"value"`
}

// RateLimitPrincipalMatch matches the peer's identity (its SPIFFE ID
// without spiffe://, e.g. "cluster.local/ns/default/sa/sleep"). Type Exact
// (the default when empty) compares it with Value; Distinct matches any
// identity, one bucket per identity, and needs no Value. A plaintext peer
// (no identity) never matches.
type RateLimitPrincipalMatch struct {
	Type  string `json:"type,omitempty"`
	Value string `json:"value,omitempty"`
}

// RateLimitRoute restricts a rule to the requests a route sent on: the
// route object Kind/Namespace/Name and, when RuleName is set, only its rule
// of that name. Requests no route matched (sent to the service's own
// endpoints) are not limited by such a rule.
type RateLimitRoute struct {
	Kind RouteKind `json:"kind,omitempty"` // empty means HTTPRoute
	// Namespace is the route's namespace; empty means the policy's.
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	RuleName  string `json:"ruleName,omitempty"`
}

// RateLimitUnit is the period a limit's requests are counted over.
type RateLimitUnit string

// Rate limit units.
const (
	RateLimitSecond RateLimitUnit = "Second"
	RateLimitMinute RateLimitUnit = "Minute"
	RateLimitHour   RateLimitUnit = "Hour"
)

// Duration returns the unit's length, 0 for an unknown unit.
func (u RateLimitUnit) Duration() time.Duration {
	switch u {
	case RateLimitSecond:
		return time.Second
	case RateLimitMinute:
		return time.Minute
	case RateLimitHour:
		return time.Hour
	}
	return 0
}

// MaxRateLimitRequests bounds Requests and Burst, so that a bucket's state
// (in nanoseconds times requests, up to an hour) fits in an int64.
const MaxRateLimitRequests = 1_000_000

// RateLimitValue is Requests per Unit: the bucket's refill rate.
type RateLimitValue struct {
	Requests int           `json:"requests"`
	Unit     RateLimitUnit `json:"unit"`
}

// EffectiveBurst returns the bucket size: Burst, or Limit.Requests when
// Burst is 0.
func (r *RateLimitRule) EffectiveBurst() int {
	if r.Burst == 0 {
		return r.Limit.Requests
	}
	return r.Burst
}

// Validate reports every problem in the policy, each naming the policy and
// the field, and what to do.
func (p *LocalRateLimit) Validate() error {
	v := &validator{}
	if p.Name == "" {
		v.addf("name is empty; every policy needs the name of its LocalRateLimitPolicy")
	}
	if p.Namespace == "" {
		v.addf("namespace is empty; every policy needs the namespace of its LocalRateLimitPolicy")
	}
	if len(p.Rules) == 0 {
		v.addf("rules is empty; add at least one rule with a limit, or remove the policy")
	}
	for i := range p.Rules {
		p.Rules[i].validate(v, fmt.Sprintf("rules[%d]", i))
	}
	if len(v.errs) == 0 {
		return nil
	}
	for i, err := range v.errs {
		v.errs[i] = fmt.Errorf("local rate limit %s/%s: %w", p.Namespace, p.Name, err)
	}
	return v.err()
}

func (r *RateLimitRule) validate(v *validator, at string) {
	switch n := r.Limit.Requests; {
	case n < 1:
		v.addf("%s.limit.requests: %d; set at least 1 request per unit", at, n)
	case n > MaxRateLimitRequests:
		v.addf("%s.limit.requests: %d is more than %d; use a shorter unit", at, n, MaxRateLimitRequests)
	}
	switch r.Limit.Unit {
	case RateLimitSecond, RateLimitMinute, RateLimitHour:
	case "":
		v.addf("%s.limit.unit: required; use Second, Minute or Hour", at)
	default:
		v.addf("%s.limit.unit: unknown %q; use Second, Minute or Hour", at, r.Limit.Unit)
	}
	switch {
	case r.Burst < 0:
		v.addf("%s.burst: %d is negative; set the bucket size (at least 1), or leave it out to use limit.requests", at, r.Burst)
	case r.Burst > MaxRateLimitRequests:
		v.addf("%s.burst: %d is more than %d; lower it", at, r.Burst, MaxRateLimitRequests)
	}
	for i := range r.ClientSelectors {
		r.ClientSelectors[i].validate(v, fmt.Sprintf("%s.clientSelectors[%d]", at, i))
	}
	if rt := r.Route; rt != nil {
		rat := at + ".route"
		switch rt.Kind {
		case "", KindHTTPRoute, KindGRPCRoute, KindVirtualService:
		default:
			v.addf("%s.kind: unknown %q; use HTTPRoute, GRPCRoute or VirtualService", rat, rt.Kind)
		}
		if rt.Name == "" {
			v.addf("%s.name: required; name the route whose traffic the rule limits, or remove route to limit all traffic", rat)
		}
	}
}

func (s *RateLimitSelector) validate(v *validator, at string) {
	if len(s.Headers) == 0 && s.SourceCIDR == nil && s.SourcePrincipal == nil {
		v.addf("%s is empty; set headers, sourceCIDR or sourcePrincipal, or remove the entry to match every client", at)
	}
	for i, h := range s.Headers {
		hat := fmt.Sprintf("%s.headers[%d]", at, i)
		if h.Name == "" {
			v.addf("%s.name: required; name the request header to match", hat)
		} else if strings.ContainsAny(h.Name, " \t\r\n:") {
			v.addf("%s.name: %q is not a header name; write it without spaces or ':', e.g. x-user-id", hat, h.Name)
		}
		switch h.Type {
		case "", MatchExact:
			if h.Value == "" {
				v.addf("%s.value: required for type Exact; set the value to match, or use type Distinct for one bucket per value", hat)
			}
		case MatchRegularExpression:
			if h.Value == "" {
				v.addf("%s.value: required for type RegularExpression; set an RE2 expression", hat)
			} else {
				v.regexp(hat+".value", h.Value)
			}
		case MatchDistinct:
			if h.Value != "" {
				v.addf("%s.value: must be empty for type Distinct (every value gets its own bucket); remove it, or use type Exact", hat)
			}
		default:
			v.addf("%s.type: unknown %q; use Exact, RegularExpression or Distinct", hat, h.Type)
		}
	}
	if c := s.SourceCIDR; c != nil {
		cat := at + ".sourceCIDR"
		switch c.Type {
		case "", MatchExact, MatchDistinct:
		default:
			v.addf("%s.type: unknown %q; use Exact or Distinct", cat, c.Type)
		}
		if c.Value == "" {
			v.addf("%s.value: required; set a CIDR such as 10.0.0.0/8 (0.0.0.0/0 and ::/0 for every client)", cat)
		} else if _, err := ParseIPBlock(c.Value); err != nil {
			v.addf("%s.value: %w", cat, err)
		}
	}
	if pm := s.SourcePrincipal; pm != nil {
		pat := at + ".sourcePrincipal"
		switch pm.Type {
		case "", MatchExact:
			switch {
			case pm.Value == "":
				v.addf("%s.value: required for type Exact; set a principal such as cluster.local/ns/default/sa/sleep, or use type Distinct", pat)
			case strings.HasPrefix(pm.Value, "spiffe://"):
				v.addf("%s.value: %q: write the principal without the spiffe:// prefix, e.g. %q", pat, pm.Value, strings.TrimPrefix(pm.Value, "spiffe://"))
			case strings.Contains(pm.Value, "*"):
				v.addf("%s.value: %q: type Exact compares the whole principal and '*' is not a wildcard; write the full principal", pat, pm.Value)
			}
		case MatchDistinct:
			if pm.Value != "" {
				v.addf("%s.value: must be empty for type Distinct (every principal gets its own bucket); remove it, or use type Exact", pat)
			}
		default:
			v.addf("%s.type: unknown %q; use Exact or Distinct", pat, pm.Type)
		}
	}
}
