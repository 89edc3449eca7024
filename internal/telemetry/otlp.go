package telemetry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Bounds of the span export. The queue is the only memory the tracer holds
// for spans not yet sent: when the collector is slow or down, spans that find
// it full are dropped, so ending a span never waits for the network.
const (
	// SpanQueueSize is how many ended spans wait for export at most.
	SpanQueueSize = 2048
	// SpanBatchSize is how many spans one export request carries at most.
	SpanBatchSize = 512
	// SpanBatchDelay is how long an ended span waits at most before it is
	// sent, when fewer than SpanBatchSize are waiting.
	SpanBatchDelay = 5 * time.Second
	// SpanExportTimeout bounds one export request to the collector,
	// retries included.
	SpanExportTimeout = 10 * time.Second
)

// maxPathTagLength is how much of the path http.url keeps: Envoy's default
// max_path_tag_length.
const maxPathTagLength = 256

// instrumentationName is the instrumentation scope of the spans.
const instrumentationName = "github.com/meshway/meshway/internal/telemetry"

// OTLPProtocol is the transport of OTLP export.
type OTLPProtocol string

// The OTLP transports, as Istio's OpenTelemetry provider names them: gRPC
// unless the provider has an http block.
const (
	// OTLPHTTP POSTs protobuf-encoded batches to a URL path (OTLP/HTTP,
	// the collector's port 4318).
	OTLPHTTP OTLPProtocol = "http"
	// OTLPGRPC calls the collector's TraceService/Export (OTLP/gRPC, the
	// collector's port 4317).
	OTLPGRPC OTLPProtocol = "grpc"
)

// DefaultOTLPPath is where OTLP/HTTP spans are POSTed unless
// TracerOptions.URLPath says otherwise: the OTLP specification's default.
const DefaultOTLPPath = "/v1/traces"

// TracerOptions configure a [Tracer].
type TracerOptions struct {
	// Endpoint is the collector's address as host:port
	// ("127.0.0.1:4318", "otel-collector.observability:4317"). Required.
	Endpoint string
	// Protocol is how spans reach Endpoint; empty is OTLPHTTP.
	Protocol OTLPProtocol
	// URLPath is where OTLP/HTTP spans are POSTed; empty is
	// [DefaultOTLPPath]. It must be empty with OTLPGRPC, which has no path.
	URLPath string
	// Insecure sends in plain text (HTTP, or gRPC without TLS); otherwise
	// over TLS, verified against the system's roots. A collector inside the
	// mesh is reached in plain text (as Istio's OpenTelemetry provider
	// does): the caller should default this to true.
	Insecure bool
	// ServiceName is the resource's service.name: "waypoint.default". Empty
	// keeps the SDK's default (OTEL_SERVICE_NAME, else unknown_service).
	ServiceName string
	// SamplePercent (0 to 100; Istio's sampling percentage) is the share of
	// the traces this proxy starts, those of requests without a valid
	// traceparent, that are sampled. A request with one keeps its sampled
	// flag (parent-based sampling). Out of range is clamped; NaN is 0. The
	// SDK's TraceIDRatioBased decides, not [Sampler]: the two may decide
	// one trace id differently.
	SamplePercent float64
	// NodeID and Zone are Envoy's node_id and zone tags; empty ones are
	// left out.
	NodeID string
	Zone   string
	// Tags are more attributes for every span, as Istio's literal custom
	// tags: istio.canonical_service, istio.canonical_revision,
	// istio.namespace, istio.mesh_id, istio.cluster_id.
	Tags map[string]string
}

// Tracer exports one span per proxied request to an OTLP collector, over
// HTTP or gRPC, through a batch span processor with a bounded queue
// ([SpanQueueSize]). Its methods are safe for concurrent use. A nil *Tracer exports nothing:
// its spans only carry the trace on ([NewChild] of the parent).
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	// root is the sampler of new traces, the root sampler of the
	// provider's ParentBased one.
	root sdktrace.Sampler
	// fixed are the attributes every span gets: node_id, zone, Tags.
	fixed []attribute.KeyValue
	// kind is the span start option every span gets.
	kind trace.SpanStartOption
}

