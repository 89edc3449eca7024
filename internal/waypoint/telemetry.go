package waypoint

import (
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/telemetry"
)

// Envoy's response flags, as Istio's metrics and access logs carry them.
const (
	flagOverflow       = "UO" // circuit breaker
	flagNoHealthy      = "UH"
	flagConnectFailure = "UF"
	flagTimeout        = "UT"
	flagFaultAbort     = "FI"
	flagFaultDelay     = "DI"
	flagRateLimited    = "RL"
)

// sourceWorkload is the peer's metadata: its identity from the HBONE
// certificate, the rest from the baggage Istio's ztunnel sends
// (k8s.namespace.name, k8s.<kind>.name, service.name, service.version,
// k8s.cluster.name).
func sourceWorkload(principal string, baggage string) telemetry.Workload {
	w := telemetry.Workload{Principal: principal}
	b, err := hbone.ParseBaggage(baggage)
	if err != nil {
		return w
	}
	for _, m := range b {
		switch {
		case m.Key == "k8s.namespace.name":
			w.Namespace = m.Value
		case m.Key == "k8s.cluster.name":
			w.Cluster = m.Value
		case m.Key == "service.name":
			w.App, w.CanonicalService = m.Value, m.Value
		case m.Key == "service.version":
			w.Version, w.CanonicalRevision = m.Value, m.Value
		case strings.HasPrefix(m.Key, "k8s.") && strings.HasSuffix(m.Key, ".name") && w.Name == "":
			w.Name = m.Value // k8s.deployment.name, k8s.statefulset.name, ...
		}
	}
	return w
}

// destinationWorkload is an endpoint's metadata.
func destinationWorkload(ep *model.Endpoint) telemetry.Workload {
	if ep == nil {
		return telemetry.Workload{}
	}
	return telemetry.Workload{
		Name: ep.Workload, Namespace: ep.Namespace, Principal: ep.Identity,
		App: ep.Labels["app"], Version: ep.Labels["version"],
		CanonicalService:  ep.Labels["service.istio.io/canonical-name"],
		CanonicalRevision: ep.Labels["service.istio.io/canonical-revision"],
	}
}

// recorder is the downstream ResponseWriter, counting what is sent.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 || r.status == http.StatusSwitchingProtocols || code >= 200 && r.status < 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Flush passes flushes on (streaming, gRPC).
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (hijacking for
// upgrades, deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// traceparentKey is telemetry.TraceparentHeader in canonical form: the
// lowercase name costs an allocation per Get and Set to canonicalise.
const traceparentKey = "Traceparent"

// trace continues the request's trace (or starts one, sampled as
// configured) and sets the traceparent the upstream gets; hs, if not nil,
// is the fast path's header state, which holds the field without an
// allocation.
func trace(r *http.Request, sampler telemetry.Sampler, hs *headerState) {
	var sc telemetry.SpanContext
	// Parsed only when present: a parse error costs an allocation.
	var (
		parent telemetry.SpanContext
		err    = telemetry.ErrInvalidTraceparent
	)
	if vv := r.Header[traceparentKey]; len(vv) > 0 && vv[0] != "" {
		parent, err = telemetry.ParseTraceparent(vv[0])
	}
	if err == nil {
		sc = telemetry.NewChild(parent) // the caller's sampling decision stands
	} else {
		sc = telemetry.NewRoot(false)
		if sampler.Sample(sc.TraceID) {
			sc.Flags |= telemetry.FlagSampled
		}
	}
	setTraceparent(r.Header, hs, sc.Traceparent())
}

// setTraceparent is Header.Set(traceparentKey, v), into hs when given.
func setTraceparent(h http.Header, hs *headerState, v string) {
	if hs != nil {
		if _, ok := h[traceparentKey]; !ok {
			hs.add(traceparentKey, v)
			return
		}
	}
	h[traceparentKey] = []string{v}
}

// seriesCache is the metric series of a connection's last request, with
// what its labels were made of: the next request with the same is
// recorded without building and looking up its 23 labels (half of
// observe's CPU).
type seriesCache struct {
	m                  *telemetry.Metrics
	ic                 *inConn
	d                  *dest
	ep                 *model.Endpoint
	code               int
	flags, proto, grpc string
	s                  telemetry.HTTPSeries
}

// requestHeaderBytes is the size of r's headers as Envoy counts them in
// request.total_size, which Istio's istio_request_bytes observes: each
// header's name and value, the pseudo-headers (:method, :path,
// :authority, :scheme) included, without framing — so the metric is the
// same whether the request came as HTTP/1.1 or HTTP/2.
func requestHeaderBytes(r *http.Request) int64 {
	path := len(r.URL.EscapedPath()) // RequestURI's length, without building it
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		path += 1 + len(r.URL.RawQuery)
	}
	n := len(":method") + len(r.Method) + len(":path") + path +
		len(":authority") + len(r.Host) + len(":scheme") + len("http")
	return int64(n) + headerBytes(r.Header)
}

