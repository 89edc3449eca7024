package controlplane_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshway/meshway/internal/controlplane"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/push"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/translate"
)

// ztunnelMeshYAML adds to meshYAML the waypoint's pod, two reviews pods on
// two nodes and a namespace-wide L4 policy.
const ztunnelMeshYAML = `
apiVersion: v1
kind: Pod
metadata:
  name: waypoint-1
  namespace: default
  labels:
    gateway.networking.k8s.io/gateway-name: waypoint
spec:
  nodeName: node-b
  serviceAccountName: waypoint
status:
  phase: Running
  podIP: 10.0.0.9
  conditions:
  - type: Ready
    status: "True"
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-default
  namespace: default
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        namespaces: ["default"]
`

// reviewsPod is a ready reviews pod with the given labels.
func reviewsPod(name, node, ip string, labels map[string]string) string {
	var l []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		l = append(l, fmt.Sprintf("    %s: %q", k, labels[k]))
	}
	return fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
  labels:
%s
spec:
  nodeName: %s
  serviceAccountName: reviews
  containers:
  - name: app
    ports:
    - containerPort: 9080
status:
  phase: Running
  podIP: %s
  conditions:
  - type: Ready
    status: "True"
`, name, strings.Join(l, "\n"), node, ip)
}

// ztunnelProxy is a ztunnel: a pushclient.ZtunnelConfig that also
// records each response it accepts.
type ztunnelProxy struct {
	*pushclient.ZtunnelConfig
	mu     sync.Mutex
	deltas []string
}

func (z *ztunnelProxy) Apply(d pushclient.Delta) error {
	if err := z.ZtunnelConfig.Apply(d); err != nil {
		return err
	}
	if len(d.Added)+len(d.Updated)+len(d.Removed) == 0 {
		return nil // the answer to a subscription with nothing to send
	}
	names := func(rs []pushclient.Resource) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		slices.Sort(out)
		return out
	}
	typ := d.TypeURL[strings.LastIndexByte(d.TypeURL, '.')+1:]
	z.mu.Lock()
	defer z.mu.Unlock()
	z.deltas = append(z.deltas, fmt.Sprintf("%s added=%v updated=%v removed=%v", typ, names(d.Added), names(d.Updated), slices.Sorted(slices.Values(d.Removed))))
	return nil
}

// since returns the responses recorded after the first n, sorted (the
// types arrive in any order).
func (z *ztunnelProxy) since(n int) []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return slices.Sorted(slices.Values(z.deltas[n:]))
}

func (z *ztunnelProxy) count() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return len(z.deltas)
}

func inputsOf(t *testing.T, yamls ...string) translate.ConfigInputs {
	t.Helper()
	var in translate.ConfigInputs
	for _, y := range yamls {
		docs, err := manifest.Decode("test.yaml", strings.NewReader(y))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			manifest.ApplyDefaults(d.Object)
			in.Add(d.Object)
		}
	}
	return in
}

// startZtunnelMesh runs a controller that pushes ztunnels, on a memory
// store holding yaml, and a ztunnel of node-a connected to it.
func startZtunnelMesh(t *testing.T, yaml string) (store.Store, *push.Server, *controlplane.Controller, *ztunnelProxy) {
	t.Helper()
	st := store.NewMemory(store.Options{InitialNamespaces: []string{"istio-system"}})
	apply(t, st, yaml)
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, WildcardTypes: wire.ZtunnelTypes, Logf: t.Logf})
	t.Cleanup(srv.Stop)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	ctl := controlplane.New(controlplane.Options{Store: st, Push: srv, Logf: t.Logf, Ztunnels: true, DebounceAfter: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctl.Run(ctx); close(done) }()
	z := &ztunnelProxy{ZtunnelConfig: pushclient.NewZtunnelConfig("node-a", nil, t.Logf)}
	c := pushclient.New(pushclient.Options{
		Address: ln.Addr().String(), Subscriptions: pushclient.ZtunnelSubscriptions(z), Logf: t.Logf,
		Node: pushclient.NodeInfo{Kind: pushclient.KindZtunnel, Namespace: "istio-system", Name: "ztunnel", Instance: "ztunnel-a", Node: "node-a"},
	})
	clientDone := make(chan struct{})
	go func() { _ = c.Run(ctx); close(clientDone) }()
	t.Cleanup(func() { cancel(); <-done; <-clientDone })
	return st, srv, ctl, z
}

// TestZtunnelsGetOnlyWhatChanged runs the controller with a ztunnel
// connected: it gets the four types and assembles translation's
// configuration of its node; a pod's change sends that workload (and the
// service whose endpoints it changes) and nothing else; a deleted pod is
// removed.
func TestZtunnelsGetOnlyWhatChanged(t *testing.T) {
	v1 := reviewsPod("reviews-v1", "node-a", "10.0.0.1", map[string]string{"app": "reviews", "version": "v1"})
	v2 := reviewsPod("reviews-v2", "node-b", "10.0.0.2", map[string]string{"app": "reviews", "version": "v2"})
	st, srv, ctl, z := startZtunnelMesh(t, meshYAML+"---"+ztunnelMeshYAML+"---"+v1+"---"+v2)
	waitFor(t, "the first configuration", func() bool { return z.Current() != nil })
	zs, _ := translate.ZtunnelConfigs(inputsOf(t, meshYAML, ztunnelMeshYAML, v1, v2))
	var want *model.Ztunnel
	for _, w := range zs {
		if w.Node == "node-a" {
			want = w
		}
	}
	if diff := cmp.Diff(want, z.Current()); diff != "" {
		t.Fatalf("the ztunnel's configuration differs from translation's for node-a (-want +got):\n%s", diff)
	}
	synced := func() bool {
		ps := srv.Status()
		if len(ps) != 1 || len(ps[0].Types) != len(wire.ZtunnelTypes) || len(ps[0].Resources) != 0 {
			return false
		}
		for _, ts := range ps[0].Types {
			if ts.State != push.Synced {
				return false
			}
		}
		return true
	}
	waitFor(t, "the ztunnel SYNCED on every type", synced)

	// change makes a change and returns the responses the ztunnel got for
	// it, once it has what cond wants and a while has passed for anything
	// else to arrive.
	change := func(what string, do func(), cond func(*model.Ztunnel) bool) []string {
		t.Helper()
		n, pushes := z.count(), ctl.ZtunnelPushes()
		do()
		waitFor(t, what+" pushed", func() bool { return ctl.ZtunnelPushes() > pushes })
		waitFor(t, what+" in the ztunnel's configuration", func() bool { cur := z.Current(); return cur != nil && cond(cur) })
		waitFor(t, "SYNCED", synced)
		time.Sleep(100 * time.Millisecond)
		return z.since(n)
	}
	workload := func(cfg *model.Ztunnel, name string) *model.ZtunnelWorkload {
		for i := range cfg.Workloads {
			if cfg.Workloads[i].Name == name {
				return &cfg.Workloads[i]
			}
		}
		return nil
	}
	endpoints := func(cfg *model.Ztunnel) int {
		for _, s := range cfg.Services {
			if s.Name == "reviews" {
				return len(s.Endpoints)
			}
		}
		return -1
	}

	// A label that changes the workload (its canonical revision) only.
	got := change("version label", func() {
		apply(t, st, reviewsPod("reviews-v1", "node-a", "10.0.0.1", map[string]string{"app": "reviews", "version": "v3"}))
	}, func(cfg *model.Ztunnel) bool {
		w := workload(cfg, "reviews-v1")
		return w != nil && w.CanonicalRevision == "v3"
	})
	if want := []string{"ZtunnelWorkload added=[] updated=[Kubernetes//Pod/default/reviews-v1] removed=[]"}; !slices.Equal(got, want) {
		t.Errorf("after a pod's version label changed, the ztunnel got %q, want only %q", got, want)
	}

	// A label that takes the pod out of the service: the workload and
	// the service's endpoints.
	got = change("app label", func() {
		apply(t, st, reviewsPod("reviews-v1", "node-a", "10.0.0.1", map[string]string{"app": "other", "version": "v3"}))
	}, func(cfg *model.Ztunnel) bool { return endpoints(cfg) == 1 })
	if want := []string{
		"ZtunnelService added=[] updated=[default/reviews.default.svc.cluster.local] removed=[]",
		"ZtunnelWorkload added=[] updated=[Kubernetes//Pod/default/reviews-v1] removed=[]",
	}; !slices.Equal(got, want) {
		t.Errorf("after a pod left a service, the ztunnel got %q, want %q", got, want)
	}

	// The pod changes were translated incrementally: the first
	// translation is the only full one.
	if full, incremental := ctl.ZtunnelTranslations(); full != 1 || incremental < 2 {
		t.Errorf("%d full and %d incremental ztunnel translations, want 1 full and the pod changes' incremental", full, incremental)
	}

	// A route changes nothing a ztunnel sees: no ztunnel translation.
	full0, incr0 := ctl.ZtunnelTranslations()
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
    - name: reviews
      port: 9080
`)
	waitFor(t, "the route pushed to the waypoint", func() bool { return ctl.Pushes() > pushes })
	time.Sleep(100 * time.Millisecond)
	if full, incr := ctl.ZtunnelTranslations(); full != full0 || incr != incr0 {
		t.Errorf("an HTTPRoute made %d full and %d incremental ztunnel translations, want none", full-full0, incr-incr0)
	}

	// A deleted pod is removed, and so is its endpoint.
	got = change("pod deletion", func() {
		if err := st.Delete(context.Background(), manifest.Pod, "default", "reviews-v2", store.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}, func(cfg *model.Ztunnel) bool { return workload(cfg, "reviews-v2") == nil })
	if want := []string{
		"ZtunnelService added=[] updated=[default/reviews.default.svc.cluster.local] removed=[]",
		"ZtunnelWorkload added=[] updated=[] removed=[Kubernetes//Pod/default/reviews-v2]",
	}; !slices.Equal(got, want) {
		t.Errorf("after a pod was deleted, the ztunnel got %q, want %q", got, want)
	}
	if endpoints(z.Current()) != 0 {
		t.Errorf("reviews has %d endpoints after both pods left, want 0", endpoints(z.Current()))
	}
}

