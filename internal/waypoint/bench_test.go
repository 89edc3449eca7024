package waypoint_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/telemetry"
	"github.com/meshway/meshway/internal/waypoint"
)

// BenchmarkProxyHTTP1 sends HTTP/1.1 keep-alive GETs (1 KiB answers) over
// 32 connections to a backend on loopback: directly, through net/http's
// Server with httputil.ReverseProxy (the peer: what a Go proxy costs
// without the waypoint's work), and through the waypoint as make
// bench-waypoint runs it (one HTTPRoute, Istio metrics on). The client and
// the backend are minimal wire-level loops that allocate nothing, so
// allocs/op is the proxy's; ns/op includes the client's and the backend's
// CPU, which "direct" shows alone. The same again with HBONE on both
// sides: direct-hbone (the client tunnelling to the backend's node) and
// waypoint-hbone; there allocs/op counts the tunnels' ends too.
//
//	go test -run '^$' -bench ProxyHTTP1 -benchmem ./internal/waypoint
func BenchmarkProxyHTTP1(b *testing.B) {
	backend := startRawBackend(b)
	b.Run("direct", func(b *testing.B) { runKeepAlive(b, backend) })
	b.Run("reverseproxy", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend})
		tr := &http.Transport{MaxIdleConnsPerHost: 256}
		rp.Transport = tr
		srv := &http.Server{Handler: rp}
		go func() { _ = srv.Serve(ln) }()
		defer func() { _ = srv.Close(); tr.CloseIdleConnections() }()
		runKeepAlive(b, ln.Addr().String())
	})
	b.Run("waypoint", func(b *testing.B) {
		p := &waypoint.Proxy{Logf: b.Logf, Metrics: telemetry.NewMetrics(telemetry.ReporterWaypoint)}
		if err := p.Load(benchConfig(model.Endpoint{Address: backend})); err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = p.ServeListener(ln, reviewsVIP) }()
		defer func() { _ = ln.Close(); _ = p.Close() }()
		runKeepAlive(b, ln.Addr().String())
	})
	// With HBONE: the client's connections are tunnels (one HTTP/2
	// connection), the backend is reached through its node's HBONE server,
	// which splices to it; direct-hbone tunnels to the node straight.
	m := newManager(b)
	onNode := serveBackendNode(b, m, backend)
	nodeIP, _, _ := net.SplitHostPort(onNode)
	tunnels := func(b *testing.B, addr, authority string, id spiffeid.ID) dialer {
		clients := &hbone.Pool{Bundle: m.Bundle()}
		b.Cleanup(func() { _ = clients.Close() })
		req := hbone.Request{Source: source(b, m, sleepID), Addr: addr, Authority: authority, Expected: []spiffeid.ID{id}}
		return func() (net.Conn, error) { return clients.Dial(context.Background(), req) }
	}
	b.Run("direct-hbone", func(b *testing.B) {
		runKeepAliveOn(b, tunnels(b, net.JoinHostPort(nodeIP, strconv.Itoa(hbone.DefaultPort)), onNode, reviewsID))
	})
	b.Run("waypoint-hbone", func(b *testing.B) {
		pool := &hbone.Pool{Bundle: m.Bundle()}
		p := &waypoint.Proxy{Logf: b.Logf, Metrics: telemetry.NewMetrics(telemetry.ReporterWaypoint), Pool: pool, Source: source(b, m, waypointID)}
		wpAddr := serveWaypoint(b, m, p, benchConfig(model.Endpoint{Address: onNode, Identity: reviewsID.String()}))
		defer func() { _ = p.Close(); _ = pool.Close() }()
		runKeepAliveOn(b, tunnels(b, wpAddr, reviewsVIP, waypointID))
	})
}

// benchConfig is the waypoint as make bench-waypoint runs it: one
// HTTPRoute rule to a one-endpoint cluster, ep.
func benchConfig(ep model.Endpoint) *model.Waypoint {
	return reviewsConfig([]model.HTTPRoute{{
		Kind: model.KindHTTPRoute, Name: "reviews", Namespace: "default",
		Rules: []model.RouteRule{{Backends: []model.Backend{{Cluster: "reviews-v1"}}}},
	}}, model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{ep}}, model.Cluster{Name: "reviews-v1", Endpoints: []model.Endpoint{ep}})
}

// dialer opens a client connection.
type dialer func() (net.Conn, error)

// benchConns is the number of keep-alive connections, as make
// bench-waypoint's maximum-throughput run.
const benchConns = 32

// runKeepAlive sends b.N requests to addr over benchConns connections, each
// one request at a time.
func runKeepAlive(b *testing.B, addr string) {
	runKeepAliveOn(b, func() (net.Conn, error) { return net.Dial("tcp", addr) })
}

// runKeepAliveOn is runKeepAlive over connections that dial opens.
func runKeepAliveOn(b *testing.B, dial dialer) {
	req := []byte("GET /reviews/1 HTTP/1.1\r\nHost: reviews.default.svc.cluster.local:9080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	b.SetParallelism((benchConns + 1) / 2) // × GOMAXPROCS (2 on the VM)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := dial()
		if err != nil {
			b.Error(err)
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		br := bufio.NewReaderSize(c, 8<<10)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			if err := readRawResponse(br); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// readRawResponse reads one response with a Content-Length, and checks it
// is a 200 with the 1 KiB body.
func readRawResponse(br *bufio.Reader) error {
	status, n := 0, -1
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if first {
			if len(line) < 12 {
				return fmt.Errorf("bad status line %q", line)
			}
			status, _ = strconv.Atoi(string(line[9:12]))
			continue
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(string(k), "content-length") {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if status != http.StatusOK || n != rawBody {
		return fmt.Errorf("response %d with %d bytes; want 200 with %d", status, n, rawBody)
	}
	_, err := br.Discard(n)
	return err
}

// rawBody is the backend's answer size, as make bench-waypoint's.
const rawBody = 1024

// startRawBackend serves every request head (GETs only) with the same 1 KiB
// answer, at as little cost as possible.
func startRawBackend(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(rawBody) + "\r\n\r\n" + strings.Repeat("x", rawBody))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				br := bufio.NewReaderSize(c, 8<<10)
				for {
					// Up to the blank line that ends the head.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(bytes.TrimRight(line, "\r\n")) == 0 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
