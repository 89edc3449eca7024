package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshway/meshway/bench/internal/benchfmt"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// Waits that end a run with an error rather than hang it.
const (
	firstPushTimeout = 15 * time.Minute
	changeTimeout    = time.Minute
)

type bench struct {
	cfg config
	tmp string
}

// changeResult is one measured change.
type changeResult struct {
	c change
	// began is when the change started (just before the write).
	began time.Time
	// write is how long the store write took (dir), or the round trip of
	// the command that made it (memory).
	write time.Duration
	// latency is from just before the write to the affected proxy's ACK.
	latency time.Duration
	// proxies is how many proxies received a response meanwhile (up to the
	// settle time after that ACK), responses how many responses, bytes
	// their encoded size.
	proxies, responses, bytes int
}

// modeResult is one column of the table.
type modeResult struct {
	mode, name string
	load       string // when the mode's measurement started
	objects    int
	files      int           // dir: files written
	prepare    time.Duration // dir: writing the files; memory: populating the store
	// firstPush is from the control plane's start to the last proxy's
	// first ACK; firstLogged to the control plane's log line saying it
	// pushed (read, translated and handed to the push server).
	firstPush, firstLogged time.Duration
	// settled is how long the control plane took, after the first push,
	// to fall idle (waitIdle): its start-up writes.
	settled           time.Duration
	firstBytes        int
	changes           []changeResult
	warmups           []changeResult // made before the measured ones
	nacks             int            // of the first push and the quiet time; a NACK of a change fails the run
	rssFirst, rssPeak uint64
	cpuChanges        time.Duration
	// cpuQuiet is the CPU used in the quiet time after the last change,
	// quietPushes the responses proxies received then (there should be none).
	cpuQuiet    time.Duration
	quietPushes int
	profiles    []string
	zt          ztResult // the ztunnels' (none with -ztunnels 0)
}

// target is a started control plane, as measure drives it.
type target struct {
	p     *proc
	start time.Time // when its clock started
	addr  string    // its xDS address
	// change makes one change and says how long the write took.
	change func(change) (time.Duration, error)
	// afterFirst, beforeChanges and afterChanges, if set, run after the
	// first push, once the control plane is idle before the changes, and
	// after the last change (profiles).
	afterFirst, beforeChanges, afterChanges func() error
}

func (b *bench) measureDir(ctx context.Context) (*modeResult, error) {
	bin := b.cfg.meshdBin
	if bin == "" {
		var err error
		if bin, err = b.buildMeshd(); err != nil {
			return nil, err
		}
	}
	r := &modeResult{mode: "dir", name: "meshd, directory store"}
	root := filepath.Join(b.tmp, "store")
	began := time.Now()
	var err error
	if r.files, err = writeStoreDir(root, b.cfg.size); err != nil {
		return nil, fmt.Errorf("writing the store: %w", err)
	}
	r.prepare = time.Since(began)
	fmt.Fprintf(os.Stderr, "bench: wrote %d files in %s\n", r.files, r.prepare.Round(time.Millisecond))
	// The bench writes changes through the store, as meshctl does.
	st, err := store.OpenDir(root, store.Options{Warn: func(err error) { fmt.Fprintln(os.Stderr, "bench: store:", err) }})
	if err != nil {
		return nil, err
	}
	if err := checkStore(ctx, st, b.cfg.size); err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, err
	}
	addr, mon := addrs[0], addrs[1]
	// The secure port is off: what is measured is the push, and a fixed
	// port could be taken on the machine.
	args := []string{bin, "-store", root, "-xds-address", addr, "-secure-address", "", "-monitoring-address", mon}
	prof := b.profilePath("dir")
	if prof != "" {
		args = append(args, "-cpuprofile", prof)
	}
	if b.cfg.heapProfile != "" {
		args = append(args, "-heapprofile", b.cfg.heapProfile)
	}
	r.load = benchfmt.LoadAverage()
	t := &target{addr: addr, start: time.Now()}
	if t.p, err = startProc("meshd", filepath.Join(b.tmp, "meshd.log"), args...); err != nil {
		return nil, err
	}
	defer t.p.stop()
	if prof != "" {
		// meshd's SIGUSR1 starts its next profile: the changes in
		// FILE-dir-1.EXT, the quiet time and the end in FILE-dir-2.EXT.
		next := func() error { return t.p.cmd.Process.Signal(syscall.SIGUSR1) }
		t.beforeChanges, t.afterChanges = next, next
	}
	t.change = func(c change) (time.Duration, error) {
		began := time.Now()
		err := applyChange(ctx, st, b.cfg.size, c)
		return time.Since(began), err
	}
	if err := b.measure(ctx, r, t); err != nil {
		return nil, err
	}
	t.p.stop()
	if prof != "" {
		ext := filepath.Ext(prof)
		base := strings.TrimSuffix(prof, ext)
		r.profiles = append(r.profiles, prof, base+"-1"+ext, base+"-2"+ext)
	}
	if b.cfg.heapProfile != "" {
		r.profiles = append(r.profiles, b.cfg.heapProfile)
	}
	return r, nil
}

