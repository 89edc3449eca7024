package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/maxprocs"
	"github.com/meshway/meshway/internal/rawconn"
)

// The floor target is the least a Go proxy can do per request: a child of
// the bench that, for each client connection, dials one backend connection
// and moves each request's head to it and each response (head and
// Content-Length body) back, parsing nothing but the line endings and the
// Content-Length. It runs as the waypoint does — a goroutine per
// connection, raw reads and writes on Go's network poller
// (internal/rawconn), threads sized to the load (internal/maxprocs), its
// code on huge pages (internal/hugetext, in runChild) — with
// none of its work (routing, policies, header rewriting, telemetry,
// pooling, retries). Its CPU per request is what Go's runtime and the
// system calls of a proxy cost on this machine; the waypoint's above it is
// its own work. It serves only what the bench sends: GETs without a body,
// answered with a Content-Length. The HBONE floor (floor-hbone) does the
// same between the generator's tunnels and tunnels of its own to the
// backend's node: what the tunnels cost, with none of the waypoint's work.

// startFloorTarget starts the floor forwarder in a child of the bench.
func startFloorTarget(ctx context.Context, b *bench) (*running, error) {
	p, addrs, err := b.startChild("floor", true, 1, "floor", "-backend", b.backend, "-concurrency", strconv.Itoa(b.cfg.concurrency))
	if err != nil {
		return nil, err
	}
	r := &running{dial: tcpDial(addrs[0]), proc: p}
	return r, waitReady(ctx, p, r.dial)
}

// startFloorHBONE starts the floor with HBONE on both sides, in a child
// of the bench: tunnels from the generator in, one tunnel of its own to
// the backend's node for each.
func startFloorHBONE(ctx context.Context, b *bench) (*running, error) {
	p, addrs, err := b.startChild("floor-hbone", true, 1, "floor", "-ca", b.caDir, "-node", b.node,
		"-backend", b.backendOnNode(), "-concurrency", strconv.Itoa(b.cfg.concurrency))
	if err != nil {
		return nil, err
	}
	req := hbone.Request{Source: b.clientSrc, Addr: addrs[0], Authority: serviceVIP, Expected: []spiffeid.ID{waypointID}}
	r := &running{proc: p, dial: func(ctx context.Context) (net.Conn, error) { return b.clientPool.Dial(ctx, req) }}
	return r, waitReady(ctx, p, r.dial)
}

// startFloor is the floor child: it listens on 127.0.0.1:0 and forwards
// to o.backend; with o.caDir, it serves HBONE there with the waypoint's
// identity and tunnels to o.backend (an address on the backend's node)
// through the node at o.node, as the HBONE waypoint does.
func startFloor(o childOpts, logger *log.Logger) (string, func(), error) {
	if o.backend == "" {
		return "", nil, errors.New("the floor child needs -backend")
	}
	maxprocs.Start(context.Background(), o.concurrency)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	logErr := func(err error) {
		if err != nil && !errors.Is(err, io.EOF) {
			logger.Print(err)
		}
	}
	if o.caDir != "" {
		return serveFloorHBONE(o, ln, logger, logErr)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				up, err := net.Dial("tcp", o.backend)
				if err != nil {
					logErr(err)
					return
				}
				defer func() { _ = up.Close() }()
				logErr(forwardFloor(rawconn.Wrap(c), rawconn.Wrap(up)))
			}()
		}
	}()
	return ln.Addr().String(), func() { _ = ln.Close() }, nil
}

// serveFloorHBONE is the floor's HBONE server on ln.
func serveFloorHBONE(o childOpts, ln net.Listener, logger *log.Logger, logErr func(error)) (string, func(), error) {
	src, bundle, err := loadSource(o.caDir, waypointID)
	if err != nil {
		return "", nil, err
	}
	pool := &hbone.Pool{Bundle: bundle}
	up := hbone.Request{Source: src, Addr: o.node, Authority: o.backend, Expected: []spiffeid.ID{backendID}}
	srv := &hbone.Server{
		TLSConfig: identity.ServerTLSConfig(src, bundle, identity.ExpectIDs(clientID)),
		Handler: hbone.HandlerFunc(func(ctx context.Context, s *hbone.Stream) {
			c, err := pool.Dial(ctx, up)
			if err != nil {
				_ = s.Reject(http.StatusServiceUnavailable, err.Error())
				return
			}
			defer func() { _ = c.Close() }()
			logErr(forwardFloor(s, c))
		}),
		Logf: logger.Printf,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, hbone.ErrServerClosed) {
			logErr(err)
		}
	}()
	return ln.Addr().String(), func() {
		_ = srv.Close()
		_ = pool.Close()
	}, nil
}

// forwardFloor serves one client connection until it ends.
func forwardFloor(down, up io.ReadWriter) error {
	dr, dw := bufio.NewReaderSize(down, 4<<10), bufio.NewWriterSize(down, 4<<10)
	ur, uw := bufio.NewReaderSize(up, 4<<10), bufio.NewWriterSize(up, 4<<10)
	for {
		if _, err := copyHead(uw, dr); err != nil {
			return err
		}
		if err := uw.Flush(); err != nil {
			return err
		}
		n, err := copyHead(dw, ur)
		if err != nil {
			return err
		}
		if _, err := io.CopyN(dw, ur, n); err != nil {
			return err
		}
		if err := dw.Flush(); err != nil {
			return err
		}
	}
}

var contentLength = []byte("content-length:")

// copyHead copies a message head, up to and with its empty line, and
// returns its Content-Length (0 without one).
func copyHead(w *bufio.Writer, r *bufio.Reader) (int64, error) {
	var n int64
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if _, err := w.Write(line); err != nil {
			return 0, err
		}
		if len(line) <= 2 { // "\r\n": the head's end
			return n, nil
		}
		if len(line) > len(contentLength) && bytes.EqualFold(line[:len(contentLength)], contentLength) {
			v := bytes.TrimSpace(line[len(contentLength):])
			if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
}
