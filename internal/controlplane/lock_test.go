package controlplane_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/controlplane"
)

// Two replicas on one store directory: one leads; when it stops, the other
// takes over.
func TestLeadByFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".meshd.lock")
	var a, b atomic.Bool
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- controlplane.LeadByFile(ctxA, path, 10*time.Millisecond, a.Store) }()
	waitFor(t, "a leads", a.Load)

	ctxB, stopB := context.WithCancel(context.Background())
	doneB := make(chan error, 1)
	go func() { doneB <- controlplane.LeadByFile(ctxB, path, 10*time.Millisecond, b.Store) }()
	time.Sleep(100 * time.Millisecond)
	if b.Load() {
		t.Fatal("b leads while a holds the lock")
	}
	stopA()
	if err := <-doneA; err != nil || a.Load() {
		t.Fatalf("a stopped: err %v, still leading %v", err, a.Load())
	}
	waitFor(t, "b takes over", b.Load)
	stopB()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
}
