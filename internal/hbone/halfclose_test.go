package hbone_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/hbone"
)

// TestHalfCloseClientFirst: the client's CloseWrite reaches the server as
// EOF while the server's direction stays open.
func TestHalfCloseClientFirst(t *testing.T) {
	m := newMesh(t, 0)
	gotReq := make(chan string, 1)
	h := hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		req, err := io.ReadAll(s) // returns only at the client's EOF
		if err != nil {
			t.Errorf("server read: %v", err)
			return
		}
		gotReq <- string(req)
		// Written after the client half-closed: must still arrive.
		io.WriteString(s, "response to "+string(req))
		s.CloseWrite()
	})
	_, addr := startServer(t, m, nil, h)
	c, err := newPool(t, m).Dial(ctxT(t), dialReq(m.source(t, clientID), addr))
	if err != nil {
		t.Fatal(err)
	}
	guard(c)
	defer c.Close()
	io.WriteString(c, "request")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got := <-gotReq; got != "request" {
		t.Errorf("server read %q", got)
	}
	resp, err := io.ReadAll(c)
	if err != nil || string(resp) != "response to request" {
		t.Errorf("client read %q, %v; want the response then EOF", resp, err)
	}
}

// TestHalfCloseServerFirst: the server's CloseWrite reaches the client as
// EOF after all the data, while the server had not read anything.
func TestHalfCloseServerFirst(t *testing.T) {
	m := newMesh(t, 0)
	h := hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		io.WriteString(s, strings.Repeat("banner ", 10000))
		s.CloseWrite()
	})
	_, addr := startServer(t, m, nil, h)
	c, err := newPool(t, m).Dial(ctxT(t), dialReq(m.source(t, clientID), addr))
	if err != nil {
		t.Fatal(err)
	}
	guard(c)
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != strings.Repeat("banner ", 10000) {
		t.Fatalf("client read %d bytes, %v; want all 70000 then EOF", len(got), err)
	}
	// Documented limitation: the server's END_STREAM also ended the
	// client's direction; writes fail rather than vanish silently, once
	// the server's reset arrived (a write may return before its frame is
	// on the socket, so try for a while, not a number of times).
	var werr error
	for deadline := time.Now().Add(10 * time.Second); werr == nil && time.Now().Before(deadline); {
		if _, werr = c.Write([]byte("late")); werr == nil {
			time.Sleep(time.Millisecond)
		}
	}
	if !errors.Is(werr, hbone.ErrStreamClosed) {
		t.Errorf("write after the server ended the stream: %v; want ErrStreamClosed", werr)
	}
}

// TestSpliceCarriesHalfClose runs the ztunnel-like path: client → HBONE →
// server handler → Splice → real TCP upstream, and checks that FIN travels
// in both directions.
func TestSpliceCarriesHalfClose(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	upstreamSawEOF := make(chan string, 1)
	go func() {
		c, err := up.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, _ := io.ReadAll(c) // the client's CloseWrite arrives as FIN
		upstreamSawEOF <- string(req)
		io.WriteString(c, "upstream answer")
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	}()
	m := newMesh(t, 0)
	h := hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		u, err := net.Dial("tcp", up.Addr().String())
		if err != nil {
			s.Reject(503, err.Error())
			return
		}
		defer u.Close()
		if _, _, err := hbone.Splice(s, u); err != nil {
			t.Errorf("splice: %v", err)
		}
	})
	_, addr := startServer(t, m, nil, h)
	c, err := newPool(t, m).Dial(ctxT(t), dialReq(m.source(t, clientID), addr))
	if err != nil {
		t.Fatal(err)
	}
	guard(c)
	defer c.Close()
	io.WriteString(c, "client request")
	c.CloseWrite()
	select {
	case got := <-upstreamSawEOF:
		if got != "client request" {
			t.Errorf("upstream read %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("upstream never saw EOF after the client's CloseWrite")
	}
	resp, err := io.ReadAll(c)
	if err != nil || string(resp) != "upstream answer" {
		t.Errorf("client read %q, %v", resp, err)
	}
}

// TestBackPressure: a server that does not read makes the client's writes
// block after a bounded amount (the flow-control windows), instead of
// buffering without limit.
func TestBackPressure(t *testing.T) {
	m := newMesh(t, 0)
	release := make(chan struct{})
	h := hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		s.Accept()
		<-release
		io.Copy(io.Discard, s)
	})
	_, addr := startServer(t, m, nil, h)
	c, err := newPool(t, m).Dial(ctxT(t), dialReq(m.source(t, clientID), addr))
	if err != nil {
		t.Fatal(err)
	}
	guard(c)
	defer c.Close()
	const total = 64 << 20
	written := make(chan int64, 1)
	progress := make(chan int64, 1024)
	go func() {
		buf := make([]byte, 64<<10)
		var n int64
		for n < total {
			w, err := c.Write(buf)
			n += int64(w)
			select {
			case progress <- n:
			default:
			}
			if err != nil {
				break
			}
		}
		written <- n
	}()
	// Writes stall well before 64 MiB while the server is not reading.
	var last int64
	stall := time.NewTimer(500 * time.Millisecond)
loop:
	for {
		select {
		case n := <-progress:
			last = n
			stall.Reset(500 * time.Millisecond)
		case n := <-written:
			t.Fatalf("all %d bytes written while the server read nothing", n)
		case <-stall.C:
			break loop
		}
	}
	if last > 32<<20 {
		t.Errorf("%d bytes accepted before blocking; want it bounded by the flow-control windows", last)
	}
	close(release)
	if n := <-written; n < total {
		t.Errorf("after the server read again only %d of %d bytes were written", n, total)
	}
}

// TestSpliceServerFirst: the upstream answers and closes before the client
// half-closed (a server speaking first, or HTTP/1.0 closing after the
// response): the client must read everything and then EOF while its own
// direction stays open, and Splice must end cleanly once the client
// half-closes too.
func TestSpliceServerFirst(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		c, err := up.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, strings.Repeat("greeting ", 5000))
		c.Close()
	}()
	m := newMesh(t, 0)
	spliceErr := make(chan error, 1)
	h := hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		u, err := net.Dial("tcp", up.Addr().String())
		if err != nil {
			s.Reject(503, err.Error())
			return
		}
		defer u.Close()
		_, _, err = hbone.Splice(s, u)
		spliceErr <- err
	})
	_, addr := startServer(t, m, nil, h)
	c, err := newPool(t, m).Dial(ctxT(t), dialReq(m.source(t, clientID), addr))
	if err != nil {
		t.Fatal(err)
	}
	guard(c)
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != strings.Repeat("greeting ", 5000) {
		t.Fatalf("client read %d bytes, %v; want the whole greeting then EOF", len(got), err)
	}
	select {
	case err := <-spliceErr:
		t.Fatalf("Splice ended (%v) while the client's direction was still open", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := <-spliceErr; err != nil {
		t.Errorf("Splice: %v; want a clean end", err)
	}
}
