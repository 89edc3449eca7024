// Command controlplane benchmarks meshd on a generated mesh (by default
// 5,000 services, 50,000 pods and 500 waypoints, with routes and policies):
// the time from meshd's start to every waypoint's ACK of its first
// configuration, the time from one change (a pod label, an HTTPRoute
// weight) to the ACK of every proxy it affects, the bytes each change
// pushes and to how many proxies, and meshd's peak RSS; and for the
// ztunnels, what each change sends them and how soon they ACK it. The
// proxies are 500 waypoint and 20 ztunnel delta ADS streams in this
// process, each on its own connection with its own node; the control plane
// is a separate process:
//
//   - dir: the meshd binary on a directory store the bench writes in the
//     store's on-disk format (the embedded default); the bench makes the
//     changes through the store, as meshctl does.
//   - memory: this binary as a child running meshd's push server and
//     controller on a memory store (the store is then in that process, so
//     the child makes the changes, on command). It measures the control
//     plane without the directory store's file scanning.
//
// It prints one markdown table with the targets. Run it with
// `make bench-controlplane` on a quiet machine; flags shrink the mesh or the
// number of changes, see -help.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type config struct {
	size       meshSize
	changes    int
	warmup     int
	settle     time.Duration
	quiet      time.Duration
	modes      []string
	cpuProfile string
	// heapProfile is meshd's -heapprofile in the directory mode.
	heapProfile string
	meshdBin    string
	keep        bool
	ztunnels    int
}

var allModes = []string{"dir", "memory"}

func main() {
	var child string
	var childAddr string
	flag.StringVar(&child, "child", "", "internal: run as the memory mode's control plane")
	flag.StringVar(&childAddr, "xds-address", "", "internal: where the child serves xDS")
	cfg := config{}
	var modes string
	flag.IntVar(&cfg.size.namespaces, "namespaces", 500, "namespaces, each with one waypoint")
	flag.IntVar(&cfg.size.services, "services", 10, "services per namespace")
	flag.IntVar(&cfg.size.podsPerService, "pods", 10, "pods per service")
	flag.IntVar(&cfg.changes, "changes", 100, "changes measured per mode (pod label and route weight in turn)")
	flag.IntVar(&cfg.warmup, "warmup", 4, "changes made first and not measured, per mode")
	flag.DurationVar(&cfg.settle, "settle", 200*time.Millisecond, "after the affected proxy's ACK, how long to keep counting what other proxies receive")
	flag.DurationVar(&cfg.quiet, "quiet", 8*time.Second, "after the last change, how long to measure the control plane's CPU (its background full translation follows 5 s of quiet)")
	flag.StringVar(&modes, "modes", strings.Join(allModes, ","), "control planes to measure: dir (meshd on a directory store), memory (meshd's controller on a memory store)")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write CPU profiles of the control plane: FILE-dir.EXT for meshd's start-up until idle, FILE-dir-1.EXT for the changes, FILE-dir-2.EXT for the quiet time and the end (its -cpuprofile), FILE-memory-start.EXT and FILE-memory.EXT for the memory mode's first push and its changes")
	flag.StringVar(&cfg.heapProfile, "heapprofile", "", "directory mode: write meshd's heap profile at the peak of its live heap to FILE (its -heapprofile)")
	flag.StringVar(&cfg.meshdBin, "meshd-bin", "", "meshd binary to run (default: build ./cmd/meshd into the temporary directory)")
	flag.IntVar(&cfg.ztunnels, "ztunnels", 20, "ztunnel streams (every resource of the four ztunnel types; 0: none)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (store, logs) and print where it is")
	flag.Parse()
	if child != "" {
		if err := runChild(cfg.size, childAddr); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	for m := range strings.SplitSeq(modes, ",") {
		m = strings.TrimSpace(m)
		if !slices.Contains(allModes, m) {
			fmt.Fprintf(os.Stderr, "bench: unknown mode %q (want %s)\n", m, strings.Join(allModes, ", "))
			os.Exit(2)
		}
		if !slices.Contains(cfg.modes, m) {
			cfg.modes = append(cfg.modes, m)
		}
	}
	if cfg.size.namespaces <= 0 || cfg.size.services <= 0 || cfg.size.podsPerService <= 0 || cfg.changes <= 0 || cfg.warmup < 0 || cfg.ztunnels < 0 {
		fmt.Fprintln(os.Stderr, "bench: -namespaces, -services, -pods and -changes must be positive, -warmup and -ztunnels not negative")
		os.Exit(2)
	}
	for _, p := range []*string{&cfg.cpuProfile, &cfg.heapProfile} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		*p = abs
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	tmp, err := os.MkdirTemp("", "meshway-bench-controlplane-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintf(os.Stderr, "bench: keeping %s\n", tmp)
	} else {
		defer func() { _ = os.RemoveAll(tmp) }()
	}
	b := &bench{cfg: cfg, tmp: tmp}
	var results []*modeResult
	for _, m := range cfg.modes {
		fmt.Fprintf(os.Stderr, "bench: %s mode\n", m)
		var r *modeResult
		switch m {
		case "dir":
			r, err = b.measureDir(ctx)
		case "memory":
			r, err = b.measureMemory(ctx)
		}
		if err != nil {
			return fmt.Errorf("%s mode: %w", m, err)
		}
		results = append(results, r)
	}
	printHeader(os.Stdout, cfg, results)
	printTable(os.Stdout, cfg, results)
	return nil
}

// profilePath is FILE-suffix.EXT for -cpuprofile FILE.EXT, "" without it.
func (b *bench) profilePath(suffix string) string {
	p := b.cfg.cpuProfile
	if p == "" {
		return ""
	}
	ext := filepath.Ext(p)
	return strings.TrimSuffix(p, ext) + "-" + suffix + ext
}
