package hbone

import (
	"bytes"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestReceiveQueueKeepsOrder: payloads received a frame at a time, some
// spanning several buffered chunks, read back in reads of every size,
// come out whole and in order, the queue of chunks reused as it empties.
func TestReceiveQueueKeepsOrder(t *testing.T) {
	local, remote := net.Pipe()
	defer func() { _ = local.Close(); _ = remote.Close() }()
	s := newH2Stream(newH2Conn(local, false, spiffeid.ID{}))
	rng := rand.New(rand.NewPCG(1, 2))
	var sent, got bytes.Buffer
	buf := make([]byte, 3*dataFramePayload)
	// Under the stream's and the connection's WINDOW_UPDATE thresholds:
	// nothing is written to the (unread) pipe.
	for sent.Len() < streamWindowSize/8 {
		p := make([]byte, 1+rng.IntN(2*dataFramePayload))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		sent.Write(p)
		s.receive(p, int64(len(p)), false)
		// Leave some buffered now and then, so reads span frames.
		for s.buffered > int64(rng.IntN(dataFramePayload)) {
			n, err := s.Read(buf[:1+rng.IntN(len(buf)-1)])
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			got.Write(buf[:n])
		}
	}
	for s.buffered > 0 {
		n, err := s.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got.Write(buf[:n])
	}
	if !bytes.Equal(got.Bytes(), sent.Bytes()) {
		t.Fatalf("read %d bytes that differ from the %d received", got.Len(), sent.Len())
	}
	if len(s.chunks) != 0 {
		t.Fatalf("%d chunks left after reading everything", len(s.chunks))
	}
}

// TestDeadlineSetAfterStop: a deadline stopped before it fired (the stream
// was released) can be set again, to a time past or to come, and its
// channel closes when that time passes; set used to wait forever for the
// stopped timer to close the channel.
func TestDeadlineSetAfterStop(t *testing.T) {
	var d deadline
	d.set(time.Now().Add(time.Hour))
	d.stop()
	done := make(chan struct{})
	go func() {
		d.set(time.Now().Add(10 * time.Millisecond))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("set after stop still waits after 5 s")
	}
	select {
	case <-d.wait():
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline set after stop did not pass")
	}
	d.stop() // after it fired
	d.set(time.Now().Add(-time.Second))
	select {
	case <-d.wait():
	default:
		t.Error("a deadline in the past set after stop is not passed")
	}
}
