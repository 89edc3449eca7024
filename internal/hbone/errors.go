package hbone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/meshway/meshway/internal/identity"
)

// Errors of [Pool.Dial], to test with errors.Is; the returned error says
// more (address, identities, status).
var (
	// ErrRefused: the HBONE server refused the TCP connection, or answered
	// the CONNECT with 503 (its upstream refused or is unreachable).
	ErrRefused = errors.New("hbone: connection refused")
	// ErrIdentityRejected: the server's identity is not among those
	// accepted, its certificate does not verify, or the server rejected
	// ours (TLS alert, 401 or 403).
	ErrIdentityRejected = errors.New("hbone: identity rejected")
	// ErrTimeout: connecting (TCP, TLS and the CONNECT answer) took longer
	// than the connect timeout or the context allowed.
	ErrTimeout = errors.New("hbone: timeout")
	// ErrBadRequest: the server answered 400, e.g. an invalid :authority.
	ErrBadRequest = errors.New("hbone: bad request")
	// ErrStreamClosed: the stream ended (the peer closed it, or it was
	// reset) while writing.
	ErrStreamClosed = errors.New("hbone: stream closed")
)

// DialError describes a failed [Pool.Dial].
type DialError struct {
	Addr      string // the HBONE server, ip:15008
	Authority string
	Status    int   // HTTP status of the CONNECT answer, 0 if none
	Kind      error // one of the Err* sentinels, or nil if unclassified
	Err       error // the underlying error
}

func (e *DialError) Error() string {
	msg := fmt.Sprintf("hbone: CONNECT %s via %s", e.Authority, e.Addr)
	if e.Kind != nil {
		msg += ": " + strings.TrimPrefix(e.Kind.Error(), "hbone: ")
	}
	if e.Status != 0 {
		msg += fmt.Sprintf(" (status %d)", e.Status)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *DialError) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// classify maps a transport error to one of the sentinels (or nil).
func classify(err error) error {
	var alert tls.AlertError
	var opErr *net.OpError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrRefused), errors.Is(err, ErrIdentityRejected), errors.Is(err, ErrTimeout):
		return nil // already classified
	case errors.Is(err, identity.ErrUntrusted), errors.Is(err, identity.ErrPeerIDRejected):
		return ErrIdentityRejected
	case errors.As(err, &alert):
		return ErrIdentityRejected
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// The server sent a TLS alert: with TLS 1.3 the client learns that
		// its certificate was rejected only after its side of the handshake.
		return ErrIdentityRejected
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, errRefusedStream):
		return ErrRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ErrTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return nil
}

// closedError wraps a stream's transport error as ErrStreamClosed without
// formatting it up front: every stream that ends with a reset produces one.
type closedError struct{ err error }

func (e closedError) Error() string   { return ErrStreamClosed.Error() + ": " + e.err.Error() }
func (e closedError) Unwrap() []error { return []error{ErrStreamClosed, e.err} }

// connectTimeout is the cause of a Dial's set-up context expiring.
type connectTimeout time.Duration

func (d connectTimeout) Error() string {
	return fmt.Sprintf("%v: connect timeout %s", ErrTimeout, time.Duration(d))
}
func (d connectTimeout) Unwrap() error { return ErrTimeout }
