package hbone_test

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/hbone"
)

// TestDeadlineSetWhileWaiting: a deadline set, or moved into the past,
// while a Read or a Write already waits ends the wait, on both sides, as a
// TCP connection's does. net/http's server stops its background read that
// way, and the waypoint its watch on a client's tunnel: a Read that missed
// it waited until the client sent more (TestChaosThroughHBONE hung there).
func TestDeadlineSetWhileWaiting(t *testing.T) {
	m := newMesh(t, time.Hour)
	serverSide := make(chan *hbone.Stream, 1)
	release := make(chan struct{})
	_, addr := startServer(t, m, nil, hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		_ = s.Accept()
		serverSide <- s
		<-release // reads nothing, writes nothing
	}))
	defer close(release)
	c, err := newPool(t, m).Dial(ctxT(t), dialReq(m.source(t, clientID), addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-serverSide

	ends := func(what string, wait func() error, set func(time.Time) error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- wait() }()
		time.Sleep(50 * time.Millisecond) // waiting, with no deadline yet
		select {
		case err := <-done:
			t.Fatalf("%s returned before its deadline: %v", what, err)
		default:
		}
		_ = set(time.Now().Add(-time.Second))
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("%s: %v, want os.ErrDeadlineExceeded", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still waits 5 s after its deadline passed", what)
		}
		_ = set(time.Time{}) // usable again
	}
	read := func(r io.Reader) func() error {
		return func() error { _, err := r.Read(make([]byte, 10)); return err }
	}
	// The peer reads nothing: a big enough Write waits for window.
	write := func(w io.Writer) func() error {
		return func() error { _, err := w.Write(make([]byte, 64<<20)); return err }
	}
	ends("client Read", read(c), c.SetReadDeadline)
	ends("server Read", read(s), s.SetReadDeadline)
	ends("client Read (SetDeadline)", read(c), c.SetDeadline)
	ends("server Read (SetDeadline)", read(s), s.SetDeadline)
	ends("client Write", write(c), c.SetWriteDeadline)
	ends("server Write", write(s), s.SetWriteDeadline)
}
