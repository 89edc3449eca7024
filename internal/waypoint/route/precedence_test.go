package route

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// rt is a route in namespace ns created minutes after epoch.
func rt(kind model.RouteKind, ns, name string, minutes int, rules ...model.RouteRule) model.HTTPRoute {
	return model.HTTPRoute{Kind: kind, Namespace: ns, Name: name, Created: epoch.Add(time.Duration(minutes) * time.Minute), Rules: rules}
}

func rule(ms ...model.RouteMatch) model.RouteRule {
	return model.RouteRule{Matches: ms, Backends: []model.Backend{{Cluster: "c"}}}
}

func exact(v string) *model.PathMatch { return &model.PathMatch{Type: model.MatchExact, Value: v} }
func prefix(v string) *model.PathMatch {
	return &model.PathMatch{Type: model.MatchPathPrefix, Value: v}
}
func regex(v string) *model.PathMatch {
	return &model.PathMatch{Type: model.MatchRegularExpression, Value: v}
}

func hdrs(names ...string) []model.ValueMatch {
	var vs []model.ValueMatch
	for _, n := range names {
		vs = append(vs, model.ValueMatch{Name: n, Value: "1"})
	}
	return vs
}

// req builds a request; kv are header name, value pairs.
func req(method, target string, kv ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(kv); i += 2 {
		r.Header.Add(kv[i], kv[i+1])
	}
	return r
}

// winner names the rule a request goes by: "ns/name#rule", or "" for none.
func winner(t *testing.T, routes []model.HTTPRoute, r *http.Request) string {
	t.Helper()
	tab, err := Compile(routes)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	ru := tab.Match(r)
	if ru == nil {
		return ""
	}
	if &ru.Route.Rules[ru.Index] != ru.Spec {
		t.Errorf("Rule.Spec is not Route.Rules[Index]")
	}
	return ru.Route.Namespace + "/" + ru.Route.Name + "#" + strconv.Itoa(ru.Index)
}

