package authz

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/meshway/meshway/internal/model"
)

// sleepPeer and friends are peers as PeerFromSPIFFE makes them.
var (
	sleepPeer   = PeerIdentity{Principal: "cluster.local/ns/default/sa/sleep", Namespace: "default"}
	istioPeer   = PeerIdentity{Principal: "cluster.local/ns/istio-system/sa/istio-ingressgateway", Namespace: "istio-system"}
	otherPeer   = PeerIdentity{Principal: "cluster.local/ns/other/sa/curl", Namespace: "other"}
	plaintext   = PeerIdentity{}
	defaultDest = netip.MustParseAddr("10.96.0.10")
)

// httpReq is an HTTP GET of /productpage from default/sleep at 10.0.0.5 to
// 10.96.0.10:9080; edit it with the options.
func httpReq(opts ...func(*Request)) *Request {
	r := &Request{
		Source:          sleepPeer,
		SourceIP:        netip.MustParseAddr("10.0.0.5"),
		DestinationIP:   defaultDest,
		DestinationPort: 9080,
		HTTP:            true,
		Host:            "productpage.default.svc.cluster.local:9080",
		Method:          http.MethodGet,
		Path:            "/productpage",
		Headers:         http.Header{},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// tcpReq is httpReq without its HTTP part, as ztunnel or a TCP listener sees it.
func tcpReq(opts ...func(*Request)) *Request {
	r := httpReq(func(r *Request) {
		r.HTTP, r.Host, r.Method, r.Path, r.Headers = false, "", "", "", nil
	})
	for _, o := range opts {
		o(r)
	}
	return r
}

func from(p PeerIdentity) func(*Request) { return func(r *Request) { r.Source = p } }
func method(m string) func(*Request)     { return func(r *Request) { r.Method = m } }
func path(p string) func(*Request)       { return func(r *Request) { r.Path = p } }
func host(h string) func(*Request)       { return func(r *Request) { r.Host = h } }
func port(p uint16) func(*Request)       { return func(r *Request) { r.DestinationPort = p } }
func srcIP(ip string) func(*Request) {
	return func(r *Request) { r.SourceIP = netip.MustParseAddr(ip) }
}
func remoteIP(ip string) func(*Request) {
	return func(r *Request) { r.RemoteIP = netip.MustParseAddr(ip) }
}
func dstIP(ip string) func(*Request) {
	return func(r *Request) { r.DestinationIP = netip.MustParseAddr(ip) }
}
func header(name string, values ...string) func(*Request) {
	return func(r *Request) {
		h := r.Headers.(http.Header)
		for _, v := range values {
			h.Add(name, v)
		}
	}
}

func mustCompile(t testing.TB, policies ...model.AuthorizationPolicy) *Engine {
	t.Helper()
	e, err := Compile(policies)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

func allowPolicy(name string, rules ...model.Rule) model.AuthorizationPolicy {
	return model.AuthorizationPolicy{Name: name, Namespace: "default", Action: model.ActionAllow, Rules: rules}
}

func denyPolicy(name string, rules ...model.Rule) model.AuthorizationPolicy {
	return model.AuthorizationPolicy{Name: name, Namespace: "default", Action: model.ActionDeny, Rules: rules}
}

func auditPolicy(name string, rules ...model.Rule) model.AuthorizationPolicy {
	return model.AuthorizationPolicy{Name: name, Namespace: "default", Action: model.ActionAudit, Rules: rules}
}
