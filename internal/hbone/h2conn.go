package hbone

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Sizes of the HTTP/2 layer.
const (
	// tlsRecordPayload is the most plaintext one TLS record carries.
	tlsRecordPayload = 16 << 10
	frameHeaderLen   = 9
	// dataFramePayload is the DATA payload that, with its frame header,
	// fills one TLS record exactly: a 32 KiB Write makes two records, not
	// two full ones and a 9-byte straggler.
	dataFramePayload = tlsRecordPayload - frameHeaderLen
	// minFrameSize is the protocol's minimum SETTINGS_MAX_FRAME_SIZE, which
	// both ends advertise by default: the frame reader keeps a buffer of
	// that size per connection.
	minFrameSize = 16 << 10
	// Receive windows: larger than the protocol default so bulk transfers
	// do not wait for WINDOW_UPDATE round trips. Memory is committed only
	// while data is buffered (pooled chunks), never for an idle stream.
	streamWindowSize = 4 << 20
	connWindowSize   = 16 << 20
	defaultWindow    = 65535
	maxWindow        = 1<<31 - 1
	// maxHeaderListSize bounds a request's headers (baggage alone may be
	// 8 KiB).
	maxHeaderListSize = 32 << 10
	// maxQueuedControl bounds the control frames (acks, resets, window
	// updates) waiting for the socket; a peer that makes us queue more is
	// flooding (PING or SETTINGS floods) and gets ENHANCE_YOUR_CALM.
	maxQueuedControl = 4096
	// maxWriteBatch bounds the bytes a stream's Write gathers at a time.
	maxWriteBatch = 4 * dataFramePayload
	// gatherLimit bounds the frames gathered behind a socket write: a
	// writer finding that much waits for the flusher to take it. Bulk
	// writers must not pile a connection's send window into memory (that
	// made 32 bulk streams 2× slower: BenchmarkThroughputStreams).
	gatherLimit = maxWriteBatch
	// keptWbuf is the largest gathering buffer kept for reuse.
	keptWbuf = 4 * gatherLimit
)

// errRefusedStream marks a stream the peer did not process (REFUSED_STREAM,
// or above the last stream id of its GOAWAY): safe to retry elsewhere.
var errRefusedStream = errors.New("stream refused by the server before processing")

// connError is an HTTP/2 connection error: GOAWAY with Code, then close.
type connError struct {
	Code   http2.ErrCode
	Reason string
}

func (e connError) Error() string { return fmt.Sprintf("HTTP/2 %v: %s", e.Code, e.Reason) }

// peerGoAway is the error of streams and connections the peer ended with a
// GOAWAY carrying an error code.
type peerGoAway struct {
	Code  http2.ErrCode
	Debug string
}

func (e peerGoAway) Error() string {
	if e.Debug != "" {
		return fmt.Sprintf("peer closed the connection: GOAWAY %v (%s)", e.Code, e.Debug)
	}
	return fmt.Sprintf("peer closed the connection: GOAWAY %v", e.Code)
}

// streamReset is the error of a stream the peer reset.
type streamReset struct{ Code http2.ErrCode }

func (e streamReset) Error() string { return "stream reset by the peer: " + e.Code.String() }

// ctrlKind is what a queued control frame is.
type ctrlKind uint8

const (
	ctrlSettingsAck ctrlKind = iota
	ctrlPingAck
	ctrlWindowUpdate
	ctrlReset
	ctrlGoAway
	ctrlResponse     // headers of a response
	ctrlResponseBody // its body, ending the stream
)

// ctrlFrame is a frame queued by a goroutine that must not block on the
// socket (above all the frame reader: if both peers' readers blocked
// writing to each other with full socket buffers, neither would read
// again). The flusher encodes it into its next batch; when no flusher is
// active, a goroutine is started to be one (handOffLocked).
type ctrlFrame struct {
	kind   ctrlKind
	stream uint32
	n      uint32        // window increment; header table size for a settings ack
	code   http2.ErrCode // reset, goaway
	ping   [8]byte
	resp   *response
}

