package waypoint_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
)

func oneRule(rule model.RouteRule) []model.HTTPRoute {
	if rule.Backends == nil {
		rule.Backends = []model.Backend{{Cluster: "reviews"}}
	}
	return []model.HTTPRoute{{Kind: model.KindVirtualService, Name: "reviews", Namespace: "default", Rules: []model.RouteRule{rule}}}
}

// TestFaultAbortRatio: a VirtualService abort fault on 30% of requests
// answers about 30% of 2,000 requests with its status, without reaching
// the backend; a delay fault on 100% holds each request.
func TestFaultAbortRatio(t *testing.T) {
	b := newBackend(t, "reviews")
	rule := model.RouteRule{Fault: &model.Fault{Abort: &model.FaultAbort{Percent: 30, HTTPStatus: http.StatusTeapot}}}
	p, proxy := startProxy(t, reviewsConfig(oneRule(rule), b.cluster()), reviewsVIP)
	c := client(t)
	const total = 2000
	aborted := 0
	for range total {
		resp, body := get(t, c, proxy, http.MethodGet, "/", nil)
		switch resp.StatusCode {
		case http.StatusTeapot:
			aborted++
			if !strings.Contains(body, "fault filter abort") {
				t.Fatalf("aborted with body %q; want Envoy's %q", body, "fault filter abort")
			}
		case http.StatusOK:
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if share := float64(aborted) / total; share < 0.26 || share > 0.34 {
		t.Errorf("%.1f%% aborted; want 30%% ± 4%%", share*100)
	}
	if got := b.hits.Load(); got != int64(total-aborted) {
		t.Errorf("backend saw %d requests; want the %d not aborted", got, total-aborted)
	}

	delay := model.RouteRule{Fault: &model.Fault{Delay: &model.FaultDelay{Percent: 100, Fixed: model.Duration(200 * time.Millisecond)}}}
	if err := p.Load(reviewsConfig(oneRule(delay), b.cluster())); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if resp, _ := get(t, c, proxy, http.MethodGet, "/", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("delayed request: %d", resp.StatusCode)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("answered after %v; the delay fault is 200ms", el)
	}
}

// TestCircuitBreakerTrips: with http2MaxRequests 2 and no pending queue,
// the third concurrent request is refused at once with 503 overflow while
// two hang on the backend; when they finish the cluster takes requests
// again.
func TestCircuitBreakerTrips(t *testing.T) {
	release := make(chan struct{})
	var inflight atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		if r.URL.Query().Get("hold") != "" {
			<-release
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(srv.URL, "http://")}},
		ConnectionPool: &model.ConnectionPool{HTTP2MaxRequests: 2}}
	_, proxy := startProxy(t, reviewsConfig(nil, cl), reviewsVIP)
	c := client(t)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, body := get(t, c, proxy, http.MethodGet, "/?hold=1", nil); resp.StatusCode != http.StatusOK {
				t.Errorf("held request: %d %q", resp.StatusCode, body)
			}
		}()
	}
	eventually(t, func() bool { return inflight.Load() == 2 }, "two requests at the backend")
	start := time.Now()
	resp, body := get(t, c, proxy, http.MethodGet, "/", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "overflow") {
		t.Errorf("third concurrent request: %d %q; want 503 overflow", resp.StatusCode, body)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("the breaker answered after %v; it must not queue", el)
	}
	close(release)
	wg.Wait()
	if resp, _ := get(t, c, proxy, http.MethodGet, "/", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after the load: %d; want the cluster to take requests again", resp.StatusCode)
	}
}

// TestOutlierEjectionAndReturn: an endpoint answering 5xx three times in a
// row is ejected (every request then goes to the healthy one) and comes
// back after the ejection time.
func TestOutlierEjectionAndReturn(t *testing.T) {
	var bad atomic.Int64
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		bad.Add(1)
		w.Header().Set("X-Backend", "failing")
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer failing.Close()
	good := newBackend(t, "good")
	cl := model.Cluster{
		Name:         "reviews",
		Endpoints:    []model.Endpoint{{Address: strings.TrimPrefix(failing.URL, "http://")}, {Address: good.addr()}},
		LoadBalancer: &model.LoadBalancer{Policy: model.LBRoundRobin},
		OutlierDetection: &model.OutlierDetection{
			Consecutive5xxErrors: 3, BaseEjectionTime: model.Duration(300 * time.Millisecond), MaxEjectionPercent: 50,
		},
	}
	_, proxy := startProxy(t, reviewsConfig(nil, cl), reviewsVIP)
	c := client(t)
	for range 6 { // round robin: three 500s from the failing endpoint
		get(t, c, proxy, http.MethodGet, "/", nil)
	}
	if bad.Load() != 3 {
		t.Fatalf("failing endpoint saw %d requests; want 3", bad.Load())
	}
	for i := range 10 {
		if resp, _ := get(t, c, proxy, http.MethodGet, "/", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d while the failing endpoint is ejected: %d", i, resp.StatusCode)
		}
	}
	if bad.Load() != 3 {
		t.Errorf("the ejected endpoint got %d more requests", bad.Load()-3)
	}
	time.Sleep(400 * time.Millisecond)
	for range 4 {
		get(t, c, proxy, http.MethodGet, "/", nil)
	}
	if bad.Load() == 3 {
		t.Error("the endpoint never came back after its ejection time")
	}
}

// TestConsistentHash: requests with the same header value stick to one
// endpoint; different values spread.
func TestConsistentHash(t *testing.T) {
	var eps []model.Endpoint
	for _, n := range []string{"r1", "r2", "r3", "r4"} {
		eps = append(eps, model.Endpoint{Address: newBackend(t, n).addr()})
	}
	cl := model.Cluster{Name: "reviews", Endpoints: eps, LoadBalancer: &model.LoadBalancer{Policy: model.LBConsistentHash, HashHeader: "X-User"}}
	_, proxy := startProxy(t, reviewsConfig(nil, cl), reviewsVIP)
	c := client(t)
	seen := map[string]bool{}
	for _, user := range []string{"jason", "ana", "li", "bo", "kim", "sam", "max", "eve"} {
		first := ""
		for range 5 {
			resp, _ := get(t, c, proxy, http.MethodGet, "/", http.Header{"X-User": {user}})
			got := resp.Header.Get("X-Backend")
			if first == "" {
				first = got
			} else if got != first {
				t.Errorf("user %s went to %s then %s; want one endpoint", user, first, got)
			}
		}
		seen[first] = true
	}
	if len(seen) < 2 {
		t.Errorf("8 users all hashed to %v; want them spread", seen)
	}
}

// TestMaxRequestsPerConnection: with a DestinationRule's
// maxRequestsPerConnection of 2, six requests in a row reach the endpoint
// on three connections; without it, on one — both through routed traffic
// and traffic no route matches, over one client connection.
func TestMaxRequestsPerConnection(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, routed := range []bool{true, false} {
		for _, c := range []struct{ limit, want int64 }{{2, 3}, {0, 1}} {
			cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: addr}}}
			if c.limit > 0 {
				cl.ConnectionPool = &model.ConnectionPool{MaxRequestsPerConnection: int(c.limit)}
			}
			var routes []model.HTTPRoute
			if routed {
				routes = oneRule(model.RouteRule{})
			}
			_, proxy := startProxy(t, reviewsConfig(routes, cl), reviewsVIP)
			client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
			conns.Store(0)
			for range 6 {
				if r, _ := get(t, client, proxy, http.MethodGet, "/", nil); r.StatusCode != http.StatusOK {
					t.Fatalf("status %d", r.StatusCode)
				}
			}
			if got := conns.Load(); got != c.want {
				t.Errorf("routed %v, maxRequestsPerConnection %d: 6 requests on %d upstream connections, want %d", routed, c.limit, got, c.want)
			}
			client.CloseIdleConnections()
		}
	}
}
