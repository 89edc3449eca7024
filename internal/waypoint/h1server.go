package waypoint

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshway/meshway/internal/rawconn"
)

// The HTTP/1.1 fast path. net/http's server allocates, per request, the
// Request, its header map and strings, a context, a response with its own
// header map and buffers, and starts a goroutine that watches the
// connection while the handler runs; httputil.ReverseProxy then clones
// the request. On a waypoint that is most of the work (make
// bench-waypoint). h1Down serves the requests of one downstream
// connection instead, one at a time, into state it reuses: the request,
// its header map and URL, the response writer, the exchange; the
// per-request work (routing, policies, limits, filters, retries,
// telemetry) is the same code as net/http's path (Proxy.handle). What it
// does not parse it hands, unread, to net/http's server (h1parse.go).

// h1ReadBuffer bounds the heads the fast path parses: a larger one goes to
// net/http, which allows up to 1 MB.
const h1ReadBuffer = 4 << 10

// maxPostHandlerRead is net/http's maxPostHandlerReadBytes: the most of
// an unread request body read (and dropped) to keep the connection.
const maxPostHandlerRead = 256 << 10

var aLongTimeAgo = time.Unix(1, 0)

// h1Down is one downstream connection on the fast path.
type h1Down struct {
	p      *Proxy
	ic     *inConn
	br     *bufio.Reader
	bw     *bufio.Writer
	ctx    context.Context // the requests' context: ends when the client goes away
	cancel context.CancelFunc
	remote string

	req       *http.Request // reused: its context is ctx
	url       url.URL
	hs        headerState
	body      reqBody
	async     *asyncBody // the body as handed to an upstream that reads it on its own goroutine, or nil
	bodyLost  bool       // async's reader may still be in a read: the connection is not read again
	w         h1Writer
	rs        reqState
	up        upState
	afterPost bool
	linger    bool // the connection closes with request body unread

	// The watcher: a read on the connection while a slow request runs
	// (h1watch.go).
	watchArmed bool
	watchState atomic.Uint64 // 0, the sweeper tick it was armed at + 1, or watching
	watchDone  chan struct{}
	upMu       sync.Mutex
	upConn     *h1Conn // the upstream connection the request uses, for the watcher to interrupt
	gone       bool    // guarded by upMu: the client went away

	state atomic.Int32 // h1Active, h1Idle or h1Closing: whether Drain may close the connection
}

// The states of a fast-path connection, for Drain.
const (
	h1Active  = iota // reading or serving a request
	h1Idle           // waiting for the first byte of the next request
	h1Closing        // Drain ends it
)

// serveH1 serves a downstream HTTP connection: on the fast path while its
// requests allow, then (if ever) on net/http's server.
func (p *Proxy) serveH1(ic *inConn) {
	rw := rawconn.Wrap(ic.Conn) // reads and writes only: ic keeps the rest
	dc := &h1Down{
		p: p, ic: ic,
		br:        bufio.NewReaderSize(rw, h1ReadBuffer),
		bw:        bufio.NewWriterSize(rw, 4<<10),
		remote:    ic.RemoteAddr().String(),
		watchDone: make(chan struct{}, 1),
	}
	p.init()
	// ServerContextKey as net/http sets it: ReverseProxy (which serves
	// h2c upstreams) then aborts a response it cannot finish, by a panic
	// serve recovers, instead of ending it as if it were whole.
	dc.ctx, dc.cancel = context.WithCancel(context.WithValue(context.Background(), http.ServerContextKey, p.http))
	dc.req = new(http.Request).WithContext(dc.ctx)
	dc.w.dc = dc
	if !p.trackH1(dc, true) {
		dc.cancel()
		_ = ic.Close()
		return
	}
	handedOver := false
	defer func() {
		p.trackH1(dc, false)
		if handedOver {
			return
		}
		dc.cancel()
		if dc.linger {
			if cw, ok := ic.Conn.(interface{ CloseWrite() error }); ok {
				_ = dc.bw.Flush()
				_ = cw.CloseWrite()
				time.Sleep(rstAvoidanceDelay)
			}
		}
		_ = ic.Close()
	}()
	for {
		if !dc.awaitRequest() {
			return
		}
		if dc.afterPost {
			skipCRLF(dc.br)
		}
		raw, res := readHead(dc.br)
		if res == parseOK && p.netHTTPOnly {
			res = parseFallback
		}
		if res == parseOK {
			res = parseRequest(raw, dc.req, &dc.hs, &dc.url)
		}
		switch res {
		case parseMore: // the connection ended
			return
		case parseFallback:
			// The request is still unread: net/http reads it from dc.br.
			handedOver = true
			dc.cancel()
			p.init()
			if !p.incoming.push(&replayConn{inConn: ic, r: dc.br}) {
				_ = ic.Close()
			}
			return
		}
		_, _ = dc.br.Discard(len(raw))
		if !dc.serve() {
			return
		}
	}
}

