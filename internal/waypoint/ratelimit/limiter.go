package ratelimit

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshway/meshway/internal/model"
)

// What the waypoint answers to a denied request, as Envoy's local rate
// limit filter does.
const (
	DeniedStatus = http.StatusTooManyRequests
	DeniedBody   = "local_rate_limited"
)

// Response headers [Decision.SetHeaders] writes, in canonical form.
const (
	HeaderRetryAfter = "Retry-After"
	HeaderLimit      = "X-Ratelimit-Limit"
	HeaderRemaining  = "X-Ratelimit-Remaining"
)

// HeaderGetter gives the values of a request header; http.Header satisfies
// it. Names are passed in canonical MIME form ("X-User"), so an http.Header
// lookup does not allocate.
type HeaderGetter interface {
	Values(name string) []string
}

// Request is what a rule can look at.
type Request struct {
	// Headers are the request's headers; nil matches no header selector.
	Headers HeaderGetter
	// Host is the Host header (HTTP/2 :authority), for selectors on "Host".
	Host string
	// SourceIP is the connection's peer address; invalid when unknown.
	SourceIP netip.Addr
	// SourcePrincipal is the peer identity without spiffe://
	// ("cluster.local/ns/default/sa/sleep"); empty for plaintext.
	SourcePrincipal string
	// RouteKind, RouteNamespace and RouteName name the route object the
	// request went by (an empty RouteKind means HTTPRoute), RouteRule the
	// name of its rule; RouteName is empty when no route matched.
	RouteKind                 model.RouteKind
	RouteNamespace, RouteName string
	RouteRule                 string
}

// Decision is the outcome of [Limiter.Allow]. When no rule matched, it is
// Allowed with Policy empty.
type Decision struct {
	Allowed bool
	// RetryAfter is, for a denied request, how long until every rule that
	// denied it has a token again.
	RetryAfter time.Duration
	// Limit is the bucket size and Remaining the whole tokens left in it,
	// of the rule the decision reports (see the package documentation).
	Limit, Remaining int
	// Policy ("namespace/name") and Rule (its index in the policy's
	// rules) name that rule.
	Policy string
	Rule   int
}

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, as the
// retry-after header carries it; 0 for an allowed request.
func (d *Decision) RetryAfterSeconds() int {
	if d.Allowed || d.RetryAfter <= 0 {
		return 0
	}
	return int((d.RetryAfter + time.Second - 1) / time.Second)
}

// SetHeaders writes the rate limit headers of the decision to a response's
// headers: x-ratelimit-limit and x-ratelimit-remaining when a rule matched,
// and retry-after when the request is denied. It writes nothing when no
// rule matched.
func (d *Decision) SetHeaders(h http.Header) {
	if d.Policy == "" {
		return
	}
	h.Set(HeaderLimit, strconv.Itoa(d.Limit))
	h.Set(HeaderRemaining, strconv.Itoa(d.Remaining))
	if !d.Allowed {
		h.Set(HeaderRetryAfter, strconv.Itoa(d.RetryAfterSeconds()))
	}
}

// Limiter is a compiled set of rate limit policies, safe for concurrent
// use. A nil Limiter allows everything.
type Limiter struct {
	rules []*rule
}

// rule is a compiled model.RateLimitRule: every check must hold.
type rule struct {
	policy string // namespace/name
	index  int
	// id is what Inherit matches rules by: the policy, the index and the
	// rule's fields.
	id string

	headers    []headerMatch  // Exact and RegularExpression
	cidrs      []netip.Prefix // the source IP must be in each (Exact and Distinct)
	principals []string       // the principal must equal each
	route      *model.RateLimitRoute

	// Distinct parts of the key.
	distinctHeaders   []headerName
	distinctIP        bool
	distinctPrincipal bool

	st *state
}

type headerName struct {
	name string // canonical MIME form
	host bool   // "Host": Request.Host
}

type headerMatch struct {
	headerName
	value string
	re    *regexp.Regexp // RegularExpression; nil for Exact
}

// Compile validates and compiles policies. Their order does not matter.
// The same policy (namespace/name) given twice with identical rules is
// compiled once, so callers may pass a waypoint's policies together with
// a service's even when a policy targets both; given twice with different
// rules, it is an error.
func Compile(policies []model.LocalRateLimit) (*Limiter, error) {
	return compile(policies, MaxBuckets)
}

