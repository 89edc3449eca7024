package authz

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshway/meshway/internal/model"
)

// viewOnly is the guide's example (spec/configure-waypoint-proxies.txt):
// GET only, from namespaces default and istio-system.
var viewOnly = model.AuthorizationPolicy{
	Name: "view-only", Namespace: "default", Action: model.ActionAllow,
	Rules: []model.Rule{{
		From: []model.Source{{Namespaces: []string{"default", "istio-system"}}},
		To:   []model.Operation{{Methods: []string{"GET"}}},
	}},
}

func TestGuideViewOnly(t *testing.T) {
	e := mustCompile(t, viewOnly)
	allowed := Decision{Allowed: true, Policy: "default/view-only", Reason: "allowed by ALLOW policy default/view-only rules[0]"}
	denied := Decision{Allowed: false, Reason: "denied: no ALLOW policy matched"}
	tests := []struct {
		name string
		req  *Request
		want Decision
	}{
		{"GET from default", httpReq(), allowed},
		{"GET from istio-system", httpReq(from(istioPeer)), allowed},
		{"POST from default", httpReq(method("POST")), denied},
		{"GET from other namespace", httpReq(from(otherPeer)), denied},
		{"GET without peer identity (plaintext)", httpReq(from(plaintext)), denied},
		{"TCP from default (methods is HTTP-only)", tcpReq(), denied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, e.Evaluate(tt.req)); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFields checks each field and its not-form with a single ALLOW policy:
// the request is allowed exactly when the rule matches it.
func TestFields(t *testing.T) {
	src := func(s model.Source) model.Rule { return model.Rule{From: []model.Source{s}} }
	op := func(o model.Operation) model.Rule { return model.Rule{To: []model.Operation{o}} }
	when := func(key string, values, notValues []string) model.Rule {
		return model.Rule{When: []model.Condition{{Key: key, Values: values, NotValues: notValues}}}
	}
	v := func(s ...string) []string { return s }
	tests := []struct {
		name string
		rule model.Rule
		req  *Request
		want bool
	}{
		// principals
		{"principal exact", src(model.Source{Principals: v("cluster.local/ns/default/sa/sleep")}), httpReq(), true},
		{"principal exact other", src(model.Source{Principals: v("cluster.local/ns/default/sa/sleep")}), httpReq(from(otherPeer)), false},
		{"principal one of several", src(model.Source{Principals: v("x", "cluster.local/ns/other/sa/curl")}), httpReq(from(otherPeer)), true},
		{"principal prefix", src(model.Source{Principals: v("cluster.local/ns/default/*")}), httpReq(), true},
		{"principal prefix miss", src(model.Source{Principals: v("cluster.local/ns/default/*")}), httpReq(from(otherPeer)), false},
		{"principal suffix", src(model.Source{Principals: v("*/sa/sleep")}), httpReq(), true},
		{"principal suffix miss", src(model.Source{Principals: v("*/sa/sleep")}), httpReq(from(otherPeer)), false},
		{"principal presence", src(model.Source{Principals: v("*")}), httpReq(), true},
		{"principal presence plaintext", src(model.Source{Principals: v("*")}), httpReq(from(plaintext)), false},
		{"principal is case-sensitive", src(model.Source{Principals: v("cluster.local/ns/default/sa/Sleep")}), httpReq(), false},
		{"notPrincipals match", src(model.Source{NotPrincipals: v("cluster.local/ns/default/sa/sleep")}), httpReq(), false},
		{"notPrincipals other", src(model.Source{NotPrincipals: v("cluster.local/ns/default/sa/sleep")}), httpReq(from(otherPeer)), true},
		{"notPrincipals presence plaintext", src(model.Source{NotPrincipals: v("*")}), httpReq(from(plaintext)), true},
		{"notPrincipals presence mTLS", src(model.Source{NotPrincipals: v("*")}), httpReq(), false},
		// namespaces
		{"namespace exact", src(model.Source{Namespaces: v("default")}), httpReq(), true},
		{"namespace exact miss", src(model.Source{Namespaces: v("default")}), httpReq(from(otherPeer)), false},
		{"namespace prefix", src(model.Source{Namespaces: v("istio-*")}), httpReq(from(istioPeer)), true},
		{"namespace suffix", src(model.Source{Namespaces: v("*-system")}), httpReq(from(istioPeer)), true},
		{"namespace suffix miss", src(model.Source{Namespaces: v("*-system")}), httpReq(), false},
		{"namespace presence plaintext", src(model.Source{Namespaces: v("*")}), httpReq(from(plaintext)), false},
		{"notNamespaces match", src(model.Source{NotNamespaces: v("default")}), httpReq(), false},
		{"notNamespaces other", src(model.Source{NotNamespaces: v("default")}), httpReq(from(otherPeer)), true},
		// ipBlocks
		{"ipBlocks single IP", src(model.Source{IPBlocks: v("10.0.0.5")}), httpReq(), true},
		{"ipBlocks single IP miss", src(model.Source{IPBlocks: v("10.0.0.6")}), httpReq(), false},
		{"ipBlocks CIDR", src(model.Source{IPBlocks: v("10.0.0.0/24")}), httpReq(), true},
		{"ipBlocks CIDR miss", src(model.Source{IPBlocks: v("10.0.1.0/24")}), httpReq(), false},
		{"ipBlocks CIDR with host bits", src(model.Source{IPBlocks: v("10.0.0.99/24")}), httpReq(), true},
		{"ipBlocks IPv6", src(model.Source{IPBlocks: v("2001:db8::/32")}), httpReq(srcIP("2001:db8::7")), true},
		{"ipBlocks IPv4-mapped source", src(model.Source{IPBlocks: v("10.0.0.0/24")}), httpReq(srcIP("::ffff:10.0.0.5")), true},
		{"ipBlocks ignore remote IP", src(model.Source{IPBlocks: v("192.0.2.1")}), httpReq(remoteIP("192.0.2.1")), false},
		{"notIpBlocks match", src(model.Source{NotIPBlocks: v("10.0.0.0/8")}), httpReq(), false},
		{"notIpBlocks other", src(model.Source{NotIPBlocks: v("192.168.0.0/16")}), httpReq(), true},
		// remoteIpBlocks
		{"remoteIpBlocks from remote IP", src(model.Source{RemoteIPBlocks: v("192.0.2.0/24")}), httpReq(remoteIP("192.0.2.1")), true},
		{"remoteIpBlocks remote IP wins over source", src(model.Source{RemoteIPBlocks: v("10.0.0.5")}), httpReq(remoteIP("192.0.2.1")), false},
		{"remoteIpBlocks falls back to source IP", src(model.Source{RemoteIPBlocks: v("10.0.0.5")}), httpReq(), true},
		{"notRemoteIpBlocks match", src(model.Source{NotRemoteIPBlocks: v("192.0.2.1")}), httpReq(remoteIP("192.0.2.1")), false},
		{"notRemoteIpBlocks other", src(model.Source{NotRemoteIPBlocks: v("192.0.2.1")}), httpReq(remoteIP("192.0.2.2")), true},
		// source fields are ANDed, from entries ORed
		{"source fields ANDed", src(model.Source{Namespaces: v("default"), IPBlocks: v("192.0.2.0/24")}), httpReq(), false},
		{"source fields ANDed match", src(model.Source{Namespaces: v("default"), IPBlocks: v("10.0.0.0/8")}), httpReq(), true},
		{"source value and not-value", src(model.Source{Namespaces: v("*"), NotNamespaces: v("default")}), httpReq(), false},
		{"from entries ORed", model.Rule{From: []model.Source{{Namespaces: v("x")}, {IPBlocks: v("10.0.0.5")}}}, httpReq(), true},
		// ports
		{"ports", op(model.Operation{Ports: v("80", "9080")}), httpReq(), true},
		{"ports miss", op(model.Operation{Ports: v("80")}), httpReq(), false},
		{"notPorts match", op(model.Operation{NotPorts: v("9080")}), httpReq(), false},
		{"notPorts other", op(model.Operation{NotPorts: v("80")}), httpReq(), true},
		// hosts
		{"hosts exact", op(model.Operation{Hosts: v("productpage.default.svc.cluster.local:9080")}), httpReq(), true},
		{"hosts case-insensitive", op(model.Operation{Hosts: v("ProductPage.Default.svc.cluster.local:9080")}), httpReq(host("PRODUCTPAGE.default.SVC.cluster.local:9080")), true},
		{"hosts exact needs the port", op(model.Operation{Hosts: v("productpage.default.svc.cluster.local")}), httpReq(), false},
		{"hosts prefix", op(model.Operation{Hosts: v("productpage.*")}), httpReq(), true},
		{"hosts prefix case-insensitive", op(model.Operation{Hosts: v("PRODUCTPAGE.*")}), httpReq(), true},
		{"hosts suffix", op(model.Operation{Hosts: v("*.cluster.local:9080")}), httpReq(host("x.CLUSTER.local:9080")), true},
		{"hosts suffix miss", op(model.Operation{Hosts: v("*.example.com")}), httpReq(), false},
		{"notHosts match", op(model.Operation{NotHosts: v("productpage*")}), httpReq(), false},
		{"notHosts other", op(model.Operation{NotHosts: v("reviews*")}), httpReq(), true},
		// methods
		{"methods", op(model.Operation{Methods: v("HEAD", "GET")}), httpReq(), true},
		{"methods miss", op(model.Operation{Methods: v("POST")}), httpReq(), false},
		{"methods case-sensitive", op(model.Operation{Methods: v("get")}), httpReq(), false},
		{"methods prefix", op(model.Operation{Methods: v("P*")}), httpReq(method("PATCH")), true},
		{"notMethods match", op(model.Operation{NotMethods: v("GET")}), httpReq(), false},
		{"notMethods other", op(model.Operation{NotMethods: v("DELETE")}), httpReq(), true},
		// paths
		{"paths exact", op(model.Operation{Paths: v("/productpage")}), httpReq(), true},
		{"paths exact ignores the query", op(model.Operation{Paths: v("/productpage")}), httpReq(path("/productpage?u=admin#top")), true},
		{"paths exact miss", op(model.Operation{Paths: v("/productpage")}), httpReq(path("/productpage/x")), false},
		{"paths prefix", op(model.Operation{Paths: v("/api/*")}), httpReq(path("/api/v1/products?id=1")), true},
		{"paths prefix miss", op(model.Operation{Paths: v("/api/*")}), httpReq(path("/apix")), false},
		{"paths suffix", op(model.Operation{Paths: v("*.png")}), httpReq(path("/static/logo.png")), true},
		{"paths suffix not in query", op(model.Operation{Paths: v("*.png")}), httpReq(path("/x?f=a.png")), false},
		{"paths case-sensitive", op(model.Operation{Paths: v("/ProductPage")}), httpReq(), false},
		{"notPaths match", op(model.Operation{NotPaths: v("/admin*")}), httpReq(path("/admin/users")), false},
		{"notPaths other", op(model.Operation{NotPaths: v("/admin*")}), httpReq(), true},
		// operation fields ANDed, to entries ORed
		{"operation fields ANDed", op(model.Operation{Methods: v("GET"), Paths: v("/admin")}), httpReq(), false},
		{"to entries ORed", model.Rule{To: []model.Operation{{Paths: v("/admin")}, {Ports: v("9080")}}}, httpReq(), true},
		// when: headers
		{"header exact", when("request.headers[x-user]", v("alice"), nil), httpReq(header("X-User", "alice")), true},
		{"header exact miss", when("request.headers[x-user]", v("alice"), nil), httpReq(header("X-User", "bob")), false},
		{"header absent", when("request.headers[x-user]", v("alice"), nil), httpReq(), false},
		{"header name any case", when("request.headers[X-USER]", v("alice"), nil), httpReq(header("x-user", "alice")), true},
		{"header value case-sensitive", when("request.headers[x-user]", v("alice"), nil), httpReq(header("X-User", "Alice")), false},
		{"header prefix", when("request.headers[user-agent]", v("curl/*"), nil), httpReq(header("User-Agent", "curl/8.5")), true},
		{"header suffix", when("request.headers[x-user]", v("*@example.com"), nil), httpReq(header("X-User", "a@example.com")), true},
		{"header presence", when("request.headers[x-user]", v("*"), nil), httpReq(header("X-User", "x")), true},
		{"header presence with empty value", when("request.headers[x-user]", v("*"), nil), httpReq(header("X-User", "")), true},
		{"header presence absent", when("request.headers[x-user]", v("*"), nil), httpReq(), false},
		{"header multiple values, one matches", when("request.headers[x-role]", v("admin"), nil), httpReq(header("X-Role", "user", "admin")), true},
		{"header multiple values, none matches", when("request.headers[x-role]", v("admin"), nil), httpReq(header("X-Role", "user", "guest")), false},
		{"header multiple values are not joined", when("request.headers[x-role]", v("user,admin"), nil), httpReq(header("X-Role", "user", "admin")), false},
		{"header notValues, one of several matches", when("request.headers[x-role]", nil, v("admin")), httpReq(header("X-Role", "user", "admin")), false},
		{"header notValues, none matches", when("request.headers[x-role]", nil, v("admin")), httpReq(header("X-Role", "user")), true},
		{"header notValues absent", when("request.headers[x-role]", nil, v("admin")), httpReq(), true},
		{"header nil getter", when("request.headers[x-role]", v("*"), nil), httpReq(func(r *Request) { r.Headers = nil }), false},
		// when: the other keys
		{"source.ip", when("source.ip", v("10.0.0.0/24"), nil), httpReq(), true},
		{"source.ip miss", when("source.ip", v("10.0.1.0/24"), nil), httpReq(), false},
		{"source.ip notValues", when("source.ip", nil, v("10.0.0.5")), httpReq(), false},
		{"remote.ip", when("remote.ip", v("192.0.2.1"), nil), httpReq(remoteIP("192.0.2.1")), true},
		{"remote.ip falls back to source", when("remote.ip", v("10.0.0.5"), nil), httpReq(), true},
		{"remote.ip notValues", when("remote.ip", nil, v("192.0.2.0/24")), httpReq(remoteIP("192.0.2.1")), false},
		{"source.namespace", when("source.namespace", v("default"), nil), httpReq(), true},
		{"source.namespace notValues", when("source.namespace", nil, v("def*")), httpReq(), false},
		{"source.namespace plaintext", when("source.namespace", v("*"), nil), httpReq(from(plaintext)), false},
		{"source.principal", when("source.principal", v("*/sa/sleep"), nil), httpReq(), true},
		{"source.principal notValues", when("source.principal", nil, v("*/sa/sleep")), httpReq(), false},
		{"destination.port", when("destination.port", v("9080"), nil), httpReq(), true},
		{"destination.port miss", when("destination.port", v("80"), nil), httpReq(), false},
		{"destination.port notValues", when("destination.port", nil, v("9080")), httpReq(), false},
		{"destination.ip", when("destination.ip", v("10.96.0.0/12"), nil), httpReq(), true},
		{"destination.ip miss", when("destination.ip", v("10.96.0.11"), nil), httpReq(), false},
		{"destination.ip notValues", when("destination.ip", nil, v("10.96.0.10")), httpReq(), false},
		{"destination.ip IPv6", when("destination.ip", v("2001:db8::/64"), nil), httpReq(dstIP("2001:db8::1")), true},
		{"destination.ip unknown matches no block", when("destination.ip", v("0.0.0.0/0"), nil), httpReq(func(r *Request) { r.DestinationIP = netip.Addr{} }), false},
		// when conditions are ANDed, and ANDed with from and to
		{"conditions ANDed", model.Rule{When: []model.Condition{
			{Key: "source.namespace", Values: v("default")}, {Key: "destination.port", Values: v("80")},
		}}, httpReq(), false},
		{"from AND to AND when", model.Rule{
			From: []model.Source{{Namespaces: v("default")}},
			To:   []model.Operation{{Methods: v("GET")}},
			When: []model.Condition{{Key: "request.headers[x-user]", Values: v("alice")}},
		}, httpReq(header("X-User", "alice")), true},
		{"from AND to AND when, when fails", model.Rule{
			From: []model.Source{{Namespaces: v("default")}},
			To:   []model.Operation{{Methods: v("GET")}},
			When: []model.Condition{{Key: "request.headers[x-user]", Values: v("alice")}},
		}, httpReq(), false},
		{"from AND to, to fails", model.Rule{
			From: []model.Source{{Namespaces: v("default")}},
			To:   []model.Operation{{Methods: v("POST")}},
		}, httpReq(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustCompile(t, allowPolicy("p", tt.rule))
			if got := e.Evaluate(tt.req).Allowed; got != tt.want {
				t.Errorf("Evaluate().Allowed = %v, want %v", got, tt.want)
			}
		})
	}
}
