package waypoint_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/chaos"
	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/waypoint"
)

const td = "cluster.local"

var (
	sleepID    = identity.MustWorkloadID(td, "default", "sleep")
	waypointID = identity.MustWorkloadID(td, "default", "waypoint")
	reviewsID  = identity.MustWorkloadID(td, "default", "bookinfo-reviews")
)

func newManager(t testing.TB) *identity.Manager {
	t.Helper()
	ca, err := identity.NewCA(t.TempDir(), identity.CAOptions{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	m := identity.NewManager(identity.ManagerOptions{
		Issuer: identity.CAIssuer{CA: ca},
		Bundle: identity.NewBundle(ca.TrustDomain(), ca.Bundle().Roots()...),
	})
	t.Cleanup(m.Close)
	return m
}

func source(t testing.TB, m *identity.Manager, id spiffeid.ID) identity.CertSource {
	t.Helper()
	src, err := m.Source(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func serveHBONE(t testing.TB, srv *hbone.Server, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s for HBONE: %v", addr, err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// serveNode serves srv on port 15008 of the first free loopback address
// from 127.0.0.2 up (the waypoint dials endpoints' nodes at podIP:15008)
// and returns that address.
func serveNode(t testing.TB, srv *hbone.Server) string {
	t.Helper()
	for i := 2; i < 64; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i)
		ln, err := net.Listen("tcp", ip+":15008")
		if err != nil {
			continue // taken by another test or benchmark
		}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
		return ip
	}
	t.Fatal("no free 127.0.0.x:15008 for the endpoint's HBONE node")
	return ""
}

// serveBackendNode serves backend's node with reviews' identity on
// 127.0.0.x:15008 (serveNode), splicing every tunnel to backend, and
// returns backend's address in the mesh: its node's IP and its port.
func serveBackendNode(t testing.TB, m *identity.Manager, backend string) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(backend)
	ip := serveNode(t, &hbone.Server{
		TLSConfig: identity.ServerTLSConfig(source(t, m, reviewsID), m.Bundle(), nil),
		Handler:   hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) { spliceTo(s, backend) }),
		Logf:      t.Logf,
	})
	return net.JoinHostPort(ip, port)
}

// serveWaypoint loads w into proxy and serves it over HBONE as waypointID
// on loopback; it returns the address.
func serveWaypoint(t testing.TB, m *identity.Manager, proxy *waypoint.Proxy, w *model.Waypoint) string {
	t.Helper()
	if err := proxy.Load(w); err != nil {
		t.Fatal(err)
	}
	return serveHBONE(t, &hbone.Server{
		TLSConfig: identity.ServerTLSConfig(source(t, m, waypointID), m.Bundle(), nil),
		Handler:   proxy,
		Logf:      t.Logf,
	}, "127.0.0.1:0")
}

// TestHBONEBothSides: a client tunnels to the waypoint (its :authority is
// the service VIP), the waypoint routes the request and reaches the chosen
// endpoint through HBONE at podIP:15008 with :authority podIP:port, as in
// the mesh; the endpoint's side sees the waypoint's identity.
func TestHBONEBothSides(t *testing.T) {
	m := newManager(t)
	v2 := newBackend(t, "reviews-v2")
	_, v2Port, _ := net.SplitHostPort(v2.addr())

	// The endpoint's node: HBONE on 127.0.0.N:15008, forwarding each
	// tunnel to the pod (the backend on 127.0.0.1).
	peers := make(chan spiffeid.ID, 10)
	authorities := make(chan string, 10)
	node := &hbone.Server{
		TLSConfig: identity.ServerTLSConfig(source(t, m, reviewsID), m.Bundle(), nil),
		Handler: hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
			peers <- s.PeerID
			authorities <- s.Authority.String()
			spliceTo(s, v2.addr())
		}),
		Logf: t.Logf,
	}
	nodeIP := serveNode(t, node)

	pool := &hbone.Pool{Bundle: m.Bundle()}
	t.Cleanup(func() { pool.Close() })
	proxy := &waypoint.Proxy{Pool: pool, Source: source(t, m, waypointID), Logf: t.Logf}
	t.Cleanup(func() { proxy.Close() })
	w := reviewsConfig([]model.HTTPRoute{{Name: "reviews", Namespace: "default", Rules: []model.RouteRule{{
		Backends: []model.Backend{{Cluster: "reviews-v2"}},
	}}}},
		model.Cluster{Name: "reviews"},
		model.Cluster{Name: "reviews-v2", Endpoints: []model.Endpoint{{Address: nodeIP + ":" + v2Port, Identity: reviewsID.String()}}},
	)
	wpAddr := serveWaypoint(t, m, proxy, w)

	client := &hbone.Pool{Bundle: m.Bundle()}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := hbone.Request{Source: source(t, m, sleepID), Addr: wpAddr, Authority: reviewsVIP, Expected: []spiffeid.ID{waypointID}}
	conn, err := client.Dial(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for i := range 3 { // keep-alive: several requests on one tunnel
		io.WriteString(conn, "GET /reviews/1 HTTP/1.1\r\nHost: reviews.default.svc.cluster.local:9080\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != "reviews-v2" {
			t.Fatalf("request %d: %d from %q: %q", i, resp.StatusCode, resp.Header.Get("X-Backend"), body)
		}
	}
	if got := <-peers; got != waypointID {
		t.Errorf("the endpoint's node saw peer %s; want the waypoint's identity %s", got, waypointID)
	}
	if got := <-authorities; got != nodeIP+":"+v2Port {
		t.Errorf("upstream :authority %s; want podIP:targetPort %s:%s", got, nodeIP, v2Port)
	}

	// A destination the waypoint does not serve is refused at the CONNECT.
	req.Authority = "10.96.0.99:80"
	_, err = client.Dial(ctx, req)
	if !errors.Is(err, hbone.ErrBadRequest) || !strings.Contains(err.Error(), "not a destination this waypoint serves") {
		t.Errorf("CONNECT to an unknown destination: %v; want 400 naming it", err)
	}
}

