package waypoint_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/waypoint"
)

// TestRunDrains: when Run's context ends with a drain duration, the
// requests in flight finish with their whole answer, a connection waiting
// idle for its next request is closed, new connections are refused, and
// Run returns once the requests are done, not at the end of the drain
// duration. Without the drain, the slow requests were cut (an empty
// reply).
func TestRunDrains(t *testing.T) {
	b := newBackend(t, "a")
	path := filepath.Join(t.TempDir(), "waypoint.yaml")
	if err := os.WriteFile(path, []byte(reviewsYAML(b.addr())), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	const drainFor = 30 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- waypoint.Run(ctx, waypoint.Options{ConfigPath: path, DrainDuration: drainFor, Logf: t.Logf,
			Listen: []waypoint.Listen{{Addr: listen, OriginalDst: reviewsVIP}}})
	}()

	// A keep-alive connection, idle once its request is answered.
	idle := client(t)
	eventually(t, func() bool {
		resp, err := idle.Get("http://" + listen + "/")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "serving")

	// Slow requests, each on a connection of its own, in flight when the
	// drain starts.
	const slow = 3
	before := b.hits.Load()
	type result struct {
		code int
		body string
		err  error
	}
	results := make(chan result, slow)
	var wg sync.WaitGroup
	for range slow {
		wg.Go(func() {
			resp, err := client(t).Get("http://" + listen + "/slow?sleep=700ms")
			if err != nil {
				results <- result{err: err}
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{code: resp.StatusCode, body: string(body), err: err}
		})
	}
	eventually(t, func() bool { return b.hits.Load() == before+slow }, "the slow requests reaching the backend")
	cancel()
	stopped := time.Now()

	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || r.code != http.StatusOK || r.body != "a GET /slow" {
			t.Errorf("a request in flight when the drain started: %d %q %v; want 200 \"a GET /slow\"", r.code, r.body, r.err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(drainFor - 5*time.Second):
		t.Fatal("Run still draining long after its requests finished: the idle connection was not closed")
	}
	t.Logf("Run returned %v after the drain started", time.Since(stopped).Round(time.Millisecond))
	if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after the drain")
	}
}
