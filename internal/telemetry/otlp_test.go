package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP trace receiver on 127.0.0.1: it decodes what
// the exporter POSTs to its path (/v1/traces) and keeps the spans.
type collector struct {
	t    testing.TB
	srv  *httptest.Server
	path string
	// block, when not nil, holds every request until it is closed.
	block chan struct{}

	mu        sync.Mutex
	spans     []gotSpan
	encodings []string
	requests  int
}

// gotSpan is a received span with its resource's attributes.
type gotSpan struct {
	span     *tracepb.Span
	resource map[string]string
}

func newCollector(t testing.TB, block chan struct{}) *collector {
	return newCollectorAt(t, DefaultOTLPPath, block)
}

// newCollectorAt is a collector that takes spans at path.
func newCollectorAt(t testing.TB, path string, block chan struct{}) *collector {
	c := &collector{t: t, block: block, path: path}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	return c
}

// endpoint is the collector's host:port.
func (c *collector) endpoint() string { return c.srv.Listener.Addr().String() }

func (c *collector) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != c.path {
		c.t.Errorf("collector: %s %s, want POST %s", r.Method, r.URL.Path, c.path)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		c.t.Errorf("collector: Content-Type %q, want application/x-protobuf", ct)
	}
	if c.block != nil {
		select {
		case <-c.block:
		case <-r.Context().Done():
			return
		}
	}
	var body io.Reader = r.Body
	enc := r.Header.Get("Content-Encoding")
	switch enc {
	case "":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			c.t.Errorf("collector: gzip: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = zr
	default:
		c.t.Errorf("collector: Content-Encoding %q", enc)
		http.Error(w, "unknown encoding", http.StatusUnsupportedMediaType)
		return
	}
	b, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		c.t.Errorf("collector: reading the body: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		c.t.Errorf("collector: decoding the body: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.requests++
	c.encodings = append(c.encodings, enc)
	for _, rs := range req.GetResourceSpans() {
		res := stringAttrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, gotSpan{span: s, resource: res})
			}
		}
	}
	c.mu.Unlock()
	out, err := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	if err != nil {
		c.t.Errorf("collector: %v", err)
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (c *collector) received() []gotSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]gotSpan(nil), c.spans...)
}

// stringAttrs are OTLP attributes as strings; a value that is not a string
// is written with its type, so a test sees it.
func stringAttrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		default:
			m[kv.GetKey()] = "non-string " + kv.GetValue().String()
		}
	}
	return m
}

func newTestTracer(t testing.TB, c *collector, percent float64) *Tracer {
	t.Helper()
	tr, err := NewTracer(TracerOptions{
		Endpoint:      c.endpoint(),
		Insecure:      true,
		ServiceName:   "waypoint.default",
		SamplePercent: percent,
		NodeID:        "waypoint~10.244.0.7~waypoint-7d9f.default~default.svc.cluster.local",
		Zone:          "zone-a",
		Tags: map[string]string{
			"istio.canonical_service": "waypoint",
			"istio.namespace":         "default",
		},
	})
	if err != nil {
		t.Fatalf("NewTracer: %v", err)
	}
	t.Cleanup(func() { shutdown(t, tr) })
	return tr
}

