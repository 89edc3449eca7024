package hbone_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

// rawClient is a plain net/http HTTP/2 client presenting clientID, to send
// requests the Pool would refuse to build.
func rawClient(t *testing.T, m *mesh) *http.Client {
	t.Helper()
	conf := identity.ClientTLSConfig(m.source(t, clientID), m.mgr.Bundle(), []spiffeid.ID{serverID})
	var protos http.Protocols
	protos.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: conf, Protocols: &protos}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestServerRejectsBadRequests(t *testing.T) {
	m := newMesh(t, 0)
	_, addr := startServer(t, m, nil, echo)
	client := rawClient(t, m)
	for _, tc := range []struct {
		name, method, authority string
		wantStatus              int
		wantBody                string
	}{
		{"GET is not CONNECT", http.MethodGet, "10.0.0.1:80", http.StatusMethodNotAllowed, "only CONNECT"},
		{"POST is not CONNECT", http.MethodPost, "10.0.0.1:80", http.StatusMethodNotAllowed, "only CONNECT"},
		{"no port", http.MethodConnect, "10.0.0.1", http.StatusBadRequest, "has no port"},
		{"port zero", http.MethodConnect, "10.0.0.1:0", http.StatusBadRequest, `port "0" is not a number 1-65535`},
		{"port too big", http.MethodConnect, "10.0.0.1:99999", http.StatusBadRequest, `port "99999"`},
		{"bare IPv6", http.MethodConnect, "fd00::1:80", http.StatusBadRequest, "must be in brackets"},
		{"bad hostname", http.MethodConnect, "bad_host.example:80", http.StatusBadRequest, "invalid character '_'"},
		{"bad IPv4", http.MethodConnect, "10.0.0.256:80", http.StatusBadRequest, "not a valid IPv4 address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &http.Request{Method: tc.method, URL: &url.URL{Scheme: "https", Host: addr, Path: "/"}, Host: tc.authority, Header: http.Header{}}
			if tc.method == http.MethodConnect {
				req.URL = &url.URL{Scheme: "https", Host: addr}
			}
			resp, err := client.Do(req.WithContext(ctxT(t)))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || !strings.Contains(string(body), tc.wantBody) {
				t.Errorf("got %d %q; want %d containing %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			if resp.ProtoMajor != 2 {
				t.Errorf("served over HTTP/%d, want 2", resp.ProtoMajor)
			}
		})
	}
}

func TestServerRequiresTLS13H2AndClientCert(t *testing.T) {
	m := newMesh(t, 0)
	_, addr := startServer(t, m, nil, echo)
	full := identity.ClientTLSConfig(m.source(t, clientID), m.mgr.Bundle(), []spiffeid.ID{serverID})
	for _, tc := range []struct {
		name string
		conf func() *tls.Config
	}{
		{"TLS 1.2", func() *tls.Config { c := full.Clone(); c.MaxVersion = tls.VersionTLS12; return c }},
		{"ALPN http/1.1", func() *tls.Config { c := full.Clone(); c.NextProtos = []string{"http/1.1"}; return c }},
		{"no client certificate", func() *tls.Config { c := full.Clone(); c.GetClientCertificate = nil; return c }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", addr, tc.conf())
			if err == nil {
				// TLS 1.3: a rejected client certificate shows on first read.
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err = c.Read(make([]byte, 1))
				c.Close()
			}
			if err == nil {
				t.Fatal("connection accepted; want it refused")
			}
		})
	}
	t.Run("control: full config works", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, full)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("ALPN %q", p)
		}
	})
}

