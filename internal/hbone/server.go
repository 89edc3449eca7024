package hbone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/identity"
)

// DefaultPort is the HBONE port, as in Istio.
const DefaultPort = 15008

// Defaults of [Server] fields.
const (
	DefaultMaxConcurrentStreams = 100
	DefaultHandshakeTimeout     = 10 * time.Second
)

// HTTP/2 tuning. Windows larger than the protocol defaults cut
// window-update round trips on bulk transfers; memory is committed only
// while data is buffered. Frame sizes are asymmetric on purpose: the client
// transport holds a scratch buffer of the server's SETTINGS_MAX_FRAME_SIZE
// for every open stream while it waits for request-body data, so the server
// advertises the protocol minimum by default (16 KiB, the size of a TLS
// record anyway); the client accepts larger frames, which costs nothing per
// idle stream on the server.
const (
	defaultServerFrameSize = 16 << 10
	clientMaxFrameSize     = 256 << 10
	streamWindowSize       = 4 << 20
	connWindowSize         = 16 << 20
)

// Handler serves HBONE streams. ServeHBONE runs on the HTTP/2 stream's own
// goroutine; the stream's response ends (END_STREAM) when it returns, so a
// handler should return soon after [Stream.CloseWrite], [Stream.Reject] or
// [Stream.Close]. It must not leave goroutines using the stream behind. ctx
// is canceled when the stream ends.
type Handler interface {
	ServeHBONE(ctx context.Context, s *Stream)
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, s *Stream)

// ServeHBONE calls f(ctx, s).
func (f HandlerFunc) ServeHBONE(ctx context.Context, s *Stream) { f(ctx, s) }

// Server terminates HBONE tunnels. Set the fields before calling Serve;
// the zero values of optional fields are documented on each.
type Server struct {
	// Handler serves each accepted stream. Required.
	Handler Handler
	// TLSConfig is the server's TLS configuration, normally
	// identity.ServerTLSConfig: it must require and verify client
	// certificates. The server forces TLS 1.3 and ALPN h2 on a copy.
	// Required.
	TLSConfig *tls.Config
	// MaxConcurrentStreams caps the streams a client may have open on one
	// connection (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused with
	// REFUSED_STREAM. Zero means 100.
	MaxConcurrentStreams int
	// MaxFrameSize is the largest HTTP/2 frame the server accepts
	// (SETTINGS_MAX_FRAME_SIZE), 16 KiB to 16 MiB. The client transport
	// holds a buffer of this size for every open stream, idle or not, and
	// with 16 KiB frames each DATA frame is one full TLS record; 64 KiB
	// frames measured no faster on loopback (docs/benchmarks.md). Zero
	// means 16 KiB.
	MaxFrameSize int
	// HandshakeTimeout bounds the TLS handshake. Zero means 10 s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes connections without streams for that long. Zero
	// means never.
	IdleTimeout time.Duration
	// Logf, if non-nil, receives connection-level errors (failed
	// handshakes, rejected certificates).
	Logf func(format string, args ...any)

	initOnce sync.Once
	hs       *http.Server

	mu    sync.Mutex
	conns map[net.Conn]*serverConn
	down  bool
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

type connKey struct{}

func (s *Server) init() {
	s.initOnce.Do(func() {
		conf := s.TLSConfig.Clone()
		if conf == nil {
			conf = &tls.Config{}
		}
		conf.MinVersion = tls.VersionTLS13
		conf.MaxVersion = tls.VersionTLS13
		conf.NextProtos = []string{"h2"}
		handshake := s.HandshakeTimeout
		if handshake <= 0 {
			handshake = DefaultHandshakeTimeout
		}
		frame := s.MaxFrameSize
		if frame <= 0 {
			frame = defaultServerFrameSize
		}
		maxStreams := s.MaxConcurrentStreams
		if maxStreams <= 0 {
			maxStreams = DefaultMaxConcurrentStreams
		}
		var protos http.Protocols
		protos.SetHTTP2(true) // and nothing else: no HTTP/1 fallback
		s.conns = map[net.Conn]*serverConn{}
		s.hs = &http.Server{
			Handler:   http.HandlerFunc(s.serveHTTP),
			TLSConfig: conf,
			Protocols: &protos,
			HTTP2: &http.HTTP2Config{
				MaxConcurrentStreams:          maxStreams,
				MaxReadFrameSize:              frame,
				MaxReceiveBufferPerStream:     streamWindowSize,
				MaxReceiveBufferPerConnection: connWindowSize,
			},
			// net/http bounds the TLS handshake by ReadHeaderTimeout; HTTP/2
			// streams are not affected by it.
			ReadHeaderTimeout: handshake,
			IdleTimeout:       s.IdleTimeout,
			ErrorLog:          log.New(logWriter{s}, "", 0),
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				sc := &serverConn{raw: c, opened: time.Now(), streams: map[*Stream]struct{}{}}
				s.mu.Lock()
				s.conns[c] = sc
				s.mu.Unlock()
				return context.WithValue(ctx, connKey{}, sc)
			},
			ConnState: func(c net.Conn, st http.ConnState) {
				if st == http.StateClosed || st == http.StateHijacked {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
				}
			},
		}
	})
}

