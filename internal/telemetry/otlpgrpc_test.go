package telemetry

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// grpcCollector is an OTLP/gRPC trace receiver on 127.0.0.1: a real gRPC
// server with the collector's TraceService, keeping the spans it is sent.
type grpcCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	addr string

	mu       sync.Mutex
	spans    []gotSpan
	requests int
}

func newGRPCCollector(t testing.TB) *grpcCollector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &grpcCollector{addr: ln.Addr().String()}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return c
}

func (c *grpcCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	for _, rs := range req.GetResourceSpans() {
		res := stringAttrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, gotSpan{span: s, resource: res})
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (c *grpcCollector) received() []gotSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]gotSpan(nil), c.spans...)
}

// TestTracerExportsOverGRPC: with Protocol OTLPGRPC the span reaches a real
// gRPC collector, as Istio's OpenTelemetry provider sends it by default.
func TestTracerExportsOverGRPC(t *testing.T) {
	c := newGRPCCollector(t)
	tr, err := NewTracer(TracerOptions{
		Endpoint: c.addr, Protocol: OTLPGRPC, Insecure: true,
		ServiceName: "waypoint.default", SamplePercent: 0,
		Tags: map[string]string{"istio.namespace": "default"},
	})
	if err != nil {
		t.Fatalf("NewTracer: %v", err)
	}
	parent := mustParse(t, "00-"+validTraceID+"-"+validSpanID+"-01")
	s := tr.Start(parent, "reviews.default.svc.cluster.local:9080/*", testStart)
	s.End(&SpanAttributes{Method: "GET", URL: "/reviews/0", Authority: "reviews.default:9080", StatusCode: http.StatusOK}, testEnd)
	shutdown(t, tr)

	got := c.received()
	if len(got) != 1 {
		t.Fatalf("gRPC collector got %d spans, want 1", len(got))
	}
	span := got[0].span
	if !bytes.Equal(span.GetTraceId(), parent.TraceID[:]) || !bytes.Equal(span.GetParentSpanId(), parent.SpanID[:]) {
		t.Errorf("trace %x parent %x, want the incoming %v %v", span.GetTraceId(), span.GetParentSpanId(), parent.TraceID, parent.SpanID)
	}
	if sc := s.Context(); !bytes.Equal(span.GetSpanId(), sc.SpanID[:]) {
		t.Errorf("span id %x, want Context().SpanID %v", span.GetSpanId(), sc.SpanID)
	}
	if span.GetName() != "reviews.default.svc.cluster.local:9080/*" {
		t.Errorf("name %q", span.GetName())
	}
	a := stringAttrs(span.GetAttributes())
	for k, v := range map[string]string{
		"http.method": "GET", "http.status_code": "200", "istio.namespace": "default",
		"http.url": "http://reviews.default:9080/reviews/0",
	} {
		if a[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, a[k], v)
		}
	}
	if got := got[0].resource["service.name"]; got != "waypoint.default" {
		t.Errorf("resource service.name = %q, want waypoint.default", got)
	}
}

// TestTracerGRPCCollectorDown: a gRPC collector that is not there costs the
// spans, never the request path, and Shutdown keeps to its context.
func TestTracerGRPCCollectorDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	tr, err := NewTracer(TracerOptions{Endpoint: addr, Protocol: OTLPGRPC, Insecure: true, SamplePercent: 100})
	if err != nil {
		t.Fatalf("NewTracer against a closed port: %v (it should not dial)", err)
	}
	begin := time.Now()
	for range 100 {
		tr.Start(SpanContext{}, "op", testStart).End(&SpanAttributes{StatusCode: 200}, testEnd)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("ending 100 spans with no collector took %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin = time.Now()
	_ = tr.Shutdown(ctx) // an error (the export failed) or nil: either is fine
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Shutdown took %v with a 300ms context", d)
	}
}

// TestTracerHTTPPath: OTLP/HTTP spans go to the URLPath given (Istio's
// http.path), not /v1/traces.
func TestTracerHTTPPath(t *testing.T) {
	c := newCollectorAt(t, "/api/otlp/traces", nil)
	tr, err := NewTracer(TracerOptions{Endpoint: c.endpoint(), Protocol: OTLPHTTP, URLPath: "/api/otlp/traces", Insecure: true, SamplePercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start(SpanContext{}, "op", testStart).End(nil, testEnd)
	shutdown(t, tr)
	if n := len(c.received()); n != 1 {
		t.Errorf("collector at /api/otlp/traces got %d spans, want 1", n)
	}
}