// shutdown shuts tr down within 15 s (a second call does nothing).
func shutdown(t testing.TB, tr *Tracer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func mustParse(t testing.TB, traceparent string) SpanContext {
	t.Helper()
	sc, err := ParseTraceparent(traceparent)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

var (
	testStart = time.Date(2026, 11, 25, 10, 30, 45, 123456789, time.UTC)
	testEnd   = testStart.Add(42 * time.Millisecond)
)

func TestTracerExportsChildSpan(t *testing.T) {
	c := newCollector(t, nil)
	tr := newTestTracer(t, c, 0) // the parent's decision wins over 0%
	parent := mustParse(t, "00-"+validTraceID+"-"+validSpanID+"-01")

	s := tr.Start(parent, "reviews.default.svc.cluster.local:9080/*", testStart)
	sc := s.Context()
	if sc.TraceID != parent.TraceID {
		t.Errorf("Context().TraceID = %v, want the parent's %v", sc.TraceID, parent.TraceID)
	}
	if !sc.SpanID.IsValid() || sc.SpanID == parent.SpanID {
		t.Errorf("Context().SpanID = %v, want a new valid one", sc.SpanID)
	}
	if sc.Flags != FlagSampled {
		t.Errorf("Context().Flags = %#x, want sampled", sc.Flags)
	}
	s.End(&SpanAttributes{
		Method:            "GET",
		URL:               "/reviews/0?x=1",
		Authority:         "reviews.default:9080",
		Protocol:          "HTTP/1.1",
		UserAgent:         "curl/8.5.0",
		RequestID:         "5f0e3c1a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
		PeerAddress:       "10.244.0.9",
		UpstreamCluster:   "inbound-vip|9080|http|reviews.default.svc.cluster.local",
		UpstreamAddress:   "10.244.1.5:9080",
		ResponseFlags:     "UF",
		StatusCode:        http.StatusServiceUnavailable,
		RequestSize:       0,
		ResponseSize:      91,
		DownstreamCluster: "",
	}, testEnd)

	// The batch delay is 5 s: the span arrives now only because Shutdown
	// flushes it.
	if n := len(c.received()); n != 0 {
		t.Fatalf("%d spans before Shutdown, want 0 (batched)", n)
	}
	shutdown(t, tr)
	got := c.received()
	if len(got) != 1 {
		t.Fatalf("collector got %d spans, want 1", len(got))
	}
	span := got[0].span
	if !bytes.Equal(span.GetTraceId(), parent.TraceID[:]) {
		t.Errorf("trace id %x, want the parent's %v", span.GetTraceId(), parent.TraceID)
	}
	if !bytes.Equal(span.GetParentSpanId(), parent.SpanID[:]) {
		t.Errorf("parent span id %x, want the incoming span id %v", span.GetParentSpanId(), parent.SpanID)
	}
	if !bytes.Equal(span.GetSpanId(), sc.SpanID[:]) {
		t.Errorf("span id %x, want Context().SpanID %v", span.GetSpanId(), sc.SpanID)
	}
	if span.GetName() != "reviews.default.svc.cluster.local:9080/*" {
		t.Errorf("name %q", span.GetName())
	}
	if span.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("kind %v, want SERVER", span.GetKind())
	}
	if got, want := span.GetStartTimeUnixNano(), uint64(testStart.UnixNano()); got != want {
		t.Errorf("start %d, want %d", got, want)
	}
	if got, want := span.GetEndTimeUnixNano(), uint64(testEnd.UnixNano()); got != want {
		t.Errorf("end %d, want %d", got, want)
	}
	if span.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("status %v, want ERROR for a 503", span.GetStatus())
	}
	want := map[string]string{
		"node_id":                 "waypoint~10.244.0.7~waypoint-7d9f.default~default.svc.cluster.local",
		"zone":                    "zone-a",
		"istio.canonical_service": "waypoint",
		"istio.namespace":         "default",
		"guid:x-request-id":       "5f0e3c1a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
		"http.url":                "http://reviews.default:9080/reviews/0?x=1",
		"http.method":             "GET",
		"downstream_cluster":      "-",
		"user_agent":              "curl/8.5.0",
		"http.protocol":           "HTTP/1.1",
		"peer.address":            "10.244.0.9",
		"request_size":            "0",
		"response_size":           "91",
		"component":               "proxy",
		"upstream_cluster":        "inbound-vip|9080|http|reviews.default.svc.cluster.local",
		"upstream_cluster.name":   "inbound-vip|9080|http|reviews.default.svc.cluster.local",
		"upstream_address":        "10.244.1.5:9080",
		"http.status_code":        "503",
		"response_flags":          "UF",
		"error":                   "true",
	}
	if d := cmp.Diff(want, stringAttrs(span.GetAttributes())); d != "" {
		t.Errorf("attributes (-want +got):\n%s", d)
	}
	if got := got[0].resource["service.name"]; got != "waypoint.default" {
		t.Errorf("resource service.name = %q, want waypoint.default", got)
	}
}

