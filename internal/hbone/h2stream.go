package hbone

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// chunks hold received data until it is read: pooled, so an idle stream
// holds none.
var chunks = sync.Pool{New: func() any { b := make([]byte, 0, dataFramePayload); return &b }}

// h2Stream is one CONNECT stream, either side. Reads and writes run on the
// caller's goroutine; the connection's reader feeds the receive buffer.
type h2Stream struct {
	c      *h2Conn
	id     uint32
	opened time.Time

	// Set before the stream is published, read-only after.
	authority string
	header    http.Header        // server: the request's regular headers
	ctx       context.Context    // server: done when the stream ends
	cancel    context.CancelFunc // server

	// Client: resp is closed once the response arrived (status set) or
	// the stream failed before it (status 0).
	resp       chan struct{}
	status     int  // guarded by rmu
	responded  bool // guarded by rmu
	gotHeaders bool // reader goroutine only

	// Receive side.
	rmu      sync.Mutex
	chunks   []*[]byte
	roff     int
	buffered int64 // received, not read
	unacked  int64 // read, not yet credited back with WINDOW_UPDATE
	rEOF     bool
	rErr     error
	released bool // the owner is done: incoming data is dropped
	rwake    chan struct{}
	rdl      deadline

	// Send side; sendMu serializes Write and CloseWrite.
	sendMu sync.Mutex
	wwake  chan struct{}
	wdl    deadline

	// Guarded by c.mu.
	sendWin int64
	sentEnd bool // END_STREAM sent
	recvEnd bool // END_STREAM received
	reset   bool // RST_STREAM sent or received, or the connection failed
	endErr  error

	bytesIn, bytesOut atomic.Int64
}

func newH2Stream(c *h2Conn) *h2Stream {
	return &h2Stream{
		c:      c,
		opened: time.Now(),
		rwake:  make(chan struct{}, 1),
		wwake:  make(chan struct{}, 1),
	}
}

func (s *h2Stream) wakeReader() {
	select {
	case s.rwake <- struct{}{}:
	default:
	}
}

func (s *h2Stream) wakeWriter() {
	select {
	case s.wwake <- struct{}{}:
	default:
	}
}

// setResponse records the client stream's answer (0: none, failed).
func (s *h2Stream) setResponse(status int) {
	s.rmu.Lock()
	if !s.responded && s.resp != nil {
		s.responded = true
		s.status = status
		close(s.resp)
	}
	s.rmu.Unlock()
}

// responseStatus returns the status recorded by setResponse, and the
// stream's error if it has none.
func (s *h2Stream) responseStatus() (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.status == 0 {
		if s.rErr != nil {
			return 0, s.rErr
		}
		return 0, ErrStreamClosed
	}
	return s.status, nil
}

// ---- receiving ----

// receive takes a DATA frame's payload (flow: its flow-controlled length,
// padding included) or, with end, the end of the peer's direction.
func (s *h2Stream) receive(p []byte, flow int64, end bool) {
	c := s.c
	s.rmu.Lock()
	switch {
	case s.rEOF:
		s.rmu.Unlock()
		c.credit(flow)
		c.streamError(s.id, http2.ErrCodeStreamClosed, "frame after END_STREAM")
		return
	case s.buffered+s.unacked+flow > streamWindowSize:
		s.rmu.Unlock()
		c.credit(flow)
		c.streamError(s.id, http2.ErrCodeFlowControl, "DATA beyond the stream's receive window")
		return
	}
	kept := int64(0)
	if !s.released && s.rErr == nil {
		for rest := p; len(rest) > 0; {
			if n := len(s.chunks); n == 0 || len(*s.chunks[n-1]) == cap(*s.chunks[n-1]) {
				s.chunks = append(s.chunks, chunks.Get().(*[]byte))
			}
			last := s.chunks[len(s.chunks)-1]
			m := min(len(rest), cap(*last)-len(*last))
			*last = append(*last, rest[:m]...)
			rest = rest[m:]
		}
		kept = int64(len(p))
		s.buffered += kept
		// Padding counts against the window but is never read.
		s.unacked += flow - kept
	}
	if end {
		s.rEOF = true
	}
	s.rmu.Unlock()
	c.credit(flow - kept)
	if end {
		c.mu.Lock()
		s.recvEnd = true
		s.finishLocked()
		c.mu.Unlock()
	}
	s.wakeReader()
}

