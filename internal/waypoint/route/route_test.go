package route

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/meshway/meshway/internal/model"
)

// TestMatch checks single matches against requests.
func TestMatch(t *testing.T) {
	type check struct {
		r    *http.Request
		want bool
	}
	get := func(target string, kv ...string) *http.Request { return req("GET", target, kv...) }
	grpcCT := func(target, ct string) *http.Request { return req("POST", target, "Content-Type", ct) }
	re := model.MatchRegularExpression
	for _, tc := range []struct {
		name   string
		kind   model.RouteKind
		m      *model.RouteMatch // nil: a rule without matches
		checks []check
	}{{
		name:   "rule without matches",
		checks: []check{{get("/"), true}, {get("/anything/at/all?x=1"), true}, {req("DELETE", "/x"), true}},
	}, {
		name: "prefix is element-wise",
		m:    &model.RouteMatch{Path: prefix("/foo")},
		checks: []check{
			{get("/foo"), true}, {get("/foo/"), true}, {get("/foo/bar"), true},
			{get("/foobar"), false}, {get("/fo"), false}, {get("/"), false}, {get("/bar/foo"), false},
		},
	}, {
		name: "prefix with trailing slash",
		m:    &model.RouteMatch{Path: prefix("/foo/")},
		checks: []check{
			{get("/foo"), true}, {get("/foo/"), true}, {get("/foo/bar"), true}, {get("/foobar"), false},
		},
	}, {
		name:   "prefix /",
		m:      &model.RouteMatch{Path: prefix("/")},
		checks: []check{{get("/"), true}, {get("/foo/bar"), true}},
	}, {
		name:   "exact",
		m:      &model.RouteMatch{Path: exact("/foo")},
		checks: []check{{get("/foo"), true}, {get("/foo?x=1"), true}, {get("/foo/"), false}, {get("/foo/bar"), false}, {get("/fo"), false}},
	}, {
		name: "regular expression matches the whole path",
		m:    &model.RouteMatch{Path: regex(`/foo/[0-9]+|/bar`)},
		checks: []check{
			{get("/foo/12"), true}, {get("/bar"), true},
			{get("/foo/12x"), false}, {get("/x/foo/12"), false}, {get("/barn"), false}, {get("/x/bar"), false},
		},
	}, {
		name: "virtual service prefix is a string prefix",
		kind: model.KindVirtualService,
		m:    &model.RouteMatch{Path: prefix("/foo")},
		checks: []check{
			{get("/foo"), true}, {get("/foobar"), true}, {get("/foo/bar"), true}, {get("/fo"), false},
		},
	}, {
		name: "header exact, name case-insensitive",
		m:    &model.RouteMatch{Headers: []model.ValueMatch{{Name: "x-user", Value: "bob"}}},
		checks: []check{
			{get("/", "X-User", "bob"), true}, {get("/", "x-USER", "bob"), true},
			{get("/", "X-User", "Bob"), false}, {get("/", "X-User", "bobby"), false}, {get("/"), false},
		},
	}, {
		name: "header several values match joined with a comma",
		m:    &model.RouteMatch{Headers: []model.ValueMatch{{Name: "X-A", Value: "a,b"}}},
		checks: []check{
			{get("/", "X-A", "a", "X-A", "b"), true}, {get("/", "X-A", "a,b"), true},
			{get("/", "X-A", "a"), false}, {get("/", "X-A", "a", "X-A", "b", "X-A", "c"), false},
			{get("/", "X-A", "a", "X-A", "bc"), false}, {get("/", "X-A", "a,", "X-A", "b"), false},
		},
	}, {
		name: "header regular expression, several values",
		m:    &model.RouteMatch{Headers: []model.ValueMatch{{Type: re, Name: "X-A", Value: `a,[a-z]`}}},
		checks: []check{
			{get("/", "X-A", "a", "X-A", "b"), true}, {get("/", "X-A", "a,c"), true},
			{get("/", "X-A", "a", "X-A", "bc"), false}, {get("/", "X-A", "xa,b"), false}, {get("/"), false},
		},
	}, {
		name:   "empty exact header value needs the header",
		m:      &model.RouteMatch{Headers: []model.ValueMatch{{Name: "X-A", Value: ""}}},
		checks: []check{{get("/", "X-A", ""), true}, {get("/"), false}},
	}, {
		name:   "only the first of equivalent header matches counts",
		m:      &model.RouteMatch{Headers: []model.ValueMatch{{Name: "X-A", Value: "1"}, {Name: "x-a", Value: "2"}}},
		checks: []check{{get("/", "X-A", "1"), true}, {get("/", "X-A", "2"), false}},
	}, {
		name:   "host header is the request's host",
		m:      &model.RouteMatch{Headers: []model.ValueMatch{{Name: "host", Value: "reviews:9080"}}},
		checks: []check{{get("http://reviews:9080/"), true}, {get("http://reviews/"), false}},
	}, {
		name: "query parameter: first value, name case-sensitive",
		m:    &model.RouteMatch{QueryParams: []model.ValueMatch{{Name: "v", Value: "1"}}},
		checks: []check{
			{get("/?v=1"), true}, {get("/?a=2&v=1&v=2"), true},
			{get("/?v=2&v=1"), false}, {get("/?V=1"), false}, {get("/"), false}, {get("/?v"), false},
		},
	}, {
		name:   "query parameter unescaped",
		m:      &model.RouteMatch{QueryParams: []model.ValueMatch{{Name: "a b", Value: "c&d"}}},
		checks: []check{{get("/?a+b=c%26d"), true}, {get("/?a%20b=c%26d"), true}, {get("/?a+b=c&d"), false}},
	}, {
		name:   "query parameter regular expression",
		m:      &model.RouteMatch{QueryParams: []model.ValueMatch{{Type: re, Name: "v", Value: `[0-9]+`}}},
		checks: []check{{get("/?v=123"), true}, {get("/?v=12a"), false}, {get("/?v=a&v=1"), false}},
	}, {
		name:   "method",
		m:      &model.RouteMatch{Method: "POST"},
		checks: []check{{req("POST", "/"), true}, {req("GET", "/"), false}, {req("PUT", "/"), false}},
	}, {
		name: "all fields must hold",
		m:    &model.RouteMatch{Path: prefix("/api"), Method: "GET", Headers: hdrs("X-A"), QueryParams: hdrs("q")},
		checks: []check{
			{get("/api/x?q=1", "X-A", "1"), true}, {get("/api/x?q=1"), false}, {get("/api/x", "X-A", "1"), false},
			{get("/x?q=1", "X-A", "1"), false}, {req("PUT", "/api/x?q=1", "X-A", "1"), false},
		},
	}, {
		name: "grpc service and method",
		kind: model.KindGRPCRoute,
		m:    &model.RouteMatch{GRPC: &model.GRPCMethod{Service: "pkg.Svc", Method: "Get"}},
		checks: []check{
			{grpcCT("/pkg.Svc/Get", "application/grpc"), true}, {grpcCT("/pkg.Svc/Get", "application/grpc+proto"), true},
			{grpcCT("/pkg.Svc/Get", "Application/GRPC;charset=utf-8"), true},
			{grpcCT("/pkg.Svc/Get", "application/grpc-web"), false}, {grpcCT("/pkg.Svc/Get", "application/json"), false},
			{req("POST", "/pkg.Svc/Get"), false}, {grpcCT("/pkg.Svc/List", "application/grpc"), false},
			{grpcCT("/pkg.Other/Get", "application/grpc"), false}, {grpcCT("/pkg.Svc/Get/x", "application/grpc"), false},
		},
	}, {
		name: "grpc service only",
		kind: model.KindGRPCRoute,
		m:    &model.RouteMatch{GRPC: &model.GRPCMethod{Service: "pkg.Svc"}},
		checks: []check{
			{grpcCT("/pkg.Svc/Get", "application/grpc"), true}, {grpcCT("/pkg.Svc/List", "application/grpc"), true},
			{grpcCT("/pkg.Svcs/Get", "application/grpc"), false}, {grpcCT("/pkg.Svc", "application/grpc"), false},
		},
	}, {
		name: "grpc method only",
		kind: model.KindGRPCRoute,
		m:    &model.RouteMatch{GRPC: &model.GRPCMethod{Method: "Get"}},
		checks: []check{
			{grpcCT("/a.B/Get", "application/grpc"), true}, {grpcCT("/c.D/Get", "application/grpc"), true},
			{grpcCT("/a.B/GetAll", "application/grpc"), false},
		},
	}, {
		name: "grpc regular expressions match whole names",
		kind: model.KindGRPCRoute,
		m:    &model.RouteMatch{GRPC: &model.GRPCMethod{Type: re, Service: `pkg\.(Svc|Other)`, Method: `Get[A-Z]?[a-z]*`}},
		checks: []check{
			{grpcCT("/pkg.Svc/Get", "application/grpc"), true}, {grpcCT("/pkg.Other/GetAll", "application/grpc"), true},
			{grpcCT("/pkg.Svcs/Get", "application/grpc"), false}, {grpcCT("/xpkg.Svc/Get", "application/grpc"), false},
			{grpcCT("/pkg.Svc/List", "application/grpc"), false}, {grpcCT("/pkg.Svc/GetAll2", "application/grpc"), false},
			{grpcCT("/pkg.Svc/XGet", "application/grpc"), false}, {grpcCT("/pkg.Svc/Get/x", "application/grpc"), false},
			{req("POST", "/pkg.Svc/Get"), false},
		},
	}, {
		name: "grpc regular expression for the method only",
		kind: model.KindGRPCRoute,
		m:    &model.RouteMatch{GRPC: &model.GRPCMethod{Type: re, Method: `List|Watch`}},
		checks: []check{
			{grpcCT("/a.B/List", "application/grpc"), true}, {grpcCT("/c.D/Watch", "application/grpc"), true},
			{grpcCT("/a.B/ListAll", "application/grpc"), false}, {grpcCT("/List/Get", "application/grpc"), false},
		},
	}, {
		name: "grpc regular expression for the service only",
		kind: model.KindGRPCRoute,
		m:    &model.RouteMatch{GRPC: &model.GRPCMethod{Type: re, Service: `.*\.Inventory`}},
		checks: []check{
			{grpcCT("/shop.Inventory/Get", "application/grpc"), true}, {grpcCT("/a.b.Inventory/List", "application/grpc"), true},
			{grpcCT("/shop.InventoryV2/Get", "application/grpc"), false}, {grpcCT("/Inventory/Get", "application/grpc"), false},
		},
	}, {
		name:   "grpc rule without matches needs a grpc request",
		kind:   model.KindGRPCRoute,
		checks: []check{{grpcCT("/a.B/C", "application/grpc"), true}, {get("/a.B/C"), false}},
	}, {
		name:   "grpc match in an http route needs a grpc request",
		m:      &model.RouteMatch{GRPC: &model.GRPCMethod{Service: "a.B"}},
		checks: []check{{grpcCT("/a.B/C", "application/grpc"), true}, {get("/a.B/C"), false}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := rule()
			if tc.m != nil {
				r = rule(*tc.m)
			}
			tab, err := Compile([]model.HTTPRoute{rt(tc.kind, "ns", "r", 0, r)})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.checks {
				if got := tab.Match(c.r) != nil; got != c.want {
					t.Errorf("%s %s %v: matched %v, want %v", c.r.Method, c.r.URL, c.r.Header, got, c.want)
				}
			}
		})
	}
}

