package waypoint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/authz"
	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/telemetry"
)

// Proxy is a waypoint's data path. Set the fields, Load a configuration,
// then hand it connections: from HBONE (use it as the hbone.Server's
// Handler) or from plain TCP listeners mapped to an original destination
// (ServeListener). A Proxy is safe for concurrent use.
type Proxy struct {
	// Pool and Source open HBONE tunnels to endpoints that have a mesh
	// identity; without them such endpoints are unreachable (503).
	Pool   *hbone.Pool
	Source identity.CertSource
	// Logf, if set, receives errors that concern no single request.
	Logf func(format string, args ...any)
	// Metrics, if set, records Istio's standard metrics.
	Metrics *telemetry.Metrics
	// AccessLog, if set, receives an entry per request when the
	// configuration's telemetry asks for access logs.
	AccessLog *telemetry.AccessLogger

	initOnce sync.Once
	cur      atomicConfig
	http     *http.Server
	incoming *connQueue
	h1, h2c  *upstream
	// mirrorSlots bounds the mirrored requests in flight.
	mirrorSlots chan struct{}

	h1mu       sync.Mutex // guards the fast path's connections (h1server.go)
	h1conns    map[*inConn]*h1Down
	h1closed   bool
	h1sweeping bool          // the watcher's sweeper runs (h1watch.go)
	h1tick     atomic.Uint64 // the sweeper's ticks
	draining   atomic.Bool   // Drain was called: no further request is read
	open       atomic.Int64  // downstream connections not yet closed (inConn), for Drain
	// netHTTPOnly hands every request to net/http's server, for tests
	// that hold the fast path to it.
	netHTTPOnly bool
	// dialTCP, if set, connects to endpoints without an identity in
	// place of a net.Dialer: the chaos tests cut those connections.
	dialTCP func(ctx context.Context, network, addr string) (net.Conn, error)

	tmu    sync.Mutex // guards tracer changes
	tracer atomic.Pointer[tracerFor]
}

// tracerFor is the span exporter of one tracing configuration.
type tracerFor struct {
	collector collectorOf
	percent   float64
	t         *telemetry.Tracer
}

// collectorOf is where spans go: a tracer is replaced only when it changes
// (or the sampling does).
type collectorOf struct {
	endpoint string
	protocol model.TracingProtocol
	path     string
}

// Load validates and compiles w and makes it the configuration new
// requests use; requests in flight finish with the one they started with.
// An invalid configuration is refused and the current one stays.
func (p *Proxy) Load(w *model.Waypoint) error {
	c, err := compile(w, p.cur.Load())
	if err != nil {
		return fmt.Errorf("waypoint configuration refused (the previous one keeps serving): %w", err)
	}
	p.cur.Store(c)
	p.setTracer(w)
	return nil
}

// setTracer starts a span exporter when the configuration names a
// collector (or another one), and stops the previous one.
func (p *Proxy) setTracer(w *model.Waypoint) {
	p.tmu.Lock()
	defer p.tmu.Unlock()
	percent := 1.0
	if w.Telemetry.TracingPercent != nil {
		percent = *w.Telemetry.TracingPercent
	}
	tel := &w.Telemetry
	want := collectorOf{endpoint: tel.TracingEndpoint, protocol: tel.TracingProtocol, path: tel.TracingPath}
	old := p.tracer.Load()
	if old != nil && old.collector == want && old.percent == percent {
		return
	}
	var next *tracerFor
	if want.endpoint != "" {
		// An empty protocol is OTLP/HTTP, as model.Telemetry says; the
		// model's names are the telemetry package's.
		proto := telemetry.OTLPProtocol(cmp.Or(want.protocol, model.TracingHTTP))
		t, err := telemetry.NewTracer(telemetry.TracerOptions{
			Endpoint: want.endpoint, Protocol: proto, URLPath: want.path,
			Insecure: true, ServiceName: w.Name + "." + w.Namespace, SamplePercent: percent,
		})
		if err != nil {
			p.logf("waypoint: tracing to %s (OTLP/%s): %v", want.endpoint, proto, err)
		} else {
			next = &tracerFor{collector: want, percent: percent, t: t}
		}
	}
	p.tracer.Store(next)
	if old != nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = old.t.Shutdown(ctx)
		}()
	}
}

// Config returns the configuration in use, nil before the first Load. Do
// not modify it.
func (p *Proxy) Config() *model.Waypoint {
	if c := p.cur.Load(); c != nil {
		return c.src
	}
	return nil
}

