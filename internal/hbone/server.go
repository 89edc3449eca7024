package hbone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/rawconn"
)

// DefaultPort is the HBONE port, as in Istio.
const DefaultPort = 15008

// Defaults of [Server] fields.
const (
	DefaultMaxConcurrentStreams = 100
	DefaultHandshakeTimeout     = 10 * time.Second
)

// Handler serves HBONE streams. ServeHBONE runs on a goroutine of its own
// per stream; when it returns, the server's direction ends (END_STREAM)
// and, if the client is still sending, the stream is reset (NO_ERROR). It
// must not leave goroutines using the stream behind. ctx is canceled when
// the stream ends (both directions, or a reset) or its connection fails.
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
	// (SETTINGS_MAX_FRAME_SIZE), 16 KiB to 16 MiB; the frame reader keeps
	// a buffer of that size per connection. Zero means 16 KiB, which is
	// also the size of a TLS record.
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
	conf     *tls.Config

	mu          sync.Mutex
	listeners   map[net.Listener]struct{}
	handshaking map[net.Conn]struct{}
	conns       map[*h2Conn]struct{}
	down        bool
	// wg counts the goroutines setting up accepted connections: Close and
	// Shutdown wait for them, so nothing logs after they return.
	wg sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("hbone: server closed")

func (s *Server) init() {
	s.initOnce.Do(func() {
		conf := s.TLSConfig.Clone()
		if conf == nil {
			conf = &tls.Config{}
		}
		conf.MinVersion = tls.VersionTLS13
		conf.MaxVersion = tls.VersionTLS13
		conf.NextProtos = []string{"h2"}
		s.conf = conf
		s.listeners = map[net.Listener]struct{}{}
		s.handshaking = map[net.Conn]struct{}{}
		s.conns = map[*h2Conn]struct{}{}
	})
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
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
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			down := s.down
			s.mu.Unlock()
			if down {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors, for instance: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logf("hbone: accept: %v; retrying in %v", err, backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		// Added under mu, after checking down: Close's Wait then never
		// races an Add.
		s.mu.Lock()
		if s.down {
			s.mu.Unlock()
			_ = raw.Close()
			return ErrServerClosed
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(raw)
		}()
	}
}

// serveConn runs the TLS handshake and then the HTTP/2 connection.
func (s *Server) serveConn(raw net.Conn) {
	if tc, ok := raw.(*net.TCPConn); ok {
		// TLS reads and writes the socket with raw system calls
		// (internal/rawconn); closing lingers.
		raw = &lingerConn{Conn: rawconn.Wrap(tc), tcp: tc}
	}
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		_ = raw.Close()
		return
	}
	s.handshaking[raw] = struct{}{}
	s.mu.Unlock()
	c, err := s.handshake(raw)
	s.mu.Lock()
	delete(s.handshaking, raw)
	if s.down {
		err = errors.Join(ErrServerClosed, err) // whatever failed, the server is closing
	}
	if err == nil {
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	if err != nil {
		if !errors.Is(err, ErrServerClosed) {
			s.logf("hbone: connection from %s: %v", raw.RemoteAddr(), err)
		}
		_ = raw.Close()
		if c != nil {
			_ = c.raw.Close()
		}
		return
	}
	if err := c.start(uint32(s.MaxFrameSize)); err != nil {
		s.mu.Lock()
		down := s.down
		s.mu.Unlock()
		if !down {
			s.logf("hbone: connection from %s (%s): %v", raw.RemoteAddr(), c.peer, err)
		}
		c.fail(err)
	}
}

// handshake authenticates the client and prepares the HTTP/2 connection;
// the deadline it sets on raw also bounds reading the client's preface.
func (s *Server) handshake(raw net.Conn) (*h2Conn, error) {
	timeout := s.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	_ = raw.SetDeadline(time.Now().Add(timeout))
	tc := tls.Server(raw, s.conf)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	state := tc.ConnectionState()
	if state.NegotiatedProtocol != "h2" {
		return nil, fmt.Errorf("client did not negotiate ALPN h2 (got %q)", state.NegotiatedProtocol)
	}
	peer, err := identity.PeerID(state)
	if err != nil {
		return nil, err
	}
	c := newH2Conn(tc, false, peer)
	c.maxStreams = uint32(s.MaxConcurrentStreams)
	if c.maxStreams == 0 {
		c.maxStreams = DefaultMaxConcurrentStreams
	}
	c.idle = s.IdleTimeout
	c.logf = s.Logf
	c.onStream = func(st *h2Stream) { newStream(st).serve(s.Handler) }
	c.onClose = func(c *h2Conn) {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}
	return c, nil
}

const (
	lingerTime  = 250 * time.Millisecond
	lingerBytes = 256 << 10
)

// lingerConn closes an accepted connection gracefully. A client whose
// certificate we reject learns it from our TLS alert only after its side of
// the TLS 1.3 handshake, when it has already sent its HTTP/2 preface;
// closing a socket with those bytes unread makes the kernel send RST, and
// the client may see "broken pipe" instead of the alert (or miss our
// GOAWAY). So Close shuts down our sending side (the alert and a FIN go
// out), drains what the peer sent for a moment, and then closes.
type lingerConn struct {
	net.Conn // tcp, with raw reads and writes
	tcp      *net.TCPConn
	once     sync.Once
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		if c.tcp.CloseWrite() != nil {
			_ = c.tcp.Close()
			return
		}
		go func() {
			_ = c.tcp.SetReadDeadline(time.Now().Add(lingerTime))
			_, _ = io.Copy(io.Discard, io.LimitReader(c.tcp, lingerBytes))
			_ = c.tcp.Close()
		}()
	})
	return nil
}

// Shutdown stops accepting, sends GOAWAY on every connection and waits
// until their in-flight streams have finished and the connections closed,
// or ctx ends; then it closes what is left and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.stop()
	for _, c := range conns {
		c.shutdown()
	}
	s.wg.Wait() // connections still in their handshake were closed by stop
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		left := len(s.conns)
		s.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			_ = s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	closeAll(s.stop())
	s.wg.Wait()
	return nil
}

// closeAll closes conns side by side: one whose flusher is stuck on a peer
// that stopped reading takes up to a second (h2Conn.Close), and the others
// need not wait for it.
func closeAll(conns []*h2Conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { _ = c.Close() })
	}
	wg.Wait()
}

// stop marks the server down, closes its listeners and the connections
// still in their handshake, and returns the established connections.
func (s *Server) stop() []*h2Conn {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = true
	for ln := range s.listeners {
		_ = ln.Close()
	}
	for raw := range s.handshaking {
		_ = raw.Close()
	}
	conns := make([]*h2Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}