func (b *bench) measureMemory(ctx context.Context) (*modeResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	r := &modeResult{mode: "memory", name: "meshd's controller, memory store"}
	s := b.cfg.size
	t := &target{addr: addr}
	t.p, err = startProc("control plane (memory)", filepath.Join(b.tmp, "memory.log"), exe, "-child", "memory", "-xds-address", addr,
		"-namespaces", strconv.Itoa(s.namespaces), "-services", strconv.Itoa(s.services), "-pods", strconv.Itoa(s.podsPerService))
	if err != nil {
		return nil, err
	}
	defer t.p.stop()
	line, err := t.p.out.ReadString('\n')
	if err != nil {
		return nil, t.p.failed(fmt.Errorf("populating the store: %w", err))
	}
	ms, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "ok")))
	if err != nil {
		return nil, t.p.failed(fmt.Errorf("populating the store: %q", line))
	}
	r.prepare = time.Duration(ms) * time.Millisecond
	profiled := func(path string) error {
		if path == "" {
			return nil
		}
		r.profiles = append(r.profiles, path)
		_, err := t.p.call("prof " + path)
		return err
	}
	stopProfile := func() error {
		if b.cfg.cpuProfile == "" {
			return nil
		}
		_, err := t.p.call("stopprof")
		return err
	}
	t.afterFirst = func() error {
		if err := stopProfile(); err != nil {
			return err
		}
		return profiled(b.profilePath("memory"))
	}
	t.afterChanges = stopProfile
	t.change = func(c change) (time.Duration, error) {
		began := time.Now()
		_, err := t.p.call("change " + c.String())
		return time.Since(began), err
	}
	if err := profiled(b.profilePath("memory-start")); err != nil {
		return nil, err
	}
	r.load = benchfmt.LoadAverage()
	t.start = time.Now()
	if _, err := t.p.call("start"); err != nil {
		return nil, err
	}
	return r, b.measure(ctx, r, t)
}

