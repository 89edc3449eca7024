package hbone

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
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
	<-wrote // the test writes with the peer's Framer next
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

// waitFlushing waits until a writer of c is in a socket write.
func waitFlushing(t *testing.T, c *h2Conn) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		c.gmu.Lock()
		stuck := c.flushing
		c.gmu.Unlock()
		if stuck {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no write reached the socket")
		}
		time.Sleep(time.Millisecond)
	}
}

// stuckFlusher starts a client on a pipe with two streams, s1 and s3, s1
// writing "one": the flusher, stuck on the socket until the peer reads.
// first gets s1's Write's error.
func stuckFlusher(t *testing.T) (c *h2Conn, p *pipePeer, s1, s3 *h2Stream, first <-chan error) {
	t.Helper()
	c, p = startPipeClient(t)
	s1 = openPipeStream(t, c, p)
	s3 = openPipeStream(t, c, p)
	wrote := make(chan error, 1)
	go func() {
		_, err := s1.Write([]byte("one"))
		wrote <- err
	}()
	waitFlushing(t, c)
	return c, p, s1, s3, wrote
}

// TestWriterDoesNotWaitForAnotherSocketWrite: while one stream's write is
// stuck on the socket (the peer stopped reading), another stream's Write
// returns at once, its frame gathered for the flusher's next socket
// write; the frames reach the peer in order once it reads again, and
// Close sends what was gathered before it closes.
func TestWriterDoesNotWaitForAnotherSocketWrite(t *testing.T) {
	c, p, s1, s3, first := stuckFlusher(t)

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
	// Close waits (up to a second) for the flusher to send what was
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

// TestGatherAtMostABatch: behind a writer stuck in a socket write, other
// writers gather at most gatherLimit (and the write that crossed it) and
// then wait, as a bulk writer must (gathering a connection's whole send
// window in memory made 32 bulk streams 2× slower:
// BenchmarkThroughputStreams).
func TestGatherAtMostABatch(t *testing.T) {
	c, p, _, s3, _ := stuckFlusher(t)

	big := make([]byte, 4*maxWriteBatch)
	wrote := make(chan error, 1)
	go func() {
		_, err := s3.Write(big)
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("a write of 4 batches returned (%v) behind a stuck socket write: it was all gathered", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.gmu.Lock()
	gathered := c.gatheredLocked()
	c.gmu.Unlock()
	if most := gatherLimit + maxWriteBatch + 8*frameHeaderLen; gathered > most {
		t.Errorf("%d bytes gathered behind the stuck write, want at most %d", gathered, most)
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

// TestWriterFlushesABoundedRun: a stream's writer that became the flusher
// writes its own batch and at most one more, then hands the role to
// a goroutine of the connection and returns — while another stream keeps
// writing, it is not kept writing that one's frames.
func TestWriterFlushesABoundedRun(t *testing.T) {
	_, p, _, s3, first := stuckFlusher(t)

	stop := make(chan struct{})
	writing := make(chan error, 1)
	go func() {
		chunk := make([]byte, 1024)
		for {
			select {
			case <-stop:
				writing <- nil
				return
			default:
			}
			if _, err := s3.Write(chunk); err != nil {
				writing <- err
				return
			}
		}
	}()
	// The peer reads everything from now on, slowly enough that s3 gathers
	// more during each socket write, and gives the window back so s3 never
	// stops for flow control.
	go func() {
		for {
			f, err := p.fr.ReadFrame()
			if err != nil {
				return
			}
			if df, ok := f.(*http2.DataFrame); ok && df.Length > 0 {
				_ = p.fr.WriteWindowUpdate(0, df.Length)
				_ = p.fr.WriteWindowUpdate(df.StreamID, df.Length)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	select {
	case err := <-first:
		if err != nil {
			t.Fatalf("s1 write: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("s1's Write did not return in 5 s while s3 kept writing: its flusher run has no bound")
	}
	close(stop)
	if err := <-writing; err != nil {
		t.Fatalf("s3 write: %v", err)
	}
}

// TestReaderNeverWritesToTheSocket: the frame reader answers a PING by
// queueing the answer, not by writing it; with the peer not reading, the
// reader still reads the next frames and delivers a stream's data. (A
// reader blocked on a write to a peer whose reader is blocked the same
// way would never read again.)
func TestReaderNeverWritesToTheSocket(t *testing.T) {
	c, p := startPipeClient(t)
	s1 := openPipeStream(t, c, p)

	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	sent := make(chan error, 1)
	go func() {
		for i := range 4 {
			if err := p.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
				sent <- err
				return
			}
		}
		if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s1.id, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
			sent <- err
			return
		}
		sent <- p.fr.WriteData(s1.id, false, []byte("hello"))
	}()
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 16)
		n, _ := s1.Read(b)
		got <- string(b[:n])
	}()
	select {
	case data := <-got:
		if data != "hello" {
			t.Fatalf("stream read %q, want hello", data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream's data was not delivered in 5 s: the reader is stuck writing the PING answers to a peer that does not read")
	}
	if err := <-sent; err != nil {
		t.Fatalf("peer: %v", err)
	}
	// The answers go out once the peer reads.
	for i := range 4 {
		f, _ := p.next()
		if pf, ok := f.(*http2.PingFrame); !ok || !pf.IsAck() || pf.Data[0] != byte(i) {
			t.Fatalf("frame %v, want PING ACK %d", f.Header(), i)
		}
	}
}

// TestBulkBothWaysOnSmallSocketBuffers: streams sending bulk both ways at
// once over a TCP connection with small socket buffers all finish: neither
// side's reader stops reading while its writers wait for the other side.
func TestBulkBothWaysOnSmallSocketBuffers(t *testing.T) {
	const streams, size = 8, 2 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	accepted := make(chan net.Conn, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- raw
	}()
	craw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sraw := <-accepted
	if sraw == nil {
		t.Fatal("accept failed")
	}
	for _, raw := range []net.Conn{craw, sraw} {
		tc := raw.(*net.TCPConn)
		_ = tc.SetReadBuffer(32 << 10)
		_ = tc.SetWriteBuffer(32 << 10)
	}

	// exchange sends size bytes on rw while it reads size bytes from it.
	exchange := func(rw io.ReadWriter) error {
		errs := make(chan error, 1)
		go func() {
			n, err := io.Copy(io.Discard, io.LimitReader(rw, size))
			if err == nil && n != size {
				err = io.ErrUnexpectedEOF
			}
			errs <- err
		}()
		if _, err := rw.Write(make([]byte, size)); err != nil {
			return err
		}
		return <-errs
	}
	server := newH2Conn(sraw, false, spiffeid.ID{})
	server.maxStreams = DefaultMaxConcurrentStreams
	served := make(chan error, streams)
	server.onStream = func(st *h2Stream) {
		newStream(st).serve(HandlerFunc(func(_ context.Context, s *Stream) {
			served <- exchange(s)
		}))
	}
	client := newH2Conn(craw, true, spiffeid.ID{})
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.Close()
	})
	started := make(chan error, 1)
	go func() { started <- server.start(0) }()
	if err := client.start(0); err != nil {
		t.Fatalf("client start: %v", err)
	}
	if err := <-started; err != nil {
		t.Fatalf("server start: %v", err)
	}
	<-client.readSettings

	var wg sync.WaitGroup
	clientErrs := make(chan error, streams)
	for range streams {
		if !client.reserve() {
			t.Fatal("no stream slot")
		}
		s, err := client.open("10.0.0.1:80", nil)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		wg.Go(func() {
			<-s.resp
			if status, err := s.responseStatus(); status != 200 {
				clientErrs <- errors.Join(errors.New("CONNECT not answered 200"), err)
				return
			}
			clientErrs <- exchange(s)
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("bulk both ways did not finish in 60 s")
	}
	for range streams {
		if err := <-clientErrs; err != nil {
			t.Errorf("client stream: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("server stream: %v", err)
		}
	}
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

// TestCloseWakesWritersWaitingForRoom: writers waiting behind a full batch
// while the flusher is stuck on a peer that stopped reading get an error
// when the connection closes; none is left waiting.
func TestCloseWakesWritersWaitingForRoom(t *testing.T) {
	c, _, _, s3, first := stuckFlusher(t)
	wrote := make(chan error, 1)
	go func() {
		_, err := s3.Write(make([]byte, 4*maxWriteBatch))
		wrote <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		c.gmu.Lock()
		full := c.gatheredLocked() >= gatherLimit
		c.gmu.Unlock()
		if full {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch behind the stuck write never filled")
		}
	}
	closed := make(chan struct{})
	go func() {
		_ = c.Close()
		close(closed)
	}()
	for name, ch := range map[string]<-chan error{"s1 (the flusher)": first, "s3 (waiting for room)": wrote} {
		select {
		case err := <-ch:
			if err == nil {
				t.Errorf("%s: Write returned no error, but its data never left", name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Write still blocked 10 s after Close", name)
		}
	}
	<-closed
}

// TestPingFloodFromAPeerThatDoesNotRead: the reader queues the answers to
// PINGs instead of writing them, so a peer sending PINGs while it never
// reads would grow the queue; past maxQueuedControl the connection ends
// (ENHANCE_YOUR_CALM), and the peer's writes fail.
func TestPingFloodFromAPeerThatDoesNotRead(t *testing.T) {
	c, p := startPipeClient(t)
	sent := 0
	flooded := make(chan error, 1)
	go func() {
		for {
			if err := p.fr.WritePing(false, [8]byte{2}); err != nil {
				flooded <- err
				return
			}
			sent++
		}
	}()
	select {
	case <-flooded:
	case <-time.After(20 * time.Second):
		t.Fatalf("the connection still reads PINGs after %d unanswered ones", sent)
	}
	if sent > 2*maxQueuedControl {
		t.Errorf("the connection read %d PINGs before it ended; want about %d", sent, maxQueuedControl)
	}
	if !c.dead() {
		t.Error("the connection did not fail")
	}
}

// TestResetPrecedesTheNextStreamsHeaders: a stream reset while the socket
// is busy leaves its slot at once; a stream opened in that slot must reach
// the peer after the reset, or a peer at its stream limit counts one
// stream too many and refuses the new one (TestChaosStreams found Dials
// refused twice in a row, past the pool's one retry).
func TestResetPrecedesTheNextStreamsHeaders(t *testing.T) {
	c, p, _, s3, first := stuckFlusher(t)
	s3.release(http2.ErrCodeCancel)
	if !c.reserve() {
		t.Fatal("no stream slot after the reset")
	}
	opened := make(chan error, 1)
	go func() {
		_, err := c.open("10.0.0.1:80", nil)
		opened <- err
	}()
	select { // behind the stuck flusher, open gathers its HEADERS and returns
	case err := <-opened:
		if err != nil {
			t.Fatalf("open: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("open waited for the stuck socket write")
	}
	if f, data := p.next(); f.Header().Type != http2.FrameData || data != "one" {
		t.Fatalf("frame %v %q, want the stuck DATA \"one\"", f.Header(), data)
	}
	if f, _ := p.next(); f.Header().Type != http2.FrameRSTStream || f.Header().StreamID != s3.id {
		t.Fatalf("frame %v, want RST_STREAM on stream %d before the next stream's HEADERS", f.Header(), s3.id)
	}
	if f, _ := p.next(); f.Header().Type != http2.FrameHeaders || f.Header().StreamID != s3.id+2 {
		t.Fatalf("frame %v, want HEADERS on stream %d", f.Header(), s3.id+2)
	}
	if err := <-first; err != nil {
		t.Fatalf("s1 write: %v", err)
	}
}