// response is a complete answer the reader gives by itself (405, 400,
// refusals): headers, and a short body ending the stream.
type response struct {
	status int
	header [][2]string
	body   string
}

// wbufs holds the buffers frames are gathered in before a socket write;
// a connection holds one only while it has frames to write.
var wbufs = sync.Pool{New: func() any { b := make([]byte, 0, maxWriteBatch+4*frameHeaderLen); return &b }}

// h2Conn is one HTTP/2 connection carrying CONNECT streams, client or
// server side. One goroutine reads frames and dispatches them without ever
// writing to the socket. Writes are a group commit: callers (a stream's
// data, a client's HEADERS, a handler's answer) encode their frames under
// gmu into the gathered batch; the first finding no flusher active becomes
// the flusher and writes the batch with one socket write (one TLS record
// for many small frames), and the others return at once, their frames
// riding in the flusher's next write. A caller flushes a bounded run (its
// batch and one more) and then hands the role to a new goroutine; one is
// also started for the control frames the reader queues when no flusher
// is active.
type h2Conn struct {
	raw    net.Conn // the TLS connection
	client bool
	peer   spiffeid.ID
	opened time.Time
	logf   func(format string, args ...any)

	// poolSeq numbers a client connection among its pool key's (guarded
	// by Pool.mu): a retry wants one dialed after the failure.
	poolSeq uint64

	// ctx is canceled when the connection fails or closes; stream
	// contexts derive from it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	// Writing: gmu is held while frames are encoded (so the hpack state
	// follows the order on the wire) and while the flusher takes a batch,
	// never during a socket write.
	gmu      sync.Mutex
	wbuf     *[]byte   // gathered frames, from wbufs; nil when none
	flushing bool      // a goroutine is writing and takes what gathers
	moved    sync.Cond // on gmu: a batch was taken, or flushing ended
	fr       *http2.Framer
	henc     *hpack.Encoder
	hbuf     []byte
	werr     error // first socket write error: no more writes
	ended    error // the connection's end (fail): no more writes either

	qmu     sync.Mutex
	queue   []ctrlFrame
	queued  atomic.Bool
	flooded atomic.Bool // the queue overflowed: the connection is ending

	// Reading: the reader goroutine only.
	rfr          *http2.Framer
	gotSettings  bool
	readSettings chan struct{} // closed at the peer's first SETTINGS
	done         chan struct{} // closed when the reader exited

	// server: onStream runs each accepted stream (on its own goroutine);
	// handlers counts those running.
	onStream   func(*h2Stream)
	maxStreams uint32 // server: our SETTINGS_MAX_CONCURRENT_STREAMS
	handlers   atomic.Int32

	mu           sync.Mutex
	streams      map[uint32]*h2Stream
	nextID       uint32 // client: the next stream id to open
	lastPeerID   uint32 // server: the highest stream id the peer opened
	reserved     int    // client: slots the pool reserved, not yet opened
	total        uint64 // streams ever opened
	sendWin      int64  // connection-level send window
	peerInitWin  int64
	peerMaxConc  uint32 // client: the server's SETTINGS_MAX_CONCURRENT_STREAMS
	recvUsed     int64  // received and not yet credited back (connection level)
	recvConsumed int64  // read (or discarded) and not yet credited back
	goawaySent   bool
	goawayRecv   bool
	closeIdle    bool // close as soon as no stream is left (drain)
	err          error
	// wfailed: a socket write failed; err is set by the fail that follows
	// on its own goroutine, and until then the pool must not hand the
	// connection out.
	wfailed   bool
	idle      time.Duration
	idleTimer *time.Timer
	onClose   func(*h2Conn)
}

