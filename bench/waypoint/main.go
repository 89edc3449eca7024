// Command waypoint benchmarks the waypoint proxy against nginx and HAProxy
// on this machine: one backend (a net/http server answering 1 KiB bodies,
// in a child process), reached directly, through nginx, through HAProxy,
// through the waypoint (all plain HTTP/1.1 keep-alive on 127.0.0.1), and
// through the waypoint with HBONE on both sides, by the same load
// generator, at a fixed 1,000 requests/s (open loop) and at maximum
// throughput (closed loop). It prints one markdown table with the issue's
// targets and whether they are met.
//
// Run it with `make bench-waypoint`, which installs nginx and HAProxy
// first (hack/bench-waypoint-deps.sh), on a quiet machine. Flags shorten
// or lengthen the runs; see -help.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshway/meshway/bench/internal/benchfmt"
	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

const trustDomain = "cluster.local"

var (
	clientID   = identity.MustWorkloadID(trustDomain, "default", "sleep")
	waypointID = identity.MustWorkloadID(trustDomain, "default", "waypoint")
	backendID  = identity.MustWorkloadID(trustDomain, "default", "reviews")
)

type config struct {
	rate                int
	duration, maxDur    time.Duration
	warmup              time.Duration
	rateConns, maxConns int
	targets             []string
	cpuProfile          string
	trace               string
	waypointBin         string
	rounds              int
	proxyCPUs           string
	maxSteal            float64 // percent
	concurrency         int     // the waypoint's -concurrency
	hugePages           bool    // the proxies' code on huge pages (-huge-pages)
}

// stealReruns is how many times a fixed-rate run is measured again when
// the hypervisor took more than -max-steal during it.
const stealReruns = 2

