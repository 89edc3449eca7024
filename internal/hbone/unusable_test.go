package hbone_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/rawconn"
)

// eventuallyUnusable waits for what the server did to reach the client's
// stream over loopback.
func eventuallyUnusable(c *hbone.Conn) bool {
	for range 500 {
		if rawconn.Unusable(c) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// holdOpen accepts the stream and keeps it open until the client ends it;
// first, do runs on it (the server's part of the case).
func holdOpen(do func(s *hbone.Stream)) hbone.Handler {
	return hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		if err := s.Accept(); err != nil {
			return
		}
		if do != nil {
			do(s)
		}
		_, _ = io.Copy(io.Discard, s)
	})
}

// TestConnUnusable: rawconn.Unusable, which the waypoint asks of a pooled
// keep-alive upstream connection before it sends a request on it, answers
// for an HBONE stream too (whose TCP socket, shared with other streams,
// shows nothing of the stream's end): an open stream idle between
// exchanges is usable; one the server ended (END_STREAM), reset, sent
// something unasked on, or whose connection closed or is going away
// (GOAWAY) is not, and neither is one the client closed. Looking reads
// nothing.
func TestConnUnusable(t *testing.T) {
	m := newMesh(t, 0)
	dial := func(t *testing.T, addr string) *hbone.Conn {
		t.Helper()
		c, err := newPool(t, m).Dial(ctxT(t), dialReq(m.source(t, clientID), addr))
		if err != nil {
			t.Fatal(err)
		}
		guard(c)
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("open and idle", func(t *testing.T) {
		_, addr := startServer(t, m, nil, echo)
		c := dial(t, addr)
		if _, err := io.WriteString(c, "ping"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo: %q, %v", buf, err)
		}
		time.Sleep(50 * time.Millisecond) // anything late would have arrived
		if rawconn.Unusable(c) {
			t.Fatal("an open stream, idle after an exchange, is called unusable")
		}
		// Still usable: the check took nothing from it.
		if _, err := io.WriteString(c, "pong"); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
			t.Fatalf("echo after the check: %q, %v", buf, err)
		}
	})

	t.Run("server ended its direction", func(t *testing.T) {
		_, addr := startServer(t, m, nil, holdOpen(func(s *hbone.Stream) { _ = s.CloseWrite() }))
		if c := dial(t, addr); !eventuallyUnusable(c) {
			t.Fatal("a stream the server ended (END_STREAM) is called usable")
		}
	})

	t.Run("server reset", func(t *testing.T) {
		_, addr := startServer(t, m, nil, hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
			if s.Accept() == nil {
				_ = s.Close() // RST_STREAM CANCEL: its direction had not ended
			}
		}))
		if c := dial(t, addr); !eventuallyUnusable(c) {
			t.Fatal("a stream the server reset is called usable")
		}
	})

	t.Run("unread data", func(t *testing.T) {
		const unasked = "HTTP/1.1 408 Request Timeout\r\n\r\n"
		_, addr := startServer(t, m, nil, holdOpen(func(s *hbone.Stream) { _, _ = io.WriteString(s, unasked) }))
		c := dial(t, addr)
		if !eventuallyUnusable(c) {
			t.Fatal("a stream with unread data from the server is called usable")
		}
		buf := make([]byte, len(unasked))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != unasked {
			t.Fatalf("after Unusable, read %q, %v; want the data, untouched", buf, err)
		}
	})

	t.Run("connection closed", func(t *testing.T) {
		srv, addr := startServer(t, m, nil, holdOpen(nil))
		c := dial(t, addr)
		if rawconn.Unusable(c) {
			t.Fatal("an open stream is called unusable")
		}
		_ = srv.Close()
		if !eventuallyUnusable(c) {
			t.Fatal("a stream whose HTTP/2 connection closed is called usable")
		}
	})

	t.Run("connection going away", func(t *testing.T) {
		srv, addr := startServer(t, m, nil, holdOpen(nil))
		// Shutdown returns once the client's pool closed the connection
		// (cleanups run last first).
		shut := make(chan error, 1)
		t.Cleanup(func() { <-shut })
		c := dial(t, addr)
		if rawconn.Unusable(c) {
			t.Fatal("an open stream is called unusable")
		}
		go func() { shut <- srv.Shutdown(ctxT(t)) }()
		if !eventuallyUnusable(c) {
			t.Fatal("a stream whose HTTP/2 connection is draining (GOAWAY) is called usable")
		}
	})

	t.Run("closed by the client", func(t *testing.T) {
		_, addr := startServer(t, m, nil, holdOpen(nil))
		c := dial(t, addr)
		_ = c.Close()
		if !rawconn.Unusable(c) {
			t.Fatal("a stream the client closed is called usable")
		}
	})
}
