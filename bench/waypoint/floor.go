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
	"strconv"

	"github.com/meshway/meshway/internal/maxprocs"
	"github.com/meshway/meshway/internal/rawconn"
)

// The floor target is the least a Go proxy can do per request: a child of
// the bench that, for each client connection, dials one backend connection
// and moves each request's head to it and each response (head and
// Content-Length body) back, parsing nothing but the line endings and the
// Content-Length. It runs as the waypoint does — a goroutine per
// connection, raw reads and writes on Go's network poller
// (internal/rawconn), threads sized to the load (internal/maxprocs) — with
// none of its work (routing, policies, header rewriting, telemetry,
// pooling, retries). Its CPU per request is what Go's runtime and the
// system calls of a proxy cost on this machine; the waypoint's above it is
// its own work. It serves only what the bench sends: GETs without a body,
// answered with a Content-Length.

// startFloorTarget starts the floor forwarder in a child of the bench.
func startFloorTarget(ctx context.Context, b *bench) (*running, error) {
	p, addrs, err := b.startChild("floor", true, 1, "floor", "-backend", b.backend, "-concurrency", strconv.Itoa(b.cfg.concurrency))
	if err != nil {
		return nil, err
	}
	r := &running{dial: tcpDial(addrs[0]), proc: p}
	return r, waitReady(ctx, p, r.dial)
}

// startFloor is the floor child: it listens on 127.0.0.1:0 and forwards
// to o.backend.
func startFloor(o childOpts, logger *log.Logger) (string, func(), error) {
	if o.backend == "" {
		return "", nil, errors.New("the floor child needs -backend")
	}
	maxprocs.Start(context.Background(), o.concurrency)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				if err := forwardFloor(c, o.backend); err != nil && !errors.Is(err, io.EOF) {
					logger.Print(err)
				}
			}()
		}
	}()
	return ln.Addr().String(), func() { _ = ln.Close() }, nil
}

// forwardFloor serves one client connection until it ends.
func forwardFloor(down net.Conn, backend string) error {
	defer func() { _ = down.Close() }()
	up, err := net.Dial("tcp", backend)
	if err != nil {
		return err
	}
	defer func() { _ = up.Close() }()
	rd, ru := rawconn.Wrap(down), rawconn.Wrap(up)
	dr, dw := bufio.NewReaderSize(rd, 4<<10), bufio.NewWriterSize(rd, 4<<10)
	ur, uw := bufio.NewReaderSize(ru, 4<<10), bufio.NewWriterSize(ru, 4<<10)
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