func TestMatchNothing(t *testing.T) {
	var nilTable *Table
	if nilTable.Match(req("GET", "/")) != nil {
		t.Error("nil table matched")
	}
	tab, err := Compile(nil)
	if err != nil || tab.Match(req("GET", "/")) != nil {
		t.Errorf("empty table: %v, or matched", err)
	}
}

// TestFirstQueryValue compares the query scan with url.ParseQuery.
func TestFirstQueryValue(t *testing.T) {
	for _, q := range []string{
		"", "a=1", "a=1&a=2", "b=1&a=2", "a", "a=", "&&a=3&", "a%3D=1", "a=%zz&a=2", "a%zz=1&a=2",
		"a=1;b=2&a=3", "a+b=1&a%20b=2", "x=%41&a=%20", "a=b=c", "=1&a=2",
	} {
		vals, _ := url.ParseQuery(q)
		for _, name := range []string{"a", "b", "a b", "a=", "x", ""} {
			want, wantOK := "", len(vals[name]) > 0
			if wantOK {
				want = vals[name][0]
			}
			if got, ok := firstQueryValue(q, name); got != want || ok != wantOK {
				t.Errorf("%q, %q: got %q, %v; want %q, %v", q, name, got, ok, want, wantOK)
			}
		}
	}
}

