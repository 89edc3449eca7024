package hbone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"

	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/rawconn"
)

// Defaults of [Pool] fields.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultIdleTimeout    = 90 * time.Second
)

// Request describes one tunnel to open.
type Request struct {
	// Source presents the client's certificate; its ID is part of the pool
	// key. Required.
	Source identity.CertSource
	// Addr is the HBONE server to connect to, e.g. "10.0.0.7:15008".
	// Required.
	Addr string
	// Authority is the :authority, the original destination: ip:port,
	// [ipv6]:port or hostname:port. Required.
	Authority string
	// Expected are the server identities accepted; the server's SAN must
	// be one of them. Required: at least one.
	Expected []spiffeid.ID
	// Forwarded, if its For is valid, is sent as the forwarded header.
	Forwarded Forwarded
	// Baggage, if non-empty, is sent as the baggage header.
	Baggage Baggage
	// Traceparent, if non-empty, is sent as the traceparent header.
	Traceparent string
	// Header, if non-nil, adds further headers.
	Header http.Header
}

// Pool opens HBONE streams over pooled HTTP/2 connections, one pool of
// connections per (source identity, destination address, accepted
// destination identities). A connection carries up to the server's
// SETTINGS_MAX_CONCURRENT_STREAMS streams; beyond that the pool opens
// another. The zero Pool is not usable: Bundle is required. A Pool is safe
// for concurrent use.
type Pool struct {
	// Bundle verifies servers' certificates. Required.
	Bundle *identity.Bundle
	// ConnectTimeout bounds a Dial: TCP connect, TLS handshake and the
	// CONNECT answer. Zero means 10 s.
	ConnectTimeout time.Duration
	// IdleTimeout closes connections that carried no stream for that long.
	// Zero means 90 s.
	IdleTimeout time.Duration
	// DialContext opens the TCP connection. Nil means a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	initOnce sync.Once

	mu     sync.Mutex
	conns  map[poolKey]*poolEntry
	closed bool
}

type poolKey struct {
	src      spiffeid.ID
	addr     string
	expected string // sorted, space-separated
}

// poolEntry holds the connections of one pool key.
type poolEntry struct {
	src      identity.CertSource // the latest Source for the key
	expected []spiffeid.ID
	conns    []*h2Conn
	dialing  chan struct{} // non-nil while a connection is being dialed
	dialed   uint64        // connections dialed so far: the last one's poolSeq
}

func (p *Pool) init() {
	p.initOnce.Do(func() {
		p.conns = map[poolKey]*poolEntry{}
	})
}

func keyOf(req *Request) poolKey {
	ids := make([]string, len(req.Expected))
	for i, id := range req.Expected {
		ids[i] = id.String()
	}
	slices.Sort(ids)
	return poolKey{src: req.Source.ID(), addr: req.Addr, expected: strings.Join(ids, " ")}
}

// refusedTries bounds the tries of a stream the server refuses unprocessed
// (REFUSED_STREAM, or above its GOAWAY's last stream): each after the first
// on a connection dialed for it. A refused stream is always safe to send
// again, and a server closing idle connections refuses the first stream of
// a fresh one that comes after its idle timeout (a slow client, a busy
// host); net/http's HTTP/2 transport retries those up to six times.
const refusedTries = 3

