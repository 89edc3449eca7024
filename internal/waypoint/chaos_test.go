package waypoint_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
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

// chaosBody is the pattern every body of the chaos test is made of.
func chaosBody(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*13)
	}
	return b
}

// TestChaosThroughHBONE sends keep-alive HTTP/1.1 requests through the
// waypoint with HBONE on both sides — clients tunnel to it, it reaches the
// backend through the backend's node — GETs of up to 128 KiB and POSTs of
// up to 256 KiB echoed back, fixed-length and chunked, while the
// waypoint's tunnels to the node and the clients' to the waypoint are cut
// under them, the node closes the ones that sit idle, the configuration is
// swapped every 100 ms, and clients abort mid-request or mid-response.
// Every request must end within its deadline; an answer that arrives whole
// must be the right one; a failure must be explained by a cut meanwhile;
// and nothing may be left running once everything closed (the waypoint's
// requests whose client went away included).
func TestChaosThroughHBONE(t *testing.T) {
	m := newManager(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return // the client went away
			}
			if r.URL.Query().Get("chunked") == "" {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			}
			_, _ = w.Write(body)
			return
		}
		n, _ := strconv.Atoi(r.URL.Query().Get("size"))
		seed, _ := strconv.Atoi(r.URL.Query().Get("seed"))
		body := chaosBody(n, byte(seed))
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		for len(body) > 0 { // in pieces, flushed: the waypoint streams them
			k := min(len(body), 16<<10)
			if _, err := w.Write(body[:k]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			body = body[k:]
		}
	}))
	t.Cleanup(backend.Close)
	_, backendPort, _ := net.SplitHostPort(backend.Listener.Addr().String())
	nodeIP := serveNode(t, &hbone.Server{
		TLSConfig:            identity.ServerTLSConfig(source(t, m, reviewsID), m.Bundle(), nil),
		Handler:              hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) { spliceTo(s, backend.Listener.Addr().String()) }),
		MaxConcurrentStreams: 8,
		IdleTimeout:          50 * time.Millisecond,
		Logf:                 t.Logf,
	})

	up := &chaos.Dialer{}
	pool := &hbone.Pool{Bundle: m.Bundle(), DialContext: up.DialContext}
	proxy := &waypoint.Proxy{Pool: pool, Source: source(t, m, waypointID), Logf: t.Logf}
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: nodeIP + ":" + backendPort, Identity: reviewsID.String()}}}
	wpAddr := serveWaypoint(t, m, proxy, reviewsConfig(nil, cl))
	down := &chaos.Dialer{} // the clients' tunnels to the waypoint
	clients := &hbone.Pool{Bundle: m.Bundle(), DialContext: down.DialContext}
	req := hbone.Request{Source: source(t, m, sleepID), Addr: wpAddr, Authority: reviewsVIP, Expected: []spiffeid.ID{waypointID}}
	before := chaos.Goroutines()

	ctx, cancel := chaos.Run()
	defer cancel()
	var (
		wg                  sync.WaitGroup
		dumpOnce            sync.Once
		requests, complete  atomic.Int64
		aborted, cutFailure atomic.Int64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		up.CutUntil(ctx, rand.New(rand.NewPCG(1, 2)), seenBy(pool), complete.Load)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		down.CutUntil(ctx, rand.New(rand.NewPCG(3, 4)), seenBy(clients), complete.Load)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		swapConfigUntil(ctx, t, proxy, func() *model.Waypoint { return reviewsConfig(nil, cl) })
	}()
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for ctx.Err() == nil {
				upMark, downMark := up.Cuts(), down.Cuts()
				n, hung, abort, err := chaosTunnel(clients, req, r)
				requests.Add(int64(n))
				switch {
				case hung:
					dumpOnce.Do(func() { // where the waypoint waits, while it waits
						buf := make([]byte, 1<<20)
						t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
					})
					t.Errorf("a request outlived its deadline: %v", err)
				case abort:
					aborted.Add(1)
				case err == nil:
					complete.Add(1)
				case up.CutSince(upMark) || down.CutSince(downMark):
					cutFailure.Add(1)
				default:
					t.Errorf("no tunnel cut meanwhile: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d requests on %d tunnels: %d complete, %d aborted by the client, %d failed with a cut; connections cut: %d upstream, %d downstream",
		requests.Load(), complete.Load()+aborted.Load()+cutFailure.Load(), complete.Load(), aborted.Load(), cutFailure.Load(), up.Cuts()/2, down.Cuts()/2)
	if complete.Load() == 0 || aborted.Load() == 0 || up.Cuts() == 0 || down.Cuts() == 0 {
		t.Error("the chaos missed a case: no complete tunnel, no abort or no cut")
	}
	if err := clients.Close(); err != nil {
		t.Errorf("clients' pool: %v", err)
	}
	if err := proxy.Close(); err != nil {
		t.Errorf("proxy.Close: %v", err)
	}
	if err := pool.Close(); err != nil {
		t.Errorf("waypoint's pool: %v", err)
	}
	// The waypoint's and the node's servers close at cleanup; the tunnels'
	// client ends and the waypoint's requests must be gone already.
	chaos.Settled(t, before, 8)
}

// swapConfigUntil loads a configuration w makes into proxy every 100 ms
// until ctx ends: the swaps under load, which must fail no request.
func swapConfigUntil(ctx context.Context, t *testing.T, proxy *waypoint.Proxy, w func() *model.Waypoint) {
	for ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		if err := proxy.Load(w()); err != nil {
			t.Errorf("Load: %v", err)
		}
	}
}