func (p *Proxy) init() {
	p.initOnce.Do(func() {
		p.incoming = newConnQueue()
		p.mirrorSlots = make(chan struct{}, maxMirrorsInFlight)
		p.h1 = p.newUpstream(false)
		p.h2c = p.newUpstream(true)
		var protos http.Protocols
		protos.SetHTTP1(true)
		protos.SetUnencryptedHTTP2(true) // h2c with prior knowledge, as Istio's HTTP ports accept
		p.http = &http.Server{
			Handler:   http.HandlerFunc(p.serveHTTP),
			Protocols: &protos,
			// No header timeout, as Envoy by default: traffic reaches the
			// waypoint through ztunnel, and every timeout is a deadline set
			// and cleared on the socket per request (5% of the CPU at
			// 1,000 requests/s).
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				switch c := c.(type) {
				case *inConn:
					return context.WithValue(ctx, inConnKey{}, c)
				case *replayConn:
					return context.WithValue(ctx, inConnKey{}, c.inConn)
				}
				return ctx
			},
			ErrorLog: nil,
		}
		go func() { _ = p.http.Serve(p.incoming) }()
	})
}

func (p *Proxy) logf(format string, args ...any) {
	if p.Logf != nil {
		p.Logf(format, args...)
	}
}

// ServeListener serves the connections accepted on ln as traffic to the
// original destination origDst ("ip:port" or "hostname:port"), until ln is
// closed. Meant for tests, benchmarks and ports a node forwards as they are.
func (p *Proxy) ServeListener(ln net.Listener, origDst string) error {
	p.init()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go p.serveConn(c, origDst, spiffeid.ID{}, addrOf(c.RemoteAddr()), "")
	}
}

// addrOf returns the IP of a TCP address.
func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// ServeHBONE serves one inbound HBONE stream: its :authority is the
// original destination, its peer certificate the source identity. It
// implements hbone.Handler.
func (p *Proxy) ServeHBONE(ctx context.Context, s *hbone.Stream) {
	p.init()
	cfg := p.cur.Load()
	if cfg == nil || cfg.lookup(s.Authority.String()) == nil {
		_ = s.Reject(http.StatusBadRequest, fmt.Sprintf("waypoint: %s is not a destination this waypoint serves", s.Authority))
		return
	}
	if err := s.Accept(); err != nil {
		return
	}
	// The original client is in the forwarded header; the tunnel's own
	// source is the client's node.
	src := addrOf(s.RemoteAddr)
	if f, err := hbone.ParseForwarded(s.Header.Get("Forwarded")); err == nil && f.For.IsValid() {
		src = f.For.Addr()
	}
	c := &streamConn{Stream: s}
	done := p.serveConn(c, s.Authority.String(), s.PeerID, src, s.Header.Get("Baggage"))
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// serveConn hands a connection to the TCP or the HTTP path and returns a
// channel closed once it is finished with.
func (p *Proxy) serveConn(c net.Conn, origDst string, peer spiffeid.ID, srcIP netip.Addr, baggage string) <-chan struct{} {
	p.open.Add(1)
	ic := &inConn{Conn: c, dst: origDst, srcIP: srcIP, done: make(chan struct{}), open: &p.open}
	principal := ""
	if !peer.IsZero() {
		// A workload identity; anything else matches no principal.
		ic.peer, _ = authz.PeerFromSPIFFE(peer.String())
		principal = peer.String()
	}
	if p.Metrics != nil || p.AccessLog != nil {
		ic.src = sourceWorkload(principal, baggage)
		if ic.src.Namespace == "" {
			ic.src.Namespace = ic.peer.Namespace
		}
	}
	cfg := p.cur.Load()
	var d *dest
	if cfg != nil {
		d = cfg.lookup(origDst)
	}
	switch {
	case d == nil:
		p.logf("waypoint: connection from %s to %s: not a destination this waypoint serves", c.RemoteAddr(), origDst)
		_ = ic.Close()
	case !d.protocol.IsHTTP():
		go p.serveTCP(ic, d)
	case d.protocol == model.ProtocolHTTP:
		// HTTP/1.1 mostly: the fast path, which hands h2c and anything
		// unusual to net/http's server.
		go p.serveH1(ic)
	default:
		p.init()
		if !p.incoming.push(ic) {
			_ = ic.Close()
		}
	}
	return ic.done
}

// serveTCP forwards an opaque connection to an endpoint of d's cluster.
func (p *Proxy) serveTCP(c *inConn, d *dest) {
	defer func() { _ = c.Close() }()
	if dec := d.authz.Evaluate(c.authzRequest(d)); !dec.Allowed {
		p.logf("waypoint: TCP from %s (%s) to %s: %s", c.srcIP, c.peer.Principal, c.dst, dec.Reason)
		return
	}
	h := d.def.pick(nil, c.srcIP, nil)
	if h == nil {
		p.logf("waypoint: TCP to %s (%s): no healthy endpoint in cluster %s", c.dst, d.name, d.def.name)
		return
	}
	h.active.Add(1)
	defer h.active.Add(-1)
	info := &telemetry.TCPInfo{Source: c.src, Destination: destinationWorkload(h.ep), Service: d.service, ConnectionSecurityPolicy: telemetry.SecurityNone}
	if c.src.Principal != "" {
		info.ConnectionSecurityPolicy = telemetry.SecurityMutualTLS
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	up, err := p.dial(ctx, h.ep)
	cancel()
	if err != nil {
		d.def.report(h, 0)
		p.logf("waypoint: TCP to %s (%s): %v", c.dst, d.name, err)
		if p.Metrics != nil {
			info.ResponseFlags = flagConnectFailure
			p.Metrics.ObserveTCPOpen(info)
			p.Metrics.ObserveTCPClose(info, 0, 0)
		}
		return
	}
	defer func() { _ = up.Close() }()
	if p.Metrics != nil {
		p.Metrics.ObserveTCPOpen(info)
	}
	toUp, fromUp, _ := hbone.Splice(c, up)
	if p.Metrics != nil {
		// sent: to the downstream; received: from it, as Istio counts.
		p.Metrics.ObserveTCPClose(info, fromUp, toUp)
	}
}

// dial connects to an endpoint: over HBONE when it has an identity.
func (p *Proxy) dial(ctx context.Context, ep *model.Endpoint) (net.Conn, error) {
	if ep.Identity == "" {
		if p.dialTCP != nil {
			return p.dialTCP(ctx, "tcp", ep.Address)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ep.Address)
	}
	if p.Pool == nil || p.Source == nil {
		return nil, fmt.Errorf("endpoint %s has identity %s but the waypoint has no HBONE pool", ep.Address, ep.Identity)
	}
	id, err := spiffeid.FromString(ep.Identity)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", ep.Address, err)
	}
	ap, err := netip.ParseAddrPort(ep.Address)
	if err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", ep.Address, err)
	}
	return p.Pool.Dial(ctx, hbone.Request{
		Source:    p.Source,
		Addr:      net.JoinHostPort(ap.Addr().String(), strconv.Itoa(hbone.DefaultPort)),
		Authority: ep.Address,
		Expected:  []spiffeid.ID{id},
	})
}