// responseHeaderBytes is response.total_size's header part: :status and
// each header sent.
func responseHeaderBytes(rec *recorder) int64 {
	return int64(len(":status")+3) + headerBytes(rec.Header())
}

func headerBytes(h http.Header) int64 {
	var n int
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	return int64(n)
}

// observe records one finished request in the metrics and access log; sc
// is the connection's series cache. The metrics' sizes count headers and
// body, as Envoy's request.total_size and response.total_size do; the
// access log's bytes the body only, as Envoy's %BYTES_RECEIVED% and
// %BYTES_SENT%.
func (p *Proxy) observe(cfg *config, ic *inConn, d *dest, x *exchange, r *http.Request, rec *recorder, start time.Time, reqBytes int64, sc *seriesCache) {
	if p.Metrics == nil && (p.AccessLog == nil || !cfg.src.Telemetry.AccessLog) {
		return
	}
	var ep *model.Endpoint
	if x != nil && x.host != nil {
		ep = x.host.ep
	}
	flags := ""
	if x != nil {
		flags = strings.Join(x.flags, ",")
	}
	security := telemetry.SecurityNone
	if ic.src.Principal != "" {
		security = telemetry.SecurityMutualTLS
	}
	proto := telemetry.ProtocolHTTP
	grpcStatus := ""
	if strings.HasPrefix(field(r.Header, "Content-Type"), "application/grpc") {
		proto = telemetry.ProtocolGRPC
		grpcStatus = rec.Header().Get("Grpc-Status")
	}
	elapsed := time.Since(start)
	if m := p.Metrics; m != nil {
		info := telemetry.RequestInfo{Duration: elapsed,
			RequestBytes: reqBytes + requestHeaderBytes(r), ResponseBytes: rec.bytes + responseHeaderBytes(rec)}
		if sc.m == m && sc.ic == ic && sc.d == d && sc.ep == ep && sc.code == rec.status &&
			sc.flags == flags && sc.proto == proto && sc.grpc == grpcStatus {
			sc.s.Observe(&info)
		} else {
			info.Source, info.Destination, info.Service = ic.src, destinationWorkload(ep), d.service
			info.Protocol, info.ResponseCode, info.GRPCStatus, info.ResponseFlags = proto, rec.status, grpcStatus, flags
			info.ConnectionSecurityPolicy = security
			s := m.Series(&info)
			s.Observe(&info)
			*sc = seriesCache{m: m, ic: ic, d: d, ep: ep, code: rec.status, flags: flags, proto: proto, grpc: grpcStatus, s: s}
		}
	}
	if p.AccessLog != nil && cfg.src.Telemetry.AccessLog {
		e := &telemetry.AccessLogEntry{
			StartTime: start, Method: r.Method, Path: r.URL.RequestURI(), Protocol: r.Proto,
			ResponseCode: rec.status, ResponseFlags: flags, BytesReceived: reqBytes, BytesSent: rec.bytes,
			Duration: elapsed, XForwardedFor: r.Header.Get("X-Forwarded-For"), UserAgent: r.UserAgent(),
			RequestID: r.Header.Get("X-Request-Id"), Authority: r.Host,
			DownstreamRemoteAddress: ic.RemoteAddr().String(), DownstreamLocalAddress: ic.dst,
		}
		if ep != nil {
			e.UpstreamHost = ep.Address
			e.UpstreamCluster = x.cl.name
		}
		p.AccessLog.Log(e)
	}
}

// countingBody counts the request body bytes read. The count is atomic:
// net/http's HTTP/2 transport sends a request's body on a goroutine of its
// own, which may still be reading when the answer is through and the
// request is recorded (TestChaosGRPC, -race).
type countingBody struct {
	rc interface {
		Read([]byte) (int, error)
		Close() error
	}
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }
