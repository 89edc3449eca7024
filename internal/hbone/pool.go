package hbone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/identity"
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

// poolEntry holds the connections of one pool key. Its transport is used
// only to create connections (NewClientConn); it dials with the key's TLS
// configuration.
type poolEntry struct {
	t       *http.Transport
	src     identity.CertSource // guarded by Pool.mu; the latest Source for the key
	conns   []*clientConn
	dialing chan struct{} // non-nil while a connection is being dialed
}

func (p *Pool) init() {
	p.initOnce.Do(func() {
		p.conns = map[poolKey]*poolEntry{}
	})
}

// dialed carries the TLS connection out of a transport's DialTLSContext.
type dialed struct{ conn *tls.Conn }

type dialedKey struct{}

func (p *Pool) newEntry(req *Request) *poolEntry {
	e := &poolEntry{src: req.Source}
	expected := slices.Clone(req.Expected)
	idle := p.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	var protos http.Protocols
	protos.SetHTTP2(true)
	e.t = &http.Transport{
		Protocols: &protos,
		HTTP2: &http.HTTP2Config{
			MaxReadFrameSize:              clientMaxFrameSize,
			MaxReceiveBufferPerStream:     streamWindowSize,
			MaxReceiveBufferPerConnection: connWindowSize,
		},
		IdleConnTimeout:    idle,
		DisableCompression: true,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			p.mu.Lock()
			src := e.src
			p.mu.Unlock()
			tc, err := p.dialTLS(ctx, network, addr, identity.ClientTLSConfig(src, p.Bundle, expected))
			if err != nil {
				return nil, err
			}
			if d, ok := ctx.Value(dialedKey{}).(*dialed); ok {
				d.conn = tc
			}
			return tc, nil
		},
	}
	return e
}

func keyOf(req *Request) poolKey {
	ids := make([]string, len(req.Expected))
	for i, id := range req.Expected {
		ids[i] = id.String()
	}
	slices.Sort(ids)
	return poolKey{src: req.Source.ID(), addr: req.Addr, expected: strings.Join(ids, " ")}
}

// Dial opens a tunnel to req.Authority through the HBONE server at
// req.Addr and returns it once the server accepted the CONNECT. ctx bounds
// only the set-up; the stream lives until Close. Errors are *DialError
// matching ErrRefused, ErrIdentityRejected, ErrTimeout or ErrBadRequest
// with errors.Is where they apply.
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
	timeout := p.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	setupCtx, cancelSetup := context.WithTimeoutCause(ctx, timeout, connectTimeout(timeout))
	defer cancelSetup()

	cc, err := p.get(setupCtx, &req)
	if err != nil {
		if cause := context.Cause(setupCtx); setupCtx.Err() != nil && (errors.Is(cause, ErrTimeout) || errors.Is(cause, context.DeadlineExceeded)) {
			return fail(ErrTimeout, 0, fmt.Errorf("%w (%w)", err, cause))
		}
		return fail(nil, 0, err)
	}

	// The stream outlives ctx: it gets its own context, canceled by Close
	// or, until the answer arrives, by the end of setupCtx.
	streamCtx, cancelStream := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(setupCtx, cancelStream)
	body := newBodyPipe()
	hreq := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Host: req.Authority},
		Host:   req.Authority,
		Header: make(http.Header, 4),
		Body:   body,
	}
	for k, v := range req.Header {
		hreq.Header[k] = v
	}
	if req.Forwarded.For.IsValid() {
		hreq.Header.Set("Forwarded", FormatForwarded(req.Forwarded))
	}
	if len(req.Baggage) > 0 {
		hreq.Header.Set("Baggage", FormatBaggage(req.Baggage))
	}
	if req.Traceparent != "" {
		hreq.Header.Set("Traceparent", req.Traceparent)
	}
	resp, err := cc.cc.RoundTrip(hreq.WithContext(streamCtx))
	if !stop() {
		// setupCtx ended first: the stream was (or is being) canceled.
		cancelStream()
		_ = body.CloseWrite()
		if err == nil {
			_ = resp.Body.Close()
		}
		cause := context.Cause(setupCtx)
		var kind error
		if errors.Is(cause, ErrTimeout) || errors.Is(cause, context.DeadlineExceeded) {
			kind = ErrTimeout
		}
		return fail(kind, 0, cause)
	}
	if err != nil {
		cancelStream()
		_ = body.CloseWrite()
		if cc.cc.Err() != nil {
			if cause := connError(cc.raw); cause != nil {
				err = fmt.Errorf("%w (%w)", cause, err)
			}
		}
		return fail(nil, 0, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_ = resp.Body.Close()
		cancelStream()
		_ = body.CloseWrite()
		var kind error
		switch resp.StatusCode {
		case http.StatusServiceUnavailable, http.StatusBadGateway:
			kind = ErrRefused
		case http.StatusUnauthorized, http.StatusForbidden:
			kind = ErrIdentityRejected
		case http.StatusBadRequest:
			kind = ErrBadRequest
		case http.StatusGatewayTimeout:
			kind = ErrTimeout
		}
		return fail(kind, resp.StatusCode, fmt.Errorf("server answered %q", strings.TrimSpace(string(msg))))
	}
	return cc.newConn(req.Authority, resp.Body, body, cancelStream), nil
}

