package waypoint_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/waypoint"
)

// backend is an HTTP server on loopback that answers with its name and
// echoes what it was asked, for the test to see where a request went.
type backend struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64
}

func newBackend(t testing.TB, name string) *backend {
	b := &backend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Seen-Path", r.URL.RequestURI())
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Added", r.Header.Get("X-Added"))
		if d := r.URL.Query().Get("sleep"); d != "" {
			v, _ := time.ParseDuration(d)
			select {
			case <-time.After(v):
			case <-r.Context().Done():
			}
		}
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.Path)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

func (b *backend) cluster() model.Cluster {
	return model.Cluster{Name: b.name, Endpoints: []model.Endpoint{{Address: b.addr()}}}
}

func weight(w int32) *int32 { return &w }

// reviews is the guide's service: reviews.default with VIP 10.96.0.20:9080.
const reviewsVIP = "10.96.0.20:9080"

func reviewsConfig(routes []model.HTTPRoute, clusters ...model.Cluster) *model.Waypoint {
	return &model.Waypoint{
		Name: "waypoint", Namespace: "default",
		Services: []model.Service{{
			Name: "reviews", Namespace: "default", Hostname: "reviews.default.svc.cluster.local",
			Addresses: []string{"10.96.0.20"},
			Ports:     []model.ServicePort{{Name: "http", Port: 9080, Protocol: model.ProtocolHTTP, Cluster: "reviews", Routes: routes}},
		}},
		Clusters: clusters,
	}
}

// startProxy loads w and serves a plain TCP listener for dst; it returns
// the listener's address.
func startProxy(t testing.TB, w *model.Waypoint, dst string) (*waypoint.Proxy, string) {
	t.Helper()
	p := &waypoint.Proxy{Logf: t.Logf}
	if err := p.Load(w); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.ServeListener(ln, dst) }()
	t.Cleanup(func() {
		ln.Close()
		p.Close()
	})
	return p, ln.Addr().String()
}

func client(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// reply is a response read whole.
type reply struct {
	StatusCode int
	Header     http.Header
}

// get sends a request through the proxy and returns the response, read
// whole (the backend that answered is in X-Backend).
func get(t testing.TB, c *http.Client, proxy, method, target string, header http.Header) (reply, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+proxy+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "reviews.default.svc.cluster.local:9080"
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header}, string(body)
}

