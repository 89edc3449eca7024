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
	"net/netip"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/hugetext"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/maxprocs"
	"github.com/meshway/meshway/internal/telemetry"
	"github.com/meshway/meshway/internal/waypoint"
)

// The bench binary re-executes itself in two child modes (-child):
//
//	backend   the backend, a net/http server answering 1 KiB bodies on
//	          127.0.0.1:0; with -ca also the backend node's HBONE server
//	          (127.0.0.2:15008, or 127.0.0.2:0 when that is taken), which
//	          splices each tunnel to the backend. Prints
//	          "READY <backend> <node or ->".
//	floor     the least a Go proxy does (floor.go), on 127.0.0.1:0,
//	          forwarding to -backend. Prints "READY <addr>".
//	waypoint  the waypoint in-process: waypoint.Proxy with the -config
//	          file, on a plain listener (127.0.0.1:0, as cmd/waypoint's
//	          -listen) and, with -ca, on an hbone.Server (127.0.0.1:0),
//	          reaching identity endpoints through an hbone.Pool. Prints
//	          "READY <plain> <hbone or ->".
//
// Both then answer commands on stdin, one per line, and exit when it
// closes:
//
//	prof FILE  start a CPU profile into FILE → "OK"
//	stopprof   stop it → "OK"
//	trace FILE start an execution trace into FILE → "OK"
//	stoptrace  stop it → "OK"
//	quit       exit

// childOpts are the flags of a child.
type childOpts struct {
	mode, caDir, config, node string
	backend                   string // the floor's backend
	concurrency               int    // the waypoint's -concurrency
	hugePages                 bool   // the proxies' code on huge pages
}

func runChild(o childOpts) error {
	logger := log.New(os.Stderr, o.mode+": ", log.LstdFlags)
	var (
		ready   string
		cleanup func()
		err     error
	)
	if o.mode != "backend" && o.hugePages {
		// The proxies' code on huge pages, as cmd/waypoint's (-huge-pages).
		if _, err := hugetext.Remap(); err != nil {
			logger.Printf("code on small pages: %v", err)
		}
	}
	switch o.mode {
	case "backend":
		ready, cleanup, err = startBackend(o, logger)
	case "waypoint":
		ready, cleanup, err = startWaypoint(o, logger)
	case "floor":
		ready, cleanup, err = startFloor(o, logger)
	default:
		err = fmt.Errorf("unknown child mode %q", o.mode)
	}
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Println("READY " + ready)
	return commands(os.Stdin)
}

// commands serves the control commands until stdin closes or says quit.
func commands(in *os.File) error {
	cpu := recording{start: pprof.StartCPUProfile, stop: pprof.StopCPUProfile}
	tr := recording{start: trace.Start, stop: trace.Stop}
	defer func() {
		_ = cpu.end()
		_ = tr.end()
	}()
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		var err error
		switch cmd {
		case "prof":
			err = cpu.begin(arg)
		case "stopprof":
			err = cpu.end()
		case "trace":
			err = tr.begin(arg)
		case "stoptrace":
			err = tr.end()
		case "quit":
			return nil
		default:
			continue
		}
		if err != nil {
			fmt.Println("ERR " + err.Error())
			continue
		}
		fmt.Println("OK")
	}
	return sc.Err()
}

// recording is a CPU profile or an execution trace the parent starts and
// stops, written to a file.
type recording struct {
	start func(io.Writer) error
	stop  func()
	f     *os.File
}

func (r *recording) begin(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.start(f); err != nil {
		_ = f.Close()
		return err
	}
	r.f = f
	return nil
}

// end stops the recording, if one runs, and closes its file.
func (r *recording) end() error {
	if r.f == nil {
		return nil
	}
	r.stop()
	err := r.f.Close()
	r.f = nil
	return err
}

// body is every response's body.
var body = bytes.Repeat([]byte("meshway-"), bodySize/8)

func startBackend(o childOpts, logger *log.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	length := []string{strconv.Itoa(len(body))}
	ctype := []string{"application/octet-stream"}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h["Content-Length"] = length
			h["Content-Type"] = ctype
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger,
	}
	go func() { _ = srv.Serve(ln) }()
	cleanup := func() { _ = srv.Close() }
	node := "-"
	if o.caDir != "" {
		nodeSrv, addr, err := startNode(o.caDir, ln.Addr().String(), logger)
		if err != nil {
			cleanup()
			return "", nil, err
		}
		node = addr
		cleanup = func() {
			_ = nodeSrv.Close()
			_ = srv.Close()
		}
	}
	return ln.Addr().String() + " " + node, cleanup, nil
}

