package hbone

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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

	s *h2Stream

	amu      sync.Mutex // serializes answering
	answered int        // guarded by amu: 0 not yet, or the status sent
	// accepted is set once the 200 went out: every Read and Write asks,
	// and after the first they need not take amu.
	accepted atomic.Bool
}

func newStream(s *h2Stream) *Stream {
	// The server's reader validated the authority before starting the stream.
	auth, _ := ParseAuthority(s.authority)
	h := s.header
	if h == nil {
		h = http.Header{}
	}
	return &Stream{
		Authority:  auth,
		PeerID:     s.c.peer,
		Header:     h,
		RemoteAddr: s.c.raw.RemoteAddr(),
		LocalAddr:  s.c.raw.LocalAddr(),
		Opened:     s.opened,
		s:          s,
	}
}

// serve runs the handler, then ends what it left open.
func (st *Stream) serve(h Handler) {
	h.ServeHBONE(st.s.ctx, st)
	st.amu.Lock()
	answered := st.answered
	st.amu.Unlock()
	if answered == 0 {
		_ = st.Reject(http.StatusServiceUnavailable, "hbone: handler returned without accepting the stream")
		return
	}
	if answered == http.StatusOK {
		_ = st.s.CloseWrite()
	}
	// The client may still be sending: ask it to stop (RST_STREAM NO_ERROR);
	// what it sent stays readable until then. Nothing is sent if both
	// directions ended.
	st.s.release(http2.ErrCodeNo)
}

// Accept answers the CONNECT with 200 if not done yet.
func (st *Stream) Accept() error {
	if st.accepted.Load() {
		return nil
	}
	st.amu.Lock()
	defer st.amu.Unlock()
	switch st.answered {
	case http.StatusOK:
		return nil
	case 0:
	default:
		return ErrStreamClosed // rejected
	}
	s := st.s
	err := s.c.write(func() error {
		if err := s.writableLocked(); err != nil {
			return err
		}
		return s.c.writeHeadersLocked(s.id, []hpack.HeaderField{{Name: ":status", Value: "200"}}, false)
	})
	if err != nil {
		return err
	}
	st.answered = http.StatusOK
	st.accepted.Store(true)
	return nil
}

// Reject answers the CONNECT with status (e.g. 503 when the upstream
// refused, 401 or 403 when authorization denied the peer) and a short
// reason; the handler should then return. It fails if the stream was
// already accepted.
func (st *Stream) Reject(status int, reason string) error {
	st.amu.Lock()
	defer st.amu.Unlock()
	if st.answered != 0 {
		return errors.New("hbone: Reject after the stream was answered")
	}
	st.answered = status
	st.s.reject(status, reason)
	return nil
}

// Read reads what the client sent; io.EOF after the client's CloseWrite.
func (st *Stream) Read(p []byte) (int, error) {
	if err := st.Accept(); err != nil {
		return 0, err
	}
	return st.s.Read(p)
}

// Write sends p to the client, accepting the stream first if needed. It
// blocks while the client's flow-control window is full, or while the
// tunnel's socket is behind (back-pressure).
func (st *Stream) Write(p []byte) (int, error) {
	if err := st.Accept(); err != nil {
		return 0, err
	}
	return st.s.Write(p)
}

// CloseWrite ends the server's direction (END_STREAM): the client reads
// io.EOF after the data written so far. The client's direction stays open:
// Read goes on returning what it sends.
func (st *Stream) CloseWrite() error {
	if err := st.Accept(); err != nil {
		return err
	}
	return st.s.CloseWrite()
}

// Close ends the stream: a stream never answered is refused with 503; one
// whose server direction ended (CloseWrite) tells the client to stop
// sending (RST_STREAM NO_ERROR); otherwise it is aborted both ways
// (RST_STREAM CANCEL). Blocked Read and Write calls return.
func (st *Stream) Close() error {
	st.amu.Lock()
	answered := st.answered
	st.amu.Unlock()
	if answered == 0 {
		_ = st.Reject(http.StatusServiceUnavailable, "hbone: stream closed by the server")
		return nil
	}
	code := http2.ErrCodeCancel
	if st.s.sentEndClean() {
		code = http2.ErrCodeNo
	}
	st.s.release(code)
	return nil
}

// SetReadDeadline makes Read return os.ErrDeadlineExceeded once t has
// passed (after accepting the stream); the stream stays usable, and a later
// deadline, or none, lets reads go on. net/http's server relies on this to
// stop a background read.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.s.setReadDeadline(t)
	return nil
}

// SetWriteDeadline makes a Write waiting for flow-control window return
// os.ErrDeadlineExceeded once t has passed.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.s.setWriteDeadline(t)
	return nil
}

// SetDeadline sets both deadlines.
func (st *Stream) SetDeadline(t time.Time) error {
	st.s.setReadDeadline(t)
	st.s.setWriteDeadline(t)
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

func (s *h2Stream) info() StreamInfo {
	return StreamInfo{Authority: s.authority, Peer: s.c.peer.String(), Opened: s.opened, BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load()}
}
