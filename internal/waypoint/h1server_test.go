package waypoint_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/telemetry"
	"github.com/meshway/meshway/internal/waypoint"
)

// TestClientGoneCancelsUpstream: a client that hangs up while its request
// waits on a slow backend ends the backend's request too (the connection
// is watched once a request takes a while).
func TestClientGoneCancelsUpstream(t *testing.T) {
	cancelled := make(chan time.Duration, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case <-r.Context().Done():
			cancelled <- time.Since(start)
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(srv.URL, "http://")}}}
	_, proxy := startProxy(t, reviewsConfig(nil, cl), reviewsVIP)
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
	time.Sleep(300 * time.Millisecond)
	_ = c.Close()
	select {
	case d := <-cancelled:
		t.Logf("backend request ended %v after it started", d)
	case <-time.After(5 * time.Second):
		t.Fatal("the backend's request went on after the client hung up")
	}
}

// TestSlowPipelined: a request pipelined behind a slow one is answered
// after it, in order (the watcher finds it and leaves it buffered).
func TestSlowPipelined(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	defer srv.Close()
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(srv.URL, "http://")}}}
	_, proxy := startProxy(t, reviewsConfig(nil, cl), reviewsVIP)
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
	time.Sleep(200 * time.Millisecond) // the slow request is being watched
	_, _ = io.WriteString(c, "GET /next HTTP/1.1\r\nHost: reviews:9080\r\n\r\nGET /last HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"/slow", "/next", "/last"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer for %s: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(body) != want {
			t.Fatalf("answer %q; want %q, in order", body, want)
		}
	}
}

// TestHTTPPortProtocols: an HTTP port serves, besides plain HTTP/1.1,
// h2c with prior knowledge, HTTP/1.0 and heads larger than the fast
// path's buffer (all net/http's), and refuses a head over 1 MB.
func TestHTTPPortProtocols(t *testing.T) {
	b := newBackend(t, "reviews")
	var both http.Protocols
	both.SetHTTP1(true)
	both.SetUnencryptedHTTP2(true) // an HTTP/2 request goes upstream as h2c
	b.srv.Close()
	b.srv = httptest.NewUnstartedServer(b.srv.Config.Handler)
	b.srv.Config.Protocols = &both
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	_, proxy := startProxy(t, reviewsConfig(nil, b.cluster()), reviewsVIP)

	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &protos}, Timeout: 10 * time.Second}
	resp, err := h2c.Get("http://" + proxy + "/h2c")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || !strings.Contains(string(body), "/h2c") {
		t.Errorf("h2c with prior knowledge: %s %d %q", resp.Proto, resp.StatusCode, body)
	}

	raw := func(req string) (int, string) {
		t.Helper()
		c, err := net.Dial("tcp", proxy)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() { _, _ = io.WriteString(c, req) }()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%.40q: %v", req, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	if code, body := raw("GET /old HTTP/1.0\r\n\r\n"); code != http.StatusOK || body != "reviews GET /old" {
		t.Errorf("HTTP/1.0: %d %q", code, body)
	}
	big := strings.Repeat("x", 16<<10)
	if code, body := raw("GET /big HTTP/1.1\r\nHost: reviews:9080\r\nX-Big: " + big + "\r\n\r\n"); code != http.StatusOK || body != "reviews GET /big" {
		t.Errorf("a 16 KB head: %d %q", code, body)
	}
	huge := strings.Repeat("x", 2<<20)
	if code, _ := raw("GET /huge HTTP/1.1\r\nHost: reviews:9080\r\nX-Huge: " + huge + "\r\n\r\n"); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 2 MB head: %d; want 431 as net/http", code)
	}
}

// TestCloseEndsConnections: Close ends the downstream connections the
// proxy serves, idle ones included.
func TestCloseEndsConnections(t *testing.T) {
	b := newBackend(t, "reviews")
	p, proxy := startProxy(t, reviewsConfig(nil, b.cluster()), reviewsVIP)
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := br.ReadByte(); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the connection went on after Close")
		}
	case <-ctx.Done():
		t.Error("the idle connection stayed open after Close")
	}
}

// TestProtocolChangeMidConnection: a connection that began on an HTTP
// port goes on serving when the port becomes HTTP2 (its requests then go
// upstream as h2c); an upstream that aborts a body mid-way ends that
// connection only.
func TestProtocolChangeMidConnection(t *testing.T) {
	var h2c http.Protocols
	h2c.SetHTTP1(true)
	h2c.SetUnencryptedHTTP2(true)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			_, _ = io.WriteString(w, "part")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		_, _ = io.WriteString(w, r.Proto+" "+r.URL.Path)
	}))
	srv.Config.Protocols = &h2c
	srv.Start()
	defer srv.Close()
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(srv.URL, "http://")}}}
	w := reviewsConfig(nil, cl)
	p, proxy := startProxy(t, w, reviewsVIP)
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	get := func(path string) (string, error) {
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return "", err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return string(body), err
	}
	if body, err := get("/one"); err != nil || body != "HTTP/1.1 /one" {
		t.Fatalf("over HTTP/1.1: %q, %v", body, err)
	}
	w2 := reviewsConfig(nil, cl)
	w2.Services[0].Ports[0].Protocol = model.ProtocolHTTP2
	if err := p.Load(w2); err != nil {
		t.Fatal(err)
	}
	if body, err := get("/two"); err != nil || body != "HTTP/2.0 /two" {
		t.Fatalf("after the port became HTTP2: %q, %v", body, err)
	}
	if body, err := get("/abort"); err == nil {
		t.Fatalf("an aborted upstream body came whole: %q", body)
	}
	// The proxy goes on serving new connections.
	if resp, _ := get2(t, proxy); resp != "HTTP/2.0 /three" {
		t.Errorf("after an abort: %q", resp)
	}
}

func get2(t *testing.T, proxy string) (string, error) {
	t.Helper()
	resp, err := client(t).Get("http://" + proxy + "/three")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// TestMetricsOnOneConnection: requests on one connection with different
// outcomes are counted each under its own labels (the connection keeps
// its last label set's series).
func TestMetricsOnOneConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: strings.TrimPrefix(srv.URL, "http://")}}}
	p := &waypoint.Proxy{Logf: t.Logf, Metrics: telemetry.NewMetrics(telemetry.ReporterWaypoint)}
	if err := p.Load(reviewsConfig(nil, cl)); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.ServeListener(ln, reviewsVIP) }()
	t.Cleanup(func() { ln.Close(); p.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, path := range []string{"/", "/", "/missing", "/", "/missing", "/"} {
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	counts := map[string]string{}
	eventually(t, func() bool {
		rec := httptest.NewRecorder()
		p.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stats/prometheus", nil))
		for _, l := range strings.Split(rec.Body.String(), "\n") {
			if !strings.HasPrefix(l, "istio_requests_total{") {
				continue
			}
			for _, code := range []string{"200", "404"} {
				if strings.Contains(l, `response_code="`+code+`"`) {
					counts[code] = l[strings.LastIndex(l, " ")+1:]
				}
			}
		}
		return counts["200"] == "4" && counts["404"] == "2"
	}, "4 requests counted with 200 and 2 with 404")
}
