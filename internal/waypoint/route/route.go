// Package route owns the waypoint's HTTP routing table: it compiles the
// routes attached to one service port ([model.HTTPRoute] values of kind
// HTTPRoute, GRPCRoute and VirtualService) into a [Table], finds the rule a
// request goes by ([Table.Match]) and picks one of the rule's backends by
// weight ([Rule.Pick]). It does not forward requests or apply filters: the
// waypoint engine does, with the rule it gets from here.
//
// Matching (Gateway API v1 HTTPRoute and GRPCRoute):
//
//   - A rule without matches matches every request (for a GRPCRoute: every
//     gRPC request). A rule matches when any of its matches does; a match
//     holds when all of its set fields do.
//   - Paths are compared with r.URL.Path, as the engine leaves it. Exact
//     compares the whole path. PathPrefix is element-wise: "/foo" and "/foo/"
//     match "/foo", "/foo/" and "/foo/bar", not "/foobar"; "/" matches every
//     path. RegularExpression is RE2 and must match the whole path.
//   - Header names are case-insensitive; the request's header map must use
//     canonical keys, as net/http gives them (the lookup is the one
//     http.Header.Values does). "Host" matches r.Host. A header sent several
//     times matches as its values joined with "," (as Envoy does). A missing
//     header never matches. Only the first of several header (or query
//     parameter) matches with the same name counts, as the Gateway API says.
//   - Query parameter names are case-sensitive; the parameter's first value,
//     as r.URL.Query() would give it, is matched.
//   - Methods compare exactly (upper case).
//   - A gRPC match (GRPCRoute kind, or a match with GRPC set) requires a gRPC
//     request: Content-Type "application/grpc", alone or followed by "+" or
//     ";" (so not grpc-web). The path must be "/<service>/<method>"; service
//     and method, when set, compare exactly, or (type RegularExpression) are
//     RE2 expressions that must match the whole service or method name.
//
// Order (see precedence.go): VirtualService entries first, first-match in the
// order given; then GRPCRoute entries by the GRPCRoute precedence; then
// HTTPRoute entries by the HTTPRoute precedence. A request goes by the first
// entry in that order that holds; HTTPRoute Exact and PathPrefix entries are
// indexed by path, so Match does not try them all. Match does not allocate,
// unless a regular expression has to match a header sent several times or
// a query parameter has escapes to undo.
package route

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"

	"github.com/meshway/meshway/internal/model"
)

// Table is the routing table of one service port, built by [Compile]. It is
// read-only and safe for concurrent use. A nil *Table matches nothing.
type Table struct {
	// entries are all matches, in precedence order: VirtualService and
	// GRPCRoute entries (entries[:http]), then HTTPRoute entries with an
	// Exact path, then with a PathPrefix, then with a RegularExpression
	// (entries[regex:]).
	entries     []entry
	http, regex int
	// exact and prefix index the HTTPRoute Exact and PathPrefix entries by
	// path and by prefix (without trailing "/"; "" for "/" and no path):
	// indices into entries, ascending.
	exact, prefix map[string][]int
	// grpc is set when some entry needs to know whether the request is gRPC.
	grpc bool
}

// Rule is a route rule a request can match.
type Rule struct {
	Route *model.HTTPRoute // the route object it came from
	Index int              // index of the rule in Route.Rules
	Spec  *model.RouteRule

	// total is the sum of the backends' weights above 0.
	total uint64
}

// Path match kinds, also the precedence rank of HTTPRoute path matches
// (higher first).
const (
	pathRegex        = 1 // RegularExpression: below every prefix
	pathPrefix       = 2 // element-wise PathPrefix; also no path at all
	pathExact        = 3
	pathStringPrefix = 4 // VirtualService prefix: plain string prefix
)

// entry is one match of one rule: the unit of ordering and matching.
type entry struct {
	rule *Rule
	// Matching.
	grpcOnly bool   // the request must be gRPC
	pathKind uint8  // pathExact, pathPrefix, ...
	path     string // exact path, or prefix without trailing "/" ("" is any)
	pathRE   *regexp.Regexp
	method   string
	headers  []valueMatch
	query    []valueMatch
	service  string // gRPC service, "" is any
	grpcName string // gRPC method, "" is any
	// serviceRE and methodRE replace service and grpcName for a gRPC
	// match of type RegularExpression (nil: that part is any).
	serviceRE, methodRE *regexp.Regexp
	// Ordering.
	kind  model.RouteKind
	seq   int // position of the route in Compile's input
	name  string
	match int // index of the match in the rule (0 for a rule without matches)
}

