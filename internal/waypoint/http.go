package waypoint

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/meshway/meshway/internal/authz"
	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/telemetry"
	"github.com/meshway/meshway/internal/waypoint/ratelimit"
	"github.com/meshway/meshway/internal/waypoint/route"
)

// upstream forwards requests to endpoints with one protocol: HTTP/1.1, or
// HTTP/2 cleartext (h2c) for HTTP2 and gRPC ports.
type upstream struct {
	t  *http.Transport
	h1 *h1Transport // HTTP/1.1: requests on the caller's goroutine; nil for h2c
	h2 *h2Transport // h2c: with per-connection limits; nil for HTTP/1.1
	// base sends one try to the endpoint of the request context's
	// exchange (h1 or h2); rp sends a request's tries through it, and
	// mirrors go on it as they are.
	base http.RoundTripper
	rp   *httputil.ReverseProxy
}

// exchange is what the waypoint decided for one request; it travels in the
// request's context to the transport (which endpoint to dial) and to the
// response filters.
type exchange struct {
	host     *host    // the try's endpoint
	cl       *cluster // where retries pick from
	src      netip.Addr
	retry    *model.Retry
	perTry   time.Duration
	respMods []*model.HeaderModifier
	mirrors  []mirror
	flags    []string // Envoy response flags, for telemetry
	// inBody is an HTTP/2 client's request body, or the fast path's body
	// sent to an h2c cluster (asyncBody), which the outbound request's
	// Close also closes (closeThrough).
	inBody io.Closer
}

type exchangeKey struct{}

func (p *Proxy) newUpstream(h2c bool) *upstream {
	var protos http.Protocols
	if h2c {
		protos.SetUnencryptedHTTP2(true)
	} else {
		protos.SetHTTP1(true)
	}
	u := &upstream{}
	u.t = &http.Transport{
		Protocols: &protos,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			x, _ := ctx.Value(exchangeKey{}).(*exchange)
			if x == nil {
				return nil, errors.New("internal error: no endpoint chosen")
			}
			return p.dial(ctx, x.host.ep)
		},
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if h2c {
		u.h2 = &h2Transport{t: u.t}
		u.base = u.h2
	} else {
		u.h1 = &h1Transport{
			dial: func(ctx context.Context, _ string) (net.Conn, error) {
				x, _ := ctx.Value(exchangeKey{}).(*exchange)
				if x == nil {
					return nil, errors.New("internal error: no endpoint chosen")
				}
				return p.dial(ctx, x.host.ep)
			},
			dialEP:   p.dial,
			fallback: u.t,
		}
		u.base = u.h1
	}
	u.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			x := pr.In.Context().Value(exchangeKey{}).(*exchange)
			pr.Out.URL.Scheme = "http"
			// The connection pool is keyed by this: one per endpoint.
			pr.Out.URL.Host = x.host.ep.Address
			pr.Out.Host = pr.In.Host
		},
		Transport: tries{base: u.base},
		// FlushInterval 0: ReverseProxy flushes at once anyway for
		// responses of unknown length (gRPC, streams) and event streams;
		// -1 would cost a goroutine and a separate header write per
		// response (10-20% of the CPU in make bench-waypoint).
		BufferPool: copyBuffers{},
		ModifyResponse: func(resp *http.Response) error {
			trailersOnly(resp)
			x, _ := resp.Request.Context().Value(exchangeKey{}).(*exchange)
			if x != nil {
				for _, m := range x.respMods {
					modifyHeader(resp.Header, m)
				}
			}
			return nil
		},
		ErrorHandler: upstreamError,
		ErrorLog:     nil,
	}
	return u
}

// trailersOnly turns a gRPC "trailers-only" response (its status in the
// one HEADERS frame that ends the stream) into headers plus trailers.
// The proxy flushes headers as soon as it has them, so the status would
// otherwise arrive in headers that do not end the stream, where gRPC
// clients do not look for it.
func trailersOnly(resp *http.Response) {
	if field(resp.Header, "Grpc-Status") == "" || len(resp.Trailer) > 0 ||
		(resp.ContentLength != 0 && resp.Body != http.NoBody) ||
		!strings.HasPrefix(field(resp.Header, "Content-Type"), "application/grpc") {
		return
	}
	resp.Trailer = http.Header{}
	for _, k := range []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"} {
		if v, ok := resp.Header[k]; ok {
			resp.Trailer[k] = v
			delete(resp.Header, k)
		}
	}
	resp.ContentLength = -1
}