// NewTracer makes a tracer that exports to o.Endpoint. It does not connect:
// an unreachable collector shows in the SDK's error handler (otel.Handle,
// which logs) when a batch fails, and costs the spans of that batch. The
// standard OTEL_EXPORTER_OTLP_* variables apply where o leaves them open
// (headers, compression, certificates), as OTEL_RESOURCE_ATTRIBUTES does.
func NewTracer(o TracerOptions) (*Tracer, error) {
	if o.Endpoint == "" {
		return nil, errors.New("tracer: no collector endpoint")
	}
	if _, _, err := net.SplitHostPort(o.Endpoint); err != nil {
		return nil, fmt.Errorf("tracer: collector endpoint %q is not host:port: %w", o.Endpoint, err)
	}
	res := resource.Default()
	if o.ServiceName != "" {
		var err error
		res, err = resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", o.ServiceName)))
		if err != nil {
			return nil, fmt.Errorf("tracer: resource: %w", err)
		}
	}
	// Made last, so that no error leaves an exporter (a gRPC client) behind.
	exp, err := newExporter(o)
	if err != nil {
		return nil, fmt.Errorf("tracer: %w", err)
	}
	percent := o.SamplePercent
	if math.IsNaN(percent) {
		percent = 0
	}
	percent = min(max(percent, 0), 100)
	bsp := sdktrace.NewBatchSpanProcessor(exp,
		sdktrace.WithMaxQueueSize(SpanQueueSize),
		sdktrace.WithMaxExportBatchSize(SpanBatchSize),
		sdktrace.WithBatchTimeout(SpanBatchDelay),
		sdktrace.WithExportTimeout(SpanExportTimeout),
	)
	root := sdktrace.TraceIDRatioBased(percent / 100)
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(root)),
		sdktrace.WithIDGenerator(idGenerator{}),
		sdktrace.WithSpanProcessor(bsp),
	)
	t := &Tracer{
		provider: provider,
		root:     root,
		tracer:   provider.Tracer(instrumentationName),
		kind:     trace.WithSpanKind(trace.SpanKindServer),
	}
	if o.NodeID != "" {
		t.fixed = append(t.fixed, attribute.String("node_id", validString(o.NodeID)))
	}
	if o.Zone != "" {
		t.fixed = append(t.fixed, attribute.String("zone", validString(o.Zone)))
	}
	for _, k := range slices.Sorted(maps.Keys(o.Tags)) {
		t.fixed = append(t.fixed, attribute.String(validString(k), validString(o.Tags[k])))
	}
	return t, nil
}

// The retries of one batch stay within its export timeout
// (SpanExportTimeout), so a slow collector delays only the export
// goroutine, never a request. Both exporters take these, under their own
// types.
const (
	retryInitialInterval = 500 * time.Millisecond
	retryMaxInterval     = 2 * time.Second
)

// newExporter makes the OTLP exporter of o.Protocol. Neither dials: the
// gRPC client connects on the first export, and reconnects by itself.
func newExporter(o TracerOptions) (sdktrace.SpanExporter, error) {
	// New does not dial: the context is not kept.
	ctx := context.Background()
	switch o.Protocol {
	case OTLPHTTP, "":
		opts := []otlptracehttp.Option{
			otlptracehttp.WithEndpoint(o.Endpoint),
			otlptracehttp.WithTimeout(SpanExportTimeout),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
				Enabled:         true,
				InitialInterval: retryInitialInterval,
				MaxInterval:     retryMaxInterval,
				MaxElapsedTime:  SpanExportTimeout,
			}),
		}
		if o.URLPath != "" {
			if !strings.HasPrefix(o.URLPath, "/") {
				return nil, fmt.Errorf("OTLP/HTTP path %q does not start with /; write it as %s", o.URLPath, DefaultOTLPPath)
			}
			opts = append(opts, otlptracehttp.WithURLPath(o.URLPath))
		}
		if o.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	case OTLPGRPC:
		if o.URLPath != "" {
			return nil, fmt.Errorf("OTLP/gRPC has no URL path, got %q: leave it empty or export over OTLP/HTTP", o.URLPath)
		}
		opts := []otlptracegrpc.Option{
			otlptracegrpc.WithEndpoint(o.Endpoint),
			otlptracegrpc.WithTimeout(SpanExportTimeout),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{
				Enabled:         true,
				InitialInterval: retryInitialInterval,
				MaxInterval:     retryMaxInterval,
				MaxElapsedTime:  SpanExportTimeout,
			}),
		}
		if o.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("OTLP protocol %q is not one of %q, %q", o.Protocol, OTLPHTTP, OTLPGRPC)
	}
}

// Shutdown exports the spans that have ended and stops the tracer; spans
// that end later are dropped. It returns when they are sent or ctx is done.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Span is the proxy's span of one request, from [Tracer.Start]. End it once.
type Span struct {
	t    *Tracer
	span trace.Span // nil when unsampled
	sc   SpanContext
}

