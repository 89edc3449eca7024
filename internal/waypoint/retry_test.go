package waypoint_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
)

// flaky answers 503 to its first `fails` requests, then 200 echoing the
// request body.
func flaky(t *testing.T, fails int64) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if n.Add(1) <= fails {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Backend", "flaky")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func retryRoute(r *model.Retry, timeouts model.Timeouts) []model.HTTPRoute {
	return []model.HTTPRoute{{Name: "reviews", Namespace: "default", Rules: []model.RouteRule{{
		Backends: []model.Backend{{Cluster: "reviews"}},
		Retry:    r,
		Timeouts: timeouts,
	}}}}
}

func post(t *testing.T, proxy, body string) (int, string) {
	t.Helper()
	resp, err := client(t).Post("http://"+proxy+"/reviews", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRetryOn503: a route retrying 503 twice turns two 503s into a 200,
// replaying the request body; without the retry the 503 reaches the client.
func TestRetryOn503(t *testing.T) {
	srv, hits := flaky(t, 2)
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(srv.URL, "http://")}}}
	retry := &model.Retry{Attempts: 2, Codes: []int{503}, Backoff: model.Duration(time.Millisecond)}
	p, proxy := startProxy(t, reviewsConfig(retryRoute(retry, model.Timeouts{}), cl), reviewsVIP)
	if code, body := post(t, proxy, "rating=5"); code != http.StatusOK || body != "rating=5" {
		t.Errorf("with retries: %d %q; want 200 and the body echoed on the third try", code, body)
	}
	if got := hits.Load(); got != 3 {
		t.Errorf("backend saw %d tries; want 3", got)
	}

	hits.Store(0)
	retry1 := &model.Retry{Attempts: 1, Codes: []int{503}, Backoff: model.Duration(time.Millisecond)}
	if err := p.Load(reviewsConfig(retryRoute(retry1, model.Timeouts{}), cl)); err != nil {
		t.Fatal(err)
	}
	if code, _ := post(t, proxy, "x"); code != http.StatusServiceUnavailable || hits.Load() != 2 {
		t.Errorf("one retry against two failures: %d after %d tries; want 503 after 2", code, hits.Load())
	}

	hits.Store(0)
	if err := p.Load(reviewsConfig(retryRoute(nil, model.Timeouts{}), cl)); err != nil {
		t.Fatal(err)
	}
	if code, _ := post(t, proxy, "x"); code != http.StatusServiceUnavailable || hits.Load() != 1 {
		t.Errorf("no retry policy: %d after %d tries; want 503 after 1", code, hits.Load())
	}
}

// TestDefaultRetry: requests no route matches (no routes at all here) are
// retried under the configuration's DefaultRetry, and tried once without
// one.
func TestDefaultRetry(t *testing.T) {
	srv, hits := flaky(t, 2)
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(srv.URL, "http://")}}}
	w := reviewsConfig(nil, cl)
	w.DefaultRetry = &model.Retry{Attempts: 2, On: []string{"retriable-status-codes"}, Codes: []int{503}, Backoff: model.Duration(time.Millisecond)}
	p, proxy := startProxy(t, w, reviewsVIP)
	if code, body := post(t, proxy, "rating=5"); code != http.StatusOK || body != "rating=5" || hits.Load() != 3 {
		t.Errorf("with the default retry: %d %q after %d tries; want 200 and the body echoed on the third try", code, body, hits.Load())
	}
	hits.Store(0)
	// A new configuration: the loaded one is the proxy's and stays as it is.
	if err := p.Load(reviewsConfig(nil, cl)); err != nil {
		t.Fatal(err)
	}
	if code, _ := post(t, proxy, "x"); code != http.StatusServiceUnavailable || hits.Load() != 1 {
		t.Errorf("no default retry: %d after %d tries; want 503 after 1", code, hits.Load())
	}
}