// newH2Conn wraps an established TLS connection. Call start to run it.
func newH2Conn(raw net.Conn, client bool, peer spiffeid.ID) *h2Conn {
	c := &h2Conn{
		raw:          raw,
		client:       client,
		peer:         peer,
		opened:       time.Now(),
		readSettings: make(chan struct{}),
		done:         make(chan struct{}),
		streams:      map[uint32]*h2Stream{},
		sendWin:      defaultWindow,
		peerInitWin:  defaultWindow,
		peerMaxConc:  DefaultMaxConcurrentStreams,
	}
	c.moved.L = &c.gmu
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.fr = http2.NewFramer((*frameSink)(c), nil)
	c.henc = hpack.NewEncoder((*headerSink)(c))
	c.rfr = http2.NewFramer(nil, raw)
	// A DATA frame is handled (its payload copied out) before the next is
	// read: one frame value serves them all.
	c.rfr.SetReuseFrames()
	c.rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.rfr.MaxHeaderListSize = maxHeaderListSize
	if client {
		c.nextID = 1
	}
	return c
}

// frameSink collects the Framer's output in the connection's write buffer.
type frameSink h2Conn

func (s *frameSink) Write(p []byte) (int, error) {
	c := (*h2Conn)(s)
	c.grabWbuf()
	*c.wbuf = append(*c.wbuf, p...)
	return len(p), nil
}

// headerSink collects the hpack encoder's output.
type headerSink h2Conn

func (s *headerSink) Write(p []byte) (int, error) {
	s.hbuf = append(s.hbuf, p...)
	return len(p), nil
}

func (c *h2Conn) grabWbuf() {
	if c.wbuf == nil {
		c.wbuf = wbufs.Get().(*[]byte)
	}
}

// start sends the connection preface (client) and our SETTINGS, reads the
// client's preface (server) and starts the frame reader. maxFrame is the
// largest frame we accept (0: the protocol minimum).
func (c *h2Conn) start(maxFrame uint32) error {
	if maxFrame < minFrameSize {
		maxFrame = minFrameSize
	}
	c.rfr.SetMaxReadFrameSize(maxFrame)
	settings := []http2.Setting{
		{ID: http2.SettingInitialWindowSize, Val: streamWindowSize},
		{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderListSize},
	}
	if maxFrame != minFrameSize {
		settings = append(settings, http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxFrame})
	}
	if c.client {
		settings = append(settings, http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	} else {
		settings = append(settings, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.maxStreams})
	}
	err := c.write(func() error {
		if c.client {
			c.grabWbuf()
			*c.wbuf = append(*c.wbuf, http2.ClientPreface...)
		}
		if err := c.fr.WriteSettings(settings...); err != nil {
			return err
		}
		return c.fr.WriteWindowUpdate(0, connWindowSize-defaultWindow)
	})
	if err != nil {
		return fmt.Errorf("writing HTTP/2 preface: %w", err)
	}
	if !c.client {
		var preface [len(http2.ClientPreface)]byte
		if _, err := io.ReadFull(c.raw, preface[:]); err != nil {
			return fmt.Errorf("reading the HTTP/2 client preface: %w", err)
		}
		if string(preface[:]) != http2.ClientPreface {
			return errors.New("not an HTTP/2 client: bad connection preface")
		}
	}
	// The handshake's deadline is over; streams have their own.
	if err := c.raw.SetDeadline(time.Time{}); err != nil {
		return err
	}
	c.mu.Lock()
	c.armIdleLocked()
	c.mu.Unlock()
	go c.readLoop()
	return nil
}

// ---- writing ----

// writerRun is how many batches a writer that became the flusher writes
// before it hands the role to a goroutine of its own: its batch and one more.
// More would keep a stream's goroutine writing others' frames while its
// own work waits; fewer would start such goroutines more often.
const writerRun = 2