// Start begins the proxy's span for a request received at start, a SERVER
// span named name (Envoy names it by the route's decorator, the operation).
// parent is the request's trace context, invalid if it had none: the span
// is then the root of a new trace, sampled at TracerOptions.SamplePercent.
// The span's Context is what the proxy forwards in traceparent.
//
// The sampling decision is made before the SDK is called, as the SDK's
// sampler (ParentBased of TraceIDRatioBased) makes it: a valid parent's
// sampled flag, else the new trace id's ratio decision. An unsampled span
// never reaches the SDK, which would only make a non-recording span of the
// same ids; a sampled one is made by the SDK, whose sampler agrees.
func (t *Tracer) Start(parent SpanContext, name string, start time.Time) *Span {
	if t == nil {
		return &Span{sc: NewChild(parent)}
	}
	ctx := context.Background()
	if parent.IsValid() {
		if !parent.Sampled() {
			return &Span{sc: NewChild(parent)}
		}
		ctx = trace.ContextWithRemoteSpanContext(ctx, toOTel(parent))
	} else {
		root := NewRoot(false)
		if t.root.ShouldSample(sdktrace.SamplingParameters{
			ParentContext: ctx,
			TraceID:       trace.TraceID(root.TraceID),
			Name:          name,
			Kind:          trace.SpanKindServer,
		}).Decision != sdktrace.RecordAndSample {
			return &Span{sc: root}
		}
		// The SDK makes the root with these ids (idGenerator).
		ctx = context.WithValue(ctx, rootIDsKey{}, root)
	}
	_, span := t.tracer.Start(ctx, validString(name), t.kind, trace.WithTimestamp(start))
	return &Span{t: t, span: span, sc: fromOTel(span.SpanContext())}
}

// rootIDsKey is the context key of the SpanContext whose ids the SDK gives
// a new root span.
type rootIDsKey struct{}

// idGenerator is the SDK's source of ids: random ones, as the SDK's own,
// except those that Start chose for a root (under rootIDsKey).
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	sc, ok := ctx.Value(rootIDsKey{}).(SpanContext)
	if !ok {
		sc = NewRoot(false)
	}
	return trace.TraceID(sc.TraceID), trace.SpanID(sc.SpanID)
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	return trace.SpanID(newSpanID())
}

// Context is the span's context: the parent's trace (or a new one), the
// span's own id and the sampling decision.
func (s *Span) Context() SpanContext { return s.sc }

// SpanAttributes are what a request's span says of it, under the names of
// Envoy's tags (HttpTracerUtility::finalizeDownstreamSpan), so the queries
// and dashboards made for Istio's traces read them. Like Envoy's
// OpenTelemetry tracer, every attribute is a string.
type SpanAttributes struct {
	// Method is the request's method (http.method).
	Method string
	// URL is the request's URL as Envoy writes http.url,
	// "http://reviews.default:9080/reviews/0". One in origin form ("/path")
	// is completed as http://Authority/path. The path is cut at 256 bytes
	// (Envoy's default max_path_tag_length).
	URL       string
	Authority string
	// Protocol is the downstream protocol, "HTTP/1.1", "HTTP/2"
	// (http.protocol); empty is "-".
	Protocol string
	// UserAgent is the request's User-Agent (user_agent); empty is "-".
	UserAgent string
	// RequestID is the request's x-request-id (guid:x-request-id); empty
	// leaves the attribute out.
	RequestID string
	// DownstreamCluster is the request's x-envoy-downstream-service-cluster
	// (downstream_cluster); empty is "-".
	DownstreamCluster string
	// PeerAddress is the downstream's address (peer.address); empty leaves
	// it out.
	PeerAddress string
	// UpstreamCluster is Envoy's name of the upstream cluster,
	// "outbound|9080||reviews.default.svc.cluster.local" (upstream_cluster
	// and upstream_cluster.name); UpstreamAddress the endpoint's address
	// (upstream_address). Empty ones are left out.
	UpstreamCluster string
	UpstreamAddress string
	// ResponseFlags are Envoy's short response flags (response_flags);
	// empty is "-".
	ResponseFlags string
	// Component is the component tag; empty is "proxy", as Envoy writes.
	Component string
	// StatusCode is the status sent downstream, 0 for none
	// (http.status_code). As in Envoy, 5xx and 0 mark the span an error:
	// status Error and the tag error=true.
	StatusCode int
	// RequestSize and ResponseSize are the body bytes received from and
	// sent to the downstream (request_size, response_size).
	RequestSize  int64
	ResponseSize int64
}

