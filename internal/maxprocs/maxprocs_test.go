package maxprocs

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestSizer: threads follow the CPU used, up at once and down only after
// Calm samples in a row below the lower threshold.
func TestSizer(t *testing.T) {
	p := Policy{Max: 4, PerThread: 0.5, Calm: 3, Lower: 0.6}
	steps := []struct {
		cpus float64
		want int
	}{
		{0, 1},
		{0.10, 1}, // 1,000 requests/s: one thread
		{0.49, 1},
		{0.51, 2}, // more than half a CPU: up at once
		{0.95, 2},
		{1.40, 3},
		{3.90, 4}, // never over Max
		{0.10, 4}, // calm 1
		{0.10, 4}, // calm 2
		{0.10, 1}, // calm 3: down to what the calm wanted
		{1.10, 3},
		{0.50, 3}, // wants 2 at the lower threshold (0.3 a thread): calm 1
		{0.35, 3}, // calm 2
		{0.80, 3}, // wants 3 at the lower threshold: the calm ends
		{0.35, 3}, // calm 1
		{0.50, 3}, // calm 2
		{0.20, 2}, // calm 3: the most threads the calm wanted (2 for 0.5 CPU)
		{0.40, 2}, // between the thresholds: stays
		{0.40, 2},
		{0.40, 2},
		{0.40, 2},
	}
	s := NewSizer(p)
	for i, st := range steps {
		if got := s.Sample(st.cpus); got != st.want {
			t.Fatalf("sample %d (%.2f CPU): %d threads; want %d", i, st.cpus, got, st.want)
		}
		if s.Threads() != st.want {
			t.Fatalf("sample %d: Threads() = %d after Sample said %d", i, s.Threads(), st.want)
		}
	}
}

// TestSizerOneCPU: with one CPU to use there is one thread whatever the
// load.
func TestSizerOneCPU(t *testing.T) {
	s := NewSizer(DefaultPolicy(1))
	for _, cpus := range []float64{0, 0.9, 5, 0} {
		if got := s.Sample(cpus); got != 1 {
			t.Fatalf("%.1f CPU: %d threads; want 1", cpus, got)
		}
	}
}

// TestRun: the real GOMAXPROCS goes to one thread when Run starts, to two
// while a goroutine spins, back to one once it stops, and to what it was
// when Run ends.
func TestRun(t *testing.T) {
	// One low threshold, 5% of a CPU, up and down: a spinner is over it
	// however busy the machine is, and this process idle (a poll every
	// 5 ms, even under -race) is far under it.
	startRun(t, Policy{Max: 2, PerThread: 0.05, Calm: 3, Lower: 1})
	waitThreads(t, 1, "when Run starts")
	stop := spin()
	waitThreads(t, 2, "while a goroutine spins")
	stop()
	waitThreads(t, 1, "once the spinning stopped")
}

// TestRunFollowsLimit: a container's CPU limit resized while Run runs
// moves the threads' bound: a spinning goroutine gets a second thread
// only once the limit allows two, and loses it as soon as the limit is
// one again.
func TestRunFollowsLimit(t *testing.T) {
	var limit atomic.Int64
	limit.Store(1)
	startRun(t, Policy{Max: 1, PerThread: 0.05, Calm: 3, Lower: 1,
		Limit: func() int { return int(limit.Load()) }, LimitEvery: 20 * time.Millisecond})
	waitThreads(t, 1, "when Run starts")
	t.Cleanup(spin())
	time.Sleep(200 * time.Millisecond) // ten samples of a spinning process
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("GOMAXPROCS %d with a limit of one CPU; want 1", got)
	}
	limit.Store(2)
	waitThreads(t, 2, "once the limit allows two")
	limit.Store(1)
	waitThreads(t, 1, "once the limit is one again")
}

// startRun runs Run with p, sampling every 20 ms, until the test ends,
// and then checks that GOMAXPROCS is back to what it was.
func startRun(t *testing.T, p Policy) {
	before := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, p, 20*time.Millisecond)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if got := runtime.GOMAXPROCS(0); got != before {
			t.Errorf("GOMAXPROCS after Run: %d; want %d, as before", got, before)
		}
	})
}

// spin keeps a goroutine busy until stop, which waits for it to end.
func spin() (stop func()) {
	var done atomic.Bool
	spun := make(chan struct{})
	go func() {
		defer close(spun)
		for !done.Load() {
			for range 1000 {
				_ = time.Now() // cheap work between checks
			}
		}
	}()
	return func() {
		done.Store(true)
		<-spun
	}
}

func waitThreads(t *testing.T, want int, when string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for runtime.GOMAXPROCS(0) != want {
		if time.Now().After(deadline) {
			t.Fatalf("GOMAXPROCS %d %s after 20 s; want %d", runtime.GOMAXPROCS(0), when, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRuntimeDefault: asking the runtime's default leaves the setting as
// it was.
func TestRuntimeDefault(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	if n := RuntimeDefault(); n < 1 {
		t.Errorf("RuntimeDefault() = %d; want at least 1", n)
	}
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS after RuntimeDefault: %d; want 3, as before", got)
	}
}
