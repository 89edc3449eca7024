package waypoint_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/telemetry"
	"github.com/meshway/meshway/internal/waypoint"
)

// syncBuffer is a bytes.Buffer safe for the access logger's writer
// goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTelemetry: a request through HBONE shows up in Istio's standard
// metrics with the source from the peer certificate and baggage and the
// destination from the endpoint, in a JSON access log line, and the
// upstream receives a traceparent continuing the caller's trace.
func TestTelemetry(t *testing.T) {
	m := newManager(t)
	seenTrace := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenTrace <- r.Header.Get("Traceparent")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "created")
	}))
	defer backend.Close()
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{
		Address: strings.TrimPrefix(backend.URL, "http://"), Workload: "reviews-v2", Namespace: "default",
		Labels: map[string]string{"app": "reviews", "version": "v2"},
	}}}
	w := reviewsConfig(nil, cl)
	w.Telemetry.AccessLog = true
	logs := &syncBuffer{}
	proxy := &waypoint.Proxy{
		Logf:      t.Logf,
		Metrics:   telemetry.NewMetrics(telemetry.ReporterWaypoint),
		AccessLog: telemetry.NewAccessLogger(logs, telemetry.AccessLogOptions{}),
	}
	t.Cleanup(func() { proxy.Close() })
	wpAddr := serveWaypoint(t, m, proxy, w)

	pool := &hbone.Pool{Bundle: m.Bundle()}
	t.Cleanup(func() { pool.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pool.Dial(ctx, hbone.Request{
		Source: source(t, m, sleepID), Addr: wpAddr, Authority: reviewsVIP, Expected: []spiffeid.ID{waypointID},
		Baggage: hbone.Baggage{{Key: "k8s.namespace.name", Value: "default"}, {Key: "k8s.deployment.name", Value: "sleep"},
			{Key: "service.name", Value: "sleep"}, {Key: "service.version", Value: "v1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	io.WriteString(conn, "POST /reviews HTTP/1.1\r\nHost: reviews:9080\r\nTraceparent: "+parent+"\r\nContent-Length: 5\r\n\r\nhello")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}

	tp := <-seenTrace
	got, err := telemetry.ParseTraceparent(tp)
	if err != nil || got.TraceID.String() != "4bf92f3577b34da6a3ce929d0e0e4736" || got.SpanID.String() == "00f067aa0ba902b7" || !got.Sampled() {
		t.Errorf("upstream traceparent %q: want the caller's trace id and sampling, a new span id", tp)
	}

	// The request is recorded once its response has gone out: the client
	// may scrape first.
	var scrape, line string
	eventually(t, func() bool {
		rec := httptest.NewRecorder()
		proxy.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stats/prometheus", nil))
		scrape = rec.Body.String()
		for _, l := range strings.Split(scrape, "\n") {
			if strings.HasPrefix(l, "istio_requests_total{") {
				line = l
			}
		}
		return line != "" && strings.Contains(scrape, "istio_response_bytes_sum{")
	}, "the request to be counted")
	for _, want := range []string{
		`reporter="waypoint"`, `response_code="201"`, `request_protocol="http"`,
		`source_principal="spiffe://cluster.local/ns/default/sa/sleep"`, `source_workload="sleep"`,
		`source_workload_namespace="default"`, `source_app="sleep"`, `source_version="v1"`,
		`destination_workload="reviews-v2"`, `destination_app="reviews"`, `destination_version="v2"`,
		`destination_service="reviews.default.svc.cluster.local"`, `destination_service_name="reviews"`,
		`connection_security_policy="mutual_tls"`, `response_flags="-"`,
	} {
		if !strings.Contains(line, want) {
			t.Errorf("istio_requests_total lacks %s:\n%s", want, line)
		}
	}
	if !strings.Contains(scrape, "istio_request_duration_milliseconds_bucket{") || !strings.Contains(scrape, "istio_request_bytes_sum{") {
		t.Error("no request duration or size histograms in the scrape")
	}
	// Sizes count headers and body, as Envoy's request.total_size and
	// response.total_size: at least the pseudo-headers and the headers the
	// client sent or the backend answered, with the bodies ("hello",
	// "created"); the access log (below) counts bodies only.
	minRequest := len(":method"+"POST"+":path"+"/reviews"+":authority"+"reviews:9080"+":scheme"+"http") +
		len("Traceparent"+parent) + len("Content-Length"+"5") + len("hello")
	minResponse := len(":status"+"201") + len("Content-Length"+"7") + len("Content-Type"+"text/plain; charset=utf-8") + len("created")
	for metric, least := range map[string]int{"istio_request_bytes_sum": minRequest, "istio_response_bytes_sum": minResponse} {
		sum := -1.0
		for _, l := range strings.Split(scrape, "\n") {
			if strings.HasPrefix(l, metric+"{") {
				fields := strings.Fields(l)
				sum, _ = strconv.ParseFloat(fields[len(fields)-1], 64)
			}
		}
		if sum < float64(least) || sum > float64(least+300) {
			t.Errorf("%s = %v, want the headers and body: at least %d, not much more", metric, sum, least)
		}
	}

	eventually(t, func() bool { return strings.Contains(logs.String(), "\n") }, "the access log line")
	proxy.AccessLog.Close()
	var entry map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &entry); err != nil {
		t.Fatalf("access log %q: %v", logs.String(), err)
	}
	if entry["method"] != "POST" || entry["path"] != "/reviews" || entry["response_code"] != float64(201) || entry["bytes_received"] != float64(5) {
		t.Errorf("access log entry %v", entry)
	}
}