// TestPrecedence has two routes compete for a request; the winner must not
// depend on their order in Compile's input.
func TestPrecedence(t *testing.T) {
	H, G, VS := model.KindHTTPRoute, model.KindGRPCRoute, model.KindVirtualService
	grpcReq := req("POST", "/pkg.Svc/Get", "Content-Type", "application/grpc", "X-A", "1", "X-B", "1")
	for _, tc := range []struct {
		name string
		a, b model.HTTPRoute // a is newer and named later: it wins only by specificity
		r    *http.Request
		want string
	}{{
		name: "exact path over a longer prefix with method and headers",
		a:    rt(H, "ns", "b", 1, rule(model.RouteMatch{Path: exact("/foo")})),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Path: prefix("/foo"), Method: "GET", Headers: hdrs("X-A")})),
		r:    req("GET", "/foo", "X-A", "1"),
		want: "ns/b#0",
	}, {
		name: "longer prefix over shorter one with method",
		a:    rt(H, "ns", "b", 1, rule(model.RouteMatch{Path: prefix("/foo/bar")})),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Path: prefix("/foo"), Method: "GET"})),
		r:    req("GET", "/foo/bar/baz"),
		want: "ns/b#0",
	}, {
		name: "shorter prefix when the longer does not match",
		a:    rt(H, "ns", "b", 1, rule(model.RouteMatch{Path: prefix("/foo/bar")})),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Path: prefix("/foo")})),
		r:    req("GET", "/foo/barn"),
		want: "ns/a#0",
	}, {
		name: "trailing slash does not count: tie goes to the oldest",
		a:    rt(H, "ns", "a", 1, rule(model.RouteMatch{Path: prefix("/foo/")})),
		b:    rt(H, "ns", "b", 0, rule(model.RouteMatch{Path: prefix("/foo")})),
		r:    req("GET", "/foo/x"),
		want: "ns/b#0",
	}, {
		name: "prefix / (no matches) over regular expression",
		a:    rt(H, "ns", "b", 1, rule()),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Path: regex("/foo.*"), Method: "GET", Headers: hdrs("X-A")})),
		r:    req("GET", "/foo", "X-A", "1"),
		want: "ns/b#0",
	}, {
		name: "match without path counts as prefix /",
		a:    rt(H, "ns", "b", 1, rule(model.RouteMatch{Method: "GET"})),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Path: prefix("/")})),
		r:    req("GET", "/x"),
		want: "ns/b#0",
	}, {
		name: "method over more headers",
		a:    rt(H, "ns", "b", 1, rule(model.RouteMatch{Path: prefix("/"), Method: "GET"})),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Path: prefix("/"), Headers: hdrs("X-A", "X-B"), QueryParams: hdrs("q")})),
		r:    req("GET", "/?q=1", "X-A", "1", "X-B", "1"),
		want: "ns/b#0",
	}, {
		name: "more headers over more query params",
		a:    rt(H, "ns", "b", 1, rule(model.RouteMatch{Headers: hdrs("X-A", "X-B")})),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Headers: hdrs("X-A"), QueryParams: hdrs("q", "r")})),
		r:    req("GET", "/?q=1&r=1", "X-A", "1", "X-B", "1"),
		want: "ns/b#0",
	}, {
		name: "a header repeated counts once",
		a:    rt(H, "ns", "b", 1, rule(model.RouteMatch{Headers: hdrs("X-A", "x-b")})),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Headers: hdrs("X-A", "x-a", "X-a")})),
		r:    req("GET", "/", "X-A", "1", "X-B", "1"),
		want: "ns/b#0",
	}, {
		name: "more query params",
		a:    rt(H, "ns", "b", 1, rule(model.RouteMatch{QueryParams: hdrs("q")})),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{})),
		r:    req("GET", "/?q=1"),
		want: "ns/b#0",
	}, {
		name: "tie: oldest route",
		a:    rt(H, "ns", "a", 5, rule(model.RouteMatch{Path: prefix("/x")})),
		b:    rt(H, "ns", "b", 4, rule(model.RouteMatch{Path: prefix("/x")})),
		r:    req("GET", "/x"),
		want: "ns/b#0",
	}, {
		name: "tie: same age, namespace/name order",
		a:    rt(H, "ns", "b", 0, rule(model.RouteMatch{Path: prefix("/x")})),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Path: prefix("/x")})),
		r:    req("GET", "/x"),
		want: "ns/a#0",
	}, {
		name: "tie: namespace/name compared as one string",
		a:    rt(H, "a", "b", 0, rule()),
		b:    rt(H, "a-x", "b", 0, rule()), // "a-x/b" < "a/b"
		r:    req("GET", "/"),
		want: "a-x/b#0",
	}, {
		name: "grpc: service and method over service only",
		a:    rt(G, "ns", "b", 1, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Service: "pkg.Svc", Method: "Get"}})),
		b:    rt(G, "ns", "a", 0, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Service: "pkg.Svc"}, Headers: hdrs("X-A", "X-B")})),
		r:    grpcReq,
		want: "ns/b#0",
	}, {
		name: "grpc: service only over method only",
		a:    rt(G, "ns", "b", 1, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Service: "pkg.Svc"}})),
		b:    rt(G, "ns", "a", 0, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Method: "Get"}, Headers: hdrs("X-A")})),
		r:    grpcReq,
		want: "ns/b#0",
	}, {
		name: "grpc: method only over headers only",
		a:    rt(G, "ns", "b", 1, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Method: "Get"}})),
		b:    rt(G, "ns", "a", 0, rule(model.RouteMatch{Headers: hdrs("X-A", "X-B")})),
		r:    grpcReq,
		want: "ns/b#0",
	}, {
		name: "grpc: an exact service over a regular expression",
		a:    rt(G, "ns", "b", 1, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Service: "pkg.Svc"}})),
		b:    rt(G, "ns", "a", 0, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Type: model.MatchRegularExpression, Service: "pkg\\..*", Method: "Get"}})),
		r:    grpcReq,
		want: "ns/b#0",
	}, {
		name: "grpc: a service regular expression over no service",
		a:    rt(G, "ns", "b", 1, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Type: model.MatchRegularExpression, Service: "p.*"}})),
		b:    rt(G, "ns", "a", 0, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Method: "Get"}, Headers: hdrs("X-A")})),
		r:    grpcReq,
		want: "ns/b#0",
	}, {
		name: "grpc: regular expressions tie, whatever their length",
		a:    rt(G, "ns", "b", 1, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Type: model.MatchRegularExpression, Service: "pkg\\.Svc|never\\.Matched"}})),
		b:    rt(G, "ns", "a", 0, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Type: model.MatchRegularExpression, Service: ".*"}})),
		r:    grpcReq,
		want: "ns/a#0", // the older route
	}, {
		name: "grpc: then most headers",
		a:    rt(G, "ns", "b", 1, rule(model.RouteMatch{Headers: hdrs("X-A", "X-B")})),
		b:    rt(G, "ns", "a", 0, rule(model.RouteMatch{Headers: hdrs("X-A")})),
		r:    grpcReq,
		want: "ns/b#0",
	}, {
		name: "grpc route before any http route for a grpc request",
		a:    rt(G, "ns", "b", 1, rule()),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Path: exact("/pkg.Svc/Get"), Method: "POST"})),
		r:    grpcReq,
		want: "ns/b#0",
	}, {
		name: "grpc route never matches a plain http request",
		a:    rt(G, "ns", "b", 1, rule()),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Path: regex("/nothing")})),
		r:    req("POST", "/pkg.Svc/Get", "Content-Type", "application/json"),
		want: "",
	}, {
		name: "virtual service before the most specific http route",
		a:    rt(VS, "ns", "b", 1, rule(model.RouteMatch{Path: prefix("/")})),
		b:    rt(H, "ns", "a", 0, rule(model.RouteMatch{Path: exact("/foo"), Method: "GET"})),
		r:    req("GET", "/foo"),
		want: "ns/b#0",
	}, {
		name: "virtual service before grpc route",
		a:    rt(VS, "ns", "b", 1, rule()),
		b:    rt(G, "ns", "a", 0, rule(model.RouteMatch{GRPC: &model.GRPCMethod{Service: "pkg.Svc", Method: "Get"}})),
		r:    grpcReq,
		want: "ns/b#0",
	}, {
		name: "http route when the virtual service does not match",
		a:    rt(VS, "ns", "b", 0, rule(model.RouteMatch{Path: prefix("/bar")})),
		b:    rt(H, "ns", "a", 1, rule(model.RouteMatch{Path: prefix("/foo")})),
		r:    req("GET", "/foo"),
		want: "ns/a#0",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			for _, routes := range [][]model.HTTPRoute{{tc.a, tc.b}, {tc.b, tc.a}} {
				if got := winner(t, routes, tc.r); got != tc.want {
					t.Errorf("routes %s, %s: got %q, want %q", routes[0].Name, routes[1].Name, got, tc.want)
				}
			}
		})
	}
}

