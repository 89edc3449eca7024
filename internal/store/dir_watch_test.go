package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