// End finishes the span at end with the request's attributes (nil for
// none; the tracer's NodeID, Zone and Tags are set either way). An
// unsampled span costs nothing here.
func (s *Span) End(a *SpanAttributes, end time.Time) {
	if s.span == nil || !s.span.IsRecording() {
		return // unsampled: nothing to record
	}
	// The SDK copies the attributes: the slice goes back to the pool.
	p := attrPool.Get().(*[]attribute.KeyValue)
	kv := append((*p)[:0], s.t.fixed...)
	if a != nil {
		kv = appendAttributes(kv, a)
	}
	s.span.SetAttributes(kv...)
	clear(kv)
	*p = kv[:0]
	attrPool.Put(p)
	if a != nil && (a.StatusCode == 0 || a.StatusCode >= 500) {
		s.span.SetStatus(codes.Error, "")
	}
	s.span.End(trace.WithTimestamp(end))
}

// attrPool holds the slices End builds attributes in.
var attrPool = sync.Pool{New: func() any {
	kv := make([]attribute.KeyValue, 0, 32)
	return &kv
}}

// noValue is what Envoy writes for a tag whose header is missing.
const noValue = "-"

// appendAttributes appends a's attributes to kv, in the order Envoy sets
// its tags.
func appendAttributes(kv []attribute.KeyValue, a *SpanAttributes) []attribute.KeyValue {
	if a.RequestID != "" {
		kv = append(kv, attribute.String("guid:x-request-id", validString(a.RequestID)))
	}
	kv = append(kv,
		attribute.String("http.url", validString(httpURL(a.URL, a.Authority))),
		attribute.String("http.method", validString(a.Method)),
		attribute.String("downstream_cluster", validString(or(a.DownstreamCluster, noValue))),
		attribute.String("user_agent", validString(or(a.UserAgent, noValue))),
		attribute.String("http.protocol", validString(or(a.Protocol, noValue))),
	)
	if a.PeerAddress != "" {
		kv = append(kv, attribute.String("peer.address", validString(a.PeerAddress)))
	}
	kv = append(kv,
		attribute.String("request_size", strconv.FormatInt(a.RequestSize, 10)),
		attribute.String("response_size", strconv.FormatInt(a.ResponseSize, 10)),
		attribute.String("component", validString(or(a.Component, "proxy"))),
	)
	if a.UpstreamCluster != "" {
		c := validString(a.UpstreamCluster)
		kv = append(kv, attribute.String("upstream_cluster", c), attribute.String("upstream_cluster.name", c))
	}
	if a.UpstreamAddress != "" {
		kv = append(kv, attribute.String("upstream_address", validString(a.UpstreamAddress)))
	}
	kv = append(kv,
		attribute.String("http.status_code", strconv.Itoa(a.StatusCode)),
		attribute.String("response_flags", validString(or(a.ResponseFlags, NoFlags))),
	)
	if a.StatusCode == 0 || a.StatusCode >= 500 {
		kv = append(kv, attribute.String("error", "true"))
	}
	return kv
}

// httpURL is Envoy's http.url: scheme://authority/path with the path cut at
// maxPathTagLength bytes. A URL in origin form is completed with authority;
// an empty one stays empty, as Envoy's for a request without a path.
func httpURL(url, authority string) string {
	if url == "" {
		return ""
	}
	if url[0] == '/' {
		return "http://" + authority + cutString(url, maxPathTagLength)
	}
	if i := strings.Index(url, "://"); i >= 0 {
		if j := strings.IndexByte(url[i+3:], '/'); j >= 0 {
			p := i + 3 + j
			return url[:p] + cutString(url[p:], maxPathTagLength)
		}
	}
	return url
}

// cutString is s cut to at most n bytes, not within a UTF-8 sequence.
func cutString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// validString replaces invalid UTF-8, which peers may send in headers: the
// OTLP encoding refuses it, and would lose the whole batch.
func validString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// traceFlagsKept are the flags a new span takes from its parent; the
// reserved ones are zeroed, as NewChild does.
const traceFlagsKept = FlagSampled | FlagRandom

func toOTel(sc SpanContext) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID(sc.TraceID),
		SpanID:     trace.SpanID(sc.SpanID),
		TraceFlags: trace.TraceFlags(sc.Flags & traceFlagsKept),
		Remote:     true,
	})
}

func fromOTel(sc trace.SpanContext) SpanContext {
	return SpanContext{
		TraceID: TraceID(sc.TraceID()),
		SpanID:  SpanID(sc.SpanID()),
		Flags:   byte(sc.TraceFlags()),
	}
}
