package hbone

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Stream is one accepted HBONE stream, seen from the server: reads return
// what the client sends (io.EOF once it half-closed), writes go back to it.
// The first Read, Write, CloseWrite or Accept answers the CONNECT with 200
// (a client sends nothing before the answer); Reject answers with an error
// status instead. Read and Write may be called concurrently with each other
// and with Close and CloseWrite, but not after the handler returned.
type Stream struct {
	// Authority is the parsed :authority, the original destination.
	Authority Authority
	// PeerID is the client's verified SPIFFE identity.
	PeerID spiffeid.ID
	// Header holds the CONNECT request headers (forwarded, baggage,
	// traceparent, ...). Do not modify it.
	Header http.Header
	// RemoteAddr and LocalAddr are the addresses of the tunnel's TCP
	// connection.
	RemoteAddr, LocalAddr net.Addr
	// Opened is when the CONNECT arrived.
	Opened time.Time

	w       http.ResponseWriter
	body    io.ReadCloser
	ctx     context.Context // the HTTP/2 stream's: done once the stream is closed
	flusher interface{ FlushError() error }

	read, written atomic.Int64

	wmu       sync.Mutex  // serializes use of w
	responded bool        // guarded by wmu
	accepted  atomic.Bool // answered 200
	writeDone atomic.Bool // set under wmu: no more writes
	readCut   atomic.Bool // CloseWrite ended the read side: reads return io.EOF

	dlMu     sync.Mutex // guards deadline calls against the handler's return
	httpDone bool       // guarded by dlMu and wmu: w must not be touched
}

func newStream(sc *serverConn, peer spiffeid.ID, w http.ResponseWriter, r *http.Request, auth Authority) *Stream {
	st := &Stream{
		Authority:  auth,
		PeerID:     peer,
		Header:     r.Header,
		RemoteAddr: sc.raw.RemoteAddr(),
		LocalAddr:  sc.raw.LocalAddr(),
		Opened:     time.Now(),
		w:          w,
		body:       r.Body,
		ctx:        r.Context(),
	}
	st.flusher, _ = w.(interface{ FlushError() error })
	return st
}

// serve runs the handler on the HTTP/2 stream's goroutine, then finalizes
// the response before net/http ends the stream.
func (s *Stream) serve(ctx context.Context, h Handler) {
	h.ServeHBONE(ctx, s)
	if !s.wmu.TryLock() {
		// A goroutine the handler left behind is stuck in Write: abort it.
		s.setDeadlines(false, true)
		s.wmu.Lock()
	}
	defer s.wmu.Unlock()
	if !s.responded {
		s.rejectLocked(http.StatusServiceUnavailable, "hbone: handler returned without accepting the stream")
	}
	s.writeDone.Store(true)
	s.dlMu.Lock()
	s.httpDone = true
	s.dlMu.Unlock()
}

// setDeadlines expires the stream's read and/or write side now, unblocking
// Read or Write; a no-op once the handler returned.
func (s *Stream) setDeadlines(read, write bool) {
	s.dlMu.Lock()
	defer s.dlMu.Unlock()
	if s.httpDone {
		return
	}
	rc := http.NewResponseController(s.w)
	now := time.Now()
	if read {
		_ = rc.SetReadDeadline(now)
	}
	if write {
		_ = rc.SetWriteDeadline(now)
	}
}

// Accept answers the CONNECT with 200 if not done yet.
func (s *Stream) Accept() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.acceptLocked()
}

func (s *Stream) acceptLocked() error {
	if s.responded {
		if s.accepted.Load() {
			return nil
		}
		return ErrStreamClosed // rejected
	}
	if s.writeDone.Load() {
		return ErrStreamClosed
	}
	s.responded = true
	s.accepted.Store(true)
	s.w.WriteHeader(http.StatusOK)
	return s.flushLocked()
}