// TestPrecedenceWithinRoute: equal matches go to the first rule, and within
// a rule the first match is the one that counts for ordering.
func TestPrecedenceWithinRoute(t *testing.T) {
	H := model.KindHTTPRoute
	routes := []model.HTTPRoute{rt(H, "ns", "r", 0,
		rule(model.RouteMatch{Path: prefix("/a")}),
		rule(model.RouteMatch{Path: prefix("/a")}, model.RouteMatch{Path: exact("/a/b")}),
		rule(model.RouteMatch{Path: exact("/a/b")}),
	)}
	for path, want := range map[string]string{"/a": "ns/r#0", "/a/c": "ns/r#0", "/a/b": "ns/r#1", "/b": ""} {
		if got := winner(t, routes, req("GET", path)); got != want {
			t.Errorf("%s: got %q, want %q", path, got, want)
		}
	}
}

// TestVirtualServiceOrder: VirtualServices are first-match in the order
// given, route by route, rule by rule.
func TestVirtualServiceOrder(t *testing.T) {
	VS := model.KindVirtualService
	first := rt(VS, "ns", "z", 9, rule(model.RouteMatch{Path: prefix("/a")}), rule(model.RouteMatch{Path: exact("/a/b")}))
	second := rt(VS, "ns", "a", 0, rule(model.RouteMatch{Path: exact("/a/b"), Method: "GET"}), rule())
	routes := []model.HTTPRoute{first, second}
	for path, want := range map[string]string{"/a/b": "ns/z#0", "/abc": "ns/z#0", "/b": "ns/a#1"} {
		if got := winner(t, routes, req("GET", path)); got != want {
			t.Errorf("%s: got %q, want %q", path, got, want)
		}
	}
	slices.Reverse(routes)
	if got := winner(t, routes, req("GET", "/a/b")); got != "ns/a#0" {
		t.Errorf("reversed, /a/b: got %q, want ns/a#0", got)
	}
}