// Dial opens a tunnel to req.Authority through the HBONE server at
// req.Addr and returns it once the server accepted the CONNECT. ctx bounds
// only the set-up; the stream lives until Close. Errors are *DialError
// matching ErrRefused, ErrIdentityRejected, ErrTimeout or ErrBadRequest
// with errors.Is where they apply. A stream the server refused before
// processing it (it was draining or closing idle connections, or at its
// stream cap) is tried again on a connection dialed for it, up to
// refusedTries tries in all; so is, once, one whose pooled connection
// turned out to be broken before the CONNECT was answered (the peer went
// away while the connection sat in the pool, and the reader had not seen
// it yet): a tunnel that carried nothing can always be opened again. Not
// on another pooled connection: when a server closes the connections that
// sat idle, it closes them all at once.
func (p *Pool) Dial(ctx context.Context, req Request) (*Conn, error) {
	p.init()
	fail := func(kind error, status int, err error) (*Conn, error) {
		if kind == nil {
			kind = classify(err)
		}
		return nil, &DialError{Addr: req.Addr, Authority: req.Authority, Status: status, Kind: kind, Err: err}
	}
	if p.Bundle == nil {
		return fail(nil, 0, errors.New("Pool.Bundle is nil: set the trust bundle that verifies servers"))
	}
	if req.Source == nil || req.Addr == "" || len(req.Expected) == 0 {
		return fail(nil, 0, errors.New("request needs Source, Addr and at least one Expected identity"))
	}
	if _, err := ParseAuthority(req.Authority); err != nil {
		return fail(ErrBadRequest, 0, err)
	}
	header, err := requestHeader(&req)
	if err != nil {
		return fail(ErrBadRequest, 0, err)
	}
	timeout := p.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	setupCtx, cancelSetup := context.WithTimeoutCause(ctx, timeout, connectTimeout(timeout))
	defer cancelSetup()
	timedOut := func(err error) (*Conn, error) {
		cause := context.Cause(setupCtx)
		if errors.Is(cause, ErrTimeout) || errors.Is(cause, context.DeadlineExceeded) {
			if err == nil || errors.Is(err, cause) {
				return fail(ErrTimeout, 0, cause)
			}
			return fail(ErrTimeout, 0, fmt.Errorf("%w (%w)", err, cause))
		}
		return fail(nil, 0, cause)
	}

	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(setupCtx, &req, attempt > 0)
		if err != nil {
			if setupCtx.Err() != nil {
				return timedOut(err)
			}
			return fail(nil, 0, err)
		}
		// again says whether a stream that failed unanswered may be tried
		// once more, on a connection dialed for it: refused unprocessed
		// (up to refusedTries in all), or lost with a pooled connection
		// that was already broken (once: a failure of a connection dialed
		// for it is the server's answer).
		again := func(err error) bool {
			if errors.Is(err, errRefusedStream) {
				return attempt+1 < refusedTries
			}
			return attempt == 0 && reused && c.dead()
		}
		s, err := c.open(req.Authority, header)
		if err != nil {
			if again(err) {
				continue
			}
			return fail(nil, 0, err)
		}
		select {
		case <-s.resp:
		case <-setupCtx.Done():
			s.release(http2.ErrCodeCancel)
			return timedOut(nil)
		}
		status, err := s.responseStatus()
		if err != nil {
			s.release(http2.ErrCodeCancel)
			if again(err) {
				continue
			}
			return fail(nil, 0, err)
		}
		if status == http.StatusOK {
			return &Conn{s: s}, nil
		}
		// The reason is in the body; read a little of it, within the
		// set-up's time.
		if d, ok := setupCtx.Deadline(); ok {
			s.setReadDeadline(d)
		}
		msg, _ := io.ReadAll(io.LimitReader(s, 512))
		s.release(http2.ErrCodeCancel)
		var kind error
		switch status {
		case http.StatusServiceUnavailable, http.StatusBadGateway:
			kind = ErrRefused
		case http.StatusUnauthorized, http.StatusForbidden:
			kind = ErrIdentityRejected
		case http.StatusBadRequest:
			kind = ErrBadRequest
		case http.StatusGatewayTimeout:
			kind = ErrTimeout
		}
		return fail(kind, status, fmt.Errorf("server answered %q", strings.TrimSpace(string(msg))))
	}
}

// requestHeader builds the CONNECT's regular headers from req, checking
// the names and values of req.Header.
func requestHeader(req *Request) ([][2]string, error) {
	var out [][2]string
	if req.Forwarded.For.IsValid() {
		out = append(out, [2]string{"forwarded", FormatForwarded(req.Forwarded)})
	}
	if len(req.Baggage) > 0 {
		out = append(out, [2]string{"baggage", FormatBaggage(req.Baggage)})
	}
	if req.Traceparent != "" {
		out = append(out, [2]string{"traceparent", req.Traceparent})
	}
	for k, vs := range req.Header {
		name := strings.ToLower(k)
		if !httpguts.ValidHeaderFieldName(k) || name == "host" {
			return nil, fmt.Errorf("header %q cannot be sent on an HTTP/2 CONNECT", k)
		}
		for _, v := range vs {
			if connectionSpecific(name, v) {
				return nil, fmt.Errorf("header %q is connection-specific, which HTTP/2 forbids", k)
			}
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, fmt.Errorf("header %s: invalid value %q", k, v)
			}
			out = append(out, [2]string{name, v})
		}
	}
	return out, nil
}