func (s *Stream) flushLocked() error {
	if s.flusher != nil {
		if err := s.flusher.FlushError(); err != nil {
			return closedError{err}
		}
	}
	return nil
}

// Reject answers the CONNECT with status (e.g. 503 when the upstream
// refused, 401 or 403 when authorization denied the peer) and a short
// reason; the handler should then return. It fails if the stream was
// already accepted.
func (s *Stream) Reject(status int, reason string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.responded {
		return errors.New("hbone: Reject after the stream was accepted")
	}
	s.rejectLocked(status, reason)
	return nil
}

func (s *Stream) rejectLocked(status int, reason string) {
	s.responded = true
	s.writeDone.Store(true)
	if s.httpDone {
		return
	}
	http.Error(s.w, reason, status)
}

// Read reads what the client sent; io.EOF after the client's CloseWrite,
// or after this side's CloseWrite.
func (s *Stream) Read(p []byte) (int, error) {
	if !s.accepted.Load() {
		if err := s.Accept(); err != nil {
			return 0, err
		}
	}
	n, err := s.body.Read(p)
	s.read.Add(int64(n))
	if err != nil && !errors.Is(err, io.EOF) {
		if s.readCut.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			return n, io.EOF
		}
		err = closedError{err}
	}
	return n, err
}

// Write sends p to the client, accepting the stream first if needed. It
// blocks while the client's flow-control window is full (back-pressure).
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.writeDone.Load() {
		return 0, ErrStreamClosed
	}
	if err := s.acceptLocked(); err != nil {
		return 0, err
	}
	n, err := s.w.Write(p)
	s.written.Add(int64(n))
	if err != nil {
		return n, closedError{err}
	}
	return n, s.flushLocked()
}

// CloseWrite ends the server's direction: the client reads io.EOF after
// the data written so far, once the handler returns (END_STREAM). If the
// client's direction is still open it is ended too: this side's reads
// return io.EOF and the client's later writes fail; see the package doc
// ("Half-close").
func (s *Stream) CloseWrite() error {
	s.wmu.Lock()
	if !s.writeDone.Load() {
		if err := s.acceptLocked(); err != nil {
			s.wmu.Unlock()
			return err
		}
	}
	s.writeDone.Store(true)
	s.wmu.Unlock()
	s.readCut.Store(true)
	s.setDeadlines(true, false) // unblocks a pending Read, which returns io.EOF
	return nil
}

// Close aborts the stream in both directions (RST_STREAM) unless it is
// already ending cleanly; a stream never accepted is refused with 503.
// Blocked Read and Write calls return.
func (s *Stream) Close() error {
	if s.writeDone.Load() {
		// Ending cleanly (CloseWrite, Reject): do not turn the END_STREAM
		// into a reset.
		return nil
	}
	if s.ctx.Err() == nil {
		// Unblock Read and Write. Not needed once net/http closed the
		// stream (a reset by the client, the connection gone): it has
		// unblocked them itself, and expiring the deadlines of a closed
		// stream only queues more work on its connection's serve loop.
		s.setDeadlines(true, true)
	}
	s.wmu.Lock()
	if !s.responded {
		s.rejectLocked(http.StatusServiceUnavailable, "hbone: stream closed by the server")
	}
	s.writeDone.Store(true)
	s.wmu.Unlock()
	return nil
}

// StreamInfo describes an open stream, for admin pages.
type StreamInfo struct {
	Authority string    `json:"authority"`
	Peer      string    `json:"peer"`
	Opened    time.Time `json:"opened"`
	BytesIn   int64     `json:"bytesIn"`  // received from the peer
	BytesOut  int64     `json:"bytesOut"` // sent to the peer
}

func (s *Stream) info() StreamInfo {
	return StreamInfo{Authority: s.Authority.String(), Peer: s.PeerID.String(), Opened: s.Opened, BytesIn: s.read.Load(), BytesOut: s.written.Load()}
}
