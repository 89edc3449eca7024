package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/controlplane"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/push"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/store"
)

const meshYAML = `
apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels:
    istio.io/dataplane-mode: ambient
    istio.io/use-waypoint: waypoint
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: default
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
status:
  addresses:
  - type: IPAddress
    value: 10.96.0.20
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: default
spec:
  clusterIP: 10.96.0.13
  selector:
    app: reviews
  ports:
  - name: http
    port: 9080
`

// service is a Service in the default namespace, bound to the waypoint.
func service(name, vip string) string {
	return fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: default
spec:
  clusterIP: %s
  ports:
  - name: http
    port: 80
`, name, vip)
}

func apply(t *testing.T, st store.Store, yaml string) {
	t.Helper()
	docs, err := manifest.Decode("test.yaml", strings.NewReader(yaml))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := st.Create(context.Background(), d.Object); err != nil {
			if _, err := st.Update(context.Background(), d.Object); err != nil {
				t.Fatalf("%s: %v", d.Object.GetName(), err)
			}
		}
	}
}

// proxy records the configurations a waypoint receives.
type proxy struct {
	mu   sync.Mutex
	last *meshpb.WaypointConfig
	n    int
}

func (p *proxy) Update(_, _ string, msg proto.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last, p.n = msg.(*meshpb.WaypointConfig), p.n+1
	return nil
}
func (p *proxy) Remove(string) {}

func (p *proxy) get() (*meshpb.WaypointConfig, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last, p.n
}

// writer records the snapshots it is asked to write.
type writer struct {
	mu    sync.Mutex
	calls int
}

func (w *writer) Sync(context.Context, []manifest.Object) error {
	w.mu.Lock()
	w.calls++
	w.mu.Unlock()
	return nil
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestChangesAreDebouncedAndPushed(t *testing.T) {
	st := store.NewMemory(store.Options{InitialNamespaces: []string{"istio-system"}})
	apply(t, st, meshYAML)
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, Logf: t.Logf})
	t.Cleanup(srv.Stop)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	w := &writer{}
	ctl := controlplane.New(controlplane.Options{
		Store: st, Push: srv, Writers: []controlplane.Writer{w}, Logf: t.Logf,
		DebounceAfter: 50 * time.Millisecond, DebounceMax: time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ctl.Synced()

	p := &proxy{}
	c := pushclient.New(pushclient.Options{
		Address: ln.Addr().String(), TypeURL: wire.WaypointType, Names: []string{"default/waypoint"}, Handler: p,
		Node: pushclient.NodeInfo{Kind: pushclient.KindWaypoint, Namespace: "default", Name: "waypoint", Instance: "test"},
	})
	go func() { _ = c.Run(ctx) }()
	waitFor(t, "the first configuration", func() bool { cfg, _ := p.get(); return cfg != nil })
	cfg, _ := p.get()
	if len(cfg.GetServices()) != 1 || cfg.GetServices()[0].GetHostname() != "reviews.default.svc.cluster.local" {
		t.Fatalf("pushed services %v, want reviews", cfg.GetServices())
	}
	if w.count() != 0 {
		t.Errorf("writers ran %d times before this replica leads", w.count())
	}

	// Ten services added one by one, faster than the debounce: the first
	// is pushed at once (the store was quiet: the leading edge), the
	// other nine together after it.
	time.Sleep(60 * time.Millisecond) // quiet for longer than DebounceAfter
	pushes := ctl.Pushes()
	for i := range 10 {
		apply(t, st, service(fmt.Sprintf("svc%d", i), fmt.Sprintf("10.96.1.%d", i)))
	}
	waitFor(t, "11 services pushed", func() bool { cfg, _ := p.get(); return len(cfg.GetServices()) == 11 })
	// The proxy can have the configuration before the controller counts
	// the push that sent it.
	waitFor(t, "the push counted", func() bool { return ctl.Pushes() > pushes })
	if got := ctl.Pushes() - pushes; got > 2 {
		t.Errorf("10 changes within the debounce made %d pushes, want at most 2 (the first at once, the rest together)", got)
	}

	ctl.SetLeader(true)
	waitFor(t, "the leader's writes", func() bool { return w.count() >= 1 })
	before := w.count()
	apply(t, st, service("late", "10.96.2.1"))
	waitFor(t, "writes after a change", func() bool { return w.count() > before })
	ctl.SetLeader(false)
	time.Sleep(100 * time.Millisecond)
	stopped := w.count()
	apply(t, st, service("after", "10.96.2.2"))
	waitFor(t, "the change pushed", func() bool { cfg, _ := p.get(); return len(cfg.GetServices()) == 13 })
	time.Sleep(100 * time.Millisecond)
	if w.count() != stopped {
		t.Errorf("writers ran after leadership was lost")
	}
}

// logs collects a controller's log lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) find(s string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// TestIncrementalChangesAreReconciled: a change translated incrementally
// (which computes no warnings) is followed, once the store is quiet, by a
// full translation that logs its warnings and finds nothing to correct.
func TestIncrementalChangesAreReconciled(t *testing.T) {
	st := store.NewMemory(store.Options{InitialNamespaces: []string{"istio-system"}})
	apply(t, st, meshYAML)
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, Logf: t.Logf})
	t.Cleanup(srv.Stop)
	l := &logs{}
	ctl := controlplane.New(controlplane.Options{Store: st, Push: srv, Logf: l.logf, ReconcileAfter: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ctl.Synced()

	pushes := ctl.Pushes()
	apply(t, st, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: default
spec:
  parentRefs:
  - kind: Service
    group: ""
    name: reviews
  rules:
  - backendRefs:
    - name: missing
      port: 80
`)
	waitFor(t, "the route pushed", func() bool { return ctl.Pushes() > pushes })
	waitFor(t, "the route's warning logged", func() bool { return l.find("backend(missing.default.svc.cluster.local) not found") != "" })
	if line := l.find("differs from a full translation"); line != "" {
		t.Errorf("reconciliation corrected the incremental translation: %s", line)
	}
}