// copyBuffers lends ReverseProxy its 32 KiB copy buffers.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// upstreamError answers as Envoy does, so that users (and retry policies)
// see the messages they know.
func upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	x, _ := r.Context().Value(exchangeKey{}).(*exchange)
	flag := func(f string) {
		if x != nil {
			x.flags = append(x.flags, f)
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		flag(flagTimeout)
		http.Error(w, "upstream request timeout", http.StatusGatewayTimeout)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away: nobody to answer.
		w.WriteHeader(499)
	case errors.Is(err, errNoEndpoint):
		flag(flagNoHealthy)
		http.Error(w, errNoEndpoint.Error(), http.StatusServiceUnavailable)
	default:
		flag(flagConnectFailure)
		var ne net.Error
		if errors.As(err, &ne) || isDialError(err) {
			http.Error(w, "upstream connect error or disconnect/reset before headers. reset reason: connection failure", http.StatusServiceUnavailable)
			return
		}
		http.Error(w, "upstream connect error or disconnect/reset before headers. reset reason: "+err.Error(), http.StatusServiceUnavailable)
	}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// serveHTTP is net/http's handler: the requests the fast path leaves to
// net/http's server (h1server.go) and HTTP/2.
func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	ic, _ := r.Context().Value(inConnKey{}).(*inConn)
	p.handle(w, r, ic, &reqState{}, nil)
}

// handle serves one downstream request and records it. rs is the
// request's state (reused by the fast path); dc is the fast path's
// connection, nil on net/http's.
func (p *Proxy) handle(w http.ResponseWriter, r *http.Request, ic *inConn, rs *reqState, dc *h1Down) {
	cfg := p.cur.Load()
	if ic == nil || cfg == nil {
		http.Error(w, "waypoint: no configuration", http.StatusServiceUnavailable)
		return
	}
	d := cfg.lookup(ic.dst)
	if d == nil {
		http.Error(w, "waypoint: "+ic.dst+" is no longer a destination of this waypoint", http.StatusServiceUnavailable)
		return
	}
	start := time.Now()
	rec := &rs.rec
	rec.ResponseWriter = w
	var body *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &rs.body
		body.rc = r.Body
		r.Body = body
	}
	x := &rs.x
	var span *telemetry.Span
	var hs *headerState // the fast path's (r.Header is its map): new fields go in without allocating
	if dc != nil {
		hs = &dc.hs
	}
	if tf := p.tracer.Load(); tf != nil {
		parent, _ := telemetry.ParseTraceparent(r.Header.Get(traceparentKey))
		span = tf.t.Start(parent, r.Host+r.URL.Path, start)
		setTraceparent(r.Header, hs, span.Context().Traceparent())
	} else {
		trace(r, cfg.sampler, hs)
	}
	p.route(rec, r, cfg, ic, d, x, dc)
	var reqBytes int64
	if body != nil {
		reqBytes = body.n.Load()
	}
	p.observe(cfg, ic, d, x, r, rec, start, reqBytes, &rs.series)
	if span != nil {
		a := &telemetry.SpanAttributes{
			Method: r.Method, URL: r.URL.RequestURI(), Authority: r.Host, Protocol: r.Proto, UserAgent: r.UserAgent(),
			RequestID: r.Header.Get("X-Request-Id"), PeerAddress: ic.RemoteAddr().String(), StatusCode: rec.status,
			RequestSize: reqBytes, ResponseSize: rec.bytes, ResponseFlags: strings.Join(x.flags, ","),
		}
		if x.host != nil {
			a.UpstreamCluster, a.UpstreamAddress = x.cl.name, x.host.ep.Address
		}
		span.End(a, time.Now())
	}
}

