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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/chaos"
	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/waypoint"
)

// h2cBackend is an HTTP/2-cleartext server (prior knowledge, as Istio's
// HTTP2 and GRPC ports speak) on loopback that refuses HTTP/1.1: a request
// reaches it only if the waypoint sent it over h2c. It reports every
// request it answers, counts the TCP connections it accepts and closes,
// and the requests each connection carried.
type h2cBackend struct {
	name   string
	srv    *httptest.Server
	seen   chan seenRequest
	closed chan struct{} // a value per connection closed

	accepted   atomic.Int64
	maxPerConn atomic.Int64 // the most requests one connection carried
}

// seenRequest is what a backend saw of one request.
type seenRequest struct {
	host       string
	protoMajor int
	body       string
}

type connRequestsKey struct{}

// newH2CBackend starts an h2c-only backend; hold, if set, runs in the
// handler before it answers (to keep requests in flight).
func newH2CBackend(t testing.TB, name string, hold func(r *http.Request)) *h2cBackend {
	b := &h2cBackend{name: name, seen: make(chan seenRequest, 64), closed: make(chan struct{}, 64)}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.Context().Value(connRequestsKey{}).(*atomic.Int64).Add(1)
		for m := b.maxPerConn.Load(); n > m && !b.maxPerConn.CompareAndSwap(m, n); m = b.maxPerConn.Load() {
		}
		body, _ := io.ReadAll(r.Body)
		select {
		case b.seen <- seenRequest{host: r.Host, protoMajor: r.ProtoMajor, body: string(body)}:
		default: // nobody reads them
		}
		if hold != nil {
			hold(r)
		}
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.Path)
	}))
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	b.srv.Config.Protocols = &protos
	b.srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connRequestsKey{}, new(atomic.Int64))
	}
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			b.accepted.Add(1)
		case http.StateClosed, http.StateHijacked:
			select {
			case b.closed <- struct{}{}:
			default:
			}
		}
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *h2cBackend) cluster() model.Cluster {
	return model.Cluster{Name: b.name, Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(b.srv.URL, "http://")}}}
}

// next returns the next request the backend saw, failing the test if none
// comes within 10s.
func (b *h2cBackend) next(t *testing.T, what string) seenRequest {
	t.Helper()
	select {
	case s := <-b.seen:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: backend %s saw no request within 10s", what, b.name)
		return seenRequest{}
	}
}