// TestZtunnelFullTranslationsCoalesce: changes that reach across
// namespaces (a Namespace's labels) need full translations, which run in
// the background one at a time; changes made meanwhile, of any kind, are
// taken by the next, and the last one always reaches the ztunnel.
func TestZtunnelFullTranslationsCoalesce(t *testing.T) {
	st, _, ctl, z := startZtunnelMesh(t, meshYAML+"---"+ztunnelMeshYAML)
	waitFor(t, "the first configuration", func() bool { return z.Current() != nil })
	full0, _ := ctl.ZtunnelTranslations()
	for i := range 20 {
		apply(t, st, fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels:
    istio.io/dataplane-mode: ambient
    istio.io/use-waypoint: waypoint
    round: "%d"
`, i))
		apply(t, st, service(fmt.Sprintf("svc%d", i), fmt.Sprintf("10.96.1.%d", i)))
	}
	waitFor(t, "21 services at the ztunnel", func() bool { return len(z.Current().Services) == 21 })
	full, incremental := ctl.ZtunnelTranslations()
	t.Logf("40 changes, 20 of them global: %d full and %d incremental ztunnel translations", full-full0, incremental)
	if full-full0 >= 20 {
		t.Errorf("20 global changes in a burst made %d full translations: they were not taken together", full-full0)
	}
}

// TestZtunnelChangesAreReconciled: an incremental ztunnel translation
// (which computes no warnings) is followed, once the store is quiet, by a
// full one that logs the ztunnels' warnings and finds nothing to correct.
func TestZtunnelChangesAreReconciled(t *testing.T) {
	st := store.NewMemory(store.Options{InitialNamespaces: []string{"istio-system"}})
	apply(t, st, meshYAML+"---"+ztunnelMeshYAML)
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, WildcardTypes: wire.ZtunnelTypes, Logf: t.Logf})
	t.Cleanup(srv.Stop)
	l := &logs{}
	ctl := controlplane.New(controlplane.Options{Store: st, Push: srv, Logf: l.logf, Ztunnels: true, ReconcileAfter: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ctl.Synced()
	waitFor(t, "the first ztunnel translation", func() bool { full, _ := ctl.ZtunnelTranslations(); return full == 1 })

	apply(t, st, `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: vm
  namespace: default
spec:
  address: vm.example.com
`)
	waitFor(t, "the entry's ztunnel warning logged", func() bool {
		return l.find(`translate (ztunnel): WorkloadEntry default/vm: address "vm.example.com" is not an IP address`) != ""
	})
	if full, incremental := ctl.ZtunnelTranslations(); full != 1 || incremental != 1 {
		t.Errorf("%d full and %d incremental ztunnel translations, want the first and the entry's", full, incremental)
	}
	if line := l.find("incremental ztunnel translation differs"); line != "" {
		t.Errorf("reconciliation corrected the incremental ztunnel translation: %s", line)
	}
}