// write runs fn with gmu held — fn encodes frames into the gathered batch —
// and sees them written: by this goroutine when no flusher is active (its
// batch and at most one more), else by the active flusher without waiting
// for it. A writer finding a full batch gathered waits until the flusher
// takes it. An error of fn (a stream that may no longer send, say) is
// returned without harming the connection; only socket errors end it, and
// a writer whose frames another writes learns of such an error at its
// next write or from the connection's end.
func (c *h2Conn) write(fn func() error) error {
	c.gmu.Lock()
	defer c.gmu.Unlock()
	for c.canWriteLocked() && c.flushing && c.gatheredLocked() >= gatherLimit {
		c.moved.Wait()
	}
	if c.werr != nil {
		return c.werr
	}
	// Control frames queued before this write go out before its frames:
	// a stream's RST_STREAM then precedes the HEADERS of a stream opened
	// in the slot the reset freed (see abort).
	if c.queued.Load() && c.canWriteLocked() {
		if err := c.writeQueuedLocked(); err != nil {
			c.failWriteLocked(err)
			return err
		}
	}
	var fnErr error
	if fn != nil {
		fnErr = fn() // after the end, fn sees the stream closed
	}
	var err error
	switch {
	case c.ended != nil:
		c.dropGatheredLocked()
		err = c.ended
	case !c.flushing:
		c.flushing = true
		err = c.flushRunLocked(writerRun)
	}
	if fnErr != nil {
		return fnErr
	}
	return err
}

// canWriteLocked reports whether frames may still go to the socket.
func (c *h2Conn) canWriteLocked() bool { return c.werr == nil && c.ended == nil }

func (c *h2Conn) dropGatheredLocked() {
	if c.wbuf != nil {
		putWbuf(c.wbuf)
		c.wbuf = nil
	}
}

func (c *h2Conn) gatheredLocked() int {
	if c.wbuf == nil {
		return 0
	}
	return len(*c.wbuf)
}

// flushRunLocked is the flusher's run, with gmu held and flushing set:
// it writes the gathered frames (and the queued control frames) a batch
// at a time until none are left, or until it wrote run batches (run < 0:
// no bound) and hands the rest to a new goroutine. gmu is released
// during each socket write. It returns the socket's error.
func (c *h2Conn) flushRunLocked(run int) error {
	for n := 0; ; n++ {
		pending := c.gatheredLocked() > 0 || c.queued.Load()
		if c.canWriteLocked() && pending && run >= 0 && n >= run {
			c.handOffLocked()
			return nil
		}
		var err error
		if c.canWriteLocked() {
			err = c.writeQueuedLocked()
		}
		if err == nil && c.canWriteLocked() && c.gatheredLocked() > 0 {
			buf := c.wbuf
			c.wbuf = nil
			c.moved.Broadcast() // room for writers waiting to gather
			c.gmu.Unlock()
			_, err = c.raw.Write(*buf)
			putWbuf(buf)
			c.gmu.Lock()
			if err == nil {
				continue
			}
		}
		// Done: nothing left, or no more writes possible.
		if err != nil {
			c.failWriteLocked(err)
		}
		if !c.canWriteLocked() {
			c.dropGatheredLocked()
		}
		c.flushing = false
		c.moved.Broadcast()
		if err == nil {
			err = c.werr
		}
		return err
	}
}

// failWriteLocked records the first socket error and fails the connection.
func (c *h2Conn) failWriteLocked(err error) {
	if err != nil && c.werr == nil {
		c.werr = err
		c.mu.Lock() // gmu → mu is the lock order
		c.wfailed = true
		c.mu.Unlock()
		go c.fail(fmt.Errorf("writing to the connection: %w", err))
	}
}

func putWbuf(b *[]byte) {
	if cap(*b) > keptWbuf {
		return
	}
	*b = (*b)[:0]
	wbufs.Put(b)
}

// handOffLocked hands the flusher role (flushing stays set) to a new
// goroutine, which writes until nothing is gathered or queued. One made
// for each hand-off costs less than a goroutine kept for each connection
// (5 KiB at each end of an idle one, make bench-hbone).
func (c *h2Conn) handOffLocked() {
	go func() {
		c.gmu.Lock()
		_ = c.flushRunLocked(-1)
		c.gmu.Unlock()
	}()
}