// TestIsolatedChangeIsPushedAtOnce: a change after a quiet store is pushed
// without waiting out the debounce (here a minute), and the writers wait
// for the debounce's end.
func TestIsolatedChangeIsPushedAtOnce(t *testing.T) {
	st := store.NewMemory(store.Options{InitialNamespaces: []string{"istio-system"}})
	apply(t, st, meshYAML)
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, Logf: t.Logf})
	t.Cleanup(srv.Stop)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	w := &writer{}
	ctl := controlplane.New(controlplane.Options{
		Store: st, Push: srv, Writers: []controlplane.Writer{w}, Logf: t.Logf,
		DebounceAfter: time.Minute, DebounceMax: time.Hour,
	})
	ctl.SetLeader(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ctl.Synced()
	waitFor(t, "the first writes", func() bool { return w.count() == 1 })

	p := &proxy{}
	c := pushclient.New(pushclient.Options{
		Address: ln.Addr().String(), TypeURL: wire.WaypointType, Names: []string{"default/waypoint"}, Handler: p,
		Node: pushclient.NodeInfo{Kind: pushclient.KindWaypoint, Namespace: "default", Name: "waypoint", Instance: "test"},
	})
	go func() { _ = c.Run(ctx) }()
	waitFor(t, "the first configuration", func() bool { cfg, _ := p.get(); return cfg != nil })

	// No change came since the initial content: this one is isolated.
	apply(t, st, service("late", "10.96.2.1"))
	waitFor(t, "the change pushed before the debounce ends", func() bool { cfg, _ := p.get(); return len(cfg.GetServices()) == 2 })
	if n := w.count(); n != 1 {
		t.Errorf("writers ran %d times, want once (the change's writes wait for the debounce's end)", n)
	}
}

// failingWriter fails its rounds while fail is set.
type failingWriter struct {
	writer
	fail atomic.Bool
}

