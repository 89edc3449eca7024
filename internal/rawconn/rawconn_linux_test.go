//go:build linux

package rawconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestRawIO: the raw reader and writer behave as net.Conn's Read and
// Write: data both ways (more than the socket buffers hold, so writes
// wait for room), io.EOF at the peer's end, deadlines, closed connections.
func TestRawIO(t *testing.T) {
	c, peer := tcpPair(t)
	rd := Wrap(c)
	wr := rd
	if _, ok := rd.(*rawIO); !ok {
		t.Fatalf("a TCP connection gets %T; want the raw reader", rd)
	}

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	if n, err := wr.Write(big); err != nil || n != len(big) {
		t.Fatalf("write: %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("the peer read %d bytes, not what was written", len(b))
	}

	go func() { _, _ = peer.Write(big) }()
	if b, err := io.ReadAll(io.LimitReader(rd, int64(len(big)))); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("read: %d bytes, %v", len(b), err)
	}

	// No allocation per call: the callbacks are bound once.
	one := make([]byte, 1)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := wr.Write(one); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, one); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(one); err != nil {
			t.Fatal(err)
		}
		if _, err := rd.Read(one); err != nil {
			t.Fatal(err)
		}
	}); n > 0 {
		t.Errorf("a raw read and write allocate %v times; want none", n)
	}

	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := rd.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v; want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if _, err := rd.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v; want a net.Error that times out", err)
	}
	_ = c.SetReadDeadline(time.Time{})

	_ = peer.Close()
	if n, err := rd.Read(make([]byte, 1)); n != 0 || err != io.EOF { //nolint:errorlint // io.Reader returns io.EOF itself, never wrapped
		t.Fatalf("read after the peer closed: %d, %v; want io.EOF", n, err)
	}
	_ = c.Close()
	if _, err := rd.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v; want net.ErrClosed", err)
	}
	if _, err := wr.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v; want net.ErrClosed", err)
	}
}

// TestUnusable: an idle connection is usable until its peer closes it or
// sends something unasked; looking reads nothing and never waits.
func TestUnusable(t *testing.T) {
	pair := func() (net.Conn, net.Conn) { return tcpPair(t) }
	// eventually waits for what the peer did to arrive over loopback.
	eventually := func(c net.Conn) bool {
		for range 100 {
			if Unusable(c) {
				return true
			}
			time.Sleep(10 * time.Millisecond)
		}
		return false
	}

	c, peer := pair()
	if Unusable(c) || Unusable(Wrap(c)) {
		t.Fatal("an open, idle connection is called unusable")
	}
	peer.Close()
	if !eventually(Wrap(c)) {
		t.Fatal("a connection its peer closed is called usable")
	}

	c, peer = pair()
	if _, err := peer.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if !eventually(c) {
		t.Fatal("a connection with unasked data is called usable")
	}
	// The data is still there to read: looking only peeked.
	buf := make([]byte, 8)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "HTTP/1.1" {
		t.Fatalf("after Unusable, read %q, %v", buf, err)
	}

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Unusable(a) {
		t.Fatal("a connection that is not TCP is called unusable")
	}
}

// tcpPair returns both ends of a loopback TCP connection, closed when the
// test ends.
func tcpPair(t *testing.T) (c, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	peer = <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { peer.Close() })
	return c, peer
}