// h2cClient speaks HTTP/2 with prior knowledge to the waypoint.
func h2cClient(t testing.TB) *http.Client {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestMirrorH2C: a request mirror goes to its cluster the way that
// cluster's traffic normally goes: over h2c on HTTP2 and GRPC ports and
// for HTTP/2 requests (the mirror backend speaks nothing else), with
// Envoy's "-shadow" suffix on the host and the request's body, while the
// primary backend's answer is returned.
func TestMirrorH2C(t *testing.T) {
	cases := []struct {
		port   model.Protocol
		client string
	}{
		{model.ProtocolHTTP2, "HTTP/1.1"},
		{model.ProtocolGRPC, "h2c"},
		{model.ProtocolHTTP, "h2c"}, // an HTTP port: HTTP/2 requests go upstream as HTTP/2
	}
	for _, tc := range cases {
		t.Run(string(tc.port)+" port, "+tc.client+" client", func(t *testing.T) {
			primary, shadow := newH2CBackend(t, "reviews", nil), newH2CBackend(t, "shadow", nil)
			routes := oneRule(model.RouteRule{Filters: []model.Filter{{
				Type: model.FilterRequestMirror, RequestMirror: &model.RequestMirror{Cluster: "shadow"},
			}}})
			w := reviewsConfig(routes, primary.cluster(), shadow.cluster())
			w.Services[0].Ports[0].Protocol = tc.port
			_, proxy := startProxy(t, w, reviewsVIP)
			c := client(t)
			if tc.client == "h2c" {
				c = h2cClient(t)
			}
			req, err := http.NewRequest(http.MethodPost, "http://"+proxy+"/ratings", strings.NewReader("stars=5"))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "reviews.default.svc.cluster.local:9080"
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || string(body) != "reviews POST /ratings" {
				t.Fatalf("mirrored request: %d %q, %v; want the primary's 200 \"reviews POST /ratings\"", resp.StatusCode, body, err)
			}
			if got := primary.next(t, "primary"); got.host != "reviews.default.svc.cluster.local:9080" || got.body != "stars=5" {
				t.Errorf("primary saw host %q body %q", got.host, got.body)
			}
			got := shadow.next(t, "mirror")
			if got.host != "reviews.default.svc.cluster.local-shadow:9080" || got.protoMajor != 2 || got.body != "stars=5" {
				t.Errorf("mirror saw host %q, HTTP/%d, body %q; want reviews.default.svc.cluster.local-shadow:9080, HTTP/2, stars=5",
					got.host, got.protoMajor, got.body)
			}
		})
	}
}

// TestMaxRequestsPerConnectionH2: DestinationRule's
// maxRequestsPerConnection on an h2c upstream, with Envoy's meaning: a
// connection that has carried that many streams takes no new ones and
// closes once they are done; further requests open a new connection.
func TestMaxRequestsPerConnectionH2(t *testing.T) {
	pool := func(limit int) *model.ConnectionPool {
		if limit == 0 {
			return nil
		}
		return &model.ConnectionPool{MaxRequestsPerConnection: limit}
	}
	for _, routed := range []bool{true, false} {
		for _, tc := range []struct{ limit, want int }{{2, 3}, {1, 6}, {0, 1}} {
			t.Run(fmt.Sprintf("routed %v, limit %d", routed, tc.limit), func(t *testing.T) {
				b := newH2CBackend(t, "reviews", nil)
				cl := b.cluster()
				cl.ConnectionPool = pool(tc.limit)
				var routes []model.HTTPRoute
				if routed {
					routes = oneRule(model.RouteRule{})
				}
				w := reviewsConfig(routes, cl)
				w.Services[0].Ports[0].Protocol = model.ProtocolHTTP2
				_, proxy := startProxy(t, w, reviewsVIP)
				c := client(t)
				for i := range 6 {
					if r, body := get(t, c, proxy, http.MethodGet, fmt.Sprintf("/r%d", i), nil); r.StatusCode != http.StatusOK || body != fmt.Sprintf("reviews GET /r%d", i) {
						t.Fatalf("request %d: %d %q", i, r.StatusCode, body)
					}
				}
				got := int(b.accepted.Load())
				// Without a limit net/http's pool multiplexes. It adds a
				// connection it dialed to the pool on the dialing goroutine,
				// after handing it to the first request: on a slow host
				// (CI, -race) the second request can come before that and
				// dial a second connection.
				if tc.limit == 0 && got == 2 {
					got = 1
				}
				if got != tc.want {
					t.Errorf("6 requests on %d upstream connections, want %d", b.accepted.Load(), tc.want)
				}
				if got := int(b.maxPerConn.Load()); tc.limit > 0 && got > tc.limit {
					t.Errorf("a connection carried %d requests, over the limit of %d", got, tc.limit)
				}
				if tc.limit == 0 {
					return
				}
				// Every connection carried its limit: each is closed once
				// its last stream is done.
				for i := range tc.want {
					select {
					case <-b.closed:
					case <-time.After(10 * time.Second):
						t.Fatalf("%d of %d spent upstream connections closed after 10s", i, tc.want)
					}
				}
			})
		}
	}
	t.Run("concurrent", func(t *testing.T) {
		// 8 requests held in flight at once under a limit of 2: the waypoint
		// opens connections as it needs them, and none carries more than 2.
		const n, limit = 8, 2
		var arrived atomic.Int64
		release := make(chan struct{})
		b := newH2CBackend(t, "reviews", func(r *http.Request) {
			if arrived.Add(1) == n {
				close(release)
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		cl := b.cluster()
		cl.ConnectionPool = pool(limit)
		w := reviewsConfig(nil, cl)
		w.Services[0].Ports[0].Protocol = model.ProtocolHTTP2
		_, proxy := startProxy(t, w, reviewsVIP)
		c := client(t)
		var wg sync.WaitGroup
		status := make([]int, n)
		for i := range n {
			wg.Go(func() { r, _ := get(t, c, proxy, http.MethodGet, "/", nil); status[i] = r.StatusCode })
		}
		wg.Wait()
		for i, s := range status {
			if s != http.StatusOK {
				t.Errorf("request %d: status %d", i, s)
			}
		}
		if got := int(b.maxPerConn.Load()); got > limit {
			t.Errorf("a connection carried %d requests, over the limit of %d", got, limit)
		}
		if got := int(b.accepted.Load()); got < n/limit {
			t.Errorf("%d requests in flight at once on %d connections; want at least %d", n, got, n/limit)
		}
	})
}

// TestMirrorH2COverHBONE: a mirror cluster whose endpoint has a mesh
// identity is reached through HBONE (podIP:15008, :authority podIP:port),
// over h2c on an HTTP2 port, under its maxRequestsPerConnection: two
// mirrored requests with a limit of 1 take two tunnels, hence two
// connections at the backend.
func TestMirrorH2COverHBONE(t *testing.T) {
	m := newManager(t)
	primary, shadow := newH2CBackend(t, "reviews", nil), newH2CBackend(t, "shadow", nil)
	shadowAddr := strings.TrimPrefix(shadow.srv.URL, "http://")
	_, shadowPort, _ := net.SplitHostPort(shadowAddr)
	tunnels := make(chan spiffeid.ID, 10)
	nodeIP := serveNode(t, &hbone.Server{
		TLSConfig: identity.ServerTLSConfig(source(t, m, reviewsID), m.Bundle(), nil),
		Handler: hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
			tunnels <- s.PeerID
			spliceTo(s, shadowAddr)
		}),
		Logf: t.Logf,
	})
	pool := &hbone.Pool{Bundle: m.Bundle()}
	t.Cleanup(func() { pool.Close() })
	proxy := &waypoint.Proxy{Pool: pool, Source: source(t, m, waypointID), Logf: t.Logf}
	t.Cleanup(func() { proxy.Close() })
	mirrorCluster := model.Cluster{
		Name:           "shadow",
		Endpoints:      []model.Endpoint{{Address: nodeIP + ":" + shadowPort, Identity: reviewsID.String()}},
		ConnectionPool: &model.ConnectionPool{MaxRequestsPerConnection: 1},
	}
	w := reviewsConfig(oneRule(model.RouteRule{Filters: []model.Filter{{
		Type: model.FilterRequestMirror, RequestMirror: &model.RequestMirror{Cluster: "shadow"},
	}}}), primary.cluster(), mirrorCluster)
	w.Services[0].Ports[0].Protocol = model.ProtocolHTTP2
	addr := servePlain(t, proxy, w)

	c := client(t)
	for i := range 2 {
		if r, body := get(t, c, addr, http.MethodGet, "/", nil); r.StatusCode != http.StatusOK || r.Header.Get("X-Backend") != "reviews" {
			t.Fatalf("request %d: %d %q; want the primary's answer", i, r.StatusCode, body)
		}
		if got := shadow.next(t, "mirror"); got.host != "reviews.default.svc.cluster.local-shadow:9080" || got.protoMajor != 2 {
			t.Errorf("mirror %d saw host %q over HTTP/%d", i, got.host, got.protoMajor)
		}
		// The node forwarded it: each mirrored request came in a tunnel of its own.
		select {
		case got := <-tunnels:
			if got != waypointID {
				t.Errorf("tunnel %d from %s; want the waypoint's identity", i, got)
			}
		default:
			t.Errorf("mirror %d did not come through a tunnel of its own", i)
		}
	}
	if got := shadow.accepted.Load(); got != 2 {
		t.Errorf("2 mirrored requests, limit 1 per connection: %d connections at the mirror backend, want 2", got)
	}
}

// TestClusterProtocolPicksH2C: a route on an HTTP port to a cluster of an
// HTTP2 or GRPC port (Istio's cluster protocol is its port's) sends an
// HTTP/1.1 client's request upstream over h2c — for the routed request
// and for its mirror — as the backend speaks nothing else.
func TestClusterProtocolPicksH2C(t *testing.T) {
	primary, shadow := newH2CBackend(t, "reviews", nil), newH2CBackend(t, "shadow", nil)
	routes := oneRule(model.RouteRule{Filters: []model.Filter{{
		Type: model.FilterRequestMirror, RequestMirror: &model.RequestMirror{Cluster: "shadow"},
	}}})
	pc, sc := primary.cluster(), shadow.cluster()
	pc.Protocol, sc.Protocol = model.ProtocolGRPC, model.ProtocolHTTP2
	w := reviewsConfig(routes, pc, sc)
	w.Services[0].Ports[0].Protocol = model.ProtocolHTTP
	_, proxy := startProxy(t, w, reviewsVIP)
	resp, body := get(t, client(t), proxy, http.MethodGet, "/reviews/1", nil)
	if resp.StatusCode != http.StatusOK || body != "reviews GET /reviews/1" {
		t.Fatalf("HTTP/1.1 request to a GRPC port's cluster: %d %q; want the backend's 200", resp.StatusCode, body)
	}
	if got := primary.next(t, "primary"); got.protoMajor != 2 {
		t.Errorf("primary saw HTTP/%d, want HTTP/2", got.protoMajor)
	}
	if got := shadow.next(t, "mirror"); got.protoMajor != 2 {
		t.Errorf("mirror saw HTTP/%d, want HTTP/2", got.protoMajor)
	}
}

// TestMirrorCountsAgainstCircuitBreaker: a mirrored request takes a slot
// of its cluster's circuit breaker, as Envoy's shadow requests do; with
// the slot taken, further mirrors are dropped (never queued), and the
// primary requests are answered all the same.
func TestMirrorCountsAgainstCircuitBreaker(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	primary := newH2CBackend(t, "reviews", nil)
	shadow := newH2CBackend(t, "shadow", func(*http.Request) { <-release })
	routes := oneRule(model.RouteRule{Filters: []model.Filter{{
		Type: model.FilterRequestMirror, RequestMirror: &model.RequestMirror{Cluster: "shadow"},
	}}})
	sc := shadow.cluster()
	sc.Protocol = model.ProtocolHTTP2
	sc.ConnectionPool = &model.ConnectionPool{HTTP2MaxRequests: 1}
	pc := primary.cluster()
	pc.Protocol = model.ProtocolHTTP2
	w := reviewsConfig(routes, pc, sc)
	_, proxy := startProxy(t, w, reviewsVIP)
	c := client(t)
	for i := range 3 {
		if resp, _ := get(t, c, proxy, http.MethodGet, "/", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	shadow.next(t, "the first mirror")
	releaseOnce.Do(func() { close(release) })
	select {
	case got := <-shadow.seen:
		t.Errorf("a second mirror reached the shadow (%+v) while the first held its cluster's only slot", got)
	case <-time.After(300 * time.Millisecond):
	}
	// The slot is free again once the first mirror is answered.
	deadline := time.Now().Add(10 * time.Second)
	for {
		get(t, c, proxy, http.MethodGet, "/", nil)
		select {
		case <-shadow.seen:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no mirror reached the shadow after its slot was freed")
		}
	}
}

// TestMirrorFollowsItsOwnCluster: the mirror of a request routed to an h2c
// cluster goes to an HTTP/1.1 mirror cluster over HTTP/1.1 — the protocol
// is the mirror cluster's, not the primary's.
func TestMirrorFollowsItsOwnCluster(t *testing.T) {
	primary := newH2CBackend(t, "reviews", nil)
	seen := make(chan int, 4)
	shadow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { seen <- r.ProtoMajor }))
	t.Cleanup(shadow.Close)
	routes := oneRule(model.RouteRule{Filters: []model.Filter{{
		Type: model.FilterRequestMirror, RequestMirror: &model.RequestMirror{Cluster: "shadow"},
	}}})
	pc := primary.cluster()
	pc.Protocol = model.ProtocolGRPC
	sc := model.Cluster{Name: "shadow", Protocol: model.ProtocolHTTP, Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(shadow.URL, "http://")}}}
	_, proxy := startProxy(t, reviewsConfig(routes, pc, sc), reviewsVIP)
	if resp, _ := get(t, client(t), proxy, http.MethodGet, "/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("primary answered %d", resp.StatusCode)
	}
	select {
	case major := <-seen:
		if major != 1 {
			t.Errorf("mirror came over HTTP/%d, want HTTP/1.1", major)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the HTTP/1.1 mirror backend saw no request")
	}
}

// TestEarlyAnswerOverH2CLeavesTheNextBodyWhole: an h2c backend answers a
// POST without reading its body; net/http's HTTP/2 transport, which sends
// the body on a goroutine of its own, may still be reading it from the
// client's connection when the answer begins. On the HTTP/1.1 fast path
// the connection then takes the body back (to drain it, as net/http's
// server does) or, with a read still under way, closes after the answer;
// either way the next request's body comes back whole, and -race sees no
// two readers of the connection (it did: the drain raced the transport's
// read, and a request was cut short).
func TestEarlyAnswerOverH2CLeavesTheNextBodyWhole(t *testing.T) {
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/early" {
			fmt.Fprint(w, "early")
			return
		}
		_, _ = io.Copy(w, r.Body)
	}))
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	backend.Config.Protocols = &protos
	backend.Start()
	t.Cleanup(backend.Close)
	// An HTTP port (the fast path serves it) whose cluster speaks h2c.
	w := reviewsConfig(nil, model.Cluster{Name: "reviews", Protocol: model.ProtocolHTTP2,
		Endpoints: []model.Endpoint{{Address: backend.Listener.Addr().String()}}})
	_, addr := startProxy(t, w, reviewsVIP)

	var (
		conn net.Conn
		br   *bufio.Reader
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	// send sends a POST and reads its answer; closed says the waypoint
	// closes the connection after it.
	send := func(path, body string, split bool) (closed bool, answer string) {
		t.Helper()
		if conn == nil {
			var err error
			if conn, err = net.Dial("tcp", addr); err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			br = bufio.NewReader(conn)
		}
		head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: reviews\r\nContent-Length: %d\r\n\r\n", path, len(body))
		c := conn
		go func() {
			if !split {
				io.WriteString(c, head+body)
				return
			}
			// Half, then the rest once the answer is through: the
			// transport's read of it is then under way.
			io.WriteString(c, head+body[:len(body)/2])
			time.Sleep(20 * time.Millisecond)
			io.WriteString(c, body[len(body)/2:])
		}()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: body: %v", path, err)
		}
		if resp.Close {
			conn.Close()
			conn = nil
		}
		return resp.Close, string(got)
	}
	big := strings.Repeat("x", 256<<10)
	kept := 0
	for i := range 20 {
		if closed, _ := send("/early", big, i%2 == 1); !closed {
			kept++
		}
		want := fmt.Sprintf("second body %d", i)
		if _, got := send("/echo", want, false); got != want {
			t.Fatalf("round %d: the next request's body came back as %.40q (%d bytes), want %q", i, got, len(got), want)
		}
	}
	if kept == 0 {
		t.Error("the connection never went on after an early answer: the drain path was not tested")
	}
	t.Logf("%d of 20 early answers kept the connection", kept)
}

