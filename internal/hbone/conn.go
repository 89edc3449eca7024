package hbone

import (
	"net"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"

	"github.com/meshway/meshway/internal/rawconn"
)

// Conn is the client side of one HBONE stream: a net.Conn with CloseWrite.
// Close must be called to release the stream.
type Conn struct {
	s *h2Stream
}

// PeerID returns the server's verified identity.
func (c *Conn) PeerID() spiffeid.ID { return c.s.c.peer }

// Read reads what the server sends; io.EOF after its CloseWrite.
func (c *Conn) Read(p []byte) (int, error) { return c.s.Read(p) }

// Write sends p to the server. It blocks while the server's flow-control
// window is full, or while the tunnel's socket is behind (back-pressure).
func (c *Conn) Write(p []byte) (int, error) { return c.s.Write(p) }

// CloseWrite ends the client's direction (END_STREAM): the server reads
// io.EOF; the server's direction stays open.
func (c *Conn) CloseWrite() error { return c.s.CloseWrite() }

// Close releases the stream, aborting it (RST_STREAM CANCEL) unless both
// directions already ended.
func (c *Conn) Close() error {
	c.s.release(http2.ErrCodeCancel)
	return nil
}

// Unusable reports, without reading or waiting, whether the stream can no
// longer carry a request after sitting idle in a keep-alive pool: the
// server ended or reset it or sent data nobody asked for (it is unread),
// or its HTTP/2 connection failed or is going away. None of that shows on
// the TCP socket, which other streams share, so the waypoint's HTTP/1.1
// pool asks the stream (it implements rawconn.IdleChecker) before sending
// a request that could not be sent again.
func (c *Conn) Unusable() bool { return c.s.unusable() }

// LocalAddr returns the local address of the tunnel's TCP connection.
func (c *Conn) LocalAddr() net.Addr { return c.s.c.raw.LocalAddr() }

// RemoteAddr returns the HBONE server's address.
func (c *Conn) RemoteAddr() net.Addr { return c.s.c.raw.RemoteAddr() }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.s.setReadDeadline(t)
	c.s.setWriteDeadline(t)
	return nil
}

// SetReadDeadline makes Read return os.ErrDeadlineExceeded once t has
// passed; the stream stays usable, and a later deadline (or none) lets
// reads go on.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.s.setReadDeadline(t)
	return nil
}

// SetWriteDeadline makes a Write waiting for flow-control window return
// os.ErrDeadlineExceeded once t has passed.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.s.setWriteDeadline(t)
	return nil
}

var (
	_ net.Conn            = (*Conn)(nil)
	_ rawconn.IdleChecker = (*Conn)(nil)
)
