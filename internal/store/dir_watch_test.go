package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/store/storetest"
)

// TestDirWriteIsNotBlockedByFullScan: a full scan holds the store's shared
// lock a batch of objects at a time, so a write made during a long scan
// (seconds on a store of 100,000 files) waits for one batch, not for the
// whole scan. The scan here is made slow and serial: 1 ms per object, 1.5 s.
func TestDirWriteIsNotBlockedByFullScan(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	store.SetRescanInterval(d, time.Hour)
	const n = 1500
	names := []string{}
	for i := range n {
		name := fmt.Sprintf("svc%04d", i)
		writeByHand(t, filepath.Join(root, "other/services", name+".yaml"),
			"apiVersion: v1\nkind: Service\nmetadata:\n  name: "+name+"\nspec:\n  ports:\n  - port: 80\n")
		names = append(names, "other/"+name)
	}
	web := storetest.MustCreate(t, d, storetest.Service("default", "web", map[string]string{"app": "web"}))
	w := storetest.StartWatch(t, d, manifest.Service, store.ListOptions{})
	w.ExpectInitial(t, append(names, "default/web")...)

	var slow atomic.Bool
	var serial sync.Mutex
	started := make(chan struct{})
	var once sync.Once
	store.SetScanning(d, func() {
		if !slow.Load() {
			return
		}
		once.Do(func() { close(started) })
		serial.Lock()
		defer serial.Unlock()
		time.Sleep(time.Millisecond)
	})
	slow.Store(true)
	// A new watch scans the whole tree before its initial events.
	scanned := make(chan time.Duration, 1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		began := time.Now()
		_, err := d.Watch(ctx, manifest.Service, store.ListOptions{})
		if err != nil {
			t.Error(err)
		}
		scanned <- time.Since(began)
	}()
	<-started
	began := time.Now()
	web.SetLabels(map[string]string{"app": "web2"})
	if _, err := d.Update(t.Context(), web); err != nil {
		t.Fatal(err)
	}
	wrote := time.Since(began)
	scan := <-scanned
	slow.Store(false)
	// One batch of objects is a fifth of this scan; the write's fsyncs
	// take milliseconds.
	if wrote > scan/2 {
		t.Errorf("a write during a full scan of %v took %v: it waited for the scan", scan, wrote)
	} else {
		t.Logf("a write during a full scan of %v took %v", scan, wrote)
	}
	w.Expect(t, store.Modified, "default/web")
}

// TestDirWatchNeedsNoPeriodicScanWithInotify: while inotify follows every
// directory of a local filesystem, the watch does not scan the whole tree
// every few seconds (on a big store each scan costs seconds of CPU and
// delays the events that arrive meanwhile); a change is seen by its file
// event, which reads its directory alone.
func TestDirWatchNeedsNoPeriodicScanWithInotify(t *testing.T) {
	root := t.TempDir()
	if store.IsNetworkFilesystem(root) {
		t.Skip("the temporary directory is on a network filesystem, where the watch scans periodically")
	}
	d := openDir(t, root, nil)
	// What the interval is when inotify may miss changes (2 s), shortened.
	store.SetRescanInterval(d, 20*time.Millisecond)
	initial := []string{"default/web"}
	for i := range 20 {
		storetest.MustCreate(t, d, storetest.Service("other", fmt.Sprintf("svc%d", i), nil))
		initial = append(initial, fmt.Sprintf("other/svc%d", i))
	}
	storetest.MustCreate(t, d, storetest.Service("default", "web", map[string]string{"app": "web"}))
	w := storetest.StartWatch(t, d, manifest.Service, store.ListOptions{})
	w.ExpectInitial(t, initial...)

	before := store.ObjectsScanned(d)
	time.Sleep(300 * time.Millisecond)
	if n := store.ObjectsScanned(d) - before; n != 0 {
		t.Errorf("with no change, the watch looked at %d objects in 300ms, want 0 (no periodic full scan while inotify follows every directory)", n)
	}
	before = store.ObjectsScanned(d)
	editFile(t, filepath.Join(root, "default/services/web.yaml"), "app: web", "app: web2", false)
	w.Expect(t, store.Modified, "default/web")
	// default/services holds 1 object, read once per rescan; the events
	// of one save may straddle the debounce. A full scan looks at 21.
	if n := store.ObjectsScanned(d) - before; n > 4 {
		t.Errorf("for a hand edit, the watch looked at %d objects, want at most 4 (default/services, a few times)", n)
	}
}