// TestGuideViewOnlyPolicy: the guide's view-only AuthorizationPolicy on the
// waypoint (ALLOW GET from namespaces default and istio-system): GET from
// default passes, POST is refused with 403 "RBAC: access denied", so is GET
// from another namespace; without the policy POST passes. Identities come
// from the HBONE peer certificates.
func TestGuideViewOnlyPolicy(t *testing.T) {
	m := newManager(t)
	reviews := newBackend(t, "reviews")
	viewOnly := model.AuthorizationPolicy{
		Name: "view-only", Namespace: "default", Action: model.ActionAllow,
		Rules: []model.Rule{{
			From: []model.Source{{Namespaces: []string{"default", "istio-system"}}},
			To:   []model.Operation{{Methods: []string{"GET"}}},
		}},
	}
	w := reviewsConfig(nil, reviews.cluster())
	w.Policies = []model.AuthorizationPolicy{viewOnly}
	proxy := &waypoint.Proxy{Logf: t.Logf}
	t.Cleanup(func() { proxy.Close() })
	wpAddr := serveWaypoint(t, m, proxy, w)
	pool := &hbone.Pool{Bundle: m.Bundle()}
	t.Cleanup(func() { pool.Close() })
	send := func(from spiffeid.ID, method string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pool.Dial(ctx, hbone.Request{Source: source(t, m, from), Addr: wpAddr, Authority: reviewsVIP, Expected: []spiffeid.ID{waypointID}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, method+" /reviews/1 HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	otherNS := identity.MustWorkloadID(td, "other", "sleep")
	for _, tc := range []struct {
		from   spiffeid.ID
		method string
		want   int
	}{
		{sleepID, http.MethodGet, http.StatusOK},
		{sleepID, http.MethodPost, http.StatusForbidden},
		{otherNS, http.MethodGet, http.StatusForbidden},
	} {
		code, body := send(tc.from, tc.method)
		if code != tc.want {
			t.Errorf("%s from %s: %d %q; want %d", tc.method, tc.from, code, body, tc.want)
		}
		if code == http.StatusForbidden && body != "RBAC: access denied" {
			t.Errorf("denied body %q; want Envoy's %q", body, "RBAC: access denied")
		}
	}
	w2 := reviewsConfig(nil, reviews.cluster())
	if err := proxy.Load(w2); err != nil {
		t.Fatal(err)
	}
	if code, body := send(sleepID, http.MethodPost); code != http.StatusOK {
		t.Errorf("POST after the policy was removed: %d %q; want 200", code, body)
	}
}

// TestRunServesHBONE: Run with -hbone serves tunnels with a certificate
// from the CA directory; a client of the same CA reaches the service.
func TestRunServesHBONE(t *testing.T) {
	b := newBackend(t, "reviews")
	ctx, cancel := context.WithCancel(context.Background())
	dial, done := runHBONE(t, ctx, b, 0)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	conn := dial()
	defer conn.Close()
	resp, err := getOver(conn, "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != "reviews" {
		t.Errorf("through Run's HBONE listener: %d from %q", resp.StatusCode, resp.Header.Get("X-Backend"))
	}
}

// TestRunDrainsHBONE: a request in an HBONE tunnel, in flight when Run's
// context ends, gets its whole answer during the drain (the HBONE server
// sends GOAWAY and waits for its streams), and Run returns once it has.
func TestRunDrainsHBONE(t *testing.T) {
	b := newBackend(t, "reviews")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dial, done := runHBONE(t, ctx, b, 30*time.Second)
	conn := dial()
	defer conn.Close()
	before := b.hits.Load()
	answered := make(chan string, 1)
	go func() {
		resp, err := getOver(conn, "/slow?sleep=700ms")
		if err != nil {
			answered <- err.Error()
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- fmt.Sprintf("%d %s %v", resp.StatusCode, body, err)
	}()
	eventually(t, func() bool { return b.hits.Load() == before+1 }, "the slow request reaching the backend")
	cancel()
	if got, want := <-answered, "200 reviews GET /slow <nil>"; got != want {
		t.Errorf("a request in flight when the drain started: %q; want %q", got, want)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run still draining long after its request finished")
	}
}

// runHBONE runs a waypoint for backend b with an HBONE listener (its
// certificate from a CA directory) until ctx ends, draining for drain;
// dial opens a tunnel to it once it listens, and done receives Run's
// result.
func runHBONE(t *testing.T, ctx context.Context, b *backend, drain time.Duration) (dial func() *hbone.Conn, done <-chan error) {
	t.Helper()
	dir := t.TempDir()
	path := dir + "/waypoint.yaml"
	if err := os.WriteFile(path, []byte(reviewsYAML(b.addr())), 0o644); err != nil {
		t.Fatal(err)
	}
	hboneAddr := freeAddr(t)
	caDir := dir + "/ca"
	result := make(chan error, 1)
	go func() {
		result <- waypoint.Run(ctx, waypoint.Options{ConfigPath: path, HBONEAddr: hboneAddr, CADir: caDir, Identity: waypointID.String(),
			DrainDuration: drain, Logf: t.Logf})
	}()
	// The waypoint listens once it has made the CA and its certificate.
	eventually(t, func() bool {
		c, err := net.Dial("tcp", hboneAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "the waypoint to listen for HBONE")
	ca, err := identity.NewCA(caDir, identity.CAOptions{TrustDomain: td}) // loads the waypoint's
	if err != nil {
		t.Fatal(err)
	}
	m := identity.NewManager(identity.ManagerOptions{Issuer: identity.CAIssuer{CA: ca}, Bundle: identity.NewBundle(ca.TrustDomain(), ca.Bundle().Roots()...)})
	t.Cleanup(m.Close)
	pool := &hbone.Pool{Bundle: m.Bundle()}
	t.Cleanup(func() { pool.Close() })
	return func() *hbone.Conn {
		var conn *hbone.Conn
		eventually(t, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var err error
			conn, err = pool.Dial(ctx, hbone.Request{Source: source(t, m, sleepID), Addr: hboneAddr, Authority: reviewsVIP, Expected: []spiffeid.ID{waypointID}})
			return err == nil
		}, "the waypoint to accept an HBONE tunnel")
		return conn
	}, result
}

// getOver sends a GET for target on a tunnel and reads the answer's head.
func getOver(conn *hbone.Conn, target string) (*http.Response, error) {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: reviews:9080\r\n\r\n"); err != nil {
		return nil, err
	}
	return http.ReadResponse(bufio.NewReader(conn), nil)
}

// TestUpstreamClosedWhileIdleOverHBONE is TestUpstreamClosedWhileIdle with
// the endpoint behind its node's HBONE server, as in the mesh: the
// backend closes a keep-alive connection idle for 200 ms, the node ends
// the tunnel's stream (END_STREAM), and a POST sent after that goes on a
// new stream instead of the ended one, where it would fail (it is not
// sent again). The stream's socket, shared with other streams, shows
// nothing of its end: the stream itself answers the pool's check.
func TestUpstreamClosedWhileIdleOverHBONE(t *testing.T) {
	m := newManager(t)
	b := startIdleClosingBackend(t)
	onNode := serveBackendNode(t, m, b.addr)
	pool := &hbone.Pool{Bundle: m.Bundle()}
	t.Cleanup(func() { pool.Close() })
	proxy := &waypoint.Proxy{Pool: pool, Source: source(t, m, waypointID), Logf: t.Logf}
	t.Cleanup(func() { proxy.Close() })
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: onNode, Identity: reviewsID.String()}}}
	b.postAfterIdle(t, servePlain(t, proxy, reviewsConfig(nil, cl)))
}

// servePlain loads w into proxy and serves it on a plain loopback listener
// as the original destination reviewsVIP; it returns the address.
func servePlain(t *testing.T, proxy *waypoint.Proxy, w *model.Waypoint) string {
	t.Helper()
	return servePlainFor(t, proxy, w, reviewsVIP)
}

// servePlainFor is servePlain for the original destination dst.
func servePlainFor(t *testing.T, proxy *waypoint.Proxy, w *model.Waypoint, dst string) string {
	t.Helper()
	if err := proxy.Load(w); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { _ = proxy.ServeListener(ln, dst) }()
	return ln.Addr().String()
}

// spliceTo connects an HBONE stream to addr over TCP, as a node does for
// its pod, or refuses it with 503.
func spliceTo(s *hbone.Stream, addr string) {
	up, err := net.Dial("tcp", addr)
	if err != nil {
		s.Reject(http.StatusServiceUnavailable, err.Error())
		return
	}
	defer up.Close()
	hbone.Splice(s, up)
}

// TestUpstreamConnectionFailedMomentsAgo: the HTTP/2 connection under the
// waypoint's idle keep-alive stream to an endpoint fails (here: cut) just
// after a request; a POST right after — the stream idle for far less than
// a TCP connection's check interval — goes on a new stream on a new
// connection, not on the dead stream, where it would fail with 503 (a
// POST is not sent again). TestChaosThroughHBONE found it.
func TestUpstreamConnectionFailedMomentsAgo(t *testing.T) {
	m := newManager(t)
	b := newBackend(t, "reviews-v1")
	onNode := serveBackendNode(t, m, b.addr())
	up := &chaos.Dialer{}
	pool := &hbone.Pool{Bundle: m.Bundle(), DialContext: up.DialContext}
	t.Cleanup(func() { pool.Close() })
	proxy := &waypoint.Proxy{Pool: pool, Source: source(t, m, waypointID), Logf: t.Logf}
	t.Cleanup(func() { proxy.Close() })
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: onNode, Identity: reviewsID.String()}}}
	addr := servePlain(t, proxy, reviewsConfig(nil, cl))

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	send := func(req string) (int, string) {
		t.Helper()
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	if code, body := send("GET /reviews/1 HTTP/1.1\r\nHost: reviews\r\n\r\n"); code != http.StatusOK {
		t.Fatalf("GET: %d %q", code, body)
	}
	up.Cut(rand.New(rand.NewPCG(1, 1)), seenBy(pool)) // returns once the pool saw it
	if code, body := send("POST /reviews/1 HTTP/1.1\r\nHost: reviews\r\nContent-Length: 2\r\n\r\nhi"); code != http.StatusOK {
		t.Fatalf("POST right after the upstream connection failed: %d %q", code, body)
	}
}

