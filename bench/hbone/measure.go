package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

// stream is one client connection or tunnel.
type stream interface {
	io.ReadWriteCloser
	CloseWrite() error
}

type dialFunc func(ctx context.Context) (stream, error)

type kind struct {
	name string
	dial dialFunc
}

// clients dials the child's three servers.
type clients struct {
	child   *childProc
	mgr     *identity.Manager
	src     identity.CertSource
	tlsConf *tls.Config
	pool    *hbone.Pool // warm: shared by every HBONE stream
}

func newClients(ca *identity.CA, child *childProc) (*clients, error) {
	mgr := identity.NewManager(identity.ManagerOptions{Issuer: identity.CAIssuer{CA: ca}, Bundle: ca.Bundle()})
	src, err := mgr.Source(context.Background(), clientID)
	if err != nil {
		return nil, err
	}
	return &clients{
		child:   child,
		mgr:     mgr,
		src:     src,
		tlsConf: identity.ClientTLSConfig(src, ca.Bundle(), []spiffeid.ID{serverID}),
		pool:    &hbone.Pool{Bundle: ca.Bundle()},
	}, nil
}

func (c *clients) close() {
	_ = c.pool.Close()
	c.mgr.Close()
}

func (c *clients) kinds() []kind {
	return []kind{{"raw TCP", c.dialTCP}, {"TLS 1.3", c.dialTLS}, {"HBONE", c.dialHBONE}}
}

func (c *clients) dialTCP(ctx context.Context) (stream, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.child.tcpAddr)
	if err != nil {
		return nil, err
	}
	return conn.(*net.TCPConn), nil
}

func (c *clients) dialTLS(ctx context.Context) (stream, error) {
	d := tls.Dialer{Config: c.tlsConf}
	conn, err := d.DialContext(ctx, "tcp", c.child.tlsAddr)
	if err != nil {
		return nil, err
	}
	return conn.(*tls.Conn), nil
}

func (c *clients) hboneRequest() hbone.Request {
	return hbone.Request{Source: c.src, Addr: c.child.hbAddr, Authority: "10.0.0.1:8080", Expected: []spiffeid.ID{serverID}}
}

// dialHBONE opens a stream on the warm pool.
func (c *clients) dialHBONE(ctx context.Context) (stream, error) {
	return c.pool.Dial(ctx, c.hboneRequest())
}

// dialHBONENew opens a stream on a new connection (its own pool); closing
// the stream closes the connection.
func (c *clients) dialHBONENew(ctx context.Context) (stream, error) {
	p := &hbone.Pool{Bundle: c.pool.Bundle}
	s, err := p.Dial(ctx, c.hboneRequest())
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	return poolStream{s, p}, nil
}

type poolStream struct {
	*hbone.Conn
	pool *hbone.Pool
}

func (s poolStream) Close() error {
	err := s.Conn.Close()
	_ = s.pool.Close()
	return err
}

