// Package maxprocs sizes the Go scheduler (GOMAXPROCS) to a proxy's load:
// one thread while the proxy uses a fraction of one CPU, more as it uses
// more, up to the CPUs its container may use.
//
// Why: with a processor (P) idle, every goroutine a running one wakes
// makes the runtime wake another thread to look for work (wakep), and on
// a lightly loaded proxy that thread mostly finds none and sleeps again.
// An HBONE tunnel hands every frame from its connection's reader to the
// stream's goroutine, so at 1,000 requests/s those futile wake-ups and
// their thread switches were a quarter of the waypoint's CPU, invisible to
// Go's CPU profile (docs/benchmarks.md). With one P there is no idle P to
// wake, and a wake-up is a run-queue push. Under load every P is busy and
// the spinning pays for itself, so the proxy gets its CPUs back.
package maxprocs

import (
	"context"
	"math"
	"os"
	"runtime"
	"syscall"
	"time"
)

// Policy is how a Sizer chooses the number of threads.
type Policy struct {
	// Max is the most threads: the runtime's default at start, which is
	// the CPUs the container may use (its CPU limit, else the machine's).
	Max int
	// PerThread is the CPU, in CPU-seconds per second, one thread is
	// sized for: the process using more than PerThread × threads gets
	// more threads at the next sample.
	PerThread float64
	// Calm is how many samples in a row must each want fewer threads,
	// counted at Lower × PerThread a thread, before threads go: a load
	// that pauses for a moment keeps its threads, and one near a
	// threshold does not make them come and go.
	Calm  int
	Lower float64
	// Limit, if set, is asked every LimitEvery for the CPUs the container
	// may use now, which becomes Max: a pod whose CPU limit is resized in
	// place gets its threads' bound without a restart. Setting GOMAXPROCS
	// turns off the runtime's own following of the limit, so Run follows
	// it instead.
	Limit      func() int
	LimitEvery time.Duration
}

// DefaultPolicy is the waypoint's: a thread for each half CPU the proxy
// uses; fewer after two seconds (at a 100 ms sample) below 60% of that.
func DefaultPolicy(maxThreads int) Policy {
	return Policy{Max: maxThreads, PerThread: 0.5, Calm: 20, Lower: 0.6}
}

// Sizer applies a Policy to successive samples of the CPU the process
// used. It starts at one thread.
type Sizer struct {
	p       Policy
	threads int
	calm    int // samples in a row that wanted fewer threads
	calmMax int // the most threads any of them wanted
}

// NewSizer returns a Sizer for p, at one thread.
func NewSizer(p Policy) *Sizer { return &Sizer{p: p, threads: 1} }

// Threads is the number of threads the last sample chose.
func (s *Sizer) Threads() int { return s.threads }

// SetMax changes the most threads (the container's CPU limit changed):
// threads over it go at once, more may come at the next samples.
func (s *Sizer) SetMax(n int) {
	s.p.Max = max(n, 1)
	s.threads = min(s.threads, s.p.Max)
	s.calmMax = min(s.calmMax, s.p.Max)
}

// Sample takes the CPU the process used over the last interval, in
// CPU-seconds per second, and returns the threads for the next.
func (s *Sizer) Sample(cpus float64) int {
	up := s.want(cpus, s.p.PerThread)
	if up > s.threads {
		s.threads, s.calm, s.calmMax = up, 0, 0
		return s.threads
	}
	down := s.want(cpus, s.p.Lower*s.p.PerThread)
	if down >= s.threads {
		s.calm, s.calmMax = 0, 0
		return s.threads
	}
	s.calm++
	s.calmMax = max(s.calmMax, down)
	if s.calm >= s.p.Calm {
		s.threads, s.calm, s.calmMax = s.calmMax, 0, 0
	}
	return s.threads
}

// want is the threads cpus needs at perThread each, between 1 and Max.
func (s *Sizer) want(cpus, perThread float64) int {
	n := 1
	if cpus > 0 && perThread > 0 {
		n = int(min(math.Ceil(cpus/perThread), float64(s.p.Max)))
	}
	return min(max(n, 1), s.p.Max)
}

// Run sizes GOMAXPROCS with p, sampling the process's CPU time every
// interval, until ctx ends; it then restores the number of threads it
// found. With p.Max of one and no p.Limit there is nothing to size and it
// only waits. Setting GOMAXPROCS stops the world for a moment; the
// policy's hysteresis keeps that to the load's real changes.
func Run(ctx context.Context, p Policy, interval time.Duration) {
	if p.Max <= 1 && p.Limit == nil {
		<-ctx.Done()
		return
	}
	before := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(before)
	s := NewSizer(p)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastCPU, lastAt := cpuTime(), time.Now()
	lastLimit := lastAt
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if p.Limit != nil && now.Sub(lastLimit) >= p.LimitEvery {
				s.SetMax(p.Limit())
				lastLimit = now
			}
			cpu := cpuTime()
			wall := now.Sub(lastAt)
			if wall <= 0 {
				continue
			}
			cpus := (cpu - lastCPU).Seconds() / wall.Seconds()
			lastCPU, lastAt = cpu, now
			if n, was := s.Sample(cpus), runtime.GOMAXPROCS(0); n != was {
				runtime.GOMAXPROCS(n)
			}
		}
	}
}

// RuntimeDefault is the GOMAXPROCS the runtime would choose now — the
// CPUs the process may use: its CPU affinity and its container's CPU
// limit, which a pod resized in place changes — leaving the setting as it
// was. Go has no call that only asks: SetDefaultGOMAXPROCS applies the
// default (a stop of the world), and the setting is put back (another).
func RuntimeDefault() int {
	was := runtime.GOMAXPROCS(0)
	runtime.SetDefaultGOMAXPROCS()
	n := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(was)
	return n
}

// LimitEvery is how often Start asks the runtime for the container's CPU
// limit: two stops of the world each time, a few microseconds each.
const LimitEvery = 10 * time.Second

// cpuTime is the CPU time the process used, user and system, all threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Interval is how often Start samples the process's CPU time.
const Interval = 100 * time.Millisecond

// Start sets the threads as a proxy's -concurrency flag n says: n > 0
// fixes them at n (as Envoy's --concurrency); 0 sizes them to the load
// (Run with DefaultPolicy, in a goroutine, until ctx ends), up to the
// CPUs the container may use as they change, unless the GOMAXPROCS
// environment variable fixes them. It reports whether the
// threads follow the load.
func Start(ctx context.Context, n int) bool {
	if n > 0 {
		runtime.GOMAXPROCS(n)
		return false
	}
	if os.Getenv("GOMAXPROCS") != "" {
		return false
	}
	p := DefaultPolicy(runtime.GOMAXPROCS(0))
	p.Limit, p.LimitEvery = RuntimeDefault, LimitEvery
	go Run(ctx, p, Interval)
	return true
}
