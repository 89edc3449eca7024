package hbone_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
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

// TestDialRefusedOnFreshConnections: a server refuses the first stream of
// each of its first connections (as one closing idle connections refuses
// a fresh connection's first stream when it comes after the timeout, on a
// busy host); a Dial tries again on a connection dialed each time, up to
// three tries: with two refusals it opens its tunnel on the third
// connection, with three it fails, refused.
func TestDialRefusedOnFreshConnections(t *testing.T) {
	for _, refusals := range []int{2, 3} {
		m := newMesh(t, time.Hour)
		addr, accepted := refusingServer(t, m, refusals)
		pool := newPool(t, m)
		c, err := pool.Dial(ctxT(t), dialReq(m.source(t, clientID), addr))
		switch {
		case refusals < 3 && err != nil:
			t.Errorf("%d refusals: %v; want the tunnel open on connection %d", refusals, err, refusals+1)
		case refusals >= 3 && !errors.Is(err, hbone.ErrRefused):
			t.Errorf("%d refusals: %v; want refused after 3 tries", refusals, err)
		}
		if c != nil {
			c.Close()
		}
		if got, want := int(accepted.Load()), min(refusals+1, 3); got != want {
			t.Errorf("%d refusals: %d connections; want %d, one per try", refusals, got, want)
		}
	}
}

// refusingServer is a bare HTTP/2 server over the mesh's TLS that resets
// the first stream of each of its first refusals connections with
// REFUSED_STREAM and accepts every other CONNECT; accepted counts its
// connections.
func refusingServer(t *testing.T, m *mesh, refusals int) (string, *atomic.Int32) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", identity.ServerTLSConfig(m.source(t, serverID), m.mgr.Bundle(), nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go serveRefusing(c, int(accepted.Add(1)) <= refusals)
		}
	}()
	return ln.Addr().String(), accepted
}

func serveRefusing(c net.Conn, refuse bool) {
	defer c.Close()
	if _, err := io.ReadFull(c, make([]byte, len(http2.ClientPreface))); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if fr.WriteSettings() != nil {
		return
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() && fr.WriteSettingsAck() != nil {
				return
			}
		case *http2.MetaHeadersFrame:
			if refuse {
				refuse = false
				_ = fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
				continue
			}
			block.Reset()
			_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: block.Bytes(), EndHeaders: true})
		}
	}
}
