package controlplane_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshway/meshway/internal/controlplane"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/push"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/store"
)

// countingStore counts Apply calls.
type countingStore struct {
	store.Store
	applies atomic.Int64
}

func (c *countingStore) Apply(ctx context.Context, obj manifest.Object, opts store.ApplyOptions) (manifest.Object, error) {
	c.applies.Add(1)
	return c.Store.Apply(ctx, obj, opts)
}

// everything lists every object of the store, as the Controller hands
// writers a snapshot.
func everything(t *testing.T, st store.Store) []manifest.Object {
	t.Helper()
	var out []manifest.Object
	for _, k := range manifest.All {
		objs, err := st.List(context.Background(), k, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, objs...)
	}
	return out
}

// rootCerts returns the root-cert.pem of each namespace's
// istio-ca-root-cert ConfigMap.
func rootCerts(t *testing.T, st store.Store) map[string]string {
	t.Helper()
	objs, err := st.List(context.Background(), manifest.ConfigMap, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, obj := range objs {
		cm := obj.(*corev1.ConfigMap)
		if cm.Name != controlplane.RootCertConfigMap {
			continue
		}
		if cm.Labels["istio.io/config"] != "true" {
			t.Errorf("ConfigMap %s/%s lacks Istio's label istio.io/config=true", cm.Namespace, cm.Name)
		}
		out[cm.Namespace] = cm.Data[controlplane.RootCertKey]
	}
	return out
}

func newRootCertStore(t *testing.T) (*countingStore, *identity.CA) {
	t.Helper()
	mem := store.NewMemory(store.Options{InitialNamespaces: []string{"default", "istio-system", "kube-system", "team-a"}})
	// A namespace being deleted, as the namespace controller marks it.
	created, err := mem.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "leaving"}})
	if err != nil {
		t.Fatal(err)
	}
	leaving := created.(*corev1.Namespace)
	leaving.Status.Phase = corev1.NamespaceTerminating
	if _, err := mem.UpdateStatus(context.Background(), leaving); err != nil {
		t.Fatal(err)
	}
	ca, err := identity.NewCA(t.TempDir(), identity.CAOptions{TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	return &countingStore{Store: mem}, ca
}

// TestRootCertWriterSync: every namespace but Istio's ignored ones and one
// being deleted gets the roots; a Sync with nothing changed writes nothing;
// a root rotation rewrites each ConfigMap once.
func TestRootCertWriterSync(t *testing.T) {
	st, ca := newRootCertStore(t)
	w := controlplane.NewRootCertWriter(st, ca.Bundle().PEM, t.Logf)
	ctx := context.Background()
	if err := w.Sync(ctx, everything(t, st)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"default": string(ca.Bundle().PEM()), "istio-system": string(ca.Bundle().PEM()), "team-a": string(ca.Bundle().PEM())}
	if got := rootCerts(t, st); !equalMaps(got, want) {
		t.Fatalf("after the first Sync the ConfigMaps hold %v; want the root in default, istio-system and team-a (not kube-system, not the terminating namespace)", keys(got))
	}
	before := st.applies.Load()
	if err := w.Sync(ctx, everything(t, st)); err != nil {
		t.Fatal(err)
	}
	if n := st.applies.Load() - before; n != 0 {
		t.Errorf("a Sync with the roots unchanged wrote %d ConfigMaps; want none", n)
	}
	if _, err := ca.StartRootRotation(); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx, everything(t, st)); err != nil {
		t.Fatal(err)
	}
	if n := st.applies.Load() - before; n != 3 {
		t.Errorf("a root rotation wrote %d ConfigMaps; want 3, one per namespace", n)
	}
	for ns, pem := range rootCerts(t, st) {
		if roots, err := identity.ParseCertsPEM([]byte(pem)); err != nil || len(roots) != 2 {
			t.Errorf("ConfigMap %s/%s during the rotation holds %d roots (%v); want the old and the new", ns, controlplane.RootCertConfigMap, len(roots), err)
		}
	}
}

// TestRootCertWriterInController: run by the Controller, only the leader
// writes the ConfigMaps; a new namespace gets its own, and Rewrite (what
// meshd calls when the CA's roots change) publishes a rotation.
func TestRootCertWriterInController(t *testing.T) {
	st, ca := newRootCertStore(t)
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, Logf: t.Logf})
	t.Cleanup(srv.Stop)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	ctl := controlplane.New(controlplane.Options{
		Store: st, Push: srv, Logf: t.Logf,
		Writers: []controlplane.Writer{controlplane.NewRootCertWriter(st, ca.Bundle().PEM, t.Logf)},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ctl.Synced()
	ctl.Rewrite()
	time.Sleep(100 * time.Millisecond)
	if got := rootCerts(t, st); len(got) != 0 {
		t.Fatalf("a replica that does not lead wrote ConfigMaps in %v", keys(got))
	}

	ctl.SetLeader(true)
	waitFor(t, "the leader's ConfigMaps", func() bool { return len(rootCerts(t, st)) == 3 })
	if _, err := st.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new namespace's ConfigMap", func() bool { _, ok := rootCerts(t, st)["team-b"]; return ok })

	if _, err := ca.StartRootRotation(); err != nil {
		t.Fatal(err)
	}
	ctl.Rewrite()
	want := string(ca.Bundle().PEM())
	waitFor(t, "the rotated roots in every ConfigMap", func() bool {
		got := rootCerts(t, st)
		for _, pem := range got {
			if pem != want {
				return false
			}
		}
		return len(got) == 4
	})
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