// TestIndexMatchesScan checks Match's path index against a scan of every
// entry in precedence order, over random routes and requests.
func TestIndexMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	path := func() string {
		p := ""
		for range rng.IntN(4) {
			p += pick("/", "//") + pick("a", "b", "ab", "a.B")
		}
		return p + pick("", "", "/")
	}
	match := func() model.RouteMatch {
		var m model.RouteMatch
		switch rng.IntN(5) {
		case 0:
			m.Path = exact("/" + path())
		case 1, 2:
			m.Path = prefix("/" + path())
		case 3:
			m.Path = regex(pick("/a.*", "/(a|b)/b", ".*b/?"))
		}
		m.Method = pick("", "", "GET", "POST")
		if rng.IntN(3) == 0 {
			m.Headers = []model.ValueMatch{{Name: "X-A", Value: pick("1", "2")}}
		}
		if rng.IntN(4) == 0 {
			m.QueryParams = []model.ValueMatch{{Name: "q", Value: pick("1", "2")}}
		}
		if rng.IntN(6) == 0 {
			m.GRPC = &model.GRPCMethod{Service: pick("", "a.B"), Method: pick("", "a", "b")}
			if rng.IntN(2) == 0 {
				m.GRPC = &model.GRPCMethod{Type: model.MatchRegularExpression, Service: pick("", "a.B", `a\..*`), Method: pick("", "a|b", "[a-c]")}
			}
		}
		return m
	}
	for range 200 {
		var routes []model.HTTPRoute
		for i := range 1 + rng.IntN(8) {
			kind := []model.RouteKind{model.KindHTTPRoute, model.KindHTTPRoute, model.KindGRPCRoute, model.KindVirtualService}[rng.IntN(4)]
			var rules []model.RouteRule
			for range 1 + rng.IntN(3) {
				var ms []model.RouteMatch
				for range rng.IntN(3) {
					ms = append(ms, match())
				}
				rules = append(rules, rule(ms...))
			}
			routes = append(routes, rt(kind, "ns", strconv.Itoa(i), rng.IntN(3), rules...))
		}
		tab, err := Compile(routes)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			target := path()
			if target == "" {
				target = "/"
			}
			r := req(pick("GET", "POST"), target+pick("", "?q=1", "?q=2"), "X-A", pick("1", "2", "3"),
				"Content-Type", pick("application/grpc", "text/plain"))
			var want *Rule
			isGRPC := grpcRequest(r)
			for i := range tab.entries {
				if e := &tab.entries[i]; e.holds(r, isGRPC) {
					want = e.rule
					break
				}
			}
			if got := tab.Match(r); got != want {
				t.Fatalf("%s %s: Match gave %v, scan %v (routes %+v)", r.Method, r.URL, got, want, routes)
			}
		}
	}
}
