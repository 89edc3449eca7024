package authz

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshway/meshway/internal/model"
)

var (
	matchAll  = model.Rule{}
	postRule  = model.Rule{To: []model.Operation{{Methods: []string{"POST"}}}}
	getRule   = model.Rule{To: []model.Operation{{Methods: []string{"GET"}}}}
	port80    = model.Rule{To: []model.Operation{{Ports: []string{"80"}}}}
	port9080  = model.Rule{To: []model.Operation{{Ports: []string{"9080"}}}}
	fromOther = model.Rule{From: []model.Source{{Namespaces: []string{"other"}}}}
)

func TestDecisions(t *testing.T) {
	tests := []struct {
		name     string
		policies []model.AuthorizationPolicy
		req      *Request
		want     Decision
	}{
		{"no policies: allow", nil, httpReq(),
			Decision{Allowed: true, Reason: "allowed: no ALLOW policy applies"}},
		{"only a non-matching DENY: allow", []model.AuthorizationPolicy{denyPolicy("no-post", postRule)}, httpReq(),
			Decision{Allowed: true, Reason: "allowed: no ALLOW policy applies"}},
		{"matching DENY: deny", []model.AuthorizationPolicy{denyPolicy("no-get", postRule, getRule)}, httpReq(),
			Decision{Allowed: false, Policy: "default/no-get", Reason: "denied by DENY policy default/no-get rules[1]"}},
		{"DENY before ALLOW", []model.AuthorizationPolicy{allowPolicy("all", matchAll), denyPolicy("no-get", getRule)}, httpReq(),
			Decision{Allowed: false, Policy: "default/no-get", Reason: "denied by DENY policy default/no-get rules[0]"}},
		{"ALLOW when DENY does not match", []model.AuthorizationPolicy{allowPolicy("all", matchAll), denyPolicy("no-post", postRule)}, httpReq(),
			Decision{Allowed: true, Policy: "default/all", Reason: "allowed by ALLOW policy default/all rules[0]"}},
		{"one of several ALLOW policies matches", []model.AuthorizationPolicy{allowPolicy("posts", postRule), allowPolicy("gets", getRule)}, httpReq(),
			Decision{Allowed: true, Policy: "default/gets", Reason: "allowed by ALLOW policy default/gets rules[0]"}},
		{"no ALLOW policy matches: deny", []model.AuthorizationPolicy{allowPolicy("posts", postRule), allowPolicy("other", fromOther)}, httpReq(),
			Decision{Allowed: false, Reason: "denied: no ALLOW policy matched"}},
		{"ALLOW without rules denies all", []model.AuthorizationPolicy{allowPolicy("allow-nothing")}, httpReq(),
			Decision{Allowed: false, Reason: "denied: no ALLOW policy matched"}},
		{"ALLOW without rules does not override another ALLOW", []model.AuthorizationPolicy{allowPolicy("allow-nothing"), allowPolicy("gets", getRule)}, httpReq(),
			Decision{Allowed: true, Policy: "default/gets", Reason: "allowed by ALLOW policy default/gets rules[0]"}},
		{"ALLOW with rules [{}] allows all", []model.AuthorizationPolicy{allowPolicy("allow-all", matchAll)}, httpReq(from(plaintext), method("DELETE")),
			Decision{Allowed: true, Policy: "default/allow-all", Reason: "allowed by ALLOW policy default/allow-all rules[0]"}},
		{"empty action is ALLOW", []model.AuthorizationPolicy{{Name: "x", Namespace: "ns", Rules: []model.Rule{postRule}}}, httpReq(),
			Decision{Allowed: false, Reason: "denied: no ALLOW policy matched"}},
		{"DENY without rules matches nothing", []model.AuthorizationPolicy{denyPolicy("deny-nothing")}, httpReq(),
			Decision{Allowed: true, Reason: "allowed: no ALLOW policy applies"}},
		{"DENY with rules [{}] denies all", []model.AuthorizationPolicy{denyPolicy("deny-all", matchAll)}, httpReq(),
			Decision{Allowed: false, Policy: "default/deny-all", Reason: "denied by DENY policy default/deny-all rules[0]"}},
		{"DENY plaintext with notPrincipals *", []model.AuthorizationPolicy{denyPolicy("require-mtls", model.Rule{From: []model.Source{{NotPrincipals: []string{"*"}}}})},
			httpReq(from(plaintext)),
			Decision{Allowed: false, Policy: "default/require-mtls", Reason: "denied by DENY policy default/require-mtls rules[0]"}},
		{"AUDIT alone does not deny", []model.AuthorizationPolicy{auditPolicy("audit-all", matchAll)}, httpReq(),
			Decision{Allowed: true, Audit: true, Reason: "allowed: no ALLOW policy applies"}},
		{"AUDIT does not count as ALLOW", []model.AuthorizationPolicy{auditPolicy("audit-get", getRule), allowPolicy("posts", postRule)}, httpReq(),
			Decision{Allowed: false, Audit: true, Reason: "denied: no ALLOW policy matched"}},
		{"AUDIT marks a denied request", []model.AuthorizationPolicy{auditPolicy("audit-get", getRule), denyPolicy("deny-all", matchAll)}, httpReq(),
			Decision{Allowed: false, Audit: true, Policy: "default/deny-all", Reason: "denied by DENY policy default/deny-all rules[0]"}},
		{"AUDIT not matching", []model.AuthorizationPolicy{auditPolicy("audit-post", postRule), allowPolicy("gets", getRule)}, httpReq(),
			Decision{Allowed: true, Policy: "default/gets", Reason: "allowed by ALLOW policy default/gets rules[0]"}},
		{"AUDIT without rules audits nothing", []model.AuthorizationPolicy{auditPolicy("audit-nothing")}, httpReq(),
			Decision{Allowed: true, Reason: "allowed: no ALLOW policy applies"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustCompile(t, tt.policies...)
			if diff := cmp.Diff(tt.want, e.Evaluate(tt.req)); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTCP checks non-HTTP requests against rules with HTTP-only fields, as on
// Istio's TCP filter chain: ALLOW rules using them never match, DENY and AUDIT
// rules are applied with those fields ignored.
func TestTCP(t *testing.T) {
	headerRule := model.Rule{When: []model.Condition{{Key: "request.headers[x-user]", Values: []string{"alice"}}}}
	notMethods := model.Rule{To: []model.Operation{{NotMethods: []string{"DELETE"}}}}
	hostAndPort := model.Rule{To: []model.Operation{{Hosts: []string{"*"}, Ports: []string{"9080"}}}}
	pathsOrPort := model.Rule{To: []model.Operation{{Paths: []string{"/x"}}, {Ports: []string{"80"}}}}
	tests := []struct {
		name      string
		policies  []model.AuthorizationPolicy
		req       *Request
		want      bool
		wantAudit bool
	}{
		{"ALLOW with methods never matches TCP", []model.AuthorizationPolicy{allowPolicy("gets", getRule)}, tcpReq(), false, false},
		{"ALLOW with notMethods never matches TCP", []model.AuthorizationPolicy{allowPolicy("p", notMethods)}, tcpReq(), false, false},
		{"ALLOW with a header condition never matches TCP", []model.AuthorizationPolicy{allowPolicy("p", headerRule)}, tcpReq(), false, false},
		{"ALLOW with hosts and ports never matches TCP", []model.AuthorizationPolicy{allowPolicy("p", hostAndPort)}, tcpReq(), false, false},
		{"ALLOW with only L4 fields matches TCP", []model.AuthorizationPolicy{allowPolicy("p", port9080)}, tcpReq(), true, false},
		{"ALLOW with only L4 fields, other port", []model.AuthorizationPolicy{allowPolicy("p", port80)}, tcpReq(), false, false},
		{"ALLOW with only L4 fields, its port", []model.AuthorizationPolicy{allowPolicy("p", port80)}, tcpReq(port(80)), true, false},
		{"ALLOW: the L4 rule of a policy still matches", []model.AuthorizationPolicy{allowPolicy("p", getRule, port9080)}, tcpReq(), true, false},
		{"ALLOW with hosts and ports matches HTTP", []model.AuthorizationPolicy{allowPolicy("p", hostAndPort)}, httpReq(), true, false},
		{"DENY with methods denies all TCP", []model.AuthorizationPolicy{denyPolicy("no-post", postRule)}, tcpReq(), false, false},
		{"DENY with methods allows HTTP GET", []model.AuthorizationPolicy{denyPolicy("no-post", postRule)}, httpReq(), true, false},
		{"DENY with a header condition denies TCP", []model.AuthorizationPolicy{denyPolicy("p", headerRule)}, tcpReq(), false, false},
		{"DENY keeps its L4 fields: other port", []model.AuthorizationPolicy{denyPolicy("p", model.Rule{To: []model.Operation{{Methods: []string{"POST"}, Ports: []string{"80"}}}})}, tcpReq(), true, false},
		{"DENY keeps its L4 fields: same port", []model.AuthorizationPolicy{denyPolicy("p", model.Rule{To: []model.Operation{{Methods: []string{"POST"}, Ports: []string{"9080"}}}})}, tcpReq(), false, false},
		{"DENY: an HTTP-only to entry becomes match-any", []model.AuthorizationPolicy{denyPolicy("p", pathsOrPort)}, tcpReq(), false, false},
		{"DENY keeps its source", []model.AuthorizationPolicy{denyPolicy("p", model.Rule{From: []model.Source{{Namespaces: []string{"other"}}}, To: []model.Operation{{Methods: []string{"POST"}}}})}, tcpReq(), true, false},
		{"AUDIT with paths audits TCP", []model.AuthorizationPolicy{auditPolicy("p", model.Rule{To: []model.Operation{{Paths: []string{"/admin"}}}})}, tcpReq(), true, true},
		{"AUDIT with paths on HTTP needs the path", []model.AuthorizationPolicy{auditPolicy("p", model.Rule{To: []model.Operation{{Paths: []string{"/admin"}}}})}, httpReq(), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustCompile(t, tt.policies...).Evaluate(tt.req)
			if d.Allowed != tt.want || d.Audit != tt.wantAudit {
				t.Errorf("Evaluate() = %+v, want Allowed=%v Audit=%v", d, tt.want, tt.wantAudit)
			}
		})
	}
}

func TestCompileRejectsInvalidPolicies(t *testing.T) {
	custom := allowPolicy("ext", matchAll)
	custom.Action = model.ActionCustom
	badCIDR := allowPolicy("cidr", model.Rule{From: []model.Source{{IPBlocks: []string{"10.0.0.0/99"}}}})
	jwt := denyPolicy("jwt", model.Rule{When: []model.Condition{{Key: "request.auth.principal", Values: []string{"x"}}}})
	e, err := Compile([]model.AuthorizationPolicy{viewOnly, custom, badCIDR, jwt})
	if err == nil || e != nil {
		t.Fatalf("Compile() = %v, %v; want nil and an error", e, err)
	}
	for _, want := range []string{
		"authorization policy default/ext: action CUSTOM is not supported",
		"authorization policy default/cidr: rules[0].from[0].ipBlocks[0]",
		`authorization policy default/jwt: rules[0].when[0]: key "request.auth.principal" is not supported`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Compile() error = %q\nwant it to contain %q", err, want)
		}
	}
}

func TestNilEngineAllows(t *testing.T) {
	var e *Engine
	if d := e.Evaluate(httpReq()); !d.Allowed {
		t.Errorf("nil Engine: Evaluate() = %+v, want allowed", d)
	}
}

func TestPeerFromSPIFFE(t *testing.T) {
	tests := []struct {
		in      string
		want    PeerIdentity
		wantErr string
	}{
		{in: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
			want: PeerIdentity{Principal: "cluster.local/ns/default/sa/bookinfo-productpage", Namespace: "default"}},
		{in: "spiffe://td.example/ns/istio-system/sa/waypoint",
			want: PeerIdentity{Principal: "td.example/ns/istio-system/sa/waypoint", Namespace: "istio-system"}},
		{in: "cluster.local/ns/default/sa/x", wantErr: "is not a SPIFFE ID"},
		{in: "spiffe://cluster.local/ns/default", wantErr: "is not a workload identity"},
		{in: "spiffe://cluster.local/ns//sa/x", wantErr: "is not a workload identity"},
		{in: "spiffe:///ns/default/sa/x", wantErr: "is not a workload identity"},
		{in: "spiffe://cluster.local/ns/default/sa/x/extra", wantErr: "is not a workload identity"},
		{in: "spiffe://cluster.local/sa/x/ns/default", wantErr: "is not a workload identity"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := PeerFromSPIFFE(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("PeerFromSPIFFE() = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PeerFromSPIFFE() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPeerFromSPIFFEWithViewOnly ties the certificate identity to the guide's
// policy: the namespace comes from the SPIFFE ID.
func TestPeerFromSPIFFEWithViewOnly(t *testing.T) {
	e := mustCompile(t, viewOnly)
	for uri, want := range map[string]bool{
		"spiffe://cluster.local/ns/default/sa/sleep":        true,
		"spiffe://cluster.local/ns/istio-system/sa/ingress": true,
		"spiffe://cluster.local/ns/other/sa/default":        false,
	} {
		peer, err := PeerFromSPIFFE(uri)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Evaluate(httpReq(from(peer))).Allowed; got != want {
			t.Errorf("GET from %s: Allowed = %v, want %v", uri, got, want)
		}
	}
}
