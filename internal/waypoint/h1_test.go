package waypoint_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
)

// TestUpstreamKeepAlive: sequential requests reuse one upstream
// connection; a HEAD and a 204 (no body to read) keep it too; a response
// the client abandons mid-stream closes its connection without hanging the
// proxy.
func TestUpstreamKeepAlive(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/endless":
			for {
				if _, err := w.Write(make([]byte, 16<<10)); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		default:
			io.WriteString(w, strings.Repeat("x", 4096))
		}
	}))
	defer srv.Close()
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(srv.URL, "http://")}}}
	_, proxy := startProxy(t, reviewsConfig(nil, cl), reviewsVIP)
	c := client(t)
	for i := range 30 {
		path := "/"
		switch i % 3 {
		case 1:
			path = "/empty"
		case 2:
			if resp, _ := get(t, c, proxy, http.MethodHead, "/", nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("HEAD: %d", resp.StatusCode)
			}
			continue
		}
		if resp, _ := get(t, c, proxy, http.MethodGet, path, nil); resp.StatusCode/100 != 2 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
	mu.Lock()
	n := len(conns)
	mu.Unlock()
	if n != 1 {
		t.Errorf("30 sequential requests used %d upstream connections; want 1, kept alive", n)
	}

	// A client that reads a little of an endless response and hangs up.
	nc, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, "GET /endless HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
	if _, err := io.ReadFull(nc, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	// The proxy goes on serving.
	if resp, _ := get(t, c, proxy, http.MethodGet, "/", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after an abandoned stream: %d", resp.StatusCode)
	}
}

// TestUpstreamClosedWhileIdle: a backend that closes keep-alive
// connections idle for 200 ms (as Node.js does after 5 s): a POST, which
// is not sent again after a failure, sent after that time goes on a new
// connection instead of meeting the closed one. Twice through each path:
// the fast path, and net/http's server for a chunked body.
func TestUpstreamClosedWhileIdle(t *testing.T) {
	b := startIdleClosingBackend(t)
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: b.addr}}}
	_, proxy := startProxy(t, reviewsConfig(nil, cl), reviewsVIP)
	b.postAfterIdle(t, proxy)
}

// idleClosingBackend answers "got <body>", closes keep-alive connections
// idle for 200 ms, and counts the connections requests came on.
type idleClosingBackend struct {
	addr  string
	mu    sync.Mutex
	conns map[string]bool
}

func startIdleClosingBackend(t *testing.T) *idleClosingBackend {
	b := &idleClosingBackend{conns: map[string]bool{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.conns[r.RemoteAddr] = true
		b.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, "got "+string(body))
	}))
	srv.Config.IdleTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	b.addr = strings.TrimPrefix(srv.URL, "http://")
	return b
}

// postAfterIdle sends POSTs through the proxy at addr, each after the
// backend closed the connection the last one came on, by each path: the
// fast path, and net/http's server for a chunked body. Each must succeed
// on a new connection.
func (b *idleClosingBackend) postAfterIdle(t *testing.T, addr string) {
	t.Helper()
	c := client(t)
	post := func(chunked bool) {
		t.Helper()
		var body io.Reader = strings.NewReader("order")
		if chunked {
			body = io.MultiReader(body) // length unknown: sent chunked
		}
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/orders", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "reviews.default.svc.cluster.local:9080"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != "got order" {
			t.Fatalf("POST after the backend closed its idle connection (chunked %v): %d %q", chunked, resp.StatusCode, got)
		}
	}
	for _, chunked := range []bool{false, true} {
		post(chunked)
		time.Sleep(600 * time.Millisecond) // the backend closes the idle connection
		post(chunked)
		time.Sleep(600 * time.Millisecond)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.conns) < 4 {
		t.Errorf("4 POSTs, each after the backend closed the last connection, used %d connections", len(b.conns))
	}
}
