package hbone

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
)

// pipePeer is the far end of a client h2Conn on a net.Pipe: a bare
// HTTP/2 server made of a Framer that reads only when the test asks. A
// pipe's write blocks until the other end has read it all, as a socket's
// does once its peer stopped reading and the buffers filled.
type pipePeer struct {
	t  *testing.T
	fr *http2.Framer
}

// next reads one frame; DATA comes back as its stream and a copy of its
// payload.
func (p *pipePeer) next() (http2.Frame, string) {
	p.t.Helper()
	type read struct {
		f    http2.Frame
		data string
		err  error
	}
	got := make(chan read, 1)
	go func() {
		f, err := p.fr.ReadFrame()
		var data string
		if df, ok := f.(*http2.DataFrame); ok {
			data = string(df.Data()) // the Framer reuses its buffer
		}
		got <- read{f, data, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			p.t.Fatalf("peer: reading a frame: %v", r.err)
		}
		return r.f, r.data
	case <-time.After(10 * time.Second):
		p.t.Fatal("peer: no frame for 10 s")
		return nil, ""
	}
}

// startPipeClient starts a client h2Conn on a pipe and returns it with
// its peer, past the prefaces and the SETTINGS exchange.
func startPipeClient(t *testing.T) (*h2Conn, *pipePeer) {
	t.Helper()
	local, remote := net.Pipe()
	c := newH2Conn(local, true, spiffeid.ID{})
	p := &pipePeer{t: t, fr: http2.NewFramer(remote, remote)}
	t.Cleanup(func() {
		_ = remote.Close()
		_ = c.Close()
	})
	started := make(chan error, 1)
	go func() { started <- c.start(0) }()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(remote, preface); err != nil {
		t.Fatalf("reading the client preface: %v", err)
	}
	p.next() // SETTINGS
	p.next() // the connection's WINDOW_UPDATE
	if err := <-started; err != nil {
		t.Fatalf("start: %v", err)
	}
	// Windows of 1 MiB for the client's sends; the PING's answer says the
	// client has read them all.
	go func() {
		_ = p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		_ = p.fr.WriteWindowUpdate(0, 1<<20)
		_ = p.fr.WritePing(false, [8]byte{1})
	}()
	if f, _ := p.next(); !isSettingsAck(f) {
		t.Fatalf("frame %v, want the client's SETTINGS ACK", f.Header())
	}
	if f, _ := p.next(); f.Header().Type != http2.FramePing {
		t.Fatalf("frame %v, want the client's PING answer", f.Header())
	}
	return c, p
}

func isSettingsAck(f http2.Frame) bool {
	sf, ok := f.(*http2.SettingsFrame)
	return ok && sf.IsAck()
}

// openPipeStream opens a CONNECT stream on c, the peer reading its
// HEADERS.
func openPipeStream(t *testing.T, c *h2Conn, p *pipePeer) *h2Stream {
	t.Helper()
	if !c.reserve() {
		t.Fatal("no stream slot")
	}
	type opened struct {
		s   *h2Stream
		err error
	}
	done := make(chan opened, 1)
	go func() {
		s, err := c.open("10.0.0.1:80", nil)
		done <- opened{s, err}
	}()
	if f, _ := p.next(); f.Header().Type != http2.FrameHeaders {
		t.Fatalf("frame %v, want the stream's HEADERS", f.Header())
	}
	o := <-done
	if o.err != nil {
		t.Fatalf("open: %v", o.err)
	}
	return o.s
}