func TestCompileErrors(t *testing.T) {
	H := model.KindHTTPRoute
	for _, tc := range []struct {
		name  string
		route model.HTTPRoute
		want  []string
	}{{
		name:  "invalid path regex",
		route: rt(H, "default", "reviews", 0, rule(), rule(model.RouteMatch{}, model.RouteMatch{Path: regex("(")})),
		want:  []string{"HTTPRoute default/reviews rules[1].matches[1].path.value: invalid regular expression \"(\""},
	}, {
		name:  "regex that only compiles once wrapped",
		route: rt(H, "default", "reviews", 0, rule(model.RouteMatch{Path: regex("a)|(b")})),
		want:  []string{"rules[0].matches[0].path.value: invalid regular expression"},
	}, {
		name: "header and query regex, unknown types, every problem",
		route: rt(model.KindGRPCRoute, "ns", "g", 0, rule(
			model.RouteMatch{Headers: []model.ValueMatch{{Type: model.MatchRegularExpression, Name: "X", Value: "["}}},
			model.RouteMatch{QueryParams: []model.ValueMatch{{Type: "Prefix", Name: "q"}}},
			model.RouteMatch{Path: &model.PathMatch{Type: "Prefix", Value: "/"}},
			model.RouteMatch{Headers: []model.ValueMatch{{Value: "x"}}},
		)),
		want: []string{
			"GRPCRoute ns/g rules[0].matches[0].headers[0].value: invalid regular expression \"[\"",
			"GRPCRoute ns/g rules[0].matches[1].queryParams[0].type: unknown \"Prefix\"",
			"GRPCRoute ns/g rules[0].matches[2].path.type: unknown \"Prefix\"",
			"GRPCRoute ns/g rules[0].matches[3].headers[0].name: required",
		},
	}, {
		name: "grpc regular expressions and unknown type",
		route: rt(model.KindGRPCRoute, "ns", "g", 0, rule(
			model.RouteMatch{GRPC: &model.GRPCMethod{Type: model.MatchRegularExpression, Service: "("}},
			model.RouteMatch{GRPC: &model.GRPCMethod{Type: model.MatchRegularExpression, Service: "ok", Method: "a)|(b"}},
			model.RouteMatch{GRPC: &model.GRPCMethod{Type: "Prefix", Service: "a"}},
		)),
		want: []string{
			"GRPCRoute ns/g rules[0].matches[0].grpc.service: invalid regular expression \"(\"",
			"GRPCRoute ns/g rules[0].matches[1].grpc.method: invalid regular expression \"a)|(b\"",
			"GRPCRoute ns/g rules[0].matches[2].grpc.type: unknown \"Prefix\"",
		},
	}, {
		name:  "unknown kind",
		route: rt("TCPRoute", "ns", "t", 0, rule()),
		want:  []string{`route ns/t: unknown kind "TCPRoute"`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := Compile([]model.HTTPRoute{rt(H, "ns", "fine", 0, rule()), tc.route})
			if err == nil || tab != nil {
				t.Fatalf("got table %v, error %v; want an error", tab, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func weight(w int32) *int32 { return &w }

func TestPick(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pickRule := func(t *testing.T, bs ...model.Backend) *Rule {
		t.Helper()
		tab, err := Compile([]model.HTTPRoute{{Name: "r", Namespace: "ns", Rules: []model.RouteRule{{Backends: bs}}}})
		if err != nil {
			t.Fatal(err)
		}
		return tab.Match(req("GET", "/"))
	}
	count := func(t *testing.T, r *Rule, n int) map[string]int {
		t.Helper()
		got := map[string]int{}
		for range n {
			b, ok := r.Pick(rng.Uint64())
			if !ok {
				t.Fatal("Pick: ok = false")
			}
			got[b.Cluster]++
		}
		return got
	}
	within := func(t *testing.T, got, want, n int) {
		t.Helper()
		if d := got - want; d > n/50 || d < -n/50 {
			t.Errorf("got %d of %d, want %d ± 2%%", got, n, want)
		}
	}

	t.Run("90/10", func(t *testing.T) {
		got := count(t, pickRule(t, model.Backend{Cluster: "a", Weight: weight(90)}, model.Backend{Cluster: "b", Weight: weight(10)}), 10000)
		within(t, got["a"], 9000, 10000)
		within(t, got["b"], 1000, 10000)
	})
	t.Run("nil weight is 1, zero weight never picked", func(t *testing.T) {
		got := count(t, pickRule(t, model.Backend{Cluster: "a"}, model.Backend{Cluster: "z", Weight: weight(0)}, model.Backend{Cluster: "b", Weight: weight(1)}), 10000)
		within(t, got["a"], 5000, 10000)
		within(t, got["b"], 5000, 10000)
		if got["z"] != 0 {
			t.Errorf("weight 0 backend picked %d times", got["z"])
		}
	})
	t.Run("exact split over n", func(t *testing.T) {
		r := pickRule(t, model.Backend{Cluster: "a", Weight: weight(3)}, model.Backend{Cluster: "b", Weight: weight(1)})
		var got []string
		for n := range uint64(8) {
			b, _ := r.Pick(n)
			got = append(got, b.Cluster)
		}
		if s := strings.Join(got, ""); s != "aaabaaab" {
			t.Errorf("picks for n = 0..7: %s, want aaabaaab", s)
		}
	})
	for name, bs := range map[string][]model.Backend{
		"all weights zero": {{Cluster: "a", Weight: weight(0)}, {Cluster: "b", Weight: weight(0)}},
		"no backends":      nil,
	} {
		t.Run(name, func(t *testing.T) {
			if b, ok := pickRule(t, bs...).Pick(rng.Uint64()); ok || b != nil {
				t.Errorf("got %v, %v; want nil, false", b, ok)
			}
		})
	}
}

// benchRoutes is 20 HTTPRoutes of 3 matches each, plus a catch-all.
func benchRoutes() []model.HTTPRoute {
	var routes []model.HTTPRoute
	for i := range 20 {
		p := fmt.Sprintf("/svc%d", i)
		routes = append(routes, rt(model.KindHTTPRoute, "ns", fmt.Sprintf("r%02d", i), i,
			rule(model.RouteMatch{Path: exact(p + "/health"), Method: "GET"}),
			rule(model.RouteMatch{Path: prefix(p + "/api"), Headers: []model.ValueMatch{{Name: "x-version", Value: "v2"}}}),
			rule(model.RouteMatch{Path: prefix(p), QueryParams: []model.ValueMatch{{Name: "debug", Value: "1"}}}, model.RouteMatch{Path: prefix(p), Method: "POST"}),
		))
	}
	return append(routes, rt(model.KindHTTPRoute, "ns", "default", 0, rule()))
}

func benchRequests() []*http.Request {
	return []*http.Request{
		req("GET", "/svc19/health"),
		req("GET", "/svc13/api/items", "X-Version", "v2", "Accept", "application/json"),
		req("GET", "/svc7/api/items?page=2&debug=1", "X-Version", "v1"),
		req("PUT", "/nothing/here?x=1", "X-Version", "v1"),
	}
}

// TestMatchDoesNotAllocate holds Match to zero allocations without regular
// expressions.
func TestMatchDoesNotAllocate(t *testing.T) {
	tab, err := Compile(benchRoutes())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ns/r19#0", "ns/r13#1", "ns/r07#2", "ns/default#0"}
	for i, r := range benchRequests() {
		ru := tab.Match(r)
		if got := ru.Route.Namespace + "/" + ru.Route.Name + fmt.Sprintf("#%d", ru.Index); got != want[i] {
			t.Errorf("%s: got %s, want %s", r.URL, got, want[i])
		}
		if n := testing.AllocsPerRun(100, func() { tab.Match(r) }); n != 0 {
			t.Errorf("%s: %v allocations per Match, want 0", r.URL, n)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	tab, err := Compile(benchRoutes())
	if err != nil {
		b.Fatal(err)
	}
	reqs := benchRequests()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if tab.Match(reqs[i%len(reqs)]) == nil {
			b.Fatal("no match")
		}
		i++
	}
}

func BenchmarkPick(b *testing.B) {
	r := &Rule{Spec: &model.RouteRule{Backends: []model.Backend{{Cluster: "a", Weight: weight(90)}, {Cluster: "b", Weight: weight(10)}}}, total: 100}
	b.ReportAllocs()
	for b.Loop() {
		r.Pick(rand.Uint64())
	}
}