func main() {
	var co childOpts
	flag.StringVar(&co.mode, "child", "", "internal: run as the backend or the waypoint child")
	flag.StringVar(&co.caDir, "ca", "", "internal: the child's CA directory (HBONE)")
	flag.StringVar(&co.config, "config", "", "internal: the waypoint child's configuration file")
	flag.StringVar(&co.node, "node", "", "internal: where the backend's node serves HBONE")
	flag.StringVar(&co.backend, "backend", "", "internal: the floor child's backend")
	var cfg config
	var targetList string
	flag.IntVar(&cfg.rate, "rate", 1000, "requests per second of the fixed-rate run")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of the fixed-rate run, per target")
	flag.DurationVar(&cfg.maxDur, "max-duration", 10*time.Second, "length of the maximum-throughput run, per target")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "warm-up before each run, per target (results discarded)")
	flag.IntVar(&cfg.rateConns, "rate-conns", 16, "keep-alive connections the fixed-rate run spreads its requests over")
	flag.IntVar(&cfg.maxConns, "conns", 32, "connections of the maximum-throughput run, each sending back to back")
	flag.StringVar(&targetList, "targets", "direct,nginx,haproxy,floor,waypoint,floor-hbone,waypoint-hbone", "targets to run, comma-separated (direct always runs: it is the baseline; floor and floor-hbone: the least a Go proxy does, plain and with HBONE both sides, for reference; direct-hbone, the generator tunnelling straight to the backend's node, runs with the HBONE targets: it is their baseline); waypoint-1cpu: the waypoint with -concurrency 1")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write CPU profiles of the waypoint's measured runs: FILE for plain HTTP at maximum throughput, with -rate before the extension at the fixed rate, and -hbone for HBONE (the plain waypoint then runs in a child of the bench instead of the binary)")
	flag.StringVar(&cfg.trace, "trace", "", "write execution traces of the waypoint's fixed-rate runs (first round): FILE for plain HTTP, with -hbone before the extension for HBONE; read them with go tool trace, e.g. -pprof=sched for where goroutines waited to run (the plain waypoint then runs in a child of the bench)")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds: each measures every target in turn (the order rotated each round); the table pools them")
	flag.StringVar(&cfg.waypointBin, "waypoint-bin", "", "waypoint binary to run (default: build ./cmd/waypoint into the temporary directory)")
	flag.Float64Var(&cfg.maxSteal, "max-steal", 1, "percent of the CPUs the hypervisor may take (steal) during a fixed-rate run before it is measured again (at most twice); 0: never")
	flag.IntVar(&cfg.concurrency, "concurrency", 0, "the waypoint's -concurrency (threads) for the waypoint and waypoint-hbone targets; 0: its default, as many as the load needs")
	flag.StringVar(&cfg.proxyCPUs, "proxy-cpus", "", "CPUs (as taskset -c: 1, 2-3) the proxy under test runs on, alone; the load generator and the backend get the others. Default: every process shares every CPU")
	flag.BoolVar(&cfg.hugePages, "huge-pages", true, "the waypoint's -huge-pages, and the same for the Go floors and the waypoint child: false keeps their code mapped from the executable, where perf can name its functions")
	flag.Parse()
	if co.mode != "" {
		co.concurrency, co.hugePages = cfg.concurrency, cfg.hugePages
		if err := runChild(co); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	cfg.targets = []string{"direct"}
	for t := range strings.SplitSeq(targetList, ",") {
		t = strings.TrimSpace(t)
		if !slices.ContainsFunc(targets, func(x target) bool { return x.key == t }) {
			fmt.Fprintf(os.Stderr, "bench: unknown target %q\n", t)
			os.Exit(2)
		}
		if overHBONE(t) && !slices.Contains(cfg.targets, "direct-hbone") {
			// The HBONE proxies' baseline, as direct is the others'.
			cfg.targets = append(cfg.targets, "direct-hbone")
		}
		if !slices.Contains(cfg.targets, t) {
			cfg.targets = append(cfg.targets, t)
		}
	}
	if cfg.rate <= 0 || cfg.rateConns <= 0 || cfg.maxConns <= 0 || cfg.duration <= 0 || cfg.maxDur <= 0 || cfg.rounds <= 0 || cfg.concurrency < 0 {
		fmt.Fprintln(os.Stderr, "bench: -rate, -rate-conns, -conns, -duration, -max-duration and -rounds must be positive, -concurrency 0 or more")
		os.Exit(2)
	}
	for _, p := range []*string{&cfg.cpuProfile, &cfg.trace} {
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

// bench holds what every target shares.
type bench struct {
	cfg         config
	plan        cpuPlan
	tmp         string
	procs       *procs
	caDir       string
	backend     string // the backend's address
	backendPid  int    // the backend's process (with its node's HBONE server)
	node        string // its node's HBONE address
	clientSrc   identity.CertSource
	clientPool  *hbone.Pool
	waypointBin string
	round       int // the round being measured, from 0
}

func run(ctx context.Context, cfg config) error {
	tmp, err := os.MkdirTemp("", "meshway-bench-waypoint-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	plan, err := newCPUPlan(cfg.proxyCPUs)
	if err != nil {
		return err
	}
	if err := plan.pinSelf(); err != nil {
		return err
	}
	b := &bench{cfg: cfg, plan: plan, tmp: tmp, procs: &procs{}, caDir: filepath.Join(tmp, "ca")}
	defer b.procs.stopAll()

	binary := !cfg.inChild() && (slices.Contains(cfg.targets, "waypoint") || slices.Contains(cfg.targets, "waypoint-hbone"))
	if binary || slices.Contains(cfg.targets, "waypoint-1cpu") {
		b.waypointBin = cfg.waypointBin
		if b.waypointBin == "" {
			fmt.Fprintln(os.Stderr, "bench: building cmd/waypoint")
			if b.waypointBin, err = buildWaypoint(b); err != nil {
				return err
			}
		}
	}
	ca, err := identity.NewCA(b.caDir, identity.CAOptions{TrustDomain: trustDomain})
	if err != nil {
		return err
	}
	mgr := identity.NewManager(identity.ManagerOptions{Issuer: identity.CAIssuer{CA: ca}, Bundle: ca.Bundle()})
	defer mgr.Close()
	if b.clientSrc, err = mgr.Source(ctx, clientID); err != nil {
		return err
	}
	b.clientPool = &hbone.Pool{Bundle: ca.Bundle()}
	defer func() { _ = b.clientPool.Close() }()
	if err := b.startBackend(); err != nil {
		return err
	}

	load := benchfmt.LoadAverage()
	var selected []target
	for _, t := range targets {
		if slices.Contains(cfg.targets, t.key) {
			selected = append(selected, t)
		}
	}
	// Rounds measure every target in turn, each round starting at another
	// target, so that a noisy spell of this shared machine falls on
	// different targets rather than on one, and the table pools them.
	rounds := map[string][]*targetResult{}
	for b.round = range cfg.rounds {
		for i := range selected {
			t := selected[(i+b.round)%len(selected)]
			fmt.Fprintf(os.Stderr, "bench: round %d/%d: %s\n", b.round+1, cfg.rounds, t.name)
			r, err := b.measure(ctx, t)
			if err != nil {
				return fmt.Errorf("round %d: %s: %w", b.round+1, t.name, err)
			}
			rounds[t.key] = append(rounds[t.key], r)
		}
	}
	results := make([]*targetResult, len(selected))
	for i, t := range selected {
		results[i] = pool(rounds[t.key])
	}
	printHeader(load, b)
	printTable(os.Stdout, cfg, b.node, results)
	return nil
}

// measure starts a target, runs the fixed-rate and maximum-throughput
// loads against it, and stops it.
func (b *bench) measure(ctx context.Context, t target) (*targetResult, error) {
	r, err := t.start(ctx, b)
	if r != nil && r.proc != nil {
		defer r.proc.stop()
	}
	if err != nil {
		return nil, err
	}
	res := &targetResult{key: t.key, name: t.name, proxied: r.proc != nil, note: r.note}
	conns := make([]*httpConn, 0, max(b.cfg.rateConns, b.cfg.maxConns))
	defer func() {
		for _, c := range conns {
			c.shut()
		}
	}()
	for range cap(conns) {
		c, err := newHTTPConn(ctx, r.dial)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
	}
	cpu := func() time.Duration {
		if r.proc == nil {
			return 0
		}
		return cpuOf(r.proc.cmd.Process.Pid)
	}
	act := func() activity {
		if r.proc == nil {
			return activity{}
		}
		return activityOf(r.proc.cmd.Process.Pid)
	}
	rss := func() uint64 {
		if r.proc == nil {
			return 0
		}
		return peakRSS(r.proc.cmd.Process.Pid)
	}
	fail := func(what string, err error) error {
		if r.proc != nil {
			select {
			case <-r.proc.exited:
				return r.proc.failed(fmt.Errorf("%s: %w", what, err))
			default:
			}
		}
		return fmt.Errorf("%s: %w", what, err)
	}

	// profiled runs fn with the waypoint child's CPU profile going to the
	// file for phase, when -cpuprofile asks for one.
	profiled := func(phase string, fn func() error) error {
		path := b.profilePath(t.key, phase)
		if path == "" || !r.child {
			return fn()
		}
		cmd, stop, what := "prof", "stopprof", "CPU profile"
		if phase == "trace" {
			cmd, stop, what = "trace", "stoptrace", "execution trace"
		}
		if err := r.proc.expectOK(cmd + " " + path); err != nil {
			return fmt.Errorf("starting the %s: %w", what, err)
		}
		if err := fn(); err != nil {
			return err
		}
		if err := r.proc.expectOK(stop); err != nil {
			return fmt.Errorf("writing the %s: %w", what, err)
		}
		res.profiles = append(res.profiles, path)
		return nil
	}

	rc := conns[:b.cfg.rateConns]
	if b.cfg.warmup > 0 {
		if _, err := fixedRate(ctx, rc, b.cfg.rate, b.cfg.warmup); err != nil {
			return nil, fail("warm-up", err)
		}
	}
	// A run during which the hypervisor took more than -max-steal of the
	// CPUs measured the VM's neighbours more than the target: it is run
	// again, at most stealReruns times, and the run with the least steal
	// kept.
	measureRate := func() error {
		for try := 0; ; try++ {
			c0, s0, k0, a0 := cpu(), stolen(), cpuOf(b.backendPid), act()
			st, err := fixedRate(ctx, rc, b.cfg.rate, b.cfg.duration)
			if err != nil {
				return err
			}
			st.proxyCPU, st.stolen, st.backendCPU, st.proxyAct = cpu()-c0, stolen()-s0, cpuOf(b.backendPid)-k0, act().minus(a0)
			if res.fixed == nil || stealFraction(st) < stealFraction(res.fixed) {
				res.fixed = st
			}
			if b.cfg.maxSteal <= 0 || 100*stealFraction(st) <= b.cfg.maxSteal || try == stealReruns {
				return nil
			}
			res.stealReruns++
			fmt.Fprintf(os.Stderr, "bench: round %d: %s: the hypervisor took %s of the CPUs during the %d req/s run: measuring it again\n",
				b.round+1, t.name, stealShare(st), b.cfg.rate)
		}
	}
	err = profiled("trace", func() error { return profiled("rate", measureRate) })
	if err != nil {
		return nil, fail("fixed rate", err)
	}
	res.rssFixed = rss()

	mc := conns[:b.cfg.maxConns]
	if b.cfg.warmup > 0 {
		if _, err := maxRate(ctx, mc, b.cfg.warmup); err != nil {
			return nil, fail("warm-up", err)
		}
	}
	err = profiled("max", func() error {
		c0, k0, a0 := cpu(), cpuOf(b.backendPid), act()
		var err error
		if res.max, err = maxRate(ctx, mc, b.cfg.maxDur); err != nil {
			return err
		}
		res.max.proxyCPU, res.max.backendCPU, res.max.proxyAct = cpu()-c0, cpuOf(b.backendPid)-k0, act().minus(a0)
		return nil
	})
	if err != nil {
		return nil, fail("maximum throughput", err)
	}
	res.rssMax = rss()
	return res, nil
}

// profilePath is where the waypoint target key writes its CPU profile of
// phase ("rate" or "max"; "trace": its execution trace of the fixed-rate
// run, from -trace), or "" for none (always after the first round):
// -cpuprofile FILE is the plain waypoint at maximum throughput; "-hbone"
// and "-rate" go before FILE's extension for the others.
func (b *bench) profilePath(key, phase string) string {
	p := b.cfg.cpuProfile
	if phase == "trace" {
		p = b.cfg.trace
	}
	if p == "" || b.round > 0 || (key != "waypoint" && key != "waypoint-hbone") {
		return ""
	}
	ext := filepath.Ext(p)
	base := strings.TrimSuffix(p, ext)
	if key == "waypoint-hbone" {
		base += "-hbone"
	}
	if phase == "rate" {
		base += "-rate"
	}
	return base + ext
}

// inChild reports whether the plain waypoint runs in a child of the bench
// (which can profile and trace) instead of the binary.
func (c *config) inChild() bool { return c.cpuProfile != "" || c.trace != "" }

func printHeader(load string, b *bench) {
	host, _ := os.Hostname()
	fmt.Printf("# Waypoint benchmark\n\n")
	fmt.Printf("- date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("- machine: %s, %d CPUs, %s\n", host, runtime.NumCPU(), benchfmt.CPUModel())
	fmt.Printf("- go: %s %s/%s; peers: %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, versions())
	fmt.Printf("- load average (1, 5, 15 min) when the measurements started: %s\n", load)
	fmt.Printf("- all on loopback; HTTP/1.1 keep-alive; 1 KiB responses from a Go net/http backend in a child process;\n")
	threads := fmt.Sprintf("as the load needs, up to %d", b.cpus())
	if b.cfg.concurrency > 0 {
		threads = strconv.Itoa(b.cfg.concurrency)
	}
	fmt.Printf("  nginx worker_processes %d, HAProxy nbthread %d, waypoint threads (-concurrency) %s, waypoint-1cpu 1; access logs off\n", b.cpus(), b.cpus(), threads)
	if b.plan.pinned() {
		fmt.Printf("- CPUs: the proxy under test alone on CPU %s (taskset); the load generator and the backend on CPU %s\n", formatCPUs(b.plan.proxy), formatCPUs(b.plan.rest))
	} else {
		fmt.Printf("- CPUs: not pinned; the load generator, the backend and the proxy share all %d\n", runtime.NumCPU())
	}
	fmt.Printf("- runs per target: %s warm-up, %s at %d req/s over %d connections (open loop), %s warm-up, %s at maximum\n",
		b.cfg.warmup, b.cfg.duration, b.cfg.rate, b.cfg.rateConns, b.cfg.warmup, b.cfg.maxDur)
	fmt.Printf("  throughput over %d connections (closed loop); %d round(s), each measuring every target in turn (a fresh\n", b.cfg.maxConns, b.cfg.rounds)
	fmt.Printf("  proxy each time), the order rotated each round; the table pools the rounds (percentiles over every\n")
	fmt.Printf("  round's requests, CPU and throughput over their sum, the highest peak RSS)\n\n")
}