// startNode serves HBONE as the backend's node: each tunnel from the
// waypoint, or from the generator straight (the direct-hbone target), whose
// :authority is 127.0.0.2:<backend port>, is spliced to the backend on
// 127.0.0.1.
func startNode(caDir, backend string, logger *log.Logger) (*hbone.Server, string, error) {
	src, bundle, err := loadSource(caDir, backendID)
	if err != nil {
		return nil, "", err
	}
	bap := netip.MustParseAddrPort(backend)
	srv := &hbone.Server{
		TLSConfig: identity.ServerTLSConfig(src, bundle, identity.ExpectIDs(waypointID, clientID)),
		Handler: hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
			if s.Authority.Port != bap.Port() {
				_ = s.Reject(http.StatusBadRequest, "not the backend")
				return
			}
			up, err := net.Dial("tcp", backend)
			if err != nil {
				_ = s.Reject(http.StatusServiceUnavailable, err.Error())
				return
			}
			defer func() { _ = up.Close() }()
			_, _, _ = hbone.Splice(s, up)
		}),
		Logf: logger.Printf,
	}
	ln, err := net.Listen("tcp", nodeAddr)
	if err != nil {
		logger.Printf("%s is taken (%v); the node listens on an ephemeral port and the waypoint's pool dials it instead", nodeAddr, err)
		if ln, err = net.Listen("tcp", "127.0.0.2:0"); err != nil {
			return nil, "", err
		}
	}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

// loadSource returns a certificate source for id from the CA in dir, and
// the trust bundle.
func loadSource(dir string, id spiffeid.ID) (identity.CertSource, *identity.Bundle, error) {
	ca, err := identity.LoadPluggedCA(dir, identity.CAOptions{TrustDomain: trustDomain})
	if err != nil {
		return nil, nil, err
	}
	mgr := identity.NewManager(identity.ManagerOptions{Issuer: identity.CAIssuer{CA: ca}, Bundle: ca.Bundle()})
	src, err := mgr.Source(context.Background(), id)
	if err != nil {
		return nil, nil, err
	}
	return src, ca.Bundle(), nil
}

func startWaypoint(o childOpts, logger *log.Logger) (string, func(), error) {
	w, err := waypoint.LoadFile(o.config)
	if err != nil {
		return "", nil, err
	}
	// Threads as cmd/waypoint's -concurrency sets them; the child runs
	// until it exits.
	maxprocs.Start(context.Background(), o.concurrency)
	// Istio's metrics on, as cmd/waypoint's default: the child stands in
	// for the binary and must do its work.
	proxy := &waypoint.Proxy{Logf: logger.Printf, Metrics: telemetry.NewMetrics(telemetry.ReporterWaypoint)}
	var pool *hbone.Pool
	var src identity.CertSource
	var bundle *identity.Bundle
	if o.caDir != "" {
		if src, bundle, err = loadSource(o.caDir, waypointID); err != nil {
			return "", nil, err
		}
		pool = &hbone.Pool{Bundle: bundle}
		if o.node != "" && o.node != nodeAddr {
			// The node could not have 15008: send the waypoint's dials of
			// 127.0.0.2:15008 to where it listens.
			node := o.node
			pool.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == nodeAddr {
					addr = node
				}
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}
		}
		proxy.Pool, proxy.Source = pool, src
	}
	if err := proxy.Load(w); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go func() { _ = proxy.ServeListener(ln, serviceVIP) }()
	cleanup := func() {
		_ = ln.Close()
		_ = proxy.Close()
		if pool != nil {
			_ = pool.Close()
		}
	}
	hb := "-"
	if pool != nil {
		srv := &hbone.Server{
			TLSConfig: identity.ServerTLSConfig(src, bundle, identity.ExpectIDs(clientID)),
			Handler:   proxy,
			Logf:      logger.Printf,
		}
		hln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			cleanup()
			return "", nil, err
		}
		go func() {
			if err := srv.Serve(hln); err != nil && !errors.Is(err, hbone.ErrServerClosed) {
				logger.Print(err)
			}
		}()
		hb = hln.Addr().String()
		prev := cleanup
		cleanup = func() {
			_ = srv.Close()
			prev()
		}
	}
	return ln.Addr().String() + " " + hb, cleanup, nil
}