// awaitRequest waits for the first byte of the next request: false when
// the connection ended, or the proxy drains (Drain closes a connection
// idle here, as net/http's Shutdown closes idle connections).
func (dc *h1Down) awaitRequest() bool {
	dc.state.Store(h1Idle)
	// After the store: either Drain's sweep finds the connection idle, or
	// this sees the drain.
	if dc.p.draining.Load() {
		return false
	}
	_, err := dc.br.Peek(1)
	return dc.state.CompareAndSwap(h1Idle, h1Active) && err == nil
}

// closeIdleH1 ends the fast path's idle connections (Drain): a read
// deadline in the past ends their wait for a request.
func (p *Proxy) closeIdleH1() {
	p.h1mu.Lock()
	defer p.h1mu.Unlock()
	for ic, dc := range p.h1conns {
		if dc.state.CompareAndSwap(h1Idle, h1Closing) {
			_ = ic.SetReadDeadline(aLongTimeAgo)
		}
	}
}

// skipCRLF is net/http's tolerance for old clients that end a POST body
// with an extra CRLF (RFC 7230 section 3.5).
func skipCRLF(br *bufio.Reader) {
	peek, _ := br.Peek(4)
	n := 0
	for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
		n++
	}
	_, _ = br.Discard(n)
}

// readHead waits for a complete request head in br and returns it, not
// consumed. parseMore means the connection ended (or failed) first;
// parseFallback a head the fast path leaves to net/http.
func readHead(br *bufio.Reader) (string, parseResult) {
	scanned, want := 0, 1
	for {
		want = max(want, br.Buffered())
		buf, err := br.Peek(want)
		if err != nil {
			if len(buf) > 0 {
				return "", parseFallback // a partial request: net/http answers it
			}
			return "", parseMore
		}
		end, next := headEnd(buf, scanned)
		switch {
		case end > 0:
			return string(buf[:end]), parseOK
		case end < 0 || len(buf) >= br.Size():
			// Bare LF line ends, or a head larger than the buffer.
			return "", parseFallback
		}
		scanned, want = next, len(buf)+1
	}
}

// serve serves the parsed request; it returns whether the connection
// goes on.
func (dc *h1Down) serve() (keep bool) {
	defer func() {
		// As net/http's server: a panic ends the connection, not the
		// process (ReverseProxy aborts a response that way).
		if v := recover(); v != nil {
			if err, ok := v.(error); !ok || !errors.Is(err, http.ErrAbortHandler) {
				dc.p.logf("waypoint: panic serving %s: %v\n%s", dc.remote, v, debug.Stack())
			}
			dc.w.abort()
			dc.w.finish()
			dc.disarm()
			dc.up.release()
			keep = false
		}
	}()
	r := dc.req
	dc.async, dc.bodyLost = nil, false
	dc.afterPost = r.Method == http.MethodPost
	r.RemoteAddr = dc.remote
	r.TLS, r.Form, r.PostForm, r.MultipartForm, r.Trailer, r.TransferEncoding = nil, nil, nil, nil, nil, nil
	r.GetBody, r.Response, r.Pattern = nil, nil, ""
	if r.ContentLength > 0 {
		dc.body = reqBody{dc: dc, n: r.ContentLength}
		r.Body = &dc.body
	} else {
		dc.body = reqBody{dc: dc}
		r.Body = http.NoBody
		dc.arm()
	}
	dc.w.reset(r)
	dc.rs.reset()
	dc.p.handle(&dc.w, r, dc.ic, &dc.rs, dc)
	keep = dc.w.finish()
	dc.disarm()
	dc.up.release()
	dc.upMu.Lock()
	gone := dc.gone
	dc.upMu.Unlock()
	dc.linger = !keep && (dc.bodyLost || dc.body.n > 0)
	return keep && !gone
}

// rstAvoidanceDelay is net/http's: how long a connection closed with
// request body unread lingers half-closed, so that the client reads the
// answer before the reset that closing with unread data sends.
const rstAvoidanceDelay = 500 * time.Millisecond

// trackH1 records the fast path's connections, for Close and the
// watcher's sweeps; false once the proxy is closed.
func (p *Proxy) trackH1(dc *h1Down, add bool) bool {
	p.h1mu.Lock()
	defer p.h1mu.Unlock()
	if !add {
		delete(p.h1conns, dc.ic)
		return true
	}
	if p.h1closed {
		return false
	}
	if p.h1conns == nil {
		p.h1conns = map[*inConn]*h1Down{}
	}
	p.h1conns[dc.ic] = dc
	if !p.h1sweeping {
		p.h1sweeping = true
		go p.sweep()
	}
	return true
}