// seenBy says whether pool no longer has the connection from local (a
// chaos.Dialer's Cut waits for it).
func seenBy(pool *hbone.Pool) func(local string) bool {
	return func(local string) bool {
		return !slices.ContainsFunc(pool.Snapshot(), func(ci hbone.ConnInfo) bool { return ci.Local == local })
	}
}

// chaosTunnel opens a tunnel to the waypoint and sends 1 to 4 requests on
// it, one at a time, checking each answer; at random it aborts one, mid-
// body or mid-answer (abort). n counts the requests sent; hung says the
// tunnel outlived its deadline.
func chaosTunnel(clients *hbone.Pool, req hbone.Request, r *rand.Rand) (n int, hung, abort bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := clients.Dial(ctx, req)
	if err != nil {
		return 0, errors.Is(err, hbone.ErrTimeout), false, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer func() { hung = errors.Is(err, os.ErrDeadlineExceeded) }()
	br := bufio.NewReader(c)
	for range 1 + r.IntN(4) {
		n++
		seed := byte(r.IntN(256))
		chunked := ""
		if r.IntN(2) == 0 {
			chunked = "&chunked=1"
		}
		var want []byte
		method := http.MethodGet
		if r.IntN(2) == 0 {
			want = chaosBody(r.IntN(128<<10), seed)
			_, err = fmt.Fprintf(c, "GET /get?size=%d&seed=%d%s HTTP/1.1\r\nHost: reviews\r\n\r\n", len(want), seed, chunked)
		} else {
			method = http.MethodPost
			want = chaosBody(r.IntN(256<<10), seed)
			if r.IntN(10) == 0 { // the client gives up mid-body
				_, _ = fmt.Fprintf(c, "POST /post?x=1%s HTTP/1.1\r\nHost: reviews\r\nContent-Length: %d\r\n\r\n", chunked, len(want))
				_, _ = c.Write(want[:len(want)/2])
				return n, false, true, nil
			}
			_, err = fmt.Fprintf(c, "POST /post?x=1%s HTTP/1.1\r\nHost: reviews\r\nContent-Length: %d\r\n\r\n%s", chunked, len(want), want)
		}
		if err != nil {
			return n, false, false, fmt.Errorf("request %d: write: %w", n, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return n, false, false, fmt.Errorf("request %d: %w", n, err)
		}
		if r.IntN(10) == 0 { // the client gives up mid-answer
			_, _ = io.CopyN(io.Discard, resp.Body, int64(len(want)/2))
			return n, false, true, nil
		}
		got, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return n, false, false, fmt.Errorf("request %d (%s %s, %d bytes): body after %d bytes: %w", n, method, chunked, len(want), len(got), err)
		}
		if resp.StatusCode != http.StatusOK {
			return n, false, false, fmt.Errorf("request %d (%s): %s: %q", n, method, resp.Status, got)
		}
		if !bytes.Equal(got, want) {
			return n, false, false, fmt.Errorf("request %d: %d bytes back, want %d, or not the same", n, len(got), len(want))
		}
	}
	return n, false, false, nil
}

// What the plain chaos test's backend does with a request, by its path:
// /ok/N answers N bytes, /close-before/N closes the connection without an
// answer, /close-mid/N closes it halfway through the body.
const (
	plainOK          = "ok"
	plainCloseBefore = "close-before"
	plainCloseMid    = "close-mid"
)

// TestChaosPlain is TestChaosThroughHBONE's load on the plain path, the
// one make bench-waypoint measures (TCP on both sides, the HTTP/1.1 fast
// path): the backend ends some requests by closing its connection, before
// its answer or halfway through it; clients' connections to the waypoint
// are cut; clients abort mid-answer; the configuration is swapped. A
// request the backend did not break must get its answer whole, on a
// connection no cut reached; one it broke must fail (a 502 or 503, or a
// cut short answer), not hang; nothing may be left running.
func TestChaosPlain(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var mode string
		var n int
		if _, err := fmt.Sscanf(strings.ReplaceAll(r.URL.Path, "/", " "), "%s %d", &mode, &n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		body := chaosBody(n, byte(n))
		switch mode {
		case plainCloseBefore:
			panic(http.ErrAbortHandler) // net/http closes the connection, answering nothing
		case plainCloseMid:
			w.Header().Set("Content-Length", strconv.Itoa(n))
			_, _ = w.Write(body[:n/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		_, _ = w.Write(body)
	}))
	t.Cleanup(backend.Close)
	proxy := &waypoint.Proxy{Logf: t.Logf}
	cl := model.Cluster{Name: "reviews", Endpoints: []model.Endpoint{{Address: backend.Listener.Addr().String()}}}
	addr := servePlain(t, proxy, reviewsConfig(nil, cl))
	down := &chaos.Dialer{}
	before := chaos.Goroutines()

	ctx, cancel := chaos.Run()
	defer cancel()
	var (
		wg                           sync.WaitGroup
		complete, broken, cutFailure atomic.Int64
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		down.CutUntil(ctx, rand.New(rand.NewPCG(5, 6)), nil, complete.Load)
	}()
	go func() {
		defer wg.Done()
		swapConfigUntil(ctx, t, proxy, func() *model.Waypoint { return reviewsConfig(nil, cl) })
	}()
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 11))
			for ctx.Err() == nil {
				mark := down.Cuts()
				err := chaosPlainConn(down, addr, r)
				switch {
				case err == nil:
					complete.Add(1)
				case errors.Is(err, errBroken):
					broken.Add(1)
				case down.CutSince(mark):
					cutFailure.Add(1)
				default:
					t.Errorf("no connection cut meanwhile: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("connections: %d complete, %d ended by a broken request, %d failed with a cut (%d cut)",
		complete.Load(), broken.Load(), cutFailure.Load(), down.Cuts()/2)
	if complete.Load() == 0 || broken.Load() == 0 {
		t.Error("the chaos missed a case: no complete connection or no broken request")
	}
	if err := proxy.Close(); err != nil {
		t.Errorf("proxy.Close: %v", err)
	}
	chaos.Settled(t, before, 8)
}

// errBroken marks a request the backend broke, failing as it should.
var errBroken = errors.New("broken by the backend, as asked")

// chaosPlainConn sends 1 to 4 requests on one keep-alive connection to the
// waypoint, checking each answer; a request the backend breaks ends it
// (errBroken when it failed as it should).
func chaosPlainConn(down *chaos.Dialer, addr string, r *rand.Rand) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := down.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i := range 1 + r.IntN(4) {
		mode := plainOK
		switch r.IntN(10) {
		case 0:
			mode = plainCloseBefore
		case 1:
			mode = plainCloseMid
		}
		n := 1 + r.IntN(64<<10)
		var err error
		if r.IntN(2) == 0 {
			_, err = fmt.Fprintf(c, "GET /%s/%d HTTP/1.1\r\nHost: reviews\r\n\r\n", mode, n)
		} else {
			_, err = fmt.Fprintf(c, "POST /%s/%d HTTP/1.1\r\nHost: reviews\r\nContent-Length: 5\r\n\r\nhello", mode, n)
		}
		if err != nil {
			return fmt.Errorf("request %d: write: %w", i, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("request %d (%s): no answer in 10 s", i, mode)
		}
		if err != nil {
			return fmt.Errorf("request %d (%s): %w", i, mode, err)
		}
		if mode == plainOK && r.IntN(10) == 0 { // the client gives up mid-answer
			_, _ = io.CopyN(io.Discard, resp.Body, int64(n/2))
			return nil
		}
		got, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("request %d (%s): answer stalled after %d bytes", i, mode, len(got))
		}
		switch mode {
		case plainCloseBefore:
			if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable {
				return errBroken // the connection may go on; this test starts anew
			}
			return fmt.Errorf("request %d (%s): %s, want 502 or 503", i, mode, resp.Status)
		case plainCloseMid:
			if err != nil && len(got) < n {
				return errBroken
			}
			return fmt.Errorf("request %d (%s): %s, all %d bytes: want a cut short answer", i, mode, resp.Status, len(got))
		}
		if err != nil {
			return fmt.Errorf("request %d: %s, %d bytes of %d: %w", i, resp.Status, len(got), n, err)
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, chaosBody(n, byte(n))) {
			return fmt.Errorf("request %d: %s, %d bytes of %d, or not the ones sent", i, resp.Status, len(got), n)
		}
	}
	return nil
}