// get returns a connection of req's pool with a stream slot reserved,
// dialing one if none has room; reused says it was in the pool before.
// With fresh, only a connection dialed after the call began will do.
func (p *Pool) get(ctx context.Context, req *Request, fresh bool) (c *h2Conn, reused bool, err error) {
	key := keyOf(req)
	var after uint64 // with fresh: connections up to this one are too old
	for first := true; ; first = false {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, false, errors.New("pool closed")
		}
		e := p.conns[key]
		if e == nil {
			e = &poolEntry{expected: slices.Clone(req.Expected)}
			p.conns[key] = e
		}
		e.src = req.Source
		if fresh && first {
			after = e.dialed
		}
		e.conns = slices.DeleteFunc(e.conns, (*h2Conn).dead)
		for _, pc := range e.conns {
			if (!fresh || pc.poolSeq > after) && pc.reserve() {
				p.mu.Unlock()
				return pc, true, nil
			}
		}
		if wait := e.dialing; wait != nil {
			p.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, false, ctx.Err()
			}
		}
		done := make(chan struct{})
		e.dialing = done
		src := e.src
		p.mu.Unlock()

		c, err = p.dial(ctx, src, req.Addr, e.expected)

		p.mu.Lock()
		e.dialing = nil
		close(done)
		if err != nil {
			if len(e.conns) == 0 && p.conns[key] == e {
				delete(p.conns, key) // no leftovers for destinations that fail
			}
			p.mu.Unlock()
			return nil, false, err
		}
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return nil, false, errors.New("pool closed")
		}
		e.dialed++
		c.poolSeq = e.dialed
		e.conns = append(e.conns, c)
		ok := c.reserve()
		p.mu.Unlock()
		if ok {
			return c, false, nil
		}
	}
}

// dial opens a connection: TCP, TLS (whose VerifyConnection checks the
// server's SPIFFE ID), the HTTP/2 preface, and the server's SETTINGS.
func (p *Pool) dial(ctx context.Context, src identity.CertSource, addr string, expected []spiffeid.ID) (*h2Conn, error) {
	tc, err := p.dialTLS(ctx, "tcp", addr, identity.ClientTLSConfig(src, p.Bundle, expected))
	if err != nil {
		return nil, err
	}
	peer, err := identity.PeerID(tc.ConnectionState())
	if err != nil {
		_ = tc.Close()
		return nil, err
	}
	c := newH2Conn(tc, true, peer)
	c.idle = p.IdleTimeout
	if c.idle <= 0 {
		c.idle = DefaultIdleTimeout
	}
	if err := c.start(0); err != nil {
		c.fail(err)
		return nil, err
	}
	select {
	case <-c.readSettings:
		return c, nil
	case <-c.done:
		return nil, c.failure()
	case <-ctx.Done():
		c.fail(ctx.Err())
		return nil, ctx.Err()
	}
}

// dialTLS opens the TCP connection and runs the TLS handshake, whose
// VerifyConnection checks the server's SPIFFE ID.
func (p *Pool) dialTLS(ctx context.Context, network, addr string, conf *tls.Config) (*tls.Conn, error) {
	var (
		raw net.Conn
		err error
	)
	if p.DialContext != nil {
		raw, err = p.DialContext(ctx, network, addr)
	} else {
		var d net.Dialer
		raw, err = d.DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	// TLS reads and writes the socket with raw system calls
	// (internal/rawconn).
	tc := tls.Client(rawconn.Wrap(raw), conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	if proto := tc.ConnectionState().NegotiatedProtocol; proto != "h2" {
		_ = tc.Close()
		return nil, fmt.Errorf("server did not negotiate ALPN h2 (got %q)", proto)
	}
	return tc, nil
}

// Close closes every pooled connection, aborting their streams.
func (p *Pool) Close() error {
	p.init()
	p.mu.Lock()
	p.closed = true
	all := p.conns
	p.conns = map[poolKey]*poolEntry{}
	p.mu.Unlock()
	var conns []*h2Conn
	for _, e := range all {
		conns = append(conns, e.conns...)
	}
	closeAll(conns)
	return nil
}