// TestGuideSplit: the guide's HTTPRoute sends 90% of reviews traffic to v1
// and 10% to v2; over 10,000 requests the split holds within ±2%.
func TestGuideSplit(t *testing.T) {
	v1, v2, all := newBackend(t, "reviews-v1"), newBackend(t, "reviews-v2"), newBackend(t, "reviews")
	routes := []model.HTTPRoute{{
		Name: "reviews", Namespace: "default",
		Rules: []model.RouteRule{{Backends: []model.Backend{
			{Cluster: "reviews-v1", Weight: weight(90)},
			{Cluster: "reviews-v2", Weight: weight(10)},
		}}},
	}}
	_, proxy := startProxy(t, reviewsConfig(routes, v1.cluster(), v2.cluster(), all.cluster()), reviewsVIP)
	c := client(t)
	const total, workers = 10000, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range total / workers {
				resp, err := c.Get("http://" + proxy + "/reviews/1")
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got1, got2 := v1.hits.Load(), v2.hits.Load()
	if got1+got2 != total || all.hits.Load() != 0 {
		t.Fatalf("v1 %d + v2 %d (reviews %d); want %d in all to v1 and v2", got1, got2, all.hits.Load(), total)
	}
	share := float64(got2) / total
	if share < 0.08 || share > 0.12 {
		t.Errorf("v2 got %.1f%% of %d requests; want 10%% ± 2%%", share*100, total)
	}
	t.Logf("v1 %d, v2 %d (%.2f%%)", got1, got2, share*100)
}

// TestRoutingThroughSockets: route precedence, filters and the default
// route, end to end.
func TestRoutingThroughSockets(t *testing.T) {
	def, exact, prefix, hdr := newBackend(t, "reviews"), newBackend(t, "exact"), newBackend(t, "prefix"), newBackend(t, "header")
	routes := []model.HTTPRoute{
		{
			Name: "b-prefix", Namespace: "default",
			Rules: []model.RouteRule{{
				Matches:  []model.RouteMatch{{Path: &model.PathMatch{Type: model.MatchPathPrefix, Value: "/api"}}},
				Backends: []model.Backend{{Cluster: "prefix"}},
				Filters: []model.Filter{
					{Type: model.FilterRequestHeaderModifier, HeaderModifier: &model.HeaderModifier{Set: []model.Header{{Name: "X-Added", Value: "by-route"}}}},
					{Type: model.FilterResponseHeaderModifier, HeaderModifier: &model.HeaderModifier{Add: []model.Header{{Name: "X-Route", Value: "b-prefix"}}}},
				},
			}},
		},
		{
			Name: "a-exact-and-header", Namespace: "default",
			Rules: []model.RouteRule{
				{
					Matches:  []model.RouteMatch{{Path: &model.PathMatch{Type: model.MatchExact, Value: "/api/v1"}}},
					Backends: []model.Backend{{Cluster: "exact"}},
				},
				{
					Matches: []model.RouteMatch{{
						Path:    &model.PathMatch{Type: model.MatchPathPrefix, Value: "/api"},
						Headers: []model.ValueMatch{{Name: "X-User", Value: "jason"}},
					}},
					Backends: []model.Backend{{Cluster: "header"}},
				},
			},
		},
	}
	_, proxy := startProxy(t, reviewsConfig(routes, def.cluster(), exact.cluster(), prefix.cluster(), hdr.cluster()), reviewsVIP)
	c := client(t)
	for _, tc := range []struct {
		path   string
		header http.Header
		want   string
	}{
		{"/api/v1", nil, "exact"},                                     // Exact beats any prefix
		{"/api/v1", http.Header{"X-User": {"jason"}}, "exact"},        // ... even with more headers matched
		{"/api/v2", http.Header{"X-User": {"jason"}}, "header"},       // equal prefix: more header matches win
		{"/api/v2", nil, "prefix"},                                    //
		{"/apix", nil, "reviews"},                                     // prefixes match whole path elements
		{"/productpage", http.Header{"X-User": {"jason"}}, "reviews"}, // no route: the service itself
	} {
		resp, body := get(t, c, proxy, http.MethodGet, tc.path, tc.header)
		if got := resp.Header.Get("X-Backend"); got != tc.want || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s %v: went to %q (%d, %q); want %q", tc.path, tc.header, got, resp.StatusCode, body, tc.want)
		}
		if got := resp.Header.Get("X-Seen-Host"); got != "reviews.default.svc.cluster.local:9080" {
			t.Errorf("GET %s: backend saw Host %q; want the request's", tc.path, got)
		}
		if tc.want == "prefix" {
			if resp.Header.Get("X-Seen-Added") != "by-route" || resp.Header.Get("X-Route") != "b-prefix" {
				t.Errorf("GET %s: request header filter %q, response header filter %q", tc.path, resp.Header.Get("X-Seen-Added"), resp.Header.Get("X-Route"))
			}
		}
	}
}

// TestRequestTimeout: a route's timeouts.request answers 504 when the
// backend is slower.
func TestRequestTimeout(t *testing.T) {
	slow := newBackend(t, "reviews")
	routes := []model.HTTPRoute{{Name: "r", Namespace: "default", Rules: []model.RouteRule{{
		Backends: []model.Backend{{Cluster: "reviews"}},
		Timeouts: model.Timeouts{Request: model.Duration(100 * time.Millisecond)},
	}}}}
	_, proxy := startProxy(t, reviewsConfig(routes, slow.cluster()), reviewsVIP)
	c := client(t)
	start := time.Now()
	resp, body := get(t, c, proxy, http.MethodGet, "/?sleep=5s", nil)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "upstream request timeout") {
		t.Errorf("slow backend: %d %q; want 504 upstream request timeout", resp.StatusCode, body)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("answered after %v; the timeout is 100ms", el)
	}
	if resp, _ := get(t, c, proxy, http.MethodGet, "/?sleep=1ms", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("fast request: %d", resp.StatusCode)
	}
}

