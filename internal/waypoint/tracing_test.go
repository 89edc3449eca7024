package waypoint_test

import (
	"cmp"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/telemetry"
)

// spanSink is an OTLP collector stand-in, over HTTP or gRPC, that keeps
// each span it receives as "traceid parentspanid spanid status-code
// upstream".
type spanSink struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []string
}

func (s *spanSink) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				attrs := map[string]string{}
				for _, kv := range sp.Attributes {
					attrs[kv.Key] = kv.Value.GetStringValue()
				}
				s.spans = append(s.spans, strings.Join([]string{hex.EncodeToString(sp.TraceId), hex.EncodeToString(sp.ParentSpanId),
					hex.EncodeToString(sp.SpanId), attrs["http.status_code"], attrs["upstream_cluster"]}, " "))
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (s *spanSink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.spans...)
}

// serveHTTP takes OTLP/HTTP requests at path; it returns the host:port.
func (s *spanSink) serveHTTP(t *testing.T, path string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			t.Errorf("collector: POST %s, want %s", r.URL.Path, path)
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("collector: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, _ := s.Export(r.Context(), &req)
		out, _ := proto.Marshal(resp)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// serveGRPC is a real gRPC server with the collector's TraceService; it
// returns the host:port.
func (s *spanSink) serveGRPC(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, s)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return ln.Addr().String()
}

// TestSpansExported: with a tracing endpoint configured, the waypoint
// exports its span of a request to the OTLP collector, over HTTP (the
// default, and with a path) or gRPC, as a child of the caller's span, and
// the upstream's traceparent names that span.
func TestSpansExported(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol model.TracingProtocol
		path     string
	}{
		{"http by default", "", ""},
		{"http with a path", model.TracingHTTP, "/api/otlp/traces"},
		{"grpc", model.TracingGRPC, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sink spanSink
			w := reviewsConfig(nil, model.Cluster{Name: "reviews"})
			if tc.protocol == model.TracingGRPC {
				w.Telemetry.TracingEndpoint = sink.serveGRPC(t)
			} else {
				w.Telemetry.TracingEndpoint = sink.serveHTTP(t, cmp.Or(tc.path, telemetry.DefaultOTLPPath))
			}
			w.Telemetry.TracingProtocol, w.Telemetry.TracingPath = tc.protocol, tc.path

			seen := make(chan string, 1)
			backend := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				seen <- r.Header.Get("Traceparent")
			}))
			defer backend.Close()
			w.Clusters[0].Endpoints = []model.Endpoint{{Address: strings.TrimPrefix(backend.URL, "http://")}}
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
			want := "4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7 " + up.SpanID.String() + " 200 reviews"
			if spans := sink.received(); len(spans) != 1 || spans[0] != want {
				t.Errorf("exported spans %q; want one: %q (trace, caller's span as parent, the span the upstream saw, status, cluster)", spans, want)
			}
		})
	}
}