func compile(policies []model.LocalRateLimit, maxBuckets int) (*Limiter, error) {
	var errs []error
	byID := map[string]*model.LocalRateLimit{}
	var list []*model.LocalRateLimit
	for i := range policies {
		p := &policies[i]
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		id := p.Namespace + "/" + p.Name
		if prev, ok := byID[id]; ok {
			if !equalJSON(prev.Rules, p.Rules) {
				errs = append(errs, fmt.Errorf("local rate limit %s: given twice with different rules; the configuration must hold one version of each policy", id))
			}
			continue
		}
		byID[id] = p
		list = append(list, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Deterministic order, whatever the input's: decisions that tie report
	// the same rule.
	slices.SortFunc(list, func(a, b *model.LocalRateLimit) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	l := &Limiter{}
	for _, p := range list {
		for i := range p.Rules {
			l.rules = append(l.rules, compileRule(p, i, maxBuckets))
		}
	}
	return l, nil
}

func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func compileRule(p *model.LocalRateLimit, index int, maxBuckets int) *rule {
	mr := &p.Rules[index]
	spec, _ := json.Marshal(mr) // plain data: cannot fail
	r := &rule{
		policy: p.Namespace + "/" + p.Name,
		index:  index,
	}
	r.id = fmt.Sprintf("%s[%d]%s", r.policy, index, spec)
	for i := range mr.ClientSelectors {
		s := &mr.ClientSelectors[i]
		for _, h := range s.Headers {
			hn := headerName{name: textproto.CanonicalMIMEHeaderKey(h.Name)}
			hn.host = hn.name == "Host"
			switch h.Type {
			case model.MatchDistinct:
				if !slices.Contains(r.distinctHeaders, hn) {
					r.distinctHeaders = append(r.distinctHeaders, hn)
				}
			case model.MatchRegularExpression:
				r.headers = append(r.headers, headerMatch{headerName: hn, re: regexp.MustCompile("^(?:" + h.Value + ")$")}) // validated
			default:
				r.headers = append(r.headers, headerMatch{headerName: hn, value: h.Value})
			}
		}
		if c := s.SourceCIDR; c != nil {
			prefix, _ := model.ParseIPBlock(c.Value) // validated
			r.cidrs = append(r.cidrs, prefix)
			r.distinctIP = r.distinctIP || c.Type == model.MatchDistinct
		}
		if pm := s.SourcePrincipal; pm != nil {
			if pm.Type == model.MatchDistinct {
				r.distinctPrincipal = true
			} else {
				r.principals = append(r.principals, pm.Value)
			}
		}
	}
	if mr.Route != nil {
		rt := *mr.Route
		if rt.Kind == "" {
			rt.Kind = model.KindHTTPRoute
		}
		if rt.Namespace == "" {
			rt.Namespace = p.Namespace
		}
		r.route = &rt
	}
	period := int64(mr.Limit.Unit.Duration())
	burst := mr.EffectiveBurst()
	pr := params{period: period, rate: int64(mr.Limit.Requests), capacity: int64(burst) * period, burst: burst}
	r.st = newState(pr, len(r.distinctHeaders) > 0 || r.distinctIP || r.distinctPrincipal, maxBuckets)
	return r
}

// Inherit makes l use prev's buckets for every rule both have unchanged
// (same policy, same index, same fields), so their state survives a
// configuration change; l's other rules keep fresh buckets. Call it before
// l is used: it must not run concurrently with l.Allow (prev may be in use).
func (l *Limiter) Inherit(prev *Limiter) {
	if l == nil || prev == nil {
		return
	}
	old := make(map[string]*state, len(prev.rules))
	for _, r := range prev.rules {
		old[r.id] = r.st
	}
	for _, r := range l.rules {
		if st, ok := old[r.id]; ok {
			r.st = st
		}
	}
}

// Allow decides whether the request r, made at now, is within every limit
// that applies to it, and takes a token from each if so. It allocates only
// for Distinct keys that need building (several Distinct fields or header
// values, keys over 64 bytes) and for a client's first request.
func (l *Limiter) Allow(r *Request, now time.Time) Decision {
	if l == nil {
		return Decision{Allowed: true}
	}
	d := Decision{Allowed: true}
	denied := -1
	for i, ru := range l.rules {
		k, ok := ru.match(r)
		if !ok {
			continue
		}
		res := ru.st.take(&k, now)
		if !res.allowed {
			denied = i
			d = ru.denial(res.wait)
			break
		}
		if d.Policy == "" || res.remaining < d.Remaining {
			d = Decision{Allowed: true, Limit: ru.st.p.burst, Remaining: res.remaining, Policy: ru.policy, Rule: ru.index}
		}
	}
	if denied < 0 {
		return d
	}
	// Give back what the rules before the denying one took, and report the
	// rule that frees up last.
	for i, ru := range l.rules {
		if i == denied {
			continue
		}
		k, ok := ru.match(r)
		if !ok {
			continue
		}
		if i < denied {
			ru.st.give(&k, now)
		} else if w := ru.st.wait(&k, now); w > d.RetryAfter {
			d = ru.denial(w)
		}
	}
	return d
}

func (ru *rule) denial(wait time.Duration) Decision {
	return Decision{RetryAfter: wait, Limit: ru.st.p.burst, Policy: ru.policy, Rule: ru.index}
}

// match reports whether the rule applies to r and returns r's bucket key.
func (ru *rule) match(r *Request) (key, bool) {
	if rt := ru.route; rt != nil {
		kind := r.RouteKind
		if kind == "" {
			kind = model.KindHTTPRoute
		}
		if r.RouteName != rt.Name || r.RouteNamespace != rt.Namespace || kind != rt.Kind ||
			rt.RuleName != "" && r.RouteRule != rt.RuleName {
			return key{}, false
		}
	}
	var k key
	if len(ru.cidrs) > 0 {
		ip := r.SourceIP.Unmap()
		if !ip.IsValid() {
			return key{}, false
		}
		for _, p := range ru.cidrs {
			if !p.Contains(ip) {
				return key{}, false
			}
		}
		if ru.distinctIP {
			k.ip = ip
		}
	}
	if len(ru.principals) > 0 || ru.distinctPrincipal {
		if r.SourcePrincipal == "" {
			return key{}, false
		}
		for _, p := range ru.principals {
			if r.SourcePrincipal != p {
				return key{}, false
			}
		}
		if ru.distinctPrincipal {
			k.principal = compact(r.SourcePrincipal)
		}
	}
	for i := range ru.headers {
		if !ru.headers[i].matches(r) {
			return key{}, false
		}
	}
	if len(ru.distinctHeaders) > 0 {
		v, ok := ru.distinctKey(r)
		if !ok {
			return key{}, false
		}
		k.header = compact(v)
	}
	return k, true
}

func (h *headerMatch) matches(r *Request) bool {
	if h.host {
		return r.Host != "" && h.matchValue(r.Host)
	}
	if r.Headers == nil {
		return false
	}
	for _, v := range r.Headers.Values(h.name) {
		if h.matchValue(v) {
			return true
		}
	}
	return false
}

func (h *headerMatch) matchValue(v string) bool {
	if h.re != nil {
		return h.re.MatchString(v)
	}
	return v == h.value
}

// distinctKey is the Distinct headers' values: one header's single value
// as it is; several values of a header joined with ","; several headers
// joined with "\n" (which no header value holds). false when a header is
// missing.
func (ru *rule) distinctKey(r *Request) (string, bool) {
	if len(ru.distinctHeaders) == 1 && !ru.distinctHeaders[0].host {
		if r.Headers == nil {
			return "", false
		}
		vals := r.Headers.Values(ru.distinctHeaders[0].name)
		switch len(vals) {
		case 0:
			return "", false
		case 1:
			return vals[0], true
		}
		return strings.Join(vals, ","), true
	}
	var b strings.Builder
	for i := range ru.distinctHeaders {
		h := &ru.distinctHeaders[i]
		var vals []string
		if h.host {
			if r.Host == "" {
				return "", false
			}
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(r.Host)
			continue
		}
		if r.Headers != nil {
			vals = r.Headers.Values(h.name)
		}
		if len(vals) == 0 {
			return "", false
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		for j, v := range vals {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(v)
		}
	}
	return b.String(), true
}

// maxKeyLen bounds the bytes of a key part kept per bucket.
const maxKeyLen = 64

// compact replaces a long key part by its SHA-256 (prefixed with a byte no
// header value or principal holds, so it cannot equal a short key).
func compact(s string) string {
	if len(s) <= maxKeyLen {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "\x00" + string(sum[:])
}
