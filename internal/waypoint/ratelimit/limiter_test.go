package ratelimit

import (
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func policy(rules ...model.RateLimitRule) model.LocalRateLimit {
	return model.LocalRateLimit{Name: "limit", Namespace: "default", Rules: rules}
}

func perSecond(n int) model.RateLimitValue {
	return model.RateLimitValue{Requests: n, Unit: model.RateLimitSecond}
}

func mustCompile(t testing.TB, ps ...model.LocalRateLimit) *Limiter {
	t.Helper()
	l, err := Compile(ps)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return l
}

// want checks the fields of a decision that tests care about.
func want(t *testing.T, what string, got Decision, allowed bool, remaining int, retry time.Duration) {
	t.Helper()
	if got.Allowed != allowed || got.Remaining != remaining || got.RetryAfter != retry {
		t.Fatalf("%s: got allowed=%v remaining=%d retryAfter=%v, want allowed=%v remaining=%d retryAfter=%v (%+v)",
			what, got.Allowed, got.Remaining, got.RetryAfter, allowed, remaining, retry, got)
	}
}

func TestRefillIsExact(t *testing.T) {
	l := mustCompile(t, policy(model.RateLimitRule{Limit: perSecond(3)}))
	r := &Request{}
	for i := range 3 {
		want(t, "burst request "+strconv.Itoa(i), l.Allow(r, t0), true, 2-i, 0)
	}
	// A third of a second, rounded up to the nanosecond.
	want(t, "drained", l.Allow(r, t0), false, 0, 333_333_334)
	want(t, "1ns early", l.Allow(r, t0.Add(333_333_333)), false, 0, 1)
	want(t, "on time", l.Allow(r, t0.Add(333_333_334)), true, 0, 0)
	// The next token: the bucket holds 2 scaled units (3*333,333,334 - 1e9)
	// and needs 1e9; ceil((1e9-2)/3) = 333,333,333.
	want(t, "next", l.Allow(r, t0.Add(333_333_334)), false, 0, 333_333_333)
	// An idle bucket refills to its size and no further.
	want(t, "after an hour", l.Allow(r, t0.Add(time.Hour)), true, 2, 0)
	// A clock going backwards adds nothing.
	want(t, "earlier", l.Allow(r, t0), true, 1, 0)
}

func TestUnits(t *testing.T) {
	for unit, period := range map[model.RateLimitUnit]time.Duration{
		model.RateLimitSecond: time.Second, model.RateLimitMinute: time.Minute, model.RateLimitHour: time.Hour,
	} {
		t.Run(string(unit), func(t *testing.T) {
			l := mustCompile(t, policy(model.RateLimitRule{Limit: model.RateLimitValue{Requests: 7, Unit: unit}}))
			for range 7 {
				l.Allow(&Request{}, t0)
			}
			step := (period + 6) / 7
			want(t, "drained", l.Allow(&Request{}, t0), false, 0, step)
			want(t, "one step later", l.Allow(&Request{}, t0.Add(step)), true, 0, 0)
		})
	}
}

func TestBurst(t *testing.T) {
	l := mustCompile(t, policy(model.RateLimitRule{Limit: perSecond(10), Burst: 20}))
	r := &Request{}
	for i := range 20 {
		d := l.Allow(r, t0)
		want(t, "request "+strconv.Itoa(i), d, true, 19-i, 0)
		if d.Limit != 20 {
			t.Fatalf("Limit = %d, want the bucket size 20", d.Limit)
		}
	}
	d := l.Allow(r, t0)
	want(t, "21st", d, false, 0, 100*time.Millisecond)
	if d.Limit != 20 || d.Policy != "default/limit" || d.Rule != 0 {
		t.Fatalf("denial = %+v, want Limit 20 from default/limit rules[0]", d)
	}
	// One second later: 10 more, not 20.
	n := 0
	for l.Allow(r, t0.Add(time.Second)).Allowed {
		n++
	}
	if n != 10 {
		t.Fatalf("%d requests allowed a second after draining, want 10", n)
	}
	// A burst smaller than the rate smooths: 2 at once, then one per 100ms.
	l = mustCompile(t, policy(model.RateLimitRule{Limit: perSecond(10), Burst: 2}))
	want(t, "small burst 1", l.Allow(r, t0), true, 1, 0)
	want(t, "small burst 2", l.Allow(r, t0), true, 0, 0)
	want(t, "small burst 3", l.Allow(r, t0), false, 0, 100*time.Millisecond)
}

func TestDeniedAnswer(t *testing.T) {
	l := mustCompile(t, policy(model.RateLimitRule{Limit: model.RateLimitValue{Requests: 2, Unit: model.RateLimitMinute}}))
	r := &Request{}
	l.Allow(r, t0)
	ok := l.Allow(r, t0)
	h := http.Header{}
	ok.SetHeaders(h)
	if h.Get("x-ratelimit-limit") != "2" || h.Get("x-ratelimit-remaining") != "0" || h.Get("retry-after") != "" {
		t.Fatalf("allowed headers = %v, want limit 2, remaining 0, no retry-after", h)
	}
	d := l.Allow(r, t0.Add(10*time.Second))
	want(t, "denied", d, false, 0, 20*time.Second)
	h = http.Header{}
	d.SetHeaders(h)
	if h.Get("Retry-After") != "20" || h.Get("X-RateLimit-Limit") != "2" || h.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("denied headers = %v, want retry-after 20, limit 2, remaining 0", h)
	}
	if DeniedStatus != 429 || DeniedBody != "local_rate_limited" {
		t.Fatalf("DeniedStatus, DeniedBody = %d, %q", DeniedStatus, DeniedBody)
	}
	for _, c := range []struct {
		wait time.Duration
		secs int
	}{{1, 1}, {100 * time.Millisecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {90 * time.Second, 90}} {
		d := Decision{RetryAfter: c.wait, Policy: "p"}
		if got := d.RetryAfterSeconds(); got != c.secs {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", c.wait, got, c.secs)
		}
	}
	// No rule matched: no headers.
	none := (*Limiter)(nil).Allow(r, t0)
	h = http.Header{}
	none.SetHeaders(h)
	if !none.Allowed || len(h) != 0 {
		t.Fatalf("nil limiter: %+v, headers %v; want allowed without headers", none, h)
	}
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestDistinctHeader(t *testing.T) {
	l := mustCompile(t, policy(model.RateLimitRule{
		ClientSelectors: []model.RateLimitSelector{{Headers: []model.RateLimitHeaderMatch{{Type: model.MatchDistinct, Name: "x-user-id"}}}},
		Limit:           perSecond(1),
	}))
	alice := &Request{Headers: header("X-User-Id", "alice")}
	bob := &Request{Headers: header("X-User-Id", "bob")}
	want(t, "alice 1", l.Allow(alice, t0), true, 0, 0)
	want(t, "alice 2", l.Allow(alice, t0), false, 0, time.Second)
	want(t, "bob 1", l.Allow(bob, t0), true, 0, 0)
	want(t, "bob 2", l.Allow(bob, t0), false, 0, time.Second)
	// Without the header the rule does not apply.
	for range 5 {
		if d := l.Allow(&Request{Headers: http.Header{}}, t0); !d.Allowed || d.Policy != "" {
			t.Fatalf("no header: %+v, want allowed by no rule", d)
		}
	}
	// Several values are one key, joined as Envoy joins them.
	both := &Request{Headers: header("X-User-Id", "alice", "X-User-Id", "bob")}
	want(t, "alice,bob 1", l.Allow(both, t0), true, 0, 0)
	want(t, "alice,bob 2", l.Allow(both, t0), false, 0, time.Second)
	want(t, "'alice,bob' in one value", l.Allow(&Request{Headers: header("X-User-Id", "alice,bob")}, t0), false, 0, time.Second)
	if n := l.rules[0].st.buckets(); n != 3 {
		t.Fatalf("%d buckets, want 3 (alice, bob, alice,bob)", n)
	}
}

func TestDistinctSeveralFields(t *testing.T) {
	l := mustCompile(t, policy(model.RateLimitRule{
		ClientSelectors: []model.RateLimitSelector{{
			Headers: []model.RateLimitHeaderMatch{{Type: model.MatchDistinct, Name: "x-tenant"}, {Type: model.MatchDistinct, Name: "host"}},
		}, {
			SourcePrincipal: &model.RateLimitPrincipalMatch{Type: model.MatchDistinct},
		}},
		Limit: perSecond(1),
	}))
	req := func(tenant, host, principal string) *Request {
		return &Request{Headers: header("X-Tenant", tenant), Host: host, SourcePrincipal: principal}
	}
	want(t, "a", l.Allow(req("t1", "h1", "p1"), t0), true, 0, 0)
	want(t, "a again", l.Allow(req("t1", "h1", "p1"), t0), false, 0, time.Second)
	want(t, "other tenant", l.Allow(req("t2", "h1", "p1"), t0), true, 0, 0)
	want(t, "other host", l.Allow(req("t1", "h2", "p1"), t0), true, 0, 0)
	want(t, "other principal", l.Allow(req("t1", "h1", "p2"), t0), true, 0, 0)
	// Without one of the Distinct fields the rule does not apply.
	want(t, "no host", l.Allow(req("t1", "", "p1"), t0), true, 0, 0)
	if d := l.Allow(&Request{Headers: header("X-Tenant", "t1"), Host: "h1"}, t0); d.Policy != "" {
		t.Fatalf("plaintext request matched a sourcePrincipal Distinct rule: %+v", d)
	}
}

func TestDistinctSourceIP(t *testing.T) {
	l := mustCompile(t, policy(model.RateLimitRule{
		ClientSelectors: []model.RateLimitSelector{{SourceCIDR: &model.RateLimitSourceMatch{Type: model.MatchDistinct, Value: "10.0.0.0/8"}}},
		Limit:           perSecond(2),
	}))
	ip := func(s string) *Request { return &Request{SourceIP: netip.MustParseAddr(s)} }
	want(t, "10.1.1.1 #1", l.Allow(ip("10.1.1.1"), t0), true, 1, 0)
	want(t, "10.1.1.1 #2, IPv4-mapped", l.Allow(ip("::ffff:10.1.1.1"), t0), true, 0, 0)
	want(t, "10.1.1.1 #3", l.Allow(ip("10.1.1.1"), t0), false, 0, 500*time.Millisecond)
	want(t, "10.1.1.2 #1", l.Allow(ip("10.1.1.2"), t0), true, 1, 0)
	for range 5 {
		if d := l.Allow(ip("192.0.2.1"), t0); d.Policy != "" {
			t.Fatalf("address outside the CIDR: %+v, want no rule", d)
		}
		if d := l.Allow(&Request{}, t0); d.Policy != "" {
			t.Fatalf("no source address: %+v, want no rule", d)
		}
	}

	// Exact: the whole CIDR shares one bucket.
	l = mustCompile(t, policy(model.RateLimitRule{
		ClientSelectors: []model.RateLimitSelector{{SourceCIDR: &model.RateLimitSourceMatch{Value: "10.0.0.0/8"}}},
		Limit:           perSecond(2),
	}))
	l.Allow(ip("10.1.1.1"), t0)
	l.Allow(ip("10.2.2.2"), t0)
	want(t, "shared CIDR bucket", l.Allow(ip("10.3.3.3"), t0), false, 0, 500*time.Millisecond)
}

func TestSelectors(t *testing.T) {
	const sleep = "cluster.local/ns/default/sa/sleep"
	rule := model.RateLimitRule{
		ClientSelectors: []model.RateLimitSelector{{
			Headers: []model.RateLimitHeaderMatch{
				{Name: "x-user", Value: "bob"},
				{Type: model.MatchRegularExpression, Name: "x-plan", Value: "free|trial"},
			},
		}, {
			SourcePrincipal: &model.RateLimitPrincipalMatch{Value: sleep},
		}},
		Limit: perSecond(1),
	}
	for _, c := range []struct {
		name  string
		r     *Request
		match bool
	}{
		{"all hold", &Request{Headers: header("X-User", "bob", "X-Plan", "free"), SourcePrincipal: sleep}, true},
		{"second value of x-user", &Request{Headers: header("X-User", "alice", "X-User", "bob", "X-Plan", "trial"), SourcePrincipal: sleep}, true},
		{"regexp is anchored", &Request{Headers: header("X-User", "bob", "X-Plan", "freemium"), SourcePrincipal: sleep}, false},
		{"header missing", &Request{Headers: header("X-Plan", "free"), SourcePrincipal: sleep}, false},
		{"value differs in case", &Request{Headers: header("X-User", "Bob", "X-Plan", "free"), SourcePrincipal: sleep}, false},
		{"other principal", &Request{Headers: header("X-User", "bob", "X-Plan", "free"), SourcePrincipal: sleep + "2"}, false},
		{"plaintext", &Request{Headers: header("X-User", "bob", "X-Plan", "free")}, false},
		{"no headers", &Request{SourcePrincipal: sleep}, false},
	} {
		l := mustCompile(t, policy(rule))
		if got := l.Allow(c.r, t0).Policy != ""; got != c.match {
			t.Errorf("%s: matched = %v, want %v", c.name, got, c.match)
		}
	}
}

func TestRouteScope(t *testing.T) {
	l := mustCompile(t, policy(
		model.RateLimitRule{Route: &model.RateLimitRoute{Name: "reviews"}, Limit: perSecond(1)},
		model.RateLimitRule{Route: &model.RateLimitRoute{Name: "reviews", RuleName: "v2"}, Limit: perSecond(5)},
		model.RateLimitRule{Route: &model.RateLimitRoute{Kind: model.KindGRPCRoute, Namespace: "other", Name: "ratings"}, Limit: perSecond(1)},
	))
	type route struct {
		kind          model.RouteKind
		ns, name, rul string
	}
	for _, c := range []struct {
		name  string
		rt    route
		rules []int // the rules that apply
	}{
		{"no route", route{}, nil},
		{"reviews, no rule name", route{"", "default", "reviews", ""}, []int{0}},
		{"reviews v1", route{model.KindHTTPRoute, "default", "reviews", "v1"}, []int{0}},
		{"reviews v2", route{"", "default", "reviews", "v2"}, []int{0, 1}},
		{"reviews in another namespace", route{"", "other", "reviews", "v2"}, nil},
		{"GRPCRoute named reviews", route{model.KindGRPCRoute, "default", "reviews", ""}, nil},
		{"ratings GRPCRoute in other", route{model.KindGRPCRoute, "other", "ratings", ""}, []int{2}},
		{"ratings HTTPRoute in other", route{"", "other", "ratings", ""}, nil},
	} {
		r := &Request{RouteKind: c.rt.kind, RouteNamespace: c.rt.ns, RouteName: c.rt.name, RouteRule: c.rt.rul}
		var got []int
		for i, ru := range l.rules {
			if _, ok := ru.match(r); ok {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, c.rules) {
			t.Errorf("%s: rules %v apply, want %v", c.name, got, c.rules)
		}
	}
	// And through Allow: reviews v2 is limited by rules 0 (1/s) and 1 (5/s).
	r := &Request{RouteNamespace: "default", RouteName: "reviews", RouteRule: "v2"}
	want(t, "v2 first", l.Allow(r, t0), true, 0, 0)
	d := l.Allow(r, t0)
	want(t, "v2 second", d, false, 0, time.Second)
	if d.Rule != 0 {
		t.Fatalf("denied by rules[%d], want rules[0] (1/s)", d.Rule)
	}
}

func TestMostRestrictiveWins(t *testing.T) {
	l := mustCompile(t,
		model.LocalRateLimit{Name: "all", Namespace: "default", Rules: []model.RateLimitRule{{Limit: perSecond(5)}}},
		model.LocalRateLimit{Name: "bob", Namespace: "default", Rules: []model.RateLimitRule{{
			ClientSelectors: []model.RateLimitSelector{{Headers: []model.RateLimitHeaderMatch{{Name: "x-user", Value: "bob"}}}},
			Limit:           perSecond(1),
		}}},
	)
	bob := &Request{Headers: header("X-User", "bob")}
	other := &Request{Headers: header("X-User", "alice")}
	d := l.Allow(bob, t0)
	want(t, "bob 1", d, true, 0, 0)
	if d.Policy != "default/bob" {
		t.Fatalf("allowed decision reports %s, want default/bob (fewest tokens left)", d.Policy)
	}
	// Denied by bob's rule: the token taken from "all" is given back.
	d = l.Allow(bob, t0)
	want(t, "bob 2", d, false, 0, time.Second)
	if d.Policy != "default/bob" {
		t.Fatalf("denied by %s, want default/bob", d.Policy)
	}
	want(t, "alice sees 5-1 tokens used", l.Allow(other, t0), true, 3, 0)
	for range 3 {
		l.Allow(other, t0)
	}
	// Both rules deny: the one freeing up last is reported (bob's 1s, not all's 200ms).
	d = l.Allow(bob, t0)
	want(t, "bob, both drained", d, false, 0, time.Second)
	if d.Policy != "default/bob" {
		t.Fatalf("reported %s, want default/bob", d.Policy)
	}
	// Order of policies in the input does not matter.
	l2 := mustCompile(t,
		model.LocalRateLimit{Name: "bob", Namespace: "default", Rules: []model.RateLimitRule{{Limit: perSecond(1)}}},
		model.LocalRateLimit{Name: "all", Namespace: "default", Rules: []model.RateLimitRule{{Limit: perSecond(1)}}},
	)
	if d := l2.Allow(other, t0); d.Policy != "default/all" {
		t.Fatalf("tie reported %s, want default/all (first by namespace/name)", d.Policy)
	}
}

func TestBucketBound(t *testing.T) {
	rule := model.RateLimitRule{
		ClientSelectors: []model.RateLimitSelector{{Headers: []model.RateLimitHeaderMatch{{Type: model.MatchDistinct, Name: "x-id"}}}},
		Limit:           perSecond(1),
	}
	l := mustCompile(t, policy(rule))
	h := http.Header{}
	r := &Request{Headers: h}
	for i := range 3 * MaxBuckets {
		h.Set("X-Id", strconv.Itoa(i))
		l.Allow(r, t0)
	}
	if n := l.rules[0].st.buckets(); n > MaxBuckets || n < MaxBuckets*9/10 {
		t.Fatalf("%d buckets after %d clients, want at most %d (and most of them used)", n, 3*MaxBuckets, MaxBuckets)
	}
	// Long values cost at most a hash each.
	h.Set("X-Id", strings.Repeat("a", 100_000))
	l.Allow(r, t0)
	d := l.Allow(r, t0)
	if d.Allowed {
		t.Fatal("second request with the same long value allowed: not the same bucket")
	}
	h.Set("X-Id", strings.Repeat("a", 99_999)+"b")
	if !l.Allow(r, t0).Allowed {
		t.Fatal("a different long value with the same prefix shares a bucket")
	}
	for i := range l.rules[0].st.shards {
		for k := range l.rules[0].st.shards[i].m {
			if len(k.header) > maxKeyLen+1 {
				t.Fatalf("a bucket keeps a %d-byte key", len(k.header))
			}
		}
	}

	// Least recently used goes first.
	l, err := compile([]model.LocalRateLimit{policy(rule)}, shards*2) // 2 per shard
	if err != nil {
		t.Fatal(err)
	}
	sh := &l.rules[0].st.shards[0]
	p := &l.rules[0].st.p
	k := func(s string) *key { return &key{header: s} }
	sh.add(k("a"), p.full(t0))
	sh.add(k("b"), p.full(t0))
	sh.get(k("a"))
	sh.add(k("c"), p.full(t0))
	if sh.m[key{header: "b"}] != nil || sh.m[key{header: "a"}] == nil || len(sh.m) != 2 {
		t.Fatalf("after a, b, use a, add c: shard holds %v; want a and c", keys(sh))
	}
}

func keys(sh *shard) []string {
	var ks []string
	for e := sh.head; e != nil; e = e.next {
		ks = append(ks, e.k.header)
	}
	return ks
}

func TestInherit(t *testing.T) {
	p := policy(
		model.RateLimitRule{Limit: perSecond(1)},
		model.RateLimitRule{Route: &model.RateLimitRoute{Name: "r"}, Limit: perSecond(1)},
	)
	old := mustCompile(t, p)
	r := &Request{RouteNamespace: "default", RouteName: "r"}
	old.Allow(r, t0) // drains both rules

	same := mustCompile(t, p)
	same.Inherit(old)
	if d := same.Allow(r, t0); d.Allowed {
		t.Fatalf("recompiled unchanged policy refilled its buckets: %+v", d)
	}

	changed := p
	changed.Rules = []model.RateLimitRule{p.Rules[0], {Route: &model.RateLimitRoute{Name: "r"}, Limit: perSecond(2)}}
	l := mustCompile(t, changed)
	l.Inherit(old)
	if d := l.Allow(&Request{}, t0); d.Allowed {
		t.Fatalf("rules[0] is unchanged but its bucket was not kept: %+v", d)
	}
	if d := l.Allow(&Request{RouteNamespace: "default", RouteName: "r"}, t0); d.Allowed || d.Rule != 0 {
		t.Fatalf("want denial by the kept rules[0] only (changed rules[1] starts full): %+v", d)
	}
	(*Limiter)(nil).Inherit(old)
	l.Inherit(nil)
}

func TestCompile(t *testing.T) {
	p := policy(model.RateLimitRule{Limit: perSecond(1)})
	l, err := Compile([]model.LocalRateLimit{p, p})
	if err != nil {
		t.Fatalf("the same policy twice: %v", err)
	}
	if len(l.rules) != 1 {
		t.Fatalf("the same policy twice compiled into %d rules, want 1", len(l.rules))
	}
	other := policy(model.RateLimitRule{Limit: perSecond(2)})
	if _, err := Compile([]model.LocalRateLimit{p, other}); err == nil || !strings.Contains(err.Error(), "default/limit: given twice with different rules") {
		t.Fatalf("conflicting versions: err = %v", err)
	}
	bad := policy(model.RateLimitRule{Limit: model.RateLimitValue{Requests: 0, Unit: "Day"}})
	_, err = Compile([]model.LocalRateLimit{bad})
	if err == nil || !strings.Contains(err.Error(), "rules[0].limit.requests") || !strings.Contains(err.Error(), "rules[0].limit.unit") {
		t.Fatalf("invalid policy: err = %v", err)
	}
	empty, err := Compile(nil)
	if err != nil || !empty.Allow(&Request{}, t0).Allowed {
		t.Fatalf("no policies: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	l := mustCompile(t, policy(
		model.RateLimitRule{Limit: perSecond(1000), Burst: 500},
		model.RateLimitRule{
			ClientSelectors: []model.RateLimitSelector{{Headers: []model.RateLimitHeaderMatch{{Type: model.MatchDistinct, Name: "x-id"}}}},
			Limit:           perSecond(50),
		},
	))
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := &Request{Headers: header("X-Id", strconv.Itoa(g%4))}
			for range 200 {
				if l.Allow(r, t0).Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// 4 ids x 50 each; the shared bucket (500) is not the limit, and
	// tokens given back on denial must not make it one.
	if n := allowed.Load(); n != 200 {
		t.Fatalf("%d requests allowed, want exactly 4 clients x 50", n)
	}
	if d := l.Allow(&Request{}, t0); d.Remaining != 500-200-1 {
		t.Fatalf("shared bucket has %d tokens left, want %d: tokens of denied requests were not given back", d.Remaining, 500-200-1)
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	l := mustCompile(t, policy(
		model.RateLimitRule{Limit: perSecond(1_000_000)},
		model.RateLimitRule{
			ClientSelectors: []model.RateLimitSelector{{
				Headers:    []model.RateLimitHeaderMatch{{Type: model.MatchDistinct, Name: "x-user"}, {Type: model.MatchRegularExpression, Name: "x-plan", Value: "free|pro"}},
				SourceCIDR: &model.RateLimitSourceMatch{Type: model.MatchDistinct, Value: "0.0.0.0/0"},
			}},
			Route: &model.RateLimitRoute{Name: "reviews"},
			Limit: perSecond(1_000_000),
		},
	))
	r := &Request{Headers: header("X-User", "bob", "X-Plan", "pro"), SourceIP: netip.MustParseAddr("10.0.0.1"), RouteNamespace: "default", RouteName: "reviews"}
	now := t0
	l.Allow(r, now) // creates bob's bucket
	if n := testing.AllocsPerRun(1000, func() { now = now.Add(time.Microsecond); l.Allow(r, now) }); n != 0 {
		t.Fatalf("Allow allocates %v times per request, want 0", n)
	}
}