// Drain stops reading requests and waits, until ctx ends, for every
// downstream connection to close, as Envoy drains a terminating waypoint:
// an HTTP/1.1 connection is closed once idle — at once if it is, else
// after the response it is sending — net/http's server (HTTP/2, and what
// the fast path hands it) shuts down, and opaque TCP and upgraded
// (WebSocket) connections are waited for until they end (Envoy, too, can
// only wait for those). Callers stop accepting first; Close ends what is
// left.
func (p *Proxy) Drain(ctx context.Context) error {
	p.init()
	p.draining.Store(true)
	p.closeIdleH1()
	shut := make(chan error, 1)
	go func() { shut <- p.http.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		left := p.open.Load()
		if left == 0 {
			return <-shut
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d connection(s) still open: %w", left, ctx.Err())
		case <-tick.C:
		}
	}
}

// Close stops serving HTTP connections and closes the upstream pools.
func (p *Proxy) Close() error {
	p.init()
	err := p.http.Close()
	p.closeH1()
	if tf := p.tracer.Swap(nil); tf != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tf.t.Shutdown(ctx)
	}
	p.h1.t.CloseIdleConnections()
	p.h1.h1.CloseIdleConnections()
	p.h2c.h2.CloseIdleConnections()
	return err
}

// inConn is a downstream connection with what the waypoint knows of it.
type inConn struct {
	net.Conn
	dst   string             // original destination
	peer  authz.PeerIdentity // source identity (HBONE), zero for plain TCP
	srcIP netip.Addr         // the original client's address
	src   telemetry.Workload // the source as metrics label it

	closeOnce sync.Once
	done      chan struct{}
	open      *atomic.Int64 // the proxy's count of open connections, which Close decrements
}

type inConnKey struct{}

// authzRequest is what policies see of the connection (the L4 part).
func (c *inConn) authzRequest(d *dest) *authz.Request {
	return &authz.Request{Source: c.peer, SourceIP: c.srcIP, DestinationIP: d.ip, DestinationPort: d.port}
}

func (c *inConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		// End our direction cleanly first: an HBONE stream then ends with
		// END_STREAM rather than a reset.
		if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		err = c.Conn.Close()
		close(c.done)
		if c.open != nil {
			c.open.Add(-1)
		}
	})
	return err
}

// streamConn gives an HBONE stream the net.Conn methods net/http needs.
type streamConn struct{ *hbone.Stream }

func (c *streamConn) LocalAddr() net.Addr  { return c.Stream.LocalAddr }
func (c *streamConn) RemoteAddr() net.Addr { return c.Stream.RemoteAddr }

// connQueue is a net.Listener fed by the proxy: every downstream HTTP
// connection, whatever it came from, is served by one http.Server.
type connQueue struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.closed:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return queueAddr{} }

type queueAddr struct{}

func (queueAddr) Network() string { return "waypoint" }
func (queueAddr) String() string  { return "waypoint" }

var errNoEndpoint = errors.New("no healthy upstream")