func (w *failingWriter) Sync(ctx context.Context, objs []manifest.Object) error {
	_ = w.writer.Sync(ctx, objs)
	if w.fail.Load() {
		return errors.New("conflict")
	}
	return nil
}

// TestWritersSkipPodChurn: a change to a pod that is not a waypoint's
// gives the writers no round (they would read the whole mesh for nothing);
// a waypoint's pod, any other kind, or a change after a failed round does.
func TestWritersSkipPodChurn(t *testing.T) {
	st := store.NewMemory(store.Options{InitialNamespaces: []string{"istio-system"}})
	apply(t, st, meshYAML)
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, Logf: t.Logf})
	t.Cleanup(srv.Stop)
	w := &failingWriter{}
	ctl := controlplane.New(controlplane.Options{
		Store: st, Push: srv, Writers: []controlplane.Writer{w}, Logf: t.Logf,
		DebounceAfter: 20 * time.Millisecond, DebounceMax: time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ctl.Synced()
	ctl.SetLeader(true)
	waitFor(t, "the leader's first writes", func() bool { return w.count() >= 1 })

	// settled waits out the debounce and the writers' rest after a round,
	// and returns the rounds so far.
	settled := func() int {
		time.Sleep(400 * time.Millisecond)
		return w.count()
	}
	before := settled()
	apply(t, st, reviewsPod("app-1", "node-1", "10.0.0.1", map[string]string{"app": "reviews"}))
	apply(t, st, reviewsPod("app-1", "node-1", "10.0.0.1", map[string]string{"app": "reviews", "version": "v2"}))
	if got := settled(); got != before {
		t.Errorf("an application pod's changes gave the writers %d round(s)", got-before)
	}
	apply(t, st, reviewsPod("waypoint-1", "node-1", "10.0.0.2", map[string]string{"gateway.networking.k8s.io/gateway-name": "waypoint"}))
	waitFor(t, "a round after a waypoint pod's change", func() bool { return w.count() > before })

	before = settled()
	apply(t, st, service("late", "10.96.2.1"))
	waitFor(t, "a round after a Service's change", func() bool { return w.count() > before })

	w.fail.Store(true)
	before = settled()
	apply(t, st, service("later", "10.96.2.2"))
	waitFor(t, "the failing round", func() bool { return w.count() > before })
	w.fail.Store(false)
	before = settled()
	apply(t, st, reviewsPod("app-1", "node-1", "10.0.0.1", map[string]string{"app": "reviews", "version": "v3"}))
	waitFor(t, "a retry after a failed round, on any change", func() bool { return w.count() > before })
}

// endingWatch is a store whose watch ends after its initial content, as a
// watch whose connection to the API server is lost for good.
type endingWatch struct{ store.Store }

func (s endingWatch) Watch(ctx context.Context, kind *manifest.Kind, opts store.ListOptions) (<-chan store.Event, error) {
	in, err := s.Store.Watch(ctx, kind, opts)
	if err != nil {
		return nil, err
	}
	out := make(chan store.Event)
	go func() {
		defer close(out)
		for ev := range in {
			out <- ev
			if ev.Type == store.Synced {
				go func() {
					for range in { // until ctx ends
					}
				}()
				return
			}
		}
	}()
	return out, nil
}

// TestRunEndsWhenTheWatchEnds: a watch that ends makes Run return its
// error, its write loop stopped with it, while the caller's context goes on.
func TestRunEndsWhenTheWatchEnds(t *testing.T) {
	st := store.NewMemory(store.Options{InitialNamespaces: []string{"istio-system"}})
	apply(t, st, meshYAML)
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, Logf: t.Logf})
	t.Cleanup(srv.Stop)
	ctl := controlplane.New(controlplane.Options{Store: endingWatch{st}, Push: srv, Writers: []controlplane.Writer{&writer{}}, Logf: t.Logf})
	ctl.SetLeader(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- ctl.Run(ctx) }()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "ended") {
			t.Errorf("Run returned %v; want the watch's end", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its watch ended")
	}
}