// TestDirWatchWithoutInotifyScansPeriodically: without inotify the watch
// sees a hand edit by its periodic full scans.
func TestDirWatchWithoutInotifyScansPeriodically(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	store.DisableInotify(d)
	store.SetRescanInterval(d, 50*time.Millisecond)
	storetest.MustCreate(t, d, storetest.Service("default", "web", map[string]string{"app": "web"}))
	w := storetest.StartWatch(t, d, manifest.Service, store.ListOptions{})
	w.ExpectInitial(t, "default/web")
	editFile(t, filepath.Join(root, "default/services/web.yaml"), "app: web", "app: web2", false)
	if ev := w.Expect(t, store.Modified, "default/web"); ev.Object.GetLabels()["app"] != "web2" {
		t.Errorf("after a hand edit the watch saw labels %v", ev.Object.GetLabels())
	}
}

// TestDirWatchNewNamespaceDirectoryIsNotAFullScan: a namespace's first
// object makes its directory (and its status's, for a first status): the
// watch starts watching it and its kinds' directories and reads those
// alone, not the whole tree (meshd's first write into each namespace of a
// big store made a full scan of 100,000 files).
func TestDirWatchNewNamespaceDirectoryIsNotAFullScan(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	store.SetRescanInterval(d, time.Hour)
	for i := range 30 {
		storetest.MustCreate(t, d, storetest.Service("other", fmt.Sprintf("svc%d", i), nil))
	}
	// A status file, so that the status directory exists.
	withStatus := func(svc *corev1.Service, ip string) *corev1.Service {
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		return svc
	}
	if _, err := d.UpdateStatus(t.Context(), withStatus(storetest.MustGet(t, d, manifest.Service, "other", "svc0").(*corev1.Service), "10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	w := storetest.StartWatch(t, d, nil, store.ListOptions{})
	for {
		if ev := w.Next(t); ev.Type == store.Synced {
			break
		}
	}
	storetest.MustCreate(t, d, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}})
	w.Expect(t, store.Added, "team")

	// A full scan looks at 34 objects. The events of one write may
	// straddle the debounce, and those of the Namespace's (3 objects in
	// its directory) arrive late on a busy machine: at most 8 then.
	const notFull = 8
	before := store.ObjectsScanned(d)
	created := storetest.MustCreate(t, d, storetest.Service("team", "web", nil)).(*corev1.Service)
	w.Expect(t, store.Added, "team/web")
	if n := store.ObjectsScanned(d) - before; n > notFull {
		t.Errorf("the watch looked at %d objects for a new namespace directory of one file, want at most %d (no full scan)", n, notFull)
	}
	before = store.ObjectsScanned(d)
	if _, err := d.UpdateStatus(t.Context(), withStatus(created, "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if ev := w.Expect(t, store.Modified, "team/web"); len(ev.Object.(*corev1.Service).Status.LoadBalancer.Ingress) != 1 {
		t.Errorf("status after a status write in a new status directory: %+v", ev.Object.(*corev1.Service).Status)
	}
	if n := store.ObjectsScanned(d) - before; n > notFull {
		t.Errorf("the watch looked at %d objects for a new status directory of one file, want at most %d (no full scan)", n, notFull)
	}
	// A file later written by hand in the new directories is an event of
	// a watched directory.
	writeByHand(t, filepath.Join(root, "team/services/api.yaml"), "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  ports:\n  - port: 80\n")
	w.Expect(t, store.Added, "team/api")
}