func TestTracerSpanStatusAndDefaults(t *testing.T) {
	c := newCollector(t, nil)
	tr, err := NewTracer(TracerOptions{Endpoint: c.endpoint(), Insecure: true, SamplePercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{200, 404, 0} {
		tr.Start(SpanContext{}, "op", testStart).End(&SpanAttributes{Method: "POST", StatusCode: code}, testEnd)
	}
	tr.Start(SpanContext{}, "no attributes", testStart).End(nil, testEnd)
	shutdown(t, tr)
	got := c.received()
	if len(got) != 4 {
		t.Fatalf("got %d spans, want 4", len(got))
	}
	for i, want := range []struct {
		status tracepb.Status_StatusCode
		code   string
		err    bool
	}{
		{tracepb.Status_STATUS_CODE_UNSET, "200", false},
		{tracepb.Status_STATUS_CODE_UNSET, "404", false}, // a 4xx is the client's error
		{tracepb.Status_STATUS_CODE_ERROR, "0", true},    // no response: Envoy's error too
	} {
		s := got[i].span
		a := stringAttrs(s.GetAttributes())
		if s.GetStatus().GetCode() != want.status || a["http.status_code"] != want.code || (a["error"] == "true") != want.err {
			t.Errorf("span %d: status %v, http.status_code %q, error %q; want %v, %q, error %v",
				i, s.GetStatus().GetCode(), a["http.status_code"], a["error"], want.status, want.code, want.err)
		}
		// Defaults written as Envoy writes them; no node_id or zone given.
		for k, v := range map[string]string{"user_agent": "-", "http.protocol": "-", "downstream_cluster": "-", "response_flags": "-", "component": "proxy", "http.url": ""} {
			if a[k] != v {
				t.Errorf("span %d: %s = %q, want %q", i, k, a[k], v)
			}
		}
		for _, k := range []string{"node_id", "zone", "guid:x-request-id", "peer.address", "upstream_cluster", "upstream_address"} {
			if _, ok := a[k]; ok {
				t.Errorf("span %d: %s set, want it left out", i, k)
			}
		}
	}
	if n := len(got[3].span.GetAttributes()); n != 0 || got[3].span.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_UNSET {
		t.Errorf("End(nil): %d attributes, status %v; want none, unset", n, got[3].span.GetStatus())
	}
	if got := got[0].resource["service.name"]; got == "" {
		t.Error("no service.name without ServiceName, want the SDK's default")
	}
}

func TestTracerSampling(t *testing.T) {
	sampledParent := mustParse(t, "00-"+validTraceID+"-"+validSpanID+"-01")
	unsampledParent := mustParse(t, "00-"+validTraceID+"-"+validSpanID+"-00")
	for _, c := range []struct {
		name    string
		percent float64
		parent  SpanContext
		sampled bool
	}{
		{"root at 100%", 100, SpanContext{}, true},
		{"root at 0%", 0, SpanContext{}, false},
		{"root above 100% is clamped", 250, SpanContext{}, true},
		{"sampled parent at 0%", 0, sampledParent, true},
		{"unsampled parent at 100%", 100, unsampledParent, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			col := newCollector(t, nil)
			tr := newTestTracer(t, col, c.percent)
			s := tr.Start(c.parent, "op", testStart)
			sc := s.Context()
			s.End(&SpanAttributes{StatusCode: 200}, testEnd)
			if !sc.IsValid() {
				t.Fatalf("Context() %v is not valid", sc)
			}
			if sc.Sampled() != c.sampled {
				t.Errorf("Context().Sampled() = %v, want %v", sc.Sampled(), c.sampled)
			}
			if c.parent.IsValid() && (sc.TraceID != c.parent.TraceID || sc.SpanID == c.parent.SpanID) {
				t.Errorf("Context() %v does not continue the parent %v", sc, c.parent)
			}
			shutdown(t, tr)
			got := col.received()
			if !c.sampled {
				if len(got) != 0 {
					t.Fatalf("%d spans exported, want none", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d spans exported, want 1", len(got))
			}
			span := got[0].span
			if !bytes.Equal(span.GetTraceId(), sc.TraceID[:]) || !bytes.Equal(span.GetSpanId(), sc.SpanID[:]) {
				t.Errorf("exported ids %x/%x, want Context() %v/%v", span.GetTraceId(), span.GetSpanId(), sc.TraceID, sc.SpanID)
			}
			if !c.parent.IsValid() && len(span.GetParentSpanId()) != 0 {
				t.Errorf("root span has parent span id %x", span.GetParentSpanId())
			}
		})
	}
}

func TestTracerSamplePercent(t *testing.T) {
	// Roots are sampled by trace id at about the percentage.
	c := newCollector(t, nil)
	tr := newTestTracer(t, c, 30)
	const n = 4000
	sampled := map[TraceID]SpanID{}
	for range n {
		s := tr.Start(SpanContext{}, "op", testStart)
		if sc := s.Context(); sc.Sampled() {
			sampled[sc.TraceID] = sc.SpanID
		}
		s.End(&SpanAttributes{StatusCode: 200}, testEnd)
	}
	if len(sampled) < n*25/100 || len(sampled) > n*35/100 {
		t.Errorf("%d of %d roots sampled at 30%%", len(sampled), n)
	}
	shutdown(t, tr)
	// Exported are exactly the spans Start said were sampled, with the
	// ids it gave.
	got := c.received()
	if len(got) != len(sampled) {
		t.Errorf("%d spans exported, want the %d sampled", len(got), len(sampled))
	}
	for _, g := range got {
		tid, sid := TraceID(g.span.GetTraceId()), SpanID(g.span.GetSpanId())
		if want, ok := sampled[tid]; !ok || want != sid {
			t.Errorf("exported span %v/%v is not one Start sampled", tid, sid)
		}
	}
}

func TestTracerTraceFlags(t *testing.T) {
	c := newCollector(t, nil)
	tr := newTestTracer(t, c, 0)
	// Reserved flags are not carried on; sampled and random are.
	for _, c := range []struct{ in, want byte }{{0xff, FlagSampled | FlagRandom}, {0xfe, FlagRandom}, {0x01, FlagSampled}} {
		parent := SpanContext{TraceID: mustParse(t, "00-"+validTraceID+"-"+validSpanID+"-00").TraceID, SpanID: SpanID{1}, Flags: c.in}
		s := tr.Start(parent, "op", testStart)
		if got := s.Context().Flags; got != c.want {
			t.Errorf("parent flags %#x: Context().Flags = %#x, want %#x", c.in, got, c.want)
		}
		s.End(nil, testEnd)
	}
}

func TestTracerGzip(t *testing.T) {
	// The exporter compresses when told to by the standard variable; the
	// collector decodes it either way.
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
	c := newCollector(t, nil)
	tr := newTestTracer(t, c, 100)
	tr.Start(SpanContext{}, "op", testStart).End(&SpanAttributes{Method: "GET", StatusCode: 200}, testEnd)
	shutdown(t, tr)
	if got := c.received(); len(got) != 1 || stringAttrs(got[0].span.GetAttributes())["http.method"] != "GET" {
		t.Fatalf("got %d spans, want 1 GET", len(got))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.encodings) != 1 || c.encodings[0] != "gzip" {
		t.Errorf("Content-Encoding %q, want gzip", c.encodings)
	}
}

func TestTracerInvalidUTF8(t *testing.T) {
	// Peers' headers may be anything; OTLP needs UTF-8, or the whole
	// batch is refused.
	c := newCollector(t, nil)
	tr := newTestTracer(t, c, 100)
	tr.Start(SpanContext{}, "op\xff", testStart).End(&SpanAttributes{UserAgent: "bad\xffagent", URL: "/p\xc3", Authority: "h", StatusCode: 200}, testEnd)
	tr.Start(SpanContext{}, "good", testStart).End(&SpanAttributes{StatusCode: 200}, testEnd)
	shutdown(t, tr)
	got := c.received()
	if len(got) != 2 {
		t.Fatalf("got %d spans, want 2", len(got))
	}
	a := stringAttrs(got[0].span.GetAttributes())
	if got[0].span.GetName() != "op\uFFFD" || a["user_agent"] != "bad\uFFFDagent" || a["http.url"] != "http://h/p\uFFFD" {
		t.Errorf("name %q, user_agent %q, http.url %q", got[0].span.GetName(), a["user_agent"], a["http.url"])
	}
}

func TestTracerEndNeverBlocks(t *testing.T) {
	// A collector that does not answer: ending spans goes on at full speed
	// and the spans beyond the queue are dropped.
	block := make(chan struct{})
	c := newCollector(t, block)
	tr := newTestTracer(t, c, 100)
	const n = 3 * SpanQueueSize
	// Blocking would show as one call waiting for an export to time out
	// (SpanExportTimeout); the bounds leave room for a loaded machine.
	var slowest time.Duration
	begin := time.Now()
	for range n {
		t0 := time.Now()
		tr.Start(SpanContext{}, "op", testStart).End(&SpanAttributes{StatusCode: 200}, testEnd)
		slowest = max(slowest, time.Since(t0))
	}
	if d := time.Since(begin); d > 20*time.Second || slowest > 2*time.Second {
		t.Errorf("ending %d spans against a stuck collector took %v, the slowest %v", n, d, slowest)
	}
	close(block)
	shutdown(t, tr)
	got := len(c.received())
	if got == 0 || got > SpanQueueSize+SpanBatchSize {
		t.Errorf("collector got %d of %d spans, want some and at most the queue and a batch in flight (%d)", got, n, SpanQueueSize+SpanBatchSize)
	}
}

func TestTracerShutdownBounded(t *testing.T) {
	// Shutdown returns when its context ends, even with a stuck collector.
	block := make(chan struct{})
	defer close(block)
	c := newCollector(t, block)
	tr, err := NewTracer(TracerOptions{Endpoint: c.endpoint(), Insecure: true, SamplePercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start(SpanContext{}, "op", testStart).End(nil, testEnd)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if err := tr.Shutdown(ctx); err == nil {
		t.Error("Shutdown against a stuck collector returned no error")
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Shutdown took %v with a 200ms context", d)
	}
}

func TestTracerAfterShutdown(t *testing.T) {
	// Requests still in flight when the proxy stops keep a valid context;
	// their spans are dropped.
	c := newCollector(t, nil)
	tr := newTestTracer(t, c, 100)
	shutdown(t, tr)
	parent := mustParse(t, "00-"+validTraceID+"-"+validSpanID+"-01")
	for _, p := range []SpanContext{parent, {}} {
		s := tr.Start(p, "op", testStart)
		if sc := s.Context(); !sc.IsValid() || (p.IsValid() && sc.TraceID != p.TraceID) {
			t.Errorf("Start(%v) after Shutdown: Context() = %v", p, sc)
		}
		s.End(&SpanAttributes{StatusCode: 200}, testEnd)
	}
	if n := len(c.received()); n != 0 {
		t.Errorf("%d spans exported after Shutdown", n)
	}
}

func TestNilTracer(t *testing.T) {
	var tr *Tracer
	parent := mustParse(t, "00-"+validTraceID+"-"+validSpanID+"-01")
	s := tr.Start(parent, "op", testStart)
	if sc := s.Context(); sc.TraceID != parent.TraceID || sc.SpanID == parent.SpanID || !sc.SpanID.IsValid() || !sc.Sampled() {
		t.Errorf("nil tracer: Context() = %v, want a child of %v", sc, parent)
	}
	s.End(&SpanAttributes{StatusCode: 500}, testEnd)
	if root := tr.Start(SpanContext{}, "op", testStart).Context(); !root.IsValid() || root.Sampled() {
		t.Errorf("nil tracer: root %v, want valid and unsampled", root)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestNewTracerErrors(t *testing.T) {
	for _, ep := range []string{"", "http://127.0.0.1:4318", "127.0.0.1"} {
		if _, err := NewTracer(TracerOptions{Endpoint: ep}); err == nil {
			t.Errorf("NewTracer(Endpoint %q): no error", ep)
		}
	}
	for _, o := range []TracerOptions{
		{Endpoint: "127.0.0.1:4317", Protocol: OTLPGRPC, URLPath: "/v1/traces"},
		{Endpoint: "127.0.0.1:4318", Protocol: "thrift"},
		{Endpoint: "127.0.0.1:4318", URLPath: "v1/traces"},
	} {
		if _, err := NewTracer(o); err == nil {
			t.Errorf("NewTracer(%+v): no error", o)
		}
	}
}

func TestHTTPURL(t *testing.T) {
	long := "/" + string(bytes.Repeat([]byte("a"), 300))
	for _, c := range []struct{ url, authority, want string }{
		{"/reviews/0", "reviews:9080", "http://reviews:9080/reviews/0"},
		{"https://h:443/x?y=1", "ignored", "https://h:443/x?y=1"},
		{"", "h", ""},
		{"http://h", "", "http://h"},
		{long, "h", "http://h" + long[:maxPathTagLength]},
		{"http://h" + long, "", "http://h" + long[:maxPathTagLength]},
		// Not cut within a UTF-8 sequence.
		{long[:maxPathTagLength-1] + "é", "h", "http://h" + long[:maxPathTagLength-1]},
	} {
		if got := httpURL(c.url, c.authority); got != c.want {
			t.Errorf("httpURL(%q, %q) = %q, want %q", c.url, c.authority, got, c.want)
		}
	}
}

func BenchmarkStartEndUnsampled(b *testing.B) {
	attrs := &SpanAttributes{Method: "GET", URL: "/reviews/0", Authority: "reviews:9080", Protocol: "HTTP/1.1",
		UserAgent: "curl/8.5.0", RequestID: "5f0e3c1a-1b2c-4d5e-8f90-a1b2c3d4e5f6", StatusCode: 200, ResponseSize: 91}
	unsampled := SpanContext{TraceID: TraceID{1}, SpanID: SpanID{2}}
	for _, c := range []struct {
		name    string
		percent float64
		parent  SpanContext
	}{
		{"UnsampledParent", 100, unsampled},
		{"Root0Percent", 0, SpanContext{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr := newTestTracer(b, newCollector(b, nil), c.percent)
			b.ReportAllocs()
			for b.Loop() {
				s := tr.Start(c.parent, "reviews.default.svc.cluster.local:9080/*", testStart)
				s.End(attrs, testEnd)
			}
		})
	}
	b.Run("NilTracer", func(b *testing.B) {
		var tr *Tracer
		b.ReportAllocs()
		for b.Loop() {
			tr.Start(unsampled, "op", testStart).End(attrs, testEnd)
		}
	})
}

func BenchmarkStartEndSampled(b *testing.B) {
	attrs := &SpanAttributes{Method: "GET", URL: "/reviews/0", Authority: "reviews:9080", Protocol: "HTTP/1.1",
		UserAgent: "curl/8.5.0", RequestID: "5f0e3c1a-1b2c-4d5e-8f90-a1b2c3d4e5f6", PeerAddress: "10.244.0.9",
		UpstreamCluster: "inbound-vip|9080|http|reviews.default.svc.cluster.local", UpstreamAddress: "10.244.1.5:9080",
		StatusCode: 200, ResponseSize: 91}
	sampled := SpanContext{TraceID: TraceID{1}, SpanID: SpanID{2}, Flags: FlagSampled}
	for _, c := range []struct {
		name  string
		block bool
	}{
		// The collector takes every batch: the exporter's work (encoding,
		// HTTP) shares the CPUs with the loop, as in production.
		{"Exported", false},
		// The collector never answers: the queue is full and spans are
		// dropped, which leaves the request path's own cost.
		{"QueueFull", true},
	} {
		b.Run(c.name, func(b *testing.B) {
			var block chan struct{}
			if c.block {
				block = make(chan struct{})
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if block != nil {
					select {
					case <-block:
					case <-r.Context().Done():
					}
				}
				_, _ = io.Copy(io.Discard, r.Body)
			}))
			defer srv.Close()
			tr, err := NewTracer(TracerOptions{Endpoint: srv.Listener.Addr().String(), Insecure: true, ServiceName: "waypoint.default"})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				s := tr.Start(sampled, "reviews.default.svc.cluster.local:9080/*", testStart)
				s.End(attrs, testEnd)
			}
			b.StopTimer()
			if block != nil {
				close(block)
			}
			shutdown(b, tr)
		})
	}
}