// flushWait writes everything gathered and queued, waiting for an active
// flusher to finish first; the connection's closing paths call it before
// they close the socket, so a GOAWAY or a last END_STREAM goes out.
func (c *h2Conn) flushWait() {
	c.gmu.Lock()
	defer c.gmu.Unlock()
	for c.canWriteLocked() && (c.flushing || c.gatheredLocked() > 0 || c.queued.Load()) {
		if c.flushing {
			c.moved.Wait()
			continue
		}
		c.flushing = true
		_ = c.flushRunLocked(-1)
	}
}

// enqueue queues control frames for the flusher's next batch, together
// (no other frame comes between them), and wakes a flusher goroutine when
// none is active. It never writes to the socket itself: the frame reader
// calls it. A peer that makes more than maxQueuedControl wait (a PING or
// SETTINGS flood while it does not read) ends the connection with
// ENHANCE_YOUR_CALM, once; the reader then stops reading (readLoop).
func (c *h2Conn) enqueue(fs ...ctrlFrame) {
	c.qmu.Lock()
	if len(c.queue)+len(fs) > maxQueuedControl {
		first := c.flooded.CompareAndSwap(false, true)
		c.qmu.Unlock()
		if first {
			go c.fail(connError{http2.ErrCodeEnhanceYourCalm, "too many control frames waiting for the socket"})
		}
		return
	}
	c.queue = append(c.queue, fs...)
	c.queued.Store(true)
	c.qmu.Unlock()
	c.wakeFlusher()
}

// wakeFlusher makes sure queued control frames have a flusher: the active
// one takes them in its next batch (it checks the queue, under gmu, before
// it stops), else a new goroutine becomes one.
func (c *h2Conn) wakeFlusher() {
	c.gmu.Lock()
	if !c.flushing && c.canWriteLocked() {
		c.flushing = true
		c.handOffLocked()
	}
	c.gmu.Unlock()
}