// TestNoEndpointAnd503: a cluster with no healthy endpoint answers 503; a
// dead endpoint answers Envoy's connect error.
func TestNoEndpointAnd503(t *testing.T) {
	dead := freeAddr(t) // nothing listens there
	w := reviewsConfig(nil, model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: dead}}})
	p, proxy := startProxy(t, w, reviewsVIP)
	c := client(t)
	resp, body := get(t, c, proxy, http.MethodGet, "/", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "upstream connect error") {
		t.Errorf("dead endpoint: %d %q; want 503 upstream connect error", resp.StatusCode, body)
	}
	w2 := reviewsConfig(nil, model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: dead, Unhealthy: true}}})
	if err := p.Load(w2); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, c, proxy, http.MethodGet, "/", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no healthy upstream") {
		t.Errorf("no healthy endpoint: %d %q; want 503 no healthy upstream", resp.StatusCode, body)
	}
}

// TestHotSwapUnderLoad: configurations swapped 100 times while requests
// flow; no request fails, and both configurations serve.
func TestHotSwapUnderLoad(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	to := func(cl string) *model.Waypoint {
		return reviewsConfig([]model.HTTPRoute{{Name: "r", Namespace: "default", Rules: []model.RouteRule{{
			Backends: []model.Backend{{Cluster: cl}},
		}}}}, model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: a.addr()}}}, a.cluster(), b.cluster())
	}
	p, proxy := startProxy(t, to("a"), reviewsVIP)
	c := client(t)
	stop := make(chan struct{})
	var failed, served atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://" + proxy + "/?sleep=2ms")
				if err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					t.Errorf("status %d during swaps", resp.StatusCode)
				}
				served.Add(1)
			}
		}()
	}
	for i := range 100 {
		cl := "a"
		if i%2 == 1 {
			cl = "b"
		}
		if err := p.Load(to(cl)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || a.hits.Load() == 0 || b.hits.Load() == 0 {
		t.Errorf("%d of %d requests failed; a served %d, b %d", failed.Load(), served.Load(), a.hits.Load(), b.hits.Load())
	}
}

// TestInvalidConfigKeepsServing: Load refuses an invalid configuration with
// errors naming the fields, and the previous one keeps serving.
func TestInvalidConfigKeepsServing(t *testing.T) {
	a := newBackend(t, "reviews")
	p, proxy := startProxy(t, reviewsConfig(nil, a.cluster()), reviewsVIP)
	bad := reviewsConfig([]model.HTTPRoute{{Name: "r", Namespace: "default", Rules: []model.RouteRule{{
		Matches:  []model.RouteMatch{{Path: &model.PathMatch{Type: model.MatchRegularExpression, Value: "(["}}},
		Backends: []model.Backend{{Cluster: "nowhere"}},
	}}}}, a.cluster())
	err := p.Load(bad)
	for _, want := range []string{
		"previous one keeps serving",
		`services[0].ports[0].routes[0].rules[0].matches[0].path.value: invalid regular expression "(["`,
		`services[0].ports[0].routes[0].rules[0].backends[0].cluster: no cluster "nowhere"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load: %v; want it to say %q", err, want)
		}
	}
	if resp, _ := get(t, client(t), proxy, http.MethodGet, "/", nil); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != "reviews" {
		t.Errorf("after a refused config: %d from %q; want the old config serving", resp.StatusCode, resp.Header.Get("X-Backend"))
	}
}

// TestTCPPort: a TCP port forwards bytes as they are, half-close included.
func TestTCPPort(t *testing.T) {
	_, c := dialTCPEcho(t)
	io.WriteString(c, "opaque bytes \x00\x01")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "opaque bytes \x00\x01" {
		t.Errorf("echo through the TCP port: %q, %v", got, err)
	}
}

// TestDrainWaitsForTCP: Drain waits for an open TCP connection (it may
// still carry data) until its context ends, and returns once it closes.
func TestDrainWaitsForTCP(t *testing.T) {
	p, c := dialTCPEcho(t)
	io.WriteString(c, "x")
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil { // the connection is through
		t.Fatal(err)
	}
	drainWaitsFor(t, p, c)
}

// dialTCPEcho serves a TCP port (db, 10.96.0.30:5432) whose endpoint echoes
// what it reads and half-closes after it, and returns the proxy and a
// connection to that port through it.
func dialTCPEcho(t *testing.T) (*waypoint.Proxy, net.Conn) {
	t.Helper()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				c.Close()
			}()
		}
	}()
	w := &model.Waypoint{
		Name: "waypoint", Namespace: "default",
		Services: []model.Service{{Name: "db", Namespace: "default", Addresses: []string{"10.96.0.30"},
			Ports: []model.ServicePort{{Port: 5432, Protocol: model.ProtocolTCP, Cluster: "db"}}}},
		Clusters: []model.Cluster{{Name: "db", Endpoints: []model.Endpoint{{Address: echo.Addr().String()}}}},
	}
	p, proxy := startProxy(t, w, "10.96.0.30:5432")
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return p, c
}

// drainWaitsFor checks that p.Drain waits while the client's connection c
// is open, and returns once c is closed.
func drainWaitsFor(t *testing.T, p *waypoint.Proxy, c net.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Drain(ctx); err == nil {
		t.Fatal("Drain returned with a connection open")
	}
	c.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Drain(ctx); err != nil {
		t.Errorf("Drain after the connection closed: %v", err)
	}
}

// TestLoadFile: a YAML configuration loads; mistakes name the file, the
// field and what to do, without the decoder's layers ("error unmarshaling
// JSON: ...").
func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.yaml", `name: waypoint
namespace: default
services:
- name: reviews
  namespace: default
  hostname: reviews.default.svc.cluster.local
  addresses: [10.96.0.20]
  ports:
  - {name: http, port: 9080, protocol: HTTP, cluster: reviews}
clusters:
- name: reviews
  endpoints: [{address: "10.244.0.5:9080", identity: "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"}]
`)
	w, err := waypoint.LoadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if w.Services[0].Ports[0].Protocol != model.ProtocolHTTP || w.Clusters[0].Endpoints[0].Address != "10.244.0.5:9080" {
		t.Errorf("loaded %+v", w)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"unknown field", "name: w\nnamespace: d\nservices: []\nclusterz: []\n", `: unknown field "clusterz"; remove it or fix its spelling`},
		{"wrong type", "name: w\nnamespace: d\nservices:\n- name: s\n  ports: 5\n", `: services.ports: a number where a list is expected; fix the value`},
		{"wrong type in a list", "name: w\nnamespace: d\nservices:\n- name: s\n  ports: [{port: http}]\n", `: services.ports.port: a string where a whole number is expected`},
		{"malformed", "services: [\n", `: malformed YAML: line 1: did not find expected node content; fix the syntax`},
		{"bad protocol", "name: w\nnamespace: d\nservices:\n- name: s\n  namespace: d\n  addresses: [10.0.0.1]\n  ports: [{port: 80, protocol: HTTPS, cluster: c}]\nclusters: [{name: c}]\n",
			`services[0].ports[0].protocol: unknown protocol "HTTPS"`},
		{"bad duration", "name: w\nnamespace: d\nservices:\n- name: s\n  namespace: d\n  addresses: [10.0.0.1]\n  ports:\n  - port: 80\n    protocol: HTTP\n    cluster: c\n    routes: [{name: r, namespace: d, rules: [{timeouts: {request: soon}}]}]\nclusters: [{name: c}]\n",
			`invalid duration "soon"`},
	} {
		path := write(strings.ReplaceAll(tc.name, " ", "-")+".yaml", tc.text)
		_, err := waypoint.LoadFile(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error naming %s and saying %q", tc.name, err, path, tc.want)
		} else if strings.Contains(err.Error(), "JSON") {
			t.Errorf("%s: %v: the decoder's layers show", tc.name, err)
		}
	}
}

// TestRunReloadsFile: Run serves the file's configuration and picks up a
// change of the file; a broken edit keeps the previous configuration.
func TestRunReloadsFile(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	dir := t.TempDir()
	path := filepath.Join(dir, "waypoint.yaml")
	if err := os.WriteFile(path, []byte(reviewsYAML(a.addr())), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- waypoint.Run(ctx, waypoint.Options{ConfigPath: path, Listen: []waypoint.Listen{{Addr: listen, OriginalDst: reviewsVIP}}, Logf: t.Logf})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c := client(t)
	backendOf := func() string {
		resp, err := c.Get("http://" + listen + "/")
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		return resp.Header.Get("X-Backend")
	}
	eventually(t, func() bool { return backendOf() == "a" }, "serving the first configuration")
	if err := os.WriteFile(path, []byte(reviewsYAML(b.addr())), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return backendOf() == "b" }, "serving the edited configuration")
	if err := os.WriteFile(path, []byte("name: [broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := backendOf(); got != "b" {
		t.Errorf("after a broken edit: %q; want the previous configuration (b) serving", got)
	}
}

// TestRunWarnsOfUnservedListen: a -listen for a destination the
// configuration does not serve is named in the log when the waypoint
// starts (its connections are closed); one it serves is not.
func TestRunWarnsOfUnservedListen(t *testing.T) {
	a := newBackend(t, "a")
	path := filepath.Join(t.TempDir(), "waypoint.yaml")
	if err := os.WriteFile(path, []byte(reviewsYAML(a.addr())), 0o644); err != nil {
		t.Fatal(err)
	}
	served, unserved := freeAddr(t), freeAddr(t)
	var (
		mu   sync.Mutex
		logs []string
	)
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- waypoint.Run(ctx, waypoint.Options{ConfigPath: path, Logf: logf, Listen: []waypoint.Listen{
			{Addr: served, OriginalDst: reviewsVIP}, {Addr: unserved, OriginalDst: "10.96.0.99:9080"}}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	warned := func(dst string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range logs {
			if strings.Contains(l, "="+dst+": the configuration has no service address or workload") {
				return true
			}
		}
		return false
	}
	eventually(t, func() bool { return warned("10.96.0.99:9080") }, "warning of the unserved -listen")
	if warned(reviewsVIP) {
		t.Errorf("warned of %s, which the configuration serves: %q", reviewsVIP, logs)
	}
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var _ = errors.New

// TestWorkloadAddressed: traffic to a captured workload's own address
// (any port) goes to that workload, on the port asked for.
func TestWorkloadAddressed(t *testing.T) {
	b := newBackend(t, "ratings-pod")
	_, port, _ := net.SplitHostPort(b.addr())
	p, _ := strconv.Atoi(port)
	w := &model.Waypoint{
		Name: "waypoint", Namespace: "default",
		Workloads: []model.Workload{{Name: "ratings", Namespace: "default", Addresses: []string{"127.0.0.1"},
			Ports: []model.WorkloadPort{{Port: uint16(p), Protocol: model.ProtocolHTTP}}}},
	}
	_, proxy := startProxy(t, w, b.addr()) // the original destination is the pod itself
	c := client(t)
	for i := range 3 {
		resp, body := get(t, c, proxy, http.MethodGet, "/ratings/1", nil)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "ratings-pod GET /ratings/1") {
			t.Fatalf("request %d to the workload's address: %d %q", i, resp.StatusCode, body)
		}
	}
}

// TestRunServesMetrics: Run with a metrics address serves Istio's metrics
// of the requests it proxied and, beside them, the process's own (CPU,
// memory, threads), as Envoy's server stats are.
func TestRunServesMetrics(t *testing.T) {
	b := newBackend(t, "reviews")
	path := filepath.Join(t.TempDir(), "waypoint.yaml")
	if err := os.WriteFile(path, []byte(reviewsYAML(b.addr())), 0o644); err != nil {
		t.Fatal(err)
	}
	listen, metrics := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- waypoint.Run(ctx, waypoint.Options{ConfigPath: path, MetricsAddr: metrics,
			Listen: []waypoint.Listen{{Addr: listen, OriginalDst: reviewsVIP}}, AccessLog: io.Discard, Logf: t.Logf})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c := client(t)
	eventually(t, func() bool {
		resp, err := c.Get("http://" + listen + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "proxying a request")
	resp, err := c.Get("http://" + metrics + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`istio_requests_total{`, `reporter="waypoint"`,
		"go_sched_gomaxprocs_threads ", "go_goroutines ", "process_cpu_seconds_total ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/stats/prometheus has no %q", want)
		}
	}
}

// reviewsYAML is a waypoint configuration file serving reviews
// (10.96.0.20:9080) from the backend at addr.
func reviewsYAML(addr string) string {
	return fmt.Sprintf(`name: waypoint
namespace: default
services:
- name: reviews
  namespace: default
  addresses: [10.96.0.20]
  ports: [{port: 9080, protocol: HTTP, cluster: reviews}]
clusters:
- name: reviews
  endpoints: [{address: %q}]
`, addr)
}

// freeAddr returns a loopback address free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