// Read reads received data; io.EOF after the peer's END_STREAM.
func (s *h2Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		s.rmu.Lock()
		if s.buffered > 0 {
			n, done := 0, 0
			for n < len(p) && done < len(s.chunks) {
				ch := s.chunks[done]
				m := copy(p[n:], (*ch)[s.roff:])
				n += m
				s.roff += m
				if s.roff == len(*ch) {
					*ch = (*ch)[:0]
					chunks.Put(ch)
					done++
					s.roff = 0
				}
			}
			// The chunks read go from the front of the queue, which keeps
			// its array: a stream receiving a frame at a time appends to it
			// without allocating.
			left := copy(s.chunks, s.chunks[done:])
			clear(s.chunks[left:])
			s.chunks = s.chunks[:left]
			s.buffered -= int64(n)
			var inc int64
			if !s.rEOF && s.rErr == nil {
				s.unacked += int64(n)
				if s.unacked >= streamWindowSize/4 {
					inc, s.unacked = s.unacked, 0
				}
			}
			s.rmu.Unlock()
			s.bytesIn.Add(int64(n))
			s.c.credit(int64(n))
			if inc > 0 {
				s.c.enqueue(ctrlFrame{kind: ctrlWindowUpdate, stream: s.id, n: uint32(inc)})
			}
			return n, nil
		}
		err := s.rErr
		if err == nil && s.rEOF {
			err = io.EOF
		}
		s.rmu.Unlock()
		if err != nil {
			return 0, err
		}
		dl := s.rdl.wait()
		if dl == nil {
			// No deadline: a plain receive, cheaper than a select (a
			// deadline set meanwhile wakes this read, which then sees it).
			<-s.rwake
			continue
		}
		select {
		case <-s.rwake:
		case <-dl:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// unusable reports whether the stream, idle between the requests of a
// keep-alive connection tunneled through it, can no longer carry one: the
// peer ended its direction (END_STREAM: the server behind it closed the
// connection) or sent something unasked that is still unread, the stream
// was reset or released, our own direction ended, or its HTTP/2
// connection failed or is going away (GOAWAY either way: a draining
// connection's streams are cut once its drain ends, so a request had
// better go on a new stream on another connection). A request written on
// such a stream would fail, and one that is not safe to resend would be
// lost. It takes each lock briefly, one at a time, and never reads or
// waits.
func (s *h2Stream) unusable() bool {
	s.rmu.Lock()
	ended := s.rEOF || s.rErr != nil || s.buffered > 0 || s.released
	s.rmu.Unlock()
	if ended {
		return true
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.reset || s.sentEnd || c.err != nil || c.goawayRecv || c.goawaySent || c.closeIdle
}

// ---- sending ----

// sendErrLocked says why the stream takes no more data, or nil.
func (s *h2Stream) sendErrLocked() error {
	switch {
	case s.reset || s.c.err != nil:
		err := s.endErr
		if err == nil {
			err = s.c.err
		}
		if err == nil {
			return ErrStreamClosed
		}
		return closedError{err}
	case s.sentEnd:
		return ErrStreamClosed
	}
	return nil
}

// awaitWindow waits for send window and takes up to want bytes of it.
func (s *h2Stream) awaitWindow(want int) (int, error) {
	c := s.c
	for {
		c.mu.Lock()
		if err := s.sendErrLocked(); err != nil {
			c.mu.Unlock()
			return 0, err
		}
		if s.sendWin > 0 && c.sendWin > 0 {
			n := int(min(int64(min(want, maxWriteBatch)), s.sendWin, c.sendWin))
			s.sendWin -= int64(n)
			c.sendWin -= int64(n)
			c.mu.Unlock()
			return n, nil
		}
		c.mu.Unlock()
		select {
		case <-s.wwake:
		case <-s.wdl.wait():
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// Write sends p, blocking while the peer's flow-control window is full. It
// returns once p is copied into the connection's batch, which the flusher
// writes (h2Conn.write); it also waits while a full batch is not taken.
func (s *h2Stream) Write(p []byte) (int, error) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	total := 0
	for len(p) > 0 {
		n, err := s.awaitWindow(len(p))
		if err != nil {
			return total, err
		}
		chunk := p[:n]
		err = s.c.write(func() error {
			if err := s.writableLocked(); err != nil {
				return err
			}
			s.c.writeDataLocked(s.id, chunk, false)
			return nil
		})
		if err != nil {
			// Not sent: the connection gets its window back (the stream's
			// is moot, it ended).
			s.c.mu.Lock()
			s.c.sendWin += int64(n)
			s.c.mu.Unlock()
			return total, err
		}
		total += n
		s.bytesOut.Add(int64(n))
		p = p[n:]
	}
	return total, nil
}

// writableLocked, with gmu held, checks that the stream may still carry
// frames: after our RST_STREAM went out, it must not.
func (s *h2Stream) writableLocked() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.sendErrLocked()
}

// CloseWrite sends END_STREAM: the peer reads io.EOF after the data sent.
func (s *h2Stream) CloseWrite() error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	c := s.c
	c.mu.Lock()
	if s.sentEnd && !s.reset {
		c.mu.Unlock()
		return nil
	}
	if err := s.sendErrLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	return c.write(func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := s.sendErrLocked(); err != nil {
			return err
		}
		s.sentEnd = true
		c.writeDataLocked(s.id, nil, true)
		s.finishLocked()
		return nil
	})
}

// reject answers a request with status and reason, which ends the
// server's direction, and resets the client's if it is still open.
func (s *h2Stream) reject(status int, reason string) {
	c := s.c
	_ = c.write(func() error {
		c.mu.Lock()
		if err := s.sendErrLocked(); err != nil {
			c.mu.Unlock()
			return err
		}
		body := int64(len(reason))
		withBody := body > 0 && body <= s.sendWin && body <= c.sendWin
		if withBody {
			s.sendWin -= body
			c.sendWin -= body
		}
		s.sentEnd = true
		c.mu.Unlock()
		fields := []hpack.HeaderField{
			{Name: ":status", Value: strconv.Itoa(status)},
			{Name: "content-type", Value: "text/plain; charset=utf-8"},
		}
		if err := c.writeHeadersLocked(s.id, fields, !withBody); err != nil {
			return err
		}
		if withBody {
			c.writeDataLocked(s.id, []byte(reason), true)
		}
		c.mu.Lock()
		s.finishLocked()
		c.mu.Unlock()
		return nil
	})
	s.release(http2.ErrCodeNo)
}

// sentEndClean reports whether our direction ended with END_STREAM.
func (s *h2Stream) sentEndClean() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.sentEnd && !s.reset
}

// ---- ending ----

// finishLocked forgets the stream once both directions ended.
func (s *h2Stream) finishLocked() {
	if s.sentEnd && s.recvEnd && !s.reset {
		s.c.removeLocked(s)
		if s.cancel != nil {
			s.cancel()
		}
	}
}

// abort resets the stream (RST_STREAM code) unless it already ended; reads
// and writes then fail with err.
func (s *h2Stream) abort(err error, code http2.ErrCode) {
	c := s.c
	c.mu.Lock()
	if s.reset || (s.sentEnd && s.recvEnd) || c.err != nil {
		c.mu.Unlock()
		return
	}
	s.reset = true
	s.endErr = err
	c.mu.Unlock()
	// The RST_STREAM is queued before the stream leaves the count of open
	// streams, and every write takes the queued control frames before its
	// own: a stream opened in the slot this one frees then reaches the
	// peer after the reset, never as one stream over the peer's limit
	// (which it would refuse).
	c.enqueue(ctrlFrame{kind: ctrlReset, stream: s.id, code: code})
	c.mu.Lock()
	c.removeLocked(s)
	c.mu.Unlock()
	s.wakeEnded(err, false)
}

// peerReset handles the peer's RST_STREAM.
func (s *h2Stream) peerReset(err error) {
	c := s.c
	c.mu.Lock()
	if s.reset {
		c.mu.Unlock()
		return
	}
	s.reset = true
	s.endErr = err
	c.removeLocked(s)
	c.mu.Unlock()
	s.wakeEnded(err, true)
}

// connFailed ends the stream with its connection.
func (s *h2Stream) connFailed(err error) {
	c := s.c
	c.mu.Lock()
	already := s.reset
	s.reset = true
	if s.endErr == nil {
		s.endErr = err
	}
	c.mu.Unlock()
	if !already {
		s.wakeEnded(err, true)
	}
}

// ended2 wakes everyone waiting on an ended stream. Data already received
// stays readable when keepData (the peer ended it: what it sent before is
// valid); reads then fail with err, or end with io.EOF if the peer's
// direction had ended cleanly.
func (s *h2Stream) wakeEnded(err error, keepData bool) {
	s.rmu.Lock()
	if !s.rEOF && s.rErr == nil {
		s.rErr = closedError{err}
	}
	var drop int64
	if !keepData {
		drop = s.dropLocked()
	}
	s.rmu.Unlock()
	s.c.credit(drop)
	s.setResponse(0)
	s.wakeReader()
	s.wakeWriter()
	if s.cancel != nil {
		s.cancel()
	}
}

// dropLocked discards buffered data and returns how much.
func (s *h2Stream) dropLocked() int64 {
	n := s.buffered
	for _, ch := range s.chunks {
		*ch = (*ch)[:0]
		chunks.Put(ch)
	}
	s.chunks, s.roff, s.buffered = nil, 0, 0
	return n
}

// release is the owner's last call: the stream is reset with code unless
// both directions ended, and buffered data is dropped.
func (s *h2Stream) release(code http2.ErrCode) {
	s.abort(net.ErrClosed, code)
	s.rmu.Lock()
	s.released = true
	drop := s.dropLocked()
	s.rmu.Unlock()
	s.c.credit(drop)
	s.rdl.stop()
	s.wdl.stop()
}

// ---- deadlines ----

// setReadDeadline sets the read deadline and wakes a Read that waits: it
// waits on the channel the deadline had when it looked, which the first
// deadline set replaces (a stream without one allocates none).
func (s *h2Stream) setReadDeadline(t time.Time) {
	s.rdl.set(t)
	s.wakeReader()
}

// setWriteDeadline is setReadDeadline for a Write waiting for window.
func (s *h2Stream) setWriteDeadline(t time.Time) {
	s.wdl.set(t)
	s.wakeWriter()
}

// deadline is a settable point in time whose channel closes when it
// passes, as net.Pipe's deadlines do. The zero value has no deadline and
// allocates nothing.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{} // nil until a deadline is set; closed when it passed
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.ch // the timer fired: wait for it to have closed ch
	}
	d.timer = nil
	closed := d.ch != nil && isClosed(d.ch)
	if t.IsZero() {
		if closed {
			d.ch = nil
		}
		return
	}
	if d.ch == nil || closed {
		d.ch = make(chan struct{})
	}
	if dur := time.Until(t); dur > 0 {
		ch := d.ch
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	close(d.ch)
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

// stop cancels a pending deadline's timer (the stream is released). The
// timer is forgotten: set takes a false Stop for a timer that fired and
// waits for it to close ch, which a timer stopped before it fired never
// does (set after stop waited forever, holding mu: a gRPC client setting a
// write deadline as it closed its released tunnel hung).
func (d *deadline) stop() {
	d.mu.Lock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.ch // it fired: wait for it to have closed ch
	}
	d.timer = nil
	d.mu.Unlock()
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