// route authorizes, routes and forwards one request.
func (p *Proxy) route(w http.ResponseWriter, r *http.Request, cfg *config, ic *inConn, d *dest, x *exchange, dc *h1Down) {
	if d.authz != nil {
		ar := ic.authzRequest(d)
		ar.HTTP, ar.Host, ar.Method, ar.Path, ar.Headers = true, r.Host, r.Method, r.URL.RequestURI(), r.Header
		if dec := d.authz.Evaluate(ar); !dec.Allowed {
			// Envoy's answer, byte for byte: clients and tests match on it.
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(authz.DeniedStatus)
			_, _ = io.WriteString(w, authz.DeniedBody)
			return
		}
	}
	cl := d.def
	var timeouts model.Timeouts
	retry := cfg.src.DefaultRetry // unless a route says otherwise
	var rule *route.Rule
	if d.table != nil {
		rule = d.table.Match(r)
	}
	if d.limiter != nil && !p.allow(w, r, ic, d, rule, x) {
		return
	}
	if rule != nil {
		matched := matchedPrefix(rule.Spec, r.URL.Path)
		if !runFilters(w, r, x, cfg, rule.Spec.Filters, matched) {
			return
		}
		b, ok := rule.Pick(rand.Uint64())
		if !ok {
			http.Error(w, "waypoint: the route's rule has no backend with a weight", http.StatusInternalServerError)
			return
		}
		if !runFilters(w, r, x, cfg, b.Filters, matched) {
			return
		}
		cl = cfg.clusters[b.Cluster]
		timeouts = rule.Spec.Timeouts
		retry = rule.Spec.Retry
		if f := rule.Spec.Fault; f != nil && !injectFault(w, r, x, f) {
			return
		}
	}
	x.cl, x.retry, x.src = cl, retry, ic.srcIP
	x.perTry = perTryTimeout(timeouts, retry)
	x.host = cl.pick(r, ic.srcIP, nil)
	if x.host == nil {
		x.flags = append(x.flags, flagNoHealthy)
		http.Error(w, errNoEndpoint.Error(), http.StatusServiceUnavailable)
		return
	}
	release, ok := cl.admit(r.Context())
	if !ok {
		x.flags = append(x.flags, flagOverflow)
		http.Error(w, "upstream connect error or disconnect/reset before headers. reset reason: overflow", http.StatusServiceUnavailable)
		return
	}
	defer release()
	up := p.upstreamFor(d, r, cl)
	if len(x.mirrors) > 0 {
		p.sendMirrors(r, x, d)
	}
	ctx := r.Context()
	if t := time.Duration(timeouts.Request); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	if dc != nil && up == p.h1 {
		out := r
		if ctx != r.Context() {
			out = r.WithContext(ctx)
		}
		p.forwardH1(w, out, x, dc)
		return
	}
	if dc != nil && r.Body != nil && r.Body != http.NoBody {
		dc.async = &asyncBody{rc: r.Body, conn: dc.ic}
		r.Body = dc.async
		x.inBody = dc.async
	}
	if r.ProtoMajor == 2 && r.Body != nil && r.Body != http.NoBody {
		x.inBody = r.Body
	}
	up.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, exchangeKey{}, x)))
}

// upstreamFor is how a request to d goes to cluster cl: over h2c when the
// port is HTTP2 or GRPC, the client spoke HTTP/2, or the cluster's own port
// is HTTP2 or GRPC (it speaks nothing else); over HTTP/1.1 otherwise.
func (p *Proxy) upstreamFor(d *dest, r *http.Request, cl *cluster) *upstream {
	if d.protocol == model.ProtocolHTTP2 || d.protocol == model.ProtocolGRPC || r.ProtoMajor == 2 || cl.h2 {
		return p.h2c
	}
	return p.h1
}

// allow applies the local rate limits: false when it answered 429.
func (p *Proxy) allow(w http.ResponseWriter, r *http.Request, ic *inConn, d *dest, rule *route.Rule, x *exchange) bool {
	rq := ratelimit.Request{Headers: r.Header, Host: r.Host, SourceIP: ic.srcIP, SourcePrincipal: ic.peer.Principal}
	if rule != nil {
		rq.RouteKind, rq.RouteNamespace, rq.RouteName, rq.RouteRule = rule.Route.Kind, rule.Route.Namespace, rule.Route.Name, rule.Spec.Name
	}
	dec := d.limiter.Allow(&rq, time.Now())
	if dec.Allowed {
		return true
	}
	x.flags = append(x.flags, flagRateLimited)
	dec.SetHeaders(w.Header())
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(ratelimit.DeniedStatus)
	_, _ = io.WriteString(w, ratelimit.DeniedBody)
	return false
}

// injectFault delays and/or aborts the request as f says; false when it
// answered (aborted) the request.
func injectFault(w http.ResponseWriter, r *http.Request, x *exchange, f *model.Fault) bool {
	if d := f.Delay; d != nil && rand.Float64()*100 < d.Percent {
		x.flags = append(x.flags, flagFaultDelay)
		t := time.NewTimer(time.Duration(d.Fixed))
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		}
	}
	if a := f.Abort; a != nil && rand.Float64()*100 < a.Percent {
		x.flags = append(x.flags, flagFaultAbort)
		// Envoy's fault filter answer.
		http.Error(w, "fault filter abort", a.HTTPStatus)
		return false
	}
	return true
}

// perTryTimeout bounds one try: HTTPRoute's timeouts.backendRequest or
// VirtualService's retries.perTryTimeout, the shorter if both are set.
func perTryTimeout(t model.Timeouts, r *model.Retry) time.Duration {
	be := time.Duration(t.BackendRequest)
	if r != nil && r.PerTryTimeout > 0 && (be == 0 || time.Duration(r.PerTryTimeout) < be) {
		be = time.Duration(r.PerTryTimeout)
	}
	return be
}

func modifyHeader(h http.Header, m *model.HeaderModifier) {
	for _, kv := range m.Set {
		h.Set(kv.Name, kv.Value)
	}
	for _, kv := range m.Add {
		h.Add(kv.Name, kv.Value)
	}
	for _, name := range m.Remove {
		h.Del(name)
	}
}