// writeQueuedLocked encodes the queued control frames into the batch.
func (c *h2Conn) writeQueuedLocked() error {
	for c.queued.Load() {
		c.qmu.Lock()
		q := c.queue
		c.queue = nil
		c.queued.Store(false)
		c.qmu.Unlock()
		for i := range q {
			if err := c.writeCtrlLocked(&q[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *h2Conn) writeCtrlLocked(f *ctrlFrame) error {
	switch f.kind {
	case ctrlSettingsAck:
		if f.n != 0 {
			c.henc.SetMaxDynamicTableSizeLimit(f.n - 1)
		}
		return c.fr.WriteSettingsAck()
	case ctrlPingAck:
		return c.fr.WritePing(true, f.ping)
	case ctrlWindowUpdate:
		return c.fr.WriteWindowUpdate(f.stream, f.n)
	case ctrlReset:
		return c.fr.WriteRSTStream(f.stream, f.code)
	case ctrlGoAway:
		return c.fr.WriteGoAway(f.stream, f.code, nil)
	case ctrlResponse:
		r := f.resp
		fields := make([]hpack.HeaderField, 0, 2+len(r.header))
		fields = append(fields, hpack.HeaderField{Name: ":status", Value: strconv.Itoa(r.status)})
		for _, h := range r.header {
			fields = append(fields, hpack.HeaderField{Name: h[0], Value: h[1]})
		}
		return c.writeHeadersLocked(f.stream, fields, r.body == "")
	case ctrlResponseBody:
		c.writeDataLocked(f.stream, []byte(f.resp.body), true)
	}
	return nil
}

// writeHeadersLocked encodes a header block into the batch, split into
// CONTINUATION frames if the peer's frame size requires it. Header blocks
// are encoded only here, under gmu, so the hpack state follows the order
// on the wire.
func (c *h2Conn) writeHeadersLocked(id uint32, fields []hpack.HeaderField, end bool) error {
	c.hbuf = c.hbuf[:0]
	for _, f := range fields {
		if err := c.henc.WriteField(f); err != nil {
			return err
		}
	}
	block := c.hbuf
	first := true
	for first || len(block) > 0 {
		n := min(len(block), minFrameSize)
		chunk := block[:n]
		block = block[n:]
		var err error
		if first {
			err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: chunk, EndStream: end, EndHeaders: len(block) == 0})
			first = false
		} else {
			err = c.fr.WriteContinuation(id, len(block) == 0, chunk)
		}
		if err != nil {
			return err
		}
	}
	if cap(c.hbuf) > 4<<10 {
		c.hbuf = nil // a rare large block: do not keep its buffer
	}
	return nil
}

// writeDataLocked appends DATA frames carrying p to the batch (gmu held).
// The frame header is written here rather than by the Framer, which would
// copy p once more into a buffer of its own kept for the connection's life.
func (c *h2Conn) writeDataLocked(id uint32, p []byte, end bool) {
	c.grabWbuf()
	for first := true; first || len(p) > 0; first = false {
		n := min(len(p), dataFramePayload)
		var flags byte
		if end && n == len(p) {
			flags = byte(http2.FlagDataEndStream)
		}
		b := *c.wbuf
		b = append(b, byte(n>>16), byte(n>>8), byte(n), byte(http2.FrameData), flags)
		b = binary.BigEndian.AppendUint32(b, id&(1<<31-1))
		b = append(b, p[:n]...)
		*c.wbuf = b
		p = p[n:]
	}
}

// ---- connection life ----

// fail ends the connection: every stream fails with err (unless it
// already ended), the socket is closed.
func (c *h2Conn) fail(err error) {
	var ce connError
	if errors.As(err, &ce) {
		c.mu.Lock()
		sent := c.goawaySent
		c.goawaySent = true
		last := c.lastPeerID
		c.mu.Unlock()
		if !sent || ce.Code != http2.ErrCodeNo {
			c.qmu.Lock()
			c.queue = append(c.queue, ctrlFrame{kind: ctrlGoAway, stream: last, code: ce.Code})
			c.queued.Store(true)
			c.qmu.Unlock()
			c.flushBounded()
		}
		if c.logf != nil {
			c.logf("hbone: connection with %s (%s): %v", c.raw.RemoteAddr(), c.peer, err)
		}
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	streams := c.streams
	c.streams = map[uint32]*h2Stream{}
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	onClose := c.onClose
	c.mu.Unlock()
	c.gmu.Lock()
	c.ended = err
	c.moved.Broadcast() // writers waiting for room give up
	c.gmu.Unlock()
	c.cancel(err)
	for _, s := range streams {
		s.connFailed(err)
	}
	_ = c.raw.Close()
	if onClose != nil {
		onClose(c)
	}
}

// Close closes the connection at once; only when frames are gathered or
// in a socket write — writers whose Write returned, their frames left for
// the flusher — does it first wait (bounded, see flushBounded) for them
// to go out.
func (c *h2Conn) Close() error {
	c.gmu.Lock()
	pending := c.flushing || c.gatheredLocked() > 0
	c.gmu.Unlock()
	if pending {
		c.flushBounded()
	}
	c.fail(net.ErrClosed)
	return nil
}

// flushBounded waits for what is gathered and queued to be written, so
// that it goes out before a close, but not for long: the flusher may be
// stuck on a socket the peer stopped reading (the close frees it).
func (c *h2Conn) flushBounded() {
	flushed := make(chan struct{})
	go func() {
		c.flushWait()
		close(flushed)
	}()
	t := time.NewTimer(time.Second)
	select {
	case <-flushed:
	case <-t.C:
	}
	t.Stop()
}

// shutdown sends GOAWAY (NO_ERROR, last stream processed) and closes the
// connection once its streams have ended.
func (c *h2Conn) shutdown() {
	c.mu.Lock()
	c.closeIdle = true
	sent := c.goawaySent
	c.goawaySent = true
	last := c.lastPeerID
	idle := len(c.streams) == 0 && c.reserved == 0
	c.mu.Unlock()
	if !sent {
		c.enqueue(ctrlFrame{kind: ctrlGoAway, stream: last, code: http2.ErrCodeNo})
	}
	if idle {
		c.closeGracefully()
	}
}

// closeGracefully flushes what is queued and closes.
func (c *h2Conn) closeGracefully() {
	go func() {
		c.flushWait()
		c.fail(net.ErrClosed)
	}()
}

// armIdleLocked starts the idle timer when no stream is open.
func (c *h2Conn) armIdleLocked() {
	if c.idle <= 0 || len(c.streams) > 0 || c.reserved > 0 || c.err != nil {
		return
	}
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(c.idle, c.idleExpired)
		return
	}
	c.idleTimer.Reset(c.idle)
}

func (c *h2Conn) idleExpired() {
	c.mu.Lock()
	idle := len(c.streams) == 0 && c.reserved == 0 && c.err == nil
	c.mu.Unlock()
	if idle {
		c.shutdown()
	}
}

// dead reports whether the connection failed or closed, or a write to its
// socket failed (the failure that follows runs on its own goroutine).
func (c *h2Conn) dead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil || c.wfailed
}

// failure returns why the connection failed, or nil.
func (c *h2Conn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// usable reports whether new streams may be opened.
func (c *h2Conn) usableLocked() bool {
	return c.err == nil && !c.wfailed && !c.goawayRecv && !c.goawaySent && c.nextID <= maxWindow
}

// available is how many more streams the connection takes now.
func (c *h2Conn) available() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.usableLocked() {
		return 0
	}
	return max(0, int(c.peerMaxConc)-len(c.streams)-c.reserved)
}

// reserve takes a stream slot for a coming open (client side).
func (c *h2Conn) reserve() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.usableLocked() || len(c.streams)+c.reserved >= int(c.peerMaxConc) {
		return false
	}
	c.reserved++
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	return true
}

// removeLocked forgets a stream that ended.
func (c *h2Conn) removeLocked(s *h2Stream) {
	if c.streams[s.id] != s {
		return
	}
	delete(c.streams, s.id)
	if len(c.streams) == 0 && c.reserved == 0 {
		if c.closeIdle || c.goawayRecv {
			c.closeGracefully()
			return
		}
		c.armIdleLocked()
	}
}

// credit returns n consumed bytes of connection-level receive window,
// sending WINDOW_UPDATE once a quarter window has been consumed.
func (c *h2Conn) credit(n int64) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.recvConsumed += n
	inc := int64(0)
	if c.recvConsumed >= connWindowSize/4 {
		inc = c.recvConsumed
		c.recvUsed -= inc
		c.recvConsumed = 0
	}
	c.mu.Unlock()
	if inc > 0 {
		c.enqueue(ctrlFrame{kind: ctrlWindowUpdate, n: uint32(inc)})
	}
}

// ---- opening streams (client) ----

// open sends a CONNECT for authority with the given regular headers on a
// slot taken with reserve, and returns the stream without waiting for the
// answer.
func (c *h2Conn) open(authority string, header [][2]string) (*h2Stream, error) {
	s := newH2Stream(c)
	s.authority = authority
	s.resp = make(chan struct{})
	err := c.write(func() error {
		c.mu.Lock()
		c.reserved--
		if !c.usableLocked() {
			err := c.err
			c.armIdleLocked()
			c.mu.Unlock()
			if err == nil {
				err = errRefusedStream
			}
			return err
		}
		s.id = c.nextID
		c.nextID += 2
		s.sendWin = c.peerInitWin
		c.streams[s.id] = s
		c.total++
		c.mu.Unlock()
		fields := make([]hpack.HeaderField, 0, 2+len(header))
		fields = append(fields,
			hpack.HeaderField{Name: ":method", Value: http.MethodConnect},
			hpack.HeaderField{Name: ":authority", Value: authority})
		for _, h := range header {
			fields = append(fields, hpack.HeaderField{Name: h[0], Value: h[1]})
		}
		return c.writeHeadersLocked(s.id, fields, false)
	})
	if err != nil {
		if s.id != 0 {
			s.connFailed(err)
		}
		return nil, err
	}
	return s, nil
}