// measure connects the proxies to a started control plane, waits for
// every first ACK, then makes the changes one at a time.
func (b *bench) measure(ctx context.Context, r *modeResult, t *target) error {
	r.objects = countObjects(b.cfg.size)
	if err := t.p.waitListening(t.addr, firstPushTimeout); err != nil {
		return err
	}
	f := newFleet(t.addr, b.cfg.size.namespaces)
	zf := newZtFleet(t.addr, b.cfg.ztunnels)
	fctx, cancel := context.WithCancel(ctx)
	defer f.close()
	defer zf.close()
	defer cancel()
	f.start(fctx)
	zf.start(fctx)

	seen := map[int]bool{}
	timeout := time.After(firstPushTimeout)
	var last time.Time
	for len(seen) < len(f.names) {
		select {
		case a := <-f.acks:
			seen[a.proxy] = true
			r.firstBytes += a.bytes
			last = a.at
			if a.nack != "" {
				r.nacks++
				fmt.Fprintf(os.Stderr, "bench: proxy %s NACKed: %s\n", f.names[a.proxy], a.nack)
			}
		case <-timeout:
			return t.p.failed(fmt.Errorf("%d of %d proxies have a configuration after %s (streams: %w)", len(seen), len(f.names), firstPushTimeout, f.err()))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.firstPush = last.Sub(t.start)
	if at, ok := t.p.logTime("waypoint configuration(s) changed"); ok {
		r.firstLogged = at.Sub(t.start)
	}
	r.rssFirst = t.p.peakRSS()
	fmt.Fprintf(os.Stderr, "bench: first push: every proxy ACKed after %s\n", r.firstPush.Round(time.Millisecond))
	if t.afterFirst != nil {
		if err := t.afterFirst(); err != nil {
			return err
		}
	}
	// The ztunnels' first push is translated after the waypoints'; the
	// changes start once it is in.
	if err := b.ztunnelsFirstPush(ctx, r, t, zf); err != nil {
		return err
	}
	// The changes measure a control plane at rest: after the first push
	// it still writes what follows from the whole store (each waypoint's
	// Deployment, Service and ServiceAccount, every namespace's
	// istio-ca-root-cert, the status of every object — thousands of
	// fsynced files on the directory store), which a change made meanwhile
	// would wait behind.
	r.settled = waitIdle(t.p.cpu, idleCPU, idleSettleTimeout)
	fmt.Fprintf(os.Stderr, "bench: control plane idle %s after the first push\n", r.settled.Round(time.Second))
	// Anything still arriving (there should be nothing) is not a change's.
	drain(f, b.cfg.settle)
	ztFrom := len(zf.acks())
	if t.beforeChanges != nil {
		if err := t.beforeChanges(); err != nil {
			return err
		}
	}

	all := changes(b.cfg.size, b.cfg.warmup+b.cfg.changes)
	var cpu0 time.Duration
	for k, c := range all {
		if k == b.cfg.warmup {
			cpu0 = t.p.cpu()
		}
		cr, err := b.oneChange(ctx, f, t, c)
		if err != nil {
			return fmt.Errorf("change %d (%s): %w", k, c, err)
		}
		if k >= b.cfg.warmup {
			r.changes = append(r.changes, cr)
		} else {
			r.warmups = append(r.warmups, cr)
		}
	}
	r.cpuChanges = t.p.cpu() - cpu0
	if t.afterChanges != nil {
		if err := t.afterChanges(); err != nil {
			return err
		}
	}
	// Quiet: the full translation owed after incremental ones runs now
	// (and, on the directory store, periodic rescans); none of it may push.
	cpu0 = t.p.cpu()
	quiet := time.After(b.cfg.quiet)
	for waiting := true; waiting; {
		select {
		case a := <-f.acks:
			r.quietPushes++
			if a.nack != "" {
				r.nacks++
			}
		case <-quiet:
			waiting = false
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.cpuQuiet = t.p.cpu() - cpu0
	r.rssPeak = t.p.peakRSS()
	if err := b.ztunnelChanges(r, t, zf, ztFrom); err != nil {
		return err
	}
	return errors.Join(f.err(), zf.err())
}

// oneChange makes c and waits for the ACK of the proxy it affects, then for
// the settle time, counting every response any proxy received.
func (b *bench) oneChange(ctx context.Context, f *fleet, t *target, c change) (changeResult, error) {
	began := time.Now()
	res := changeResult{c: c, began: began}
	w, err := t.change(c)
	if err != nil {
		return res, err
	}
	res.write = w
	receivers := map[int]bool{}
	timeout := time.After(changeTimeout)
	var settled <-chan time.Time
	for {
		select {
		case a := <-f.acks:
			receivers[a.proxy] = true
			res.responses++
			res.bytes += a.bytes
			if a.nack != "" {
				return res, fmt.Errorf("proxy %s NACKed: %s", f.names[a.proxy], a.nack)
			}
			if a.proxy == c.ns && settled == nil {
				res.latency = a.at.Sub(began)
				settled = time.After(b.cfg.settle)
			}
		case <-settled:
			res.proxies = len(receivers)
			return res, nil
		case <-timeout:
			return res, t.p.failed(fmt.Errorf("proxy %s did not ACK a new configuration within %s (streams: %w)", f.names[c.ns], changeTimeout, f.err()))
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

// drain discards what arrives for d.
func drain(f *fleet, d time.Duration) {
	t := time.After(d)
	for {
		select {
		case <-f.acks:
		case <-t:
			return
		}
	}
}

func (b *bench) buildMeshd() (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building cmd/meshd: %w (or pass -meshd-bin)", err)
	}
	out := filepath.Join(b.tmp, "meshd")
	cmd := exec.Command(gobin, "build", "-o", out, "github.com/meshway/meshway/cmd/meshd")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building cmd/meshd (run from the repository, or pass -meshd-bin): %w", err)
	}
	return out, nil
}

func countObjects(size meshSize) int {
	n := 0
	generate(size, func(manifest.Object) { n++ })
	return n
}

// Idle: the control plane used less than idleCPU of CPU time in each of
// two consecutive idleWindow intervals.
const (
	idleWindow        = time.Second
	idleCPU           = 50 * time.Millisecond
	idleSettleTimeout = 10 * time.Minute
)

// waitIdle waits until cpu (the control plane's CPU time so far) grows by
// less than limit in each of two consecutive idleWindow intervals, or
// timeout passes; it returns how long it waited.
func waitIdle(cpu func() time.Duration, limit, timeout time.Duration) time.Duration {
	start := time.Now()
	quiet := 0
	last := cpu()
	for quiet < 2 && time.Since(start) < timeout {
		time.Sleep(idleWindow)
		now := cpu()
		if now-last < limit {
			quiet++
		} else {
			quiet = 0
		}
		last = now
	}
	return time.Since(start)
}
