package waypoint_test

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/telemetry"
)

// TestSpansExported: with a tracing endpoint configured, the waypoint
// exports its span of a request to an OTLP/HTTP collector, as a child of
// the caller's span, and the upstream's traceparent names that span.
func TestSpansExported(t *testing.T) {
	var mu sync.Mutex
	var spans []string // "traceid parentspanid spanid status-code upstream"
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("collector: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					attrs := map[string]string{}
					for _, kv := range s.Attributes {
						attrs[kv.Key] = kv.Value.GetStringValue()
					}
					spans = append(spans, strings.Join([]string{hex.EncodeToString(s.TraceId), hex.EncodeToString(s.ParentSpanId),
						hex.EncodeToString(s.SpanId), attrs["http.status_code"], attrs["upstream_cluster"]}, " "))
				}
			}
		}
		mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	defer collector.Close()

	seen := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Traceparent")
	}))
	defer backend.Close()
	w := reviewsConfig(nil, model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(backend.URL, "http://")}}})
	w.Telemetry.TracingEndpoint = strings.TrimPrefix(collector.URL, "http://")
	p, proxy := startProxy(t, w, reviewsVIP)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if resp, _ := get(t, client(t), proxy, http.MethodGet, "/reviews/1", http.Header{"Traceparent": {parent}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	up, err := telemetry.ParseTraceparent(<-seen)
	if err != nil {
		t.Fatal(err)
	}
	p.Close() // flushes the exporter
	mu.Lock()
	defer mu.Unlock()
	want := "4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7 " + up.SpanID.String() + " 200 reviews"
	if len(spans) != 1 || spans[0] != want {
		t.Errorf("exported spans %q; want one: %q (trace, caller's span as parent, the span the upstream saw, status, cluster)", spans, want)
	}
}