// valueMatch is one header or query parameter match.
type valueMatch struct {
	name  string // canonical MIME form for headers
	host  bool   // the Host header: matched against r.Host
	value string
	re    *regexp.Regexp // RegularExpression; nil for Exact
}

// Compile builds the routing table of one service port from its routes.
// The table keeps pointers into routes (Rule.Route, Rule.Spec): they must not
// be modified afterwards. Errors name the route, rule and match at fault.
func Compile(routes []model.HTTPRoute) (*Table, error) {
	t := &Table{}
	var errs []error
	var vs, grpc, http []entry
	for i := range routes {
		rt := &routes[i]
		kind := rt.Kind
		if kind == "" {
			kind = model.KindHTTPRoute
		}
		name := rt.Namespace + "/" + rt.Name
		switch kind {
		case model.KindHTTPRoute, model.KindGRPCRoute, model.KindVirtualService:
		default:
			errs = append(errs, fmt.Errorf("route %s: unknown kind %q; use HTTPRoute, GRPCRoute or VirtualService", name, rt.Kind))
			continue
		}
		for j := range rt.Rules {
			spec := &rt.Rules[j]
			rule := &Rule{Route: rt, Index: j, Spec: spec}
			for _, b := range spec.Backends {
				if w := b.EffectiveWeight(); w > 0 {
					rule.total += uint64(w)
				}
			}
			base := entry{rule: rule, kind: kind, seq: i, name: name, grpcOnly: kind == model.KindGRPCRoute, pathKind: pathPrefix}
			var es []entry
			if len(spec.Matches) == 0 {
				es = append(es, base)
			}
			for k := range spec.Matches {
				e, err := compileMatch(base, k, &spec.Matches[k])
				if err != nil {
					errs = append(errs, fmt.Errorf("%s %s rules[%d].matches[%d].%w", kind, name, j, k, err))
					continue
				}
				es = append(es, e)
			}
			for _, e := range es {
				t.grpc = t.grpc || e.grpcOnly
			}
			switch kind {
			case model.KindVirtualService:
				vs = append(vs, es...)
			case model.KindGRPCRoute:
				grpc = append(grpc, es...)
			default:
				http = append(http, es...)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sortGRPC(grpc)
	sortHTTP(http)
	t.entries = make([]entry, 0, len(vs)+len(grpc)+len(http))
	t.entries = append(append(append(t.entries, vs...), grpc...), http...)
	t.http = len(vs) + len(grpc)
	t.regex = len(t.entries)
	t.exact, t.prefix = map[string][]int{}, map[string][]int{}
	for i := t.http; i < len(t.entries); i++ {
		switch e := &t.entries[i]; e.pathKind {
		case pathExact:
			t.exact[e.path] = append(t.exact[e.path], i)
		case pathPrefix:
			t.prefix[e.path] = append(t.prefix[e.path], i)
		default:
			t.regex = min(t.regex, i)
		}
	}
	return t, nil
}

// compileMatch turns match k of a rule into an entry based on base. Errors
// start with the field at fault ("path.value: ..."), for Compile to prefix.
func compileMatch(base entry, k int, m *model.RouteMatch) (entry, error) {
	e := base
	e.match = k
	if p := m.Path; p != nil {
		switch p.Type {
		case model.MatchExact:
			e.pathKind, e.path = pathExact, p.Value
		case model.MatchPathPrefix:
			e.pathKind, e.path = pathPrefix, strings.TrimRight(p.Value, "/")
			if e.kind == model.KindVirtualService {
				// Istio's uri prefix is a plain string prefix.
				e.pathKind, e.path = pathStringPrefix, p.Value
			}
		case model.MatchRegularExpression:
			re, err := compileRegexp(p.Value)
			if err != nil {
				return e, fmt.Errorf("path.value: %w", err)
			}
			e.pathKind, e.pathRE = pathRegex, re
		default:
			return e, fmt.Errorf("path.type: unknown %q; use Exact, PathPrefix or RegularExpression", p.Type)
		}
	}
	e.method = m.Method
	var err error
	if e.headers, err = compileValues("headers", m.Headers, true); err != nil {
		return e, err
	}
	if e.query, err = compileValues("queryParams", m.QueryParams, false); err != nil {
		return e, err
	}
	if g := m.GRPC; g != nil {
		e.grpcOnly = true
		switch g.Type {
		case "", model.MatchExact:
			e.service, e.grpcName = g.Service, g.Method
		case model.MatchRegularExpression:
			for _, part := range []struct {
				field, expr string
				re          **regexp.Regexp
			}{{"service", g.Service, &e.serviceRE}, {"method", g.Method, &e.methodRE}} {
				if part.expr == "" {
					continue
				}
				if *part.re, err = compileRegexp(part.expr); err != nil {
					return e, fmt.Errorf("grpc.%s: %w", part.field, err)
				}
			}
		default:
			return e, fmt.Errorf("grpc.type: unknown %q; use Exact or RegularExpression", g.Type)
		}
	}
	return e, nil
}

// compileValues compiles header (or query parameter) matches, keeping only
// the first of several with the same name.
func compileValues(field string, ms []model.ValueMatch, header bool) ([]valueMatch, error) {
	var out []valueMatch
next:
	for i, m := range ms {
		if m.Name == "" {
			return nil, fmt.Errorf("%s[%d].name: required", field, i)
		}
		v := valueMatch{name: m.Name, value: m.Value}
		if header {
			v.name = textproto.CanonicalMIMEHeaderKey(m.Name)
			v.host = v.name == "Host"
		}
		switch m.Type {
		case "", model.MatchExact:
		case model.MatchRegularExpression:
			re, err := compileRegexp(m.Value)
			if err != nil {
				return nil, fmt.Errorf("%s[%d].value: %w", field, i, err)
			}
			v.re = re
		default:
			return nil, fmt.Errorf("%s[%d].type: unknown %q; use Exact or RegularExpression", field, i, m.Type)
		}
		for _, prev := range out {
			if prev.name == v.name {
				continue next
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// compileRegexp compiles an RE2 expression that must match a whole value.
func compileRegexp(expr string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(expr); err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %w", expr, err)
	}
	return regexp.Compile(`^(?:` + expr + `)$`)
}

// Match returns the rule a request goes by, or nil when none matches (the
// engine then sends the request to the port's default cluster).
//
// It gives the first entry that holds, in precedence order, without trying
// every entry: HTTPRoute Exact entries are looked up by path, and PathPrefix
// entries by each prefix of the path that ends at a "/" or at its end, the
// longest first (the same order, since longer prefixes go first and two
// prefixes of one path with the same length are the same prefix).
func (t *Table) Match(r *http.Request) *Rule {
	if t == nil {
		return nil
	}
	isGRPC := t.grpc && grpcRequest(r)
	for i := range t.http {
		if e := &t.entries[i]; e.holds(r, isGRPC) {
			return e.rule
		}
	}
	path := r.URL.Path
	if e := t.first(t.exact[path], r, isGRPC); e != nil {
		return e.rule
	}
	for i := len(path); i > 0; i-- {
		if i == len(path) || path[i] == '/' {
			if e := t.first(t.prefix[path[:i]], r, isGRPC); e != nil {
				return e.rule
			}
		}
	}
	if e := t.first(t.prefix[""], r, isGRPC); e != nil {
		return e.rule
	}
	for i := t.regex; i < len(t.entries); i++ {
		if e := &t.entries[i]; e.holds(r, isGRPC) {
			return e.rule
		}
	}
	return nil
}

// first returns the first of the entries at ids that holds, or nil.
func (t *Table) first(ids []int, r *http.Request, isGRPC bool) *entry {
	for _, i := range ids {
		if e := &t.entries[i]; e.holds(r, isGRPC) {
			return e
		}
	}
	return nil
}

// holds reports whether the entry matches the request; isGRPC is whether
// the request is gRPC, when the table has gRPC entries.
func (e *entry) holds(r *http.Request, isGRPC bool) bool {
	return (!e.grpcOnly || isGRPC) && e.matches(r)
}

func (e *entry) matches(r *http.Request) bool {
	path := r.URL.Path
	switch e.pathKind {
	case pathExact:
		if path != e.path {
			return false
		}
	case pathPrefix:
		if e.path != "" && (!strings.HasPrefix(path, e.path) || len(path) > len(e.path) && path[len(e.path)] != '/') {
			return false
		}
	case pathStringPrefix:
		if !strings.HasPrefix(path, e.path) {
			return false
		}
	case pathRegex:
		if !e.pathRE.MatchString(path) {
			return false
		}
	}
	if e.method != "" && r.Method != e.method {
		return false
	}
	if e.service != "" || e.grpcName != "" || e.serviceRE != nil || e.methodRE != nil {
		service, method, ok := grpcPath(path)
		if !ok || e.service != "" && service != e.service || e.grpcName != "" && method != e.grpcName ||
			e.serviceRE != nil && !e.serviceRE.MatchString(service) || e.methodRE != nil && !e.methodRE.MatchString(method) {
			return false
		}
	}
	for i := range e.headers {
		if !e.headers[i].matchHeader(r) {
			return false
		}
	}
	for i := range e.query {
		v := &e.query[i]
		got, ok := firstQueryValue(r.URL.RawQuery, v.name)
		if !ok || !v.matchValue(got) {
			return false
		}
	}
	return true
}

func (v *valueMatch) matchHeader(r *http.Request) bool {
	if v.host {
		return v.matchValue(r.Host)
	}
	vals := r.Header[v.name]
	switch {
	case len(vals) == 0:
		return false
	case len(vals) == 1:
		return v.matchValue(vals[0])
	case v.re != nil:
		return v.re.MatchString(strings.Join(vals, ","))
	default:
		return joinedEqual(vals, v.value)
	}
}

func (v *valueMatch) matchValue(s string) bool {
	if v.re != nil {
		return v.re.MatchString(s)
	}
	return s == v.value
}

// joinedEqual reports whether strings.Join(vals, ",") == want, without
// joining.
func joinedEqual(vals []string, want string) bool {
	for i, s := range vals {
		if i > 0 {
			if want == "" || want[0] != ',' {
				return false
			}
			want = want[1:]
		}
		if !strings.HasPrefix(want, s) {
			return false
		}
		want = want[len(s):]
	}
	return want == ""
}

// firstQueryValue returns the first value of the query parameter name, as
// url.ParseQuery parses the raw query: pairs split at "&", pairs with ";" or
// bad escapes skipped. Unescaping allocates only when there is something to
// unescape.
func firstQueryValue(query, name string) (string, bool) {
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(key)
		if err != nil || key != name {
			continue
		}
		if value, err = url.QueryUnescape(value); err != nil {
			continue
		}
		return value, true
	}
	return "", false
}

// grpcRequest reports whether the request's Content-Type is gRPC's:
// "application/grpc", alone or followed by "+codec" or ";params".
func grpcRequest(r *http.Request) bool {
	const grpcType = "application/grpc"
	ct := r.Header["Content-Type"]
	if len(ct) == 0 || len(ct[0]) < len(grpcType) || !strings.EqualFold(ct[0][:len(grpcType)], grpcType) {
		return false
	}
	rest := ct[0][len(grpcType):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// grpcPath splits a gRPC path "/<service>/<method>".
func grpcPath(path string) (service, method string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return "", "", false
	}
	service, method, ok = strings.Cut(rest, "/")
	if !ok || service == "" || method == "" || strings.Contains(method, "/") {
		return "", "", false
	}
	return service, method, true
}

// Pick chooses a backend by weight; n is a uniformly random number (the
// caller passes rand.Uint64()). Backends with a weight of 0 are never
// chosen. ok is false when the rule has no backend with a weight above 0:
// the engine answers 500 then, as the Gateway API says.
func (r *Rule) Pick(n uint64) (b *model.Backend, ok bool) {
	if r.total == 0 {
		return nil, false
	}
	x := n % r.total
	bs := r.Spec.Backends
	for i := range bs {
		w := bs[i].EffectiveWeight()
		if w <= 0 {
			continue
		}
		if x < uint64(w) {
			return &bs[i], true
		}
		x -= uint64(w)
	}
	return nil, false // not reached while Spec is as compiled
}
