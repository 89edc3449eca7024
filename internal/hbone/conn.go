package hbone

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Conn is the client side of one HBONE stream. It is a net.Conn with
// CloseWrite. Deadlines are coarser than a socket's: when one passes, the
// stream is aborted (Read and Write then return os.ErrDeadlineExceeded);
// a deadline can be moved or cleared only before it passes. Close must be
// called to release the stream.
type Conn struct {
	cc        *clientConn
	authority string
	opened    time.Time
	body      io.ReadCloser // response body: what the server sends
	pw        *bodyPipe     // request body: what we send
	cancel    context.CancelFunc

	read, written atomic.Int64

	closeOnce sync.Once
	closeErr  atomic.Pointer[error] // error Read/Write return after an abort

	dmu    sync.Mutex
	rTimer *time.Timer
	wTimer *time.Timer
}

func (c *clientConn) newConn(authority string, body io.ReadCloser, pw *bodyPipe, cancel context.CancelFunc) *Conn {
	conn := &Conn{cc: c, authority: authority, opened: time.Now(), body: body, pw: pw, cancel: cancel}
	c.mu.Lock()
	c.streams[conn] = struct{}{}
	c.mu.Unlock()
	return conn
}

// PeerID returns the server's verified identity.
func (c *Conn) PeerID() spiffeid.ID { return c.cc.peer }

// Read reads what the server sends; io.EOF after its CloseWrite.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.body.Read(p)
	c.read.Add(int64(n))
	if err != nil && !errors.Is(err, io.EOF) {
		err = c.mapErr(err)
	}
	return n, err
}

// Write sends p to the server. It blocks while the server's flow-control
// window is full (back-pressure).
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.pw.Write(p)
	c.written.Add(int64(n))
	if err != nil {
		err = c.mapErr(err)
	}
	return n, err
}

func (c *Conn) mapErr(err error) error {
	if e := c.closeErr.Load(); e != nil {
		return *e
	}
	return closedError{err}
}

// CloseWrite ends the client's direction (END_STREAM): the server reads
// io.EOF; the server's direction stays open.
func (c *Conn) CloseWrite() error {
	return c.pw.CloseWrite()
}

// Close aborts the stream if it is still open and releases it.
func (c *Conn) Close() error {
	c.abort(net.ErrClosed)
	return nil
}

func (c *Conn) abort(err error) {
	c.closeOnce.Do(func() {
		c.closeErr.Store(&err)
		c.pw.CloseWithError(err)
		_ = c.body.Close()
		c.cancel()
		c.dmu.Lock()
		for _, t := range []*time.Timer{c.rTimer, c.wTimer} {
			if t != nil {
				t.Stop()
			}
		}
		c.dmu.Unlock()
		c.cc.mu.Lock()
		delete(c.cc.streams, c)
		c.cc.mu.Unlock()
	})
}

// LocalAddr returns the local address of the tunnel's TCP connection.
func (c *Conn) LocalAddr() net.Addr { return c.cc.raw.LocalAddr() }

// RemoteAddr returns the HBONE server's address.
func (c *Conn) RemoteAddr() net.Addr { return c.cc.raw.RemoteAddr() }

// SetDeadline sets both deadlines; see [Conn] for their semantics.
func (c *Conn) SetDeadline(t time.Time) error {
	c.setDeadline(&c.rTimer, t)
	c.setDeadline(&c.wTimer, t)
	return nil
}

// SetReadDeadline sets the read deadline; see [Conn].
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.setDeadline(&c.rTimer, t)
	return nil
}

// SetWriteDeadline sets the write deadline; see [Conn].
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.setDeadline(&c.wTimer, t)
	return nil
}

func (c *Conn) setDeadline(timer **time.Timer, t time.Time) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if *timer != nil {
		(*timer).Stop()
		*timer = nil
	}
	if t.IsZero() {
		return
	}
	*timer = time.AfterFunc(time.Until(t), func() { c.abort(os.ErrDeadlineExceeded) })
}

var _ net.Conn = (*Conn)(nil)