// closeH1 closes the fast path's connections.
func (p *Proxy) closeH1() {
	p.h1mu.Lock()
	p.h1closed = true
	conns := p.h1conns
	p.h1conns = nil
	p.h1mu.Unlock()
	for ic := range conns {
		_ = ic.Close()
	}
}

// useUp records the upstream connection a try uses, for the watcher;
// false if the client is gone already.
func (dc *h1Down) useUp(pc *h1Conn) bool {
	dc.upMu.Lock()
	defer dc.upMu.Unlock()
	if dc.gone {
		return false
	}
	dc.upConn = pc
	return true
}

func (dc *h1Down) dropUp() {
	dc.upMu.Lock()
	dc.upConn = nil
	dc.upMu.Unlock()
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// reqBody is a request body of known length, read from the connection.
type reqBody struct {
	dc     *h1Down
	n      int64 // left to read
	closed bool
	err    error
}

func (b *reqBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.dc.br.Read(p)
	b.n -= int64(n)
	if b.n == 0 {
		return n, nil
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
	}
	return n, err
}

func (b *reqBody) Close() error {
	b.closed = true
	return nil
}

// drainable reads and drops what the handler left of the body, as
// net/http does before answering (clients that send a whole request
// before reading the answer would otherwise block); false if that is too
// much or failed: the connection must close.
func (b *reqBody) drainable() bool {
	if a := b.dc.async; a != nil && !b.dc.bodyLost && (!a.release() || a.interrupted.Load()) {
		b.dc.bodyLost = true
	}
	if b.dc.bodyLost {
		return false // another goroutine may be reading the connection
	}
	if b.n <= 0 {
		return b.err == nil
	}
	if b.n >= maxPostHandlerRead {
		return false
	}
	n, err := b.dc.br.Discard(int(b.n))
	b.n -= int64(n)
	if err != nil {
		b.err = err
		return false
	}
	return true
}

// drain is drainable once the response is sent.
func (b *reqBody) drain() bool { return b.drainable() }

// asyncBody is a fast-path request body handed to an upstream transport
// that reads it on a goroutine of its own (net/http's HTTP/2 transport,
// for h2c clusters), which may go on reading after the answer began. The
// body is the connection's: once the answer begins, the connection takes
// it back to drain it before the next request, as net/http's server does
// (release); from then on the transport's reads fail. One is made per
// such request, so that a late read can never reach the next request's
// body. A read still under way when the answer begins is not waited for
// (it waits for the client): the connection then closes after the answer.
type asyncBody struct {
	mu       sync.Mutex // held through each read
	rc       io.ReadCloser
	released bool
	// conn is the client's connection; interrupted says Close broke a
	// read under way with a read deadline in the past: the connection is
	// not read again.
	conn        interface{ SetReadDeadline(time.Time) error }
	interrupted atomic.Bool
}

func (b *asyncBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.released {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.rc.Read(p)
}

// Close is the transport's (through closeThrough, ReverseProxy's wrapper
// closing nothing), once it is done with the body: the body stays
// the connection's to drain. But a read still under way waits for the
// client, and net/http's HTTP/2 transport ends a failed exchange (its
// answer's body included) only once its goroutine sending the body
// returns: a client pausing mid-upload would hold the answer until it sent
// more. So that read is broken (the client's connection's read deadline,
// set in the past) and the connection closes after the answer; it was to
// close anyway, with the body unread.
func (b *asyncBody) Close() error {
	if b.mu.TryLock() {
		b.mu.Unlock()
		return nil
	}
	b.interrupted.Store(true)
	_ = b.conn.SetReadDeadline(aLongTimeAgo)
	return nil
}

// release takes the body back for the connection; false if a read is
// under way.
func (b *asyncBody) release() bool {
	if !b.mu.TryLock() {
		return false
	}
	b.released = true
	b.mu.Unlock()
	return true
}

// reqState is what serving one request needs besides the request: the
// recorder, the body counter and the exchange; the fast path reuses it.
type reqState struct {
	rec    recorder
	body   countingBody
	x      exchange
	series seriesCache // kept from one request to the next
}

func (rs *reqState) reset() {
	rs.rec = recorder{}
	rs.body = countingBody{}
	x := &rs.x
	*x = exchange{flags: x.flags[:0], respMods: x.respMods[:0], mirrors: x.mirrors[:0]}
	clear(x.respMods[:cap(x.respMods)]) // drop the previous configuration's filters
	clear(x.mirrors[:cap(x.mirrors)])
}

// replayConn is a connection handed to net/http's server with what the
// fast path buffered and did not consume.
type replayConn struct {
	*inConn
	r *bufio.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }
