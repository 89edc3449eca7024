package hbone_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/hbone"
)

// breakableConn is a TCP connection whose writes fail once broken, as a
// socket's do when its peer went away, while its reads go on waiting: the
// HTTP/2 connection's reader has not noticed yet.
type breakableConn struct {
	net.Conn
	broken atomic.Bool
}

func (c *breakableConn) Write(p []byte) (int, error) {
	if c.broken.Load() {
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return c.Conn.Write(p)
}

// TestDialAgainOnAFreshConnection: every pooled connection to a server
// broke while idle (it restarted) and the pool has not noticed; a Dial
// fails on the first, then opens its stream on a connection dialed for it,
// not on another broken one from the pool.
func TestDialAgainOnAFreshConnection(t *testing.T) {
	m := newMesh(t, time.Hour)
	srv, addr := startServer(t, m, nil, echo, func(s *hbone.Server) {
		s.MaxConcurrentStreams = 1 // a connection per open stream
	})
	var (
		mu    sync.Mutex
		conns []*breakableConn
	)
	pool := newPool(t, m)
	pool.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		bc := &breakableConn{Conn: c}
		mu.Lock()
		conns = append(conns, bc)
		mu.Unlock()
		return bc, nil
	}
	req := dialReq(m.source(t, clientID), addr)
	var open []*hbone.Conn
	for range 2 {
		c, err := pool.Dial(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if err := echoOnce(guard(c), "before"); err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	for _, c := range open {
		c.Close()
	}
	// The resets reach the server (they are written after Close returns)
	// before the connections break.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		streams := 0
		for _, ci := range srv.Snapshot() {
			streams += len(ci.Streams)
		}
		if streams == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server still has %d streams 10 s after the client closed them", streams)
		}
	}
	mu.Lock()
	if len(conns) != 2 {
		t.Fatalf("%d connections dialed for two streams open at once, want 2", len(conns))
	}
	for _, c := range conns {
		c.broken.Store(true)
	}
	mu.Unlock()

	c, err := pool.Dial(ctxT(t), req)
	if err != nil {
		t.Fatalf("Dial with every pooled connection broken: %v", err)
	}
	defer c.Close()
	if err := echoOnce(guard(c), "after"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 3 {
		t.Errorf("%d connections dialed, want 3 (the retry on a new one)", len(conns))
	}
}

// TestServerClosesIdleConnections: the server's IdleTimeout closes a
// connection left without streams (GOAWAY, then close); the pool lets it
// go and dials anew for the next stream.
func TestServerClosesIdleConnections(t *testing.T) {
	m := newMesh(t, time.Hour)
	srv, addr := startServer(t, m, nil, echo, func(s *hbone.Server) {
		s.IdleTimeout = 100 * time.Millisecond
	})
	pool := newPool(t, m) // its own idle timeout: 90 s
	req := dialReq(m.source(t, clientID), addr)
	for round := range 2 {
		c, err := pool.Dial(ctxT(t), req)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := echoOnce(guard(c), "busy"); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		c.Close()
		deadline := time.Now().Add(10 * time.Second)
		for len(srv.Snapshot()) != 0 || len(pool.Snapshot()) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: idle connection still open after 10 s (server's idle timeout 100 ms): server %+v, client %+v",
					round, srv.Snapshot(), pool.Snapshot())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