// throughput opens n streams, has each send for dur, and returns the
// bytes per second the server acknowledged reading.
func throughput(dial dialFunc, n int, dur time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer cancel()
	conns := make([]stream, n)
	for i := range conns {
		c, err := dial(ctx)
		if err != nil {
			return 0, err
		}
		defer func() { _ = c.Close() }()
		conns[i] = c
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total uint64
		first error
	)
	start := time.Now()
	deadline := start.Add(dur)
	for _, c := range conns {
		wg.Go(func() {
			n, err := send(c, deadline)
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// send writes until the deadline, half-closes and returns what the server
// says it read. It moves the bytes as the proxies do, with hbone.Copy from a
// source that always has data, for every transport alike.
func send(c stream, deadline time.Time) (uint64, error) {
	n, err := hbone.Copy(c, untilSource{deadline})
	if err != nil {
		return 0, err
	}
	sent := uint64(n)
	if err := c.CloseWrite(); err != nil {
		return 0, err
	}
	var b [8]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, fmt.Errorf("reading the server's count: %w", err)
	}
	got := binary.BigEndian.Uint64(b[:])
	if got != sent {
		return 0, fmt.Errorf("server read %d bytes, %d sent", got, sent)
	}
	return got, nil
}

// latencies times n dials and returns p50 and p99. Streams are opened in
// batches of batch and closed, untimed, between batches, so that the closing
// traffic of one stream does not count toward the set-up of the next. Close
// only starts the teardown (RST_STREAM, the server's handlers returning), so
// the first set-up after a batch still meets that work on both ends: first
// is the median of those set-ups and restP99 the p99 of the others (zero for
// batches of 1).
func latencies(dial dialFunc, n, batch int) (p50, p99, first, restP99 time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := make([]time.Duration, 0, n)
	var firsts, rest []time.Duration
	open := make([]stream, 0, batch)
	closeAll := func() {
		for _, c := range open {
			_ = c.Close()
		}
		open = open[:0]
	}
	defer closeAll()
	for i := range n {
		t0 := time.Now()
		c, err := dial(ctx)
		if err != nil {
			return 0, 0, 0, 0, err
		}
		el := time.Since(t0)
		d = append(d, el)
		if batch > 1 {
			if len(open) == 0 && i > 0 {
				firsts = append(firsts, el)
			} else {
				rest = append(rest, el)
			}
		}
		open = append(open, c)
		if len(open) == batch {
			closeAll()
		}
	}
	slices.Sort(d)
	if len(firsts) > 0 && len(rest) > 0 {
		slices.Sort(firsts)
		slices.Sort(rest)
		first, restP99 = firsts[len(firsts)/2], rest[len(rest)*99/100]
	}
	return d[len(d)/2], d[len(d)*99/100], first, restP99, nil
}

// idleCost opens n streams with dial, leaves them idle, and returns the
// memory per stream in this process and in the child.
func idleCost(child *childProc, dial dialFunc, n int) (client, server float64, err error) {
	open := func(ctx context.Context) (io.Closer, error) { return dial(ctx) }
	return measureIdle(child, n, int64(n), open)
}

// idleConnCost opens n HBONE connections, each in its own pool, carrying
// no stream, and returns the memory per connection on each side.
func idleConnCost(child *childProc, cl *clients, n int) (client, server float64, err error) {
	open := func(ctx context.Context) (io.Closer, error) {
		p := &hbone.Pool{Bundle: cl.pool.Bundle}
		s, err := p.Dial(ctx, cl.hboneRequest())
		if err != nil {
			_ = p.Close()
			return nil, err
		}
		_ = s.Close() // the connection stays pooled, idle
		return p, nil
	}
	return measureIdle(child, n, 0, open)
}

// measureIdle opens n idle things with open and returns the memory each costs
// in this process and in the child, once the child counts base+streams open
// streams; everything opened is closed afterwards.
func measureIdle(child *childProc, n int, streams int64, open func(context.Context) (io.Closer, error)) (client, server float64, err error) {
	_, base, err := child.mem()
	if err != nil {
		return 0, 0, err
	}
	serverBefore, err := child.waitOpen(base)
	if err != nil {
		return 0, 0, err
	}
	clientBefore := memInUse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opened := make([]io.Closer, 0, n)
	defer func() {
		for _, c := range opened {
			_ = c.Close()
		}
		_, _ = child.waitOpen(base)
	}()
	for range n {
		c, err := open(ctx)
		if err != nil {
			return 0, 0, err
		}
		opened = append(opened, c)
	}
	serverAfter, err := child.waitOpen(base + streams)
	if err != nil {
		return 0, 0, err
	}
	clientAfter := memInUse()
	per := func(after, before uint64) float64 { return (float64(after) - float64(before)) / float64(n) }
	return per(clientAfter, clientBefore), per(serverAfter, serverBefore), nil
}

// untilSource reads as zeros, as much as asked, until the deadline.
type untilSource struct{ deadline time.Time }

func (u untilSource) Read(p []byte) (int, error) {
	if time.Now().After(u.deadline) {
		return 0, io.EOF
	}
	return len(p), nil
}