// get returns a connection of req's pool with a stream slot reserved,
// dialing one if none has room.
func (p *Pool) get(ctx context.Context, req *Request) (*clientConn, error) {
	key := keyOf(req)
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errors.New("pool closed")
		}
		e := p.conns[key]
		if e == nil {
			e = p.newEntry(req)
			p.conns[key] = e
		}
		e.src = req.Source
		e.conns = slices.DeleteFunc(e.conns, func(c *clientConn) bool { return c.cc.Err() != nil })
		for _, c := range e.conns {
			if c.cc.Reserve() == nil {
				p.mu.Unlock()
				return c, nil
			}
		}
		if wait := e.dialing; wait != nil {
			p.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		e.dialing = done
		p.mu.Unlock()

		c, err := p.dial(ctx, e, req, key)

		p.mu.Lock()
		e.dialing = nil
		close(done)
		if err != nil {
			if len(e.conns) == 0 && p.conns[key] == e {
				delete(p.conns, key) // no leftovers for destinations that fail
			}
			p.mu.Unlock()
			return nil, err
		}
		e.conns = append(e.conns, c)
		err = c.cc.Reserve()
		p.mu.Unlock()
		if err == nil {
			return c, nil
		}
	}
}

func (p *Pool) dial(ctx context.Context, e *poolEntry, req *Request, key poolKey) (*clientConn, error) {
	d := &dialed{}
	cc, err := e.t.NewClientConn(context.WithValue(ctx, dialedKey{}, d), "https", req.Addr)
	if err != nil {
		if d.conn != nil {
			if cause := connError(d.conn); cause != nil {
				err = fmt.Errorf("%w (%w)", cause, err)
			}
			_ = d.conn.Close()
		}
		return nil, err
	}
	if d.conn == nil {
		_ = cc.Close()
		return nil, errors.New("internal error: connection not dialed through the pool")
	}
	peer, err := identity.PeerID(d.conn.ConnectionState())
	if err != nil {
		_ = cc.Close()
		return nil, err
	}
	return &clientConn{cc: cc, key: key, peer: peer, raw: d.conn, opened: time.Now(), streams: map[*Conn]struct{}{}}, nil
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
	tc := tls.Client(raw, conf)
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
	for _, e := range all {
		for _, c := range e.conns {
			_ = c.cc.Close()
		}
	}
	return nil
}

// clientConn is one pooled HTTP/2 connection.
type clientConn struct {
	cc     *http.ClientConn
	raw    *tls.Conn
	key    poolKey
	peer   spiffeid.ID
	opened time.Time

	mu      sync.Mutex
	streams map[*Conn]struct{}
}
