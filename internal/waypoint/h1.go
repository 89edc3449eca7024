package waypoint

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/rawconn"
)

// h1Transport sends HTTP/1.1 requests to endpoints on connections it
// pools per endpoint, writing the request and reading the response on the
// calling goroutine. net/http's Transport hands every request to a
// connection's write goroutine and the response back from its read
// goroutine: two more wake-ups per request, which at a steady 1,000
// requests/s cost more CPU than the proxying itself (make bench-waypoint).
// The wire format is net/http's own (Request.Write, ReadResponse).
// Requests it does not handle — upgrades, bodies of unknown length,
// Expect: 100-continue — go to fallback.
type h1Transport struct {
	dial     func(ctx context.Context, addr string) (net.Conn, error)
	dialEP   func(ctx context.Context, ep *model.Endpoint) (net.Conn, error)
	fallback http.RoundTripper

	mu   sync.Mutex
	idle map[string][]*h1Conn
}

const (
	h1MaxIdlePerHost = 256
	h1IdleTimeout    = 30 * time.Second
	// h1CheckIdleAfter is how long a TCP connection must have been idle
	// before it is checked for a close by its endpoint (rawconn.Unusable,
	// one system call) when taken from the pool: servers close idle
	// connections after a keep-alive timeout of their own (Node.js: 5 s),
	// and a request that is not safe to resend (a POST) written on one
	// would fail. Busy connections (idle for milliseconds) skip the check.
	// An HBONE stream is always checked: that is a look at its state, and
	// its HTTP/2 connection may have failed at any moment, taking every
	// stream with it.
	h1CheckIdleAfter = 250 * time.Millisecond
)

type h1Conn struct {
	c         net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	addr      string
	idleSince time.Time
	// checked: c answers rawconn.Unusable from its own state (an HBONE
	// stream), without a system call; it is asked at every reuse.
	checked bool
	// dl says a deadline may be set on c: put clears it then only (a
	// deadline change per request costs CPU at 1,000 requests/s).
	dl atomic.Bool
	// uses counts the requests sent on c; spent says it has carried its
	// cluster's maxRequestsPerConnection and is not pooled again.
	uses  int
	spent bool
}

// use counts a request about to be sent on pc under a limit of requests
// per connection (a DestinationRule's maxRequestsPerConnection; 0: none).
func (pc *h1Conn) use(limit int) {
	pc.uses++
	if limit > 0 && pc.uses >= limit {
		pc.spent = true
	}
}

// usesLimit is the per-connection limit of the cluster of ctx's exchange.
func usesLimit(ctx context.Context) int {
	if x, _ := ctx.Value(exchangeKey{}).(*exchange); x != nil && x.cl != nil {
		return x.cl.maxUses
	}
	return 0
}

// interrupt makes c's blocked and future reads and writes fail.
func (pc *h1Conn) interrupt() {
	pc.dl.Store(true)
	_ = pc.c.SetDeadline(aLongTimeAgo)
}