// TestWriterDoesNotWaitForAnotherSocketWrite: while one stream's write is
// stuck on the socket (the peer stopped reading), another stream's Write
// returns at once, its frame gathered for the stuck writer's next socket
// write; the frames reach the peer in order once it reads again, and
// Close sends what was gathered before it closes.
func TestWriterDoesNotWaitForAnotherSocketWrite(t *testing.T) {
	c, p := startPipeClient(t)
	s1 := openPipeStream(t, c, p)
	s3 := openPipeStream(t, c, p)

	first := make(chan error, 1)
	go func() {
		_, err := s1.Write([]byte("one"))
		first <- err
	}()
	waitFlushing(t, c) // s1's frame is on the (stuck) socket

	second := make(chan error, 1)
	go func() {
		_, err := s3.Write([]byte("three"))
		second <- err
	}()
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("s3 write: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("s3's Write waited for s1's socket write")
	}
	select {
	case err := <-first:
		t.Fatalf("s1's write returned (%v) while the peer was not reading", err)
	default:
	}

	closed := make(chan struct{})
	go func() {
		_ = c.Close()
		close(closed)
	}()
	// Close waits (up to a second) for the stuck writer to send what was
	// gathered: it must not have closed the socket under it.
	select {
	case <-closed:
		t.Fatal("Close returned before the gathered frames were written")
	case <-time.After(100 * time.Millisecond):
	}
	for _, want := range []struct {
		stream uint32
		data   string
	}{{s1.id, "one"}, {s3.id, "three"}} {
		f, data := p.next()
		if f.Header().Type != http2.FrameData || f.Header().StreamID != want.stream || data != want.data {
			t.Fatalf("frame %v %q, want DATA on stream %d %q", f.Header(), data, want.stream, want.data)
		}
	}
	if err := <-first; err != nil {
		t.Fatalf("s1 write: %v", err)
	}
	<-closed
}

// TestCloseAllSideBySide: closing a server's or a pool's connections, one
// whose writer is stuck (its Close waits up to a second for it) does not
// hold back the others' close.
func TestCloseAllSideBySide(t *testing.T) {
	stuck, stuckPeer := startPipeClient(t)
	s1 := openPipeStream(t, stuck, stuckPeer)
	go func() { _, _ = s1.Write([]byte("never read")) }()
	waitFlushing(t, stuck)
	idle, idlePeer := startPipeClient(t)

	done := make(chan struct{})
	go func() {
		closeAll([]*h2Conn{stuck, idle})
		close(done)
	}()
	closed := make(chan error, 1)
	go func() {
		_, err := idlePeer.fr.ReadFrame()
		closed <- err
	}()
	select {
	case err := <-closed:
		if err == nil {
			t.Fatal("the idle connection's peer read a frame, want the close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the idle connection was not closed")
	}
	stuck.mu.Lock()
	stuckClosed := stuck.err != nil
	stuck.mu.Unlock()
	if stuckClosed {
		t.Error("the idle connection was closed only after the stuck one: closeAll closed them one after the other")
	}
	<-done
}

// waitFlushing waits until a writer of c is in a socket write.
func waitFlushing(t *testing.T, c *h2Conn) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		c.wmu.Lock()
		stuck := c.flushing
		c.wmu.Unlock()
		if stuck {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no write reached the socket")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGatherAtMostABatch: behind a writer stuck in a socket write, other
// writers gather at most a batch (maxWriteBatch) and then wait, as a bulk
// writer must (gathering a connection's whole send window in memory made
// 32 bulk streams 2× slower: BenchmarkThroughputStreams).
func TestGatherAtMostABatch(t *testing.T) {
	c, p := startPipeClient(t)
	s1 := openPipeStream(t, c, p)
	s3 := openPipeStream(t, c, p)
	go func() { _, _ = s1.Write([]byte("one")) }()
	waitFlushing(t, c)

	big := make([]byte, 3*maxWriteBatch)
	wrote := make(chan error, 1)
	go func() {
		_, err := s3.Write(big)
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("a write of 3 batches returned (%v) behind a stuck socket write: it was all gathered", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.wmu.Lock()
	gathered := 0
	if c.wbuf != nil {
		gathered = len(*c.wbuf)
	}
	c.wmu.Unlock()
	if gathered > maxWriteBatch+4*frameHeaderLen {
		t.Errorf("%d bytes gathered behind the stuck write, want at most a batch (%d)", gathered, maxWriteBatch)
	}
	// The peer reads again: everything arrives and the write returns.
	got := 0
	for got < len(big) {
		f, data := p.next()
		if f.Header().Type == http2.FrameData && f.Header().StreamID == s3.id {
			got += len(data)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatalf("s3 write: %v", err)
	}
}