func TestHandlerRejectMapsToErrors(t *testing.T) {
	m := newMesh(t, 0)
	h := hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		switch s.Authority.Port {
		case 1:
			s.Reject(http.StatusServiceUnavailable, "upstream 10.1.2.3:1 refused the connection")
		case 2:
			s.Reject(http.StatusForbidden, "denied by policy")
		case 3:
			// returns without accepting: refused with 503
		}
	})
	_, addr := startServer(t, m, nil, h)
	pool := newPool(t, m)
	src := m.source(t, clientID)
	for _, tc := range []struct {
		port   string
		want   error
		status int
	}{
		{"1", hbone.ErrRefused, 503},
		{"2", hbone.ErrIdentityRejected, 403},
		{"3", hbone.ErrRefused, 503},
	} {
		req := dialReq(src, addr)
		req.Authority = "10.1.2.3:" + tc.port
		_, err := pool.Dial(ctxT(t), req)
		var de *hbone.DialError
		if !errors.Is(err, tc.want) || !errors.As(err, &de) || de.Status != tc.status {
			t.Errorf("port %s: got %v; want %v with status %d", tc.port, err, tc.want, tc.status)
		}
	}
}

func TestDialErrors(t *testing.T) {
	m := newMesh(t, 0)
	src := m.source(t, clientID)
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = newPool(t, m).Dial(ctxT(t), dialReq(src, addr))
		if !errors.Is(err, hbone.ErrRefused) {
			t.Fatalf("got %v; want ErrRefused", err)
		}
	})
	t.Run("timeout: server never answers the handshake", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		pool := newPool(t, m)
		pool.ConnectTimeout = 200 * time.Millisecond
		start := time.Now()
		_, err = pool.Dial(ctxT(t), dialReq(src, ln.Addr().String()))
		if !errors.Is(err, hbone.ErrTimeout) {
			t.Fatalf("got %v; want ErrTimeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("timeout took %s", d)
		}
	})
	t.Run("bad authority", func(t *testing.T) {
		req := dialReq(src, "127.0.0.1:1")
		req.Authority = "no-port"
		_, err := newPool(t, m).Dial(ctxT(t), req)
		if !errors.Is(err, hbone.ErrBadRequest) || !strings.Contains(err.Error(), "no port") {
			t.Fatalf("got %v; want ErrBadRequest naming the missing port", err)
		}
	})
}

func TestManyStreamsOneConnection(t *testing.T) {
	m := newMesh(t, 0)
	srv, addr := startServer(t, m, nil, echo)
	pool := newPool(t, m)
	src := m.source(t, clientID)
	const n = 100
	payload := strings.Repeat("x", 64<<10)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	conns := make(chan *hbone.Conn, n)
	for range n {
		wg.Go(func() {
			c, err := pool.Dial(ctxT(t), dialReq(src, addr))
			if err != nil {
				errs <- err
				return
			}
			guard(c)
			conns <- c
			go func() {
				io.WriteString(c, payload)
				c.CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil || string(got) != payload {
				errs <- errors.Join(err, errors.New("echo mismatch"))
			}
		})
	}
	wg.Wait()
	close(errs)
	close(conns)
	for err := range errs {
		t.Error(err)
	}
	if got := len(pool.Snapshot()); got != 1 {
		t.Errorf("pool has %d connections; want 1 for %d streams", got, n)
	}
	snap := srv.Snapshot()
	if len(snap) != 1 || snap[0].TotalStreams != n {
		t.Errorf("server snapshot %+v; want 1 connection that served %d streams", snap, n)
	}
	for c := range conns {
		c.Close()
	}
}

func TestMaxConcurrentStreamsCap(t *testing.T) {
	m := newMesh(t, 0)
	const limit, streams = 2, 5
	var (
		mu      sync.Mutex
		perConn = map[string]int{}
		peak    int
	)
	release := make(chan struct{})
	h := hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
		key := s.RemoteAddr.String()
		mu.Lock()
		perConn[key]++
		peak = max(peak, perConn[key])
		mu.Unlock()
		s.Accept()
		<-release
		mu.Lock()
		perConn[key]--
		mu.Unlock()
	})
	_, addr := startServer(t, m, nil, h, func(s *hbone.Server) { s.MaxConcurrentStreams = limit })
	pool := newPool(t, m)
	src := m.source(t, clientID)
	var open []*hbone.Conn
	for range streams {
		c, err := pool.Dial(ctxT(t), dialReq(src, addr))
		if err != nil {
			t.Fatal(err)
		}
		guard(c)
		open = append(open, c)
	}
	close(release)
	for _, c := range open {
		c.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if peak > limit {
		t.Errorf("a connection carried %d concurrent streams; cap is %d", peak, limit)
	}
	if len(perConn) < (streams+limit-1)/limit {
		t.Errorf("%d connections used; want at least %d", len(perConn), (streams+limit-1)/limit)
	}
}

