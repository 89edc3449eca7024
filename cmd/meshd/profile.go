package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// startCPUProfile profiles until the returned function runs. SIGUSR1 ends
// the profile in path and goes on in the next file, path-1.EXT, path-2.EXT
// and so on, so a benchmark can profile the phases of one run apart (start-up,
// its changes, the quiet after them). A profile that cannot be written is
// logged: meshd has stopped by then anyway.
func startCPUProfile(path string, logf func(string, ...any)) (stop func(), err error) {
	f, err := beginCPUProfile(path)
	if err != nil {
		return nil, err
	}
	end := func(f *os.File) {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			logf("-cpuprofile: %v", err)
		}
	}
	next := make(chan os.Signal, 1)
	signal.Notify(next, syscall.SIGUSR1)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for n := 1; ; n++ {
			select {
			case <-done:
				end(f)
				return
			case <-next:
			}
			end(f)
			ext := filepath.Ext(path)
			p := fmt.Sprintf("%s-%d%s", strings.TrimSuffix(path, ext), n, ext)
			if f, err = beginCPUProfile(p); err != nil {
				logf("%v", err)
				<-done
				return
			}
			logf("-cpuprofile: profiling into %s", p)
		}
	}()
	return func() {
		signal.Stop(next)
		close(done)
		<-stopped
	}, nil
}

func beginCPUProfile(path string) (*os.File, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("-cpuprofile %s: %w", path, err)
	}
	return f, nil
}

// heapProfilePeriod is how often -heapprofile looks at the heap.
const heapProfilePeriod = 250 * time.Millisecond

// writeHeapProfiles writes a heap profile to path each time the heap's
// objects (live and not yet collected: what the RSS follows) pass their
// largest size so far by a tenth, until ctx ends. The file left is the
// profile nearest the run's peak: what the last GC before it found live
// (inuse_space) and what had been allocated until then (alloc_space). Peak
// RSS is what the benchmark's target is about, and a profile taken at exit
// shows the quiet heap instead.
func writeHeapProfiles(ctx context.Context, path string, logf func(string, ...any)) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	var peak uint64
	tick := time.NewTicker(heapProfilePeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 || sample[1].Value.Kind() != metrics.KindUint64 {
			return
		}
		heap := sample[0].Value.Uint64()
		if heap <= peak+peak/10 {
			continue
		}
		peak = heap
		if err := writeHeapProfile(path); err != nil {
			logf("-heapprofile: %v", err)
			return
		}
		logf("-heapprofile: heap objects %d MiB (live at the last GC %d MiB), profile written to %s", heap>>20, sample[1].Value.Uint64()>>20, path)
	}
}

// writeHeapProfile replaces path with the current heap profile, through a
// temp file, so the file is always a whole profile.
func writeHeapProfile(path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("writing the heap profile: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing the heap profile %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the heap profile %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing the heap profile: %w", err)
	}
	return nil
}
