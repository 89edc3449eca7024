package waypoint

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
)

// h2Transport sends HTTP/2 cleartext (h2c) requests to endpoints. For a
// cluster without a per-connection limit it is net/http's Transport, whose
// pool multiplexes all requests to an endpoint on one connection. For a
// cluster with one (DestinationRule maxRequestsPerConnection) it pools the
// connections itself, because net/http's pool has no such limit; as in
// Envoy, a connection that has carried that many streams takes no new
// ones and is closed once its last stream is done, and further requests
// open a new connection.
type h2Transport struct {
	// t dials (its DialContext reaches the exchange's endpoint, through
	// HBONE when the endpoint has an identity), makes the limited
	// connections and pools the others.
	t *http.Transport

	mu sync.Mutex
	// conns are the limited connections that may take more streams, by
	// endpoint address. A connection leaves when it is spent, or is found
	// closed (by the endpoint, or by its idle timeout, which net/http
	// keeps for these connections too).
	conns map[string][]*h2Conn
}

// h2Conn is a connection under a per-connection limit.
type h2Conn struct {
	cc   *http.ClientConn
	uses int // streams given out, guarded by h2Transport.mu
	// spent says the connection took its last stream: once none is in
	// flight it is closed. The state hook reads it without the pool's
	// lock, which it must not take (it may run inside Reserve).
	spent atomic.Bool
}

func (t *h2Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	limit := usesLimit(req.Context())
	if limit <= 0 {
		return t.t.RoundTrip(req)
	}
	ctx := req.Context()
	// A pooled connection the endpoint closed meanwhile fails at once; the
	// request then goes again on another when that is safe, as net/http's
	// pool and the h1Transport do.
	safe := (req.Body == nil || req.Body == http.NoBody) &&
		(req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions)
	for {
		c, reused, err := t.get(req, limit)
		if err != nil {
			return nil, err
		}
		resp, err := c.cc.RoundTrip(req)
		if err == nil {
			if c.spent.Load() {
				resp.Body = &spentBody{ReadCloser: resp.Body, c: c}
			}
			return resp, nil
		}
		c.closeIfDone()
		if reused && safe && ctx.Err() == nil && c.cc.Err() != nil {
			continue
		}
		return nil, err
	}
}

// get reserves a stream on a connection to the request's endpoint that
// has carried fewer than limit, or on a new one; reused says the
// connection had carried requests before.
func (t *h2Transport) get(req *http.Request, limit int) (c *h2Conn, reused bool, err error) {
	addr := req.URL.Host
	if c := t.reserve(addr, limit); c != nil {
		return c, true, nil
	}
	// Concurrent requests that find no free stream each open a connection;
	// the streams left on them serve the requests that follow.
	cc, err := t.t.NewClientConn(req.Context(), "http", addr)
	if err != nil {
		return nil, false, err
	}
	c = &h2Conn{cc: cc, uses: 1}
	cc.SetStateHook(c.stateChanged)
	if err := cc.Reserve(); err != nil {
		_ = cc.Close()
		return nil, false, fmt.Errorf("new HTTP/2 connection to %s: %w", addr, err)
	}
	if limit == 1 {
		c.spent.Store(true)
		return c, false, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		t.conns = map[string][]*h2Conn{}
	}
	t.conns[addr] = append(t.conns[addr], c)
	return c, false, nil
}

// reserve reserves a stream on a pooled connection to addr, nil if none
// can take one. A connection given its last stream leaves the pool.
func (t *h2Transport) reserve(addr string, limit int) *h2Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.conns[addr]
	if len(list) == 0 {
		return nil
	}
	defer func() {
		if len(list) == 0 {
			delete(t.conns, addr) // endpoints come and go
		} else {
			t.conns[addr] = list
		}
	}()
	for i := 0; i < len(list); {
		c := list[i]
		if c.cc.Err() != nil { // closed by the endpoint or when idle
			list = slices.Delete(list, i, i+1)
			continue
		}
		if c.cc.Reserve() != nil { // at the endpoint's stream limit, or going away
			i++
			continue
		}
		c.uses++
		if c.uses >= limit {
			c.spent.Store(true)
			list = slices.Delete(list, i, i+1)
		}
		return c
	}
	return nil
}

// stateChanged is the connection's state hook: net/http calls it when a
// stream ends (among other changes), so a spent connection closes as its
// last stream ends. Closing it then cuts no response short: a finished
// stream's unread body stays readable.
func (c *h2Conn) stateChanged(*http.ClientConn) { c.closeIfDone() }

// closeIfDone closes a spent connection with no stream left.
func (c *h2Conn) closeIfDone() {
	if c.spent.Load() && c.cc.InFlight() == 0 {
		_ = c.cc.Close()
	}
}

// spentBody is the response body of a spent connection's last stream.
// Closing it checks once more whether the connection can close: the state
// hook alone was seen to miss a stream's end under load (a connection
// stayed open until its idle timeout).
type spentBody struct {
	io.ReadCloser
	c *h2Conn
}

func (b *spentBody) Close() error {
	err := b.ReadCloser.Close()
	b.c.closeIfDone()
	return err
}

// CloseIdleConnections closes the idle connections of both pools.
func (t *h2Transport) CloseIdleConnections() {
	t.t.CloseIdleConnections()
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, list := range t.conns {
		list = slices.DeleteFunc(list, func(c *h2Conn) bool {
			if c.cc.InFlight() > 0 {
				return false
			}
			_ = c.cc.Close()
			return true
		})
		if len(list) == 0 {
			delete(t.conns, addr)
		} else {
			t.conns[addr] = list
		}
	}
}
