package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

// The child process serves the three kinds of server on 127.0.0.1:0 and
// answers commands on stdin, one per line:
//
//	mem    → "<heap in use + goroutine stacks, bytes> <open streams/conns>"
//	quit   → exits
//
// It prints "READY <tcp> <tls> <hbone>" once listening.

// open counts streams (HBONE) and connections (TCP, TLS) being served.
var open atomic.Int64

// sink reads until EOF, then answers with the 8-byte count and closes its
// side. Idle, it holds only hbone.Copy's small buffer.
func sink(rw io.ReadWriter, closeWrite func() error) {
	open.Add(1)
	defer open.Add(-1)
	n, err := hbone.Copy(io.Discard, rw)
	if err != nil {
		return
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	if _, err := rw.Write(b[:]); err != nil {
		return
	}
	_ = closeWrite()
}

func runChild(caDir string) error {
	ca, err := identity.LoadPluggedCA(caDir, identity.CAOptions{TrustDomain: trustDomain})
	if err != nil {
		return err
	}
	mgr := identity.NewManager(identity.ManagerOptions{Issuer: identity.CAIssuer{CA: ca}, Bundle: ca.Bundle()})
	defer mgr.Close()
	src, err := mgr.Source(context.Background(), serverID)
	if err != nil {
		return err
	}
	tlsConf := identity.ServerTLSConfig(src, ca.Bundle(), identity.ExpectIDs(clientID))

	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go acceptLoop(tcpLn, func(c net.Conn) {
		defer func() { _ = c.Close() }()
		sink(c, c.(*net.TCPConn).CloseWrite)
	})
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go acceptLoop(tlsLn, func(c net.Conn) {
		tc := tls.Server(c, tlsConf)
		defer func() { _ = tc.Close() }()
		if err := tc.Handshake(); err != nil {
			return
		}
		sink(tc, tc.CloseWrite)
	})
	srv := &hbone.Server{
		Handler: hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
			sink(s, s.CloseWrite)
		}),
		TLSConfig:            tlsConf,
		MaxConcurrentStreams: maxStreamsPerConn,
	}
	hbLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(hbLn) }()
	defer func() { _ = srv.Close() }()

	fmt.Printf("READY %s %s %s\n", tcpLn.Addr(), tlsLn.Addr(), hbLn.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "mem":
			fmt.Printf("%d %d\n", memInUse(), open.Load())
		case "quit":
			return nil
		}
	}
	return sc.Err()
}

func acceptLoop(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serve(c)
	}
}

// memInUse returns heap in use plus goroutine stacks after a full GC.
func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}
