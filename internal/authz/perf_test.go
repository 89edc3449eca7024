package authz

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"

	"github.com/meshway/meshway/internal/model"
)

// realisticPolicies is 10 policies × 3 rules: 2 DENY, 8 ALLOW, each rule
// using sources, operations and a condition, none matching benchRequest
// except the last ALLOW policy's last rule, so Evaluate walks everything.
func realisticPolicies() []model.AuthorizationPolicy {
	var ps []model.AuthorizationPolicy
	for i := range 10 {
		p := allowPolicy(fmt.Sprintf("allow-%d", i))
		if i < 2 {
			p = denyPolicy(fmt.Sprintf("deny-%d", i))
		}
		for j := range 3 {
			ns := fmt.Sprintf("team-%d-%d", i, j)
			p.Rules = append(p.Rules, model.Rule{
				From: []model.Source{
					{Principals: []string{"cluster.local/ns/" + ns + "/sa/api", "cluster.local/ns/" + ns + "/sa/web-*"}},
					{Namespaces: []string{ns, "*-" + ns}, NotIPBlocks: []string{"192.0.2.0/24"}},
				},
				To: []model.Operation{
					{Methods: []string{"GET", "HEAD"}, Paths: []string{"/api/v1/*", "*.json"}, Ports: []string{"9080", "8080"}},
					{Hosts: []string{"*.default.svc.cluster.local:9080"}, NotPaths: []string{"/admin*"}},
				},
				When: []model.Condition{{Key: "request.headers[x-tenant]", Values: []string{ns, "shared"}}},
			})
		}
		ps = append(ps, p)
	}
	last := &ps[9].Rules[2]
	last.From[0].Principals = append(last.From[0].Principals, "cluster.local/ns/default/sa/sleep")
	return ps
}

func benchRequest() *Request {
	return httpReq(
		path("/api/v1/products/7?verbose=1"),
		header("X-Tenant", "shared"),
		header("User-Agent", "curl/8.5"),
		header("Accept", "application/json"),
	)
}

func BenchmarkEvaluate(b *testing.B) {
	e := mustCompile(b, realisticPolicies()...)
	for _, bc := range []struct {
		name string
		req  *Request
	}{
		{"http-allowed-by-last-rule", benchRequest()},
		{"http-denied-no-match", httpReq(from(otherPeer))},
		{"tcp", tcpReq()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e.Evaluate(bc.req)
			}
		})
	}
}

func TestRealisticPoliciesDecide(t *testing.T) {
	e := mustCompile(t, realisticPolicies()...)
	if d := e.Evaluate(benchRequest()); !d.Allowed || d.Policy != "default/allow-9" {
		t.Errorf("benchmark request: %+v, want allowed by default/allow-9", d)
	}
	if d := e.Evaluate(httpReq(from(otherPeer))); d.Allowed {
		t.Errorf("request from other: %+v, want denied", d)
	}
}

// TestEvaluateDoesNotAllocate guards the design: Evaluate runs per request on
// the proxies' hot path and must not allocate (http.Header lookups included).
func TestEvaluateDoesNotAllocate(t *testing.T) {
	e := mustCompile(t, realisticPolicies()...)
	for name, req := range map[string]*Request{
		"http allowed":        benchRequest(),
		"http denied":         httpReq(from(otherPeer), header("X-Tenant", "team-0-0", "shared")),
		"http denied by DENY": httpReq(from(PeerIdentity{Principal: "cluster.local/ns/team-0-0/sa/api", Namespace: "team-0-0"}), path("/api/v1/x"), header("X-Tenant", "shared")),
		"tcp":                 tcpReq(),
	} {
		t.Run(name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, func() { e.Evaluate(req) }); n != 0 {
				t.Errorf("Evaluate allocates %.1f times per request, want 0", n)
			}
		})
	}
}

func FuzzCompileEvaluate(f *testing.F) {
	f.Add("default", "GET", "/api/*", "request.headers[x-user]", "10.0.0.0/8", "80", "cluster.local/ns/default/sa/x", "/api/v1?x", "alice", "10.0.0.1", true)
	f.Add("*", "*", "*", "source.ip", "::1", "65535", "*", "", "", "::ffff:1.2.3.4", false)
	f.Add("*abc", "abc*", "", "destination.port", "1.2.3.4/0", "0", "", "?", "*", "", true)
	f.Add("a*b", "**", "{*}", "request.auth.claims[iss]", "x", "-1", "spiffe://x", "#", "\x00", "bad", true)
	f.Fuzz(func(t *testing.T, pattern, method, pathPattern, key, ip, port, principal, reqPath, headerValue, reqIP string, isHTTP bool) {
		for _, action := range []model.Action{model.ActionAllow, model.ActionDeny, model.ActionAudit} {
			p := model.AuthorizationPolicy{Name: "fuzz", Namespace: "ns", Action: action, Rules: []model.Rule{{
				From: []model.Source{{
					Principals: []string{principal}, NotPrincipals: []string{pattern},
					Namespaces: []string{pattern}, NotNamespaces: []string{pattern},
					IPBlocks: []string{ip}, NotIPBlocks: []string{ip}, RemoteIPBlocks: []string{ip}, NotRemoteIPBlocks: []string{ip},
				}},
				To: []model.Operation{{
					Hosts: []string{pattern}, NotHosts: []string{pattern}, Ports: []string{port}, NotPorts: []string{port},
					Methods: []string{method}, NotMethods: []string{method}, Paths: []string{pathPattern}, NotPaths: []string{pathPattern},
				}, {Hosts: []string{pattern}}},
				When: []model.Condition{{Key: key, Values: []string{pattern}, NotValues: []string{ip}}},
			}, {}}}
			e, err := Compile([]model.AuthorizationPolicy{p})
			if verr := p.Validate(); (err == nil) != (verr == nil) {
				t.Fatalf("Compile error %v, but Validate error %v", err, verr)
			}
			if err != nil {
				continue
			}
			addr, _ := netip.ParseAddr(reqIP)
			h := http.Header{}
			h.Add("X-User", headerValue)
			for _, r := range []*Request{
				{Source: PeerIdentity{Principal: principal, Namespace: pattern}, SourceIP: addr, RemoteIP: addr, DestinationIP: addr,
					HTTP: isHTTP, Host: pattern, Method: method, Path: reqPath, Headers: h},
				{},
			} {
				// The empty second rule matches every request.
				d := e.Evaluate(r)
				if d.Allowed != (action != model.ActionDeny) || d.Audit != (action == model.ActionAudit) {
					t.Fatalf("%s policy with an empty rule: Evaluate(%+v) = %+v", action, r, d)
				}
			}
		}
	})
}