func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	hasBody := req.Body != nil && req.Body != http.NoBody
	if field(req.Header, "Upgrade") != "" || (hasBody && req.ContentLength < 0) || field(req.Header, "Expect") != "" {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	// A keep-alive connection the endpoint closed meanwhile fails at once;
	// the request is then sent again on a new one when that is safe.
	safe := !hasBody && (req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions)
	for {
		pc, reused, err := t.get(ctx, req.URL.Host)
		if err != nil {
			return nil, err
		}
		pc.use(usesLimit(ctx))
		resp, sent, err := t.exchange(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		_ = pc.c.Close()
		if reused && !sent && safe && ctx.Err() == nil {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
}

// exchange writes req on pc and reads the response head. sent says
// whether the endpoint may have seen the request (anything of a response
// arrived).
func (t *h1Transport) exchange(ctx context.Context, pc *h1Conn, req *http.Request) (resp *http.Response, sent bool, err error) {
	// The context's end interrupts the blocking reads and writes.
	pc.dl.Store(true)
	stop := context.AfterFunc(ctx, pc.interrupt)
	if err := req.Write(pc.bw); err != nil {
		stop()
		return nil, false, err
	}
	if err := pc.bw.Flush(); err != nil {
		stop()
		return nil, false, err
	}
	for {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			stop()
			return nil, pc.br.Buffered() > 0, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // informational: the answer follows
		}
		break
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody { // nothing to read: the connection is free now
		if stop() && keep {
			t.put(pc)
		} else {
			_ = pc.c.Close()
		}
		return resp, true, nil
	}
	resp.Body = &h1Body{rc: resp.Body, pc: pc, t: t, stop: stop, keep: keep}
	return resp, true, nil
}

// get returns an idle connection to addr, or dials one.
func (t *h1Transport) get(ctx context.Context, addr string) (*h1Conn, bool, error) {
	if pc := t.idleConn(addr); pc != nil {
		return pc, true, nil
	}
	c, err := t.dial(ctx, addr)
	if err != nil {
		return nil, false, err
	}
	return newH1Conn(c, addr), false, nil
}

// getEP is get for the fast path, which names the endpoint itself.
func (t *h1Transport) getEP(ctx context.Context, ep *model.Endpoint) (*h1Conn, bool, error) {
	if pc := t.idleConn(ep.Address); pc != nil {
		return pc, true, nil
	}
	c, err := t.dialEP(ctx, ep)
	if err != nil {
		return nil, false, err
	}
	return newH1Conn(c, ep.Address), false, nil
}

func newH1Conn(c net.Conn, addr string) *h1Conn {
	rw := rawconn.Wrap(c) // reads and writes only: c keeps the rest
	_, checked := c.(rawconn.IdleChecker)
	return &h1Conn{c: c, br: bufio.NewReaderSize(rw, 4<<10), bw: bufio.NewWriterSize(rw, 4<<10), addr: addr, checked: checked}
}

// idleConn takes the most recently used idle connection to addr.
func (t *h1Transport) idleConn(addr string) *h1Conn {
	now := time.Now()
	for {
		pc := t.popIdle(addr)
		if pc == nil {
			return nil
		}
		// The close check is a system call: made out of the pool's lock,
		// which every request to every endpoint takes.
		idle := now.Sub(pc.idleSince)
		if idle < h1IdleTimeout && (idle < h1CheckIdleAfter && !pc.checked || !rawconn.Unusable(pc.c)) {
			return pc
		}
		_ = pc.c.Close()
	}
}

// popIdle takes the most recently used idle connection to addr, if any.
func (t *h1Transport) popIdle(addr string) *h1Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[addr]
	if len(list) == 0 {
		return nil
	}
	pc := list[len(list)-1]
	list[len(list)-1] = nil
	t.idle[addr] = list[:len(list)-1]
	return pc
}

// put keeps pc for the next request to its endpoint.
func (t *h1Transport) put(pc *h1Conn) {
	if pc.spent {
		_ = pc.c.Close()
		return
	}
	if pc.dl.Swap(false) {
		if err := pc.c.SetDeadline(time.Time{}); err != nil {
			_ = pc.c.Close()
			return
		}
	}
	pc.idleSince = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idle == nil {
		t.idle = map[string][]*h1Conn{}
	}
	if len(t.idle[pc.addr]) >= h1MaxIdlePerHost {
		_ = pc.c.Close()
		return
	}
	t.idle[pc.addr] = append(t.idle[pc.addr], pc)
}

// CloseIdleConnections closes the pooled connections.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			_ = pc.c.Close()
		}
	}
}

// h1Body is a response body; read to its end it gives its connection back
// to the pool, closed early it closes the connection.
type h1Body struct {
	rc   io.ReadCloser
	pc   *h1Conn
	t    *h1Transport
	stop func() bool
	keep bool
	eof  bool
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof = true
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		err = context.DeadlineExceeded // the request's timeout, as net/http reports it
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	stopped := b.stop()
	if !b.eof {
		// Closed before its end: net/http's body would read the rest on
		// Close, however long; the connection goes first so it cannot.
		_ = b.pc.c.Close()
		return b.rc.Close()
	}
	err := b.rc.Close()
	// The deadline callback may have run: keep the connection only if not.
	if stopped && b.keep {
		b.t.put(b.pc)
		return err
	}
	_ = b.pc.c.Close()
	return err
}