// TestPerTryTimeout: with a per-try timeout the try stuck on a slow
// endpoint is abandoned and retried on the next; without retries the
// timeout answers 504.
func TestPerTryTimeout(t *testing.T) {
	stuck := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select { // never answers in time
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stuck); slow.Close() })
	slowAddr := strings.TrimPrefix(slow.URL, "http://")
	fast := newBackend(t, "fast")
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: slowAddr}, {Address: fast.addr()}}}
	retry := &model.Retry{Attempts: 1, On: []string{"5xx"}, PerTryTimeout: model.Duration(150 * time.Millisecond), Backoff: model.Duration(time.Millisecond)}
	p, proxy := startProxy(t, reviewsConfig(retryRoute(retry, model.Timeouts{}), cl), reviewsVIP)
	c := client(t)
	start := time.Now()
	// Round robin starts with the slow endpoint.
	resp, body := get(t, c, proxy, http.MethodGet, "/", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != "fast" {
		t.Errorf("with a per-try timeout and a retry: %d from %q (%q); want 200 from the fast endpoint", resp.StatusCode, resp.Header.Get("X-Backend"), body)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v; the per-try timeout is 150ms", el)
	}

	if err := p.Load(reviewsConfig(retryRoute(nil, model.Timeouts{BackendRequest: model.Duration(150 * time.Millisecond)}), model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: slowAddr}}})); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, c, proxy, http.MethodGet, "/", nil)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "upstream request timeout") {
		t.Errorf("backendRequest timeout without retries: %d %q; want 504 upstream request timeout", resp.StatusCode, body)
	}
}

// TestRetryConnectFailure: a refused connection is retried on another
// endpoint under the default conditions.
func TestRetryConnectFailure(t *testing.T) {
	dead := freeAddr(t) // nothing listens there
	live := newBackend(t, "live")
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: dead}, {Address: live.addr()}}}
	retry := &model.Retry{Attempts: 1, Backoff: model.Duration(time.Millisecond)}
	_, proxy := startProxy(t, reviewsConfig(retryRoute(retry, model.Timeouts{}), cl), reviewsVIP)
	c := client(t)
	for i := range 4 {
		resp, body := get(t, c, proxy, http.MethodGet, "/", nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("request %d: %d %q; want the refused try retried on the live endpoint", i, resp.StatusCode, body)
		}
	}
}

// TestRetryOnGRPCStatus: Istio's default retry policy retries a gRPC
// answer of UNAVAILABLE sent trailers-only (grpc-status in the headers),
// as Envoy's retry_grpc_on does; a condition not listed (INTERNAL) is
// final.
func TestRetryOnGRPCStatus(t *testing.T) {
	for _, tc := range []struct {
		status     string
		wantStatus string
		wantTries  int64
	}{
		{"14", "0", 2},  // UNAVAILABLE: retried, the second try answers OK
		{"13", "13", 1}, // INTERNAL: not in the default policy
	} {
		t.Run("grpc-status "+tc.status, func(t *testing.T) {
			var tries atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/grpc")
				if tries.Add(1) == 1 {
					w.Header().Set("Grpc-Status", tc.status) // trailers-only
					w.WriteHeader(http.StatusOK)
					return
				}
				w.Header().Set("Trailer", "Grpc-Status")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte{0, 0, 0, 0, 0})
				w.Header().Set("Grpc-Status", "0")
			}))
			var protos http.Protocols
			protos.SetUnencryptedHTTP2(true)
			srv.Config.Protocols = &protos
			srv.Start()
			t.Cleanup(srv.Close)
			rule := model.RouteRule{Retry: &model.Retry{Attempts: 2, On: []string{"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}, Codes: []int{503}}}
			w := reviewsConfig(oneRule(rule), model.Cluster{Name: "reviews", Protocol: model.ProtocolGRPC,
				Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(srv.URL, "http://")}}})
			w.Services[0].Ports[0].Protocol = model.ProtocolGRPC
			_, proxy := startProxy(t, w, reviewsVIP)
			req, err := http.NewRequest(http.MethodPost, "http://"+proxy+"/reviews.Reviews/Get", strings.NewReader("\x00\x00\x00\x00\x00"))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "reviews.default.svc.cluster.local:9080"
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("Te", "trailers")
			resp, err := h2cClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			got := resp.Header.Get("Grpc-Status")
			if got == "" {
				got = resp.Trailer.Get("Grpc-Status")
			}
			if got != tc.wantStatus || tries.Load() != tc.wantTries {
				t.Errorf("grpc-status %q after %d tries, want %q after %d", got, tries.Load(), tc.wantStatus, tc.wantTries)
			}
		})
	}
}