// TestSlowRequestOverHBONE: requests that run for a few watch ticks, on a
// client's tunnel, are watched for the client going away (a read of the
// tunnel while they run), and their end stops the watch with a read
// deadline on the tunnel's stream; the answers (256 KiB, chunked) arrive
// whole, and requests follow on the same tunnel. (The hang that
// TestChaosThroughHBONE found there, a read deadline not reaching a read
// that already waited, is TestDeadlineSetWhileWaiting's in internal/hbone:
// this test's timing does not meet it.)
func TestSlowRequestOverHBONE(t *testing.T) {
	m := newManager(t)
	const size = 256 << 10
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("sleep"))
		time.Sleep(d)
		for range size / (16 << 10) { // chunked, in flushed pieces
			_, _ = w.Write(make([]byte, 16<<10))
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(backend.Close)
	proxy := &waypoint.Proxy{Logf: t.Logf}
	t.Cleanup(func() { proxy.Close() })
	wpAddr := serveWaypoint(t, m, proxy, reviewsConfig(nil, model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: backend.Listener.Addr().String()}}}))
	client := &hbone.Pool{Bundle: m.Bundle()}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, hbone.Request{Source: source(t, m, sleepID), Addr: wpAddr, Authority: reviewsVIP, Expected: []spiffeid.ID{waypointID}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i, sleep := range []string{"350ms", "350ms", "0s"} {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, "GET /reviews/1?sleep="+sleep+" HTTP/1.1\r\nHost: reviews\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(body) != size {
			t.Fatalf("request %d: %d, %d bytes of %d, %v", i, resp.StatusCode, len(body), size, err)
		}
	}
}
