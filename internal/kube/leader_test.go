package kube

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/kube/kubetest"
)

// TestLeadOneAtATime: two replicas stand for one Lease on a real API
// server; one leads, and when it stops (releasing the Lease) the other
// takes over. They never lead together.
func TestLeadOneAtATime(t *testing.T) {
	kubetest.Require(t, env)
	var mu sync.Mutex
	leading := map[string]bool{}
	both := false
	lead := func(id string) func(bool) {
		return func(v bool) {
			mu.Lock()
			defer mu.Unlock()
			leading[id] = v
			if leading["a"] && leading["b"] {
				both = true
			}
		}
	}
	is := func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		return leading[id]
	}
	e := func(id string) Election {
		return Election{Namespace: "default", Name: "meshd-leader-test", Identity: id,
			LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond}
	}
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- Lead(ctxA, env.Config, e("a"), lead("a")) }()
	wait(t, "a leads", func() bool { return is("a") })

	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneB := make(chan error, 1)
	go func() { doneB <- Lead(ctxB, env.Config, e("b"), lead("b")) }()
	time.Sleep(500 * time.Millisecond)
	if is("b") {
		t.Fatal("b leads while a holds the lease")
	}
	stopA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	wait(t, "b takes over", func() bool { return is("b") })
	stopB()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if both {
		t.Error("a and b led at the same time")
	}
}

func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