// logWriter turns net/http's error log into Logf calls.
type logWriter struct{ s *Server }

func (w logWriter) Write(p []byte) (int, error) {
	if w.s.Logf != nil {
		w.s.Logf("hbone: %s", strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// ListenAndServe listens on addr (e.g. "127.0.0.1:15008") and serves.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// ErrServerClosed then (or the error that stopped it).
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil || s.TLSConfig == nil {
		_ = ln.Close()
		return errors.New("hbone: Server needs a Handler and a TLSConfig")
	}
	s.init()
	return s.hs.ServeTLS(lingerListener{ln}, "", "")
}

// lingerListener closes connections gracefully. A client whose certificate we
// reject learns it from our TLS alert only after its side of the TLS 1.3
// handshake, when it has already sent its HTTP/2 preface; closing a socket with
// those bytes unread makes the kernel send RST, and the client may see "broken
// pipe" instead of the alert. So Close shuts down our sending side (the alert and
// a FIN go out), drains what the peer sent for a moment, and then closes.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, err
}

const (
	lingerTime  = 250 * time.Millisecond
	lingerBytes = 256 << 10
)

type lingerConn struct {
	*net.TCPConn
	once sync.Once
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		if c.CloseWrite() != nil {
			_ = c.TCPConn.Close()
			return
		}
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(lingerTime))
			_, _ = io.Copy(io.Discard, io.LimitReader(c.TCPConn, lingerBytes))
			_ = c.TCPConn.Close()
		}()
	})
	return nil
}

// Shutdown stops accepting, sends GOAWAY on every connection and waits
// until their in-flight streams have finished and the connections closed,
// or ctx ends; then it closes what is left and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.down = true
	s.mu.Unlock()
	err := s.hs.Shutdown(ctx)
	if err != nil {
		_ = s.hs.Close()
	}
	return err
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.down = true
	s.mu.Unlock()
	return s.hs.Close()
}

// serverConn is one accepted connection.
type serverConn struct {
	raw    net.Conn // a *tls.Conn
	opened time.Time

	peerOnce sync.Once
	peer     spiffeid.ID
	peerErr  error

	total atomic.Uint64 // streams served

	mu      sync.Mutex
	streams map[*Stream]struct{}
}

// peerID returns the verified client identity, from the first request's
// TLS state (the same for every stream of the connection).
func (sc *serverConn) peerID(r *http.Request) (spiffeid.ID, error) {
	sc.peerOnce.Do(func() {
		if r.TLS == nil {
			sc.peerErr = errors.New("no TLS connection state")
			return
		}
		sc.peer, sc.peerErr = identity.PeerID(*r.TLS)
	})
	return sc.peer, sc.peerErr
}

// serveHTTP turns one HTTP/2 request into a Stream.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	sc, _ := r.Context().Value(connKey{}).(*serverConn)
	if sc == nil || r.ProtoMajor != 2 {
		http.Error(w, "hbone: HTTP/2 over TLS only", http.StatusHTTPVersionNotSupported)
		return
	}
	peer, err := sc.peerID(r)
	if err != nil {
		http.Error(w, "hbone: "+err.Error(), http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodConnect {
		w.Header().Set("Allow", http.MethodConnect)
		http.Error(w, fmt.Sprintf("hbone: method %s not allowed; only CONNECT", r.Method), http.StatusMethodNotAllowed)
		return
	}
	auth, err := ParseAuthority(r.Host)
	if err != nil {
		http.Error(w, "hbone: "+err.Error(), http.StatusBadRequest)
		return
	}
	st := newStream(sc, peer, w, r, auth)
	sc.mu.Lock()
	sc.streams[st] = struct{}{}
	sc.mu.Unlock()
	sc.total.Add(1)
	defer func() {
		sc.mu.Lock()
		delete(sc.streams, st)
		sc.mu.Unlock()
	}()
	st.serve(r.Context(), s.Handler)
}