// TestUpstreamCutWhileUploadPauses: an HTTP/1.1 client uploads to an h2c
// cluster whose backend answers before the whole body came (it reads the
// first bytes, then the answer streams while the rest is awaited); the
// waypoint's connection to the backend is cut while the client pauses
// mid-body. The client's answer must end at once, not wait for the
// client's next bytes: net/http's HTTP/2 transport ends a failed exchange
// only once its goroutine sending the body returns, and that goroutine
// waits in a read of the client's connection, which only the body's Close
// can break.
func TestUpstreamCutWhileUploadPauses(t *testing.T) {
	read := make(chan struct{})
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The first bytes before the answer: the waypoint's transport
		// is then back in a read of the client's connection for more
		// when the answer begins (or, if it is not yet, the body is
		// the connection's from then on and the transport's next read
		// fails, which ends the exchange too).
		if _, err := io.ReadFull(r.Body, make([]byte, 10)); err != nil {
			return
		}
		close(read)
		fmt.Fprint(w, "streaming")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	backend.Config.Protocols = &protos
	backend.Start()
	t.Cleanup(backend.Close)
	up := &chaos.Dialer{}
	proxy := &waypoint.Proxy{Logf: t.Logf}
	proxy.SetDialTCP(up.DialContext)
	t.Cleanup(func() { proxy.Close() })
	// An HTTP port (the fast path serves it) whose cluster speaks h2c.
	w := reviewsConfig(nil, model.Cluster{Name: "reviews", Protocol: model.ProtocolHTTP2,
		Endpoints: []model.Endpoint{{Address: backend.Listener.Addr().String()}}})
	addr := servePlainFor(t, proxy, w, reviewsVIP)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A bound for the test, not a measure: the answer should end within
	// milliseconds of the cut.
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: reviews\r\nContent-Length: 1000000\r\n\r\n0123456789")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d; want the backend's 200", resp.StatusCode)
	}
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend never read the body's first bytes")
	}
	up.Cut(rand.New(rand.NewPCG(1, 2)), nil) // the one connection to the backend
	got, err := io.ReadAll(resp.Body)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the answer (%q so far) waited for the client's next bytes after the backend's connection was cut", got)
	}
	if err == nil {
		t.Errorf("the answer ended whole (%q) though the backend's connection was cut mid-answer", got)
	}
}