func TestGracefulDrain(t *testing.T) {
	m := newMesh(t, 0)
	srv, addr := startServer(t, m, nil, echo)
	pool := newPool(t, m)
	src := m.source(t, clientID)
	c, err := pool.Dial(ctxT(t), dialReq(src, addr))
	if err != nil {
		t.Fatal(err)
	}
	guard(c)
	ping := func(msg string) {
		t.Helper()
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q: got %q, %v", msg, buf, err)
		}
	}
	ping("before")

	var streamDone sync.WaitGroup
	streamDone.Add(1)
	shutdownErr := make(chan error, 1)
	go func() {
		err := srv.Shutdown(ctxT(t))
		streamDone.Wait() // must not be reached before the stream finished
		shutdownErr <- err
	}()
	// Wait for the client to have received the GOAWAY.
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap := pool.Snapshot()
		if len(snap) == 1 && snap[0].Available == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client never saw GOAWAY: %+v", snap)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := pool.Dial(ctxT(t), dialReq(src, addr)); !errors.Is(err, hbone.ErrRefused) {
		t.Errorf("new stream during drain: got %v; want ErrRefused", err)
	}
	ping("in-flight stream still works during drain")
	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned (%v) while a stream was open", err)
	default:
	}
	c.CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Errorf("after CloseWrite: %q, %v; want clean EOF", rest, err)
	}
	c.Close()
	streamDone.Done()
	if err := <-shutdownErr; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestPoolKeyedBySourceDestinationAndExpected(t *testing.T) {
	m := newMesh(t, 0)
	_, addr := startServer(t, m, nil, echo)
	pool := newPool(t, m)
	client, other := m.source(t, clientID), m.source(t, otherID)
	widened := dialReq(client, addr)
	widened.Expected = []spiffeid.ID{otherID, serverID}
	for i, req := range []hbone.Request{
		dialReq(client, addr),
		dialReq(client, addr), // same key: reuses the connection
		dialReq(other, addr),  // another source identity
		widened,               // another accepted set
	} {
		c, err := pool.Dial(ctxT(t), req)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
	}
	snap := pool.Snapshot()
	if len(snap) != 3 {
		t.Fatalf("%d connections; want 3 (one per source/destination/accepted set): %+v", len(snap), snap)
	}
	var keys []string
	for _, c := range snap {
		keys = append(keys, c.Source+" → "+strings.Join(c.Accepted, ","))
		if c.Peer != serverID.String() {
			t.Errorf("peer %s", c.Peer)
		}
	}
	slices.Sort(keys)
	want := []string{
		clientID.String() + " → " + otherID.String() + "," + serverID.String(),
		clientID.String() + " → " + serverID.String(),
		otherID.String() + " → " + serverID.String(),
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("pool keys %q; want %q", keys, want)
	}
}

func TestIdleConnectionsClosed(t *testing.T) {
	m := newMesh(t, 0)
	srv, addr := startServer(t, m, nil, echo)
	pool := newPool(t, m)
	pool.IdleTimeout = 100 * time.Millisecond
	c, err := pool.Dial(ctxT(t), dialReq(m.source(t, clientID), addr))
	if err != nil {
		t.Fatal(err)
	}
	guard(c)
	if err := echoOnce(c, "busy"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(pool.Snapshot()) != 0 || len(srv.Snapshot()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle connection still open after 10 s (idle timeout 100 ms): client %+v, server %+v", pool.Snapshot(), srv.Snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
