package main

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/meshway/meshway/bench/internal/benchfmt"
)

// Targets from the issue.
const (
	targetChangeP99 = 50 * time.Millisecond
	targetRSS       = 1 << 30
)

// pct is the p-th percentile (nearest rank) of xs; 100 is the maximum.
func pct[T cmp.Ordered](xs []T, p float64) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond))
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func kib(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}

func mib(n uint64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// latencies of the changes of one kind ("" for all).
func (r *modeResult) latencies(kind string) []time.Duration {
	var out []time.Duration
	for _, c := range r.changes {
		if kind == "" || c.c.kind == kind {
			out = append(out, c.latency)
		}
	}
	return out
}

func printHeader(w io.Writer, cfg config, rs []*modeResult) {
	host, _ := os.Hostname()
	s := cfg.size
	fmt.Fprintf(w, "# Control plane benchmark\n\n")
	fmt.Fprintf(w, "- date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- machine: %s, %d CPUs, %s\n", host, runtime.NumCPU(), benchfmt.CPUModel())
	fmt.Fprintf(w, "- go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	var loads []string
	for _, r := range rs {
		loads = append(loads, fmt.Sprintf("%s mode %s", r.mode, r.load))
	}
	fmt.Fprintf(w, "- load average (1, 5, 15 min) when each mode started: %s; at the end: %s\n", strings.Join(loads, "; "), benchfmt.LoadAverage())
	fmt.Fprintf(w, "- mesh: %s objects: %s services, %s pods, %d waypoints (%s); per namespace 2 HTTPRoutes, 2 AuthorizationPolicies, 1 DestinationRule\n",
		benchfmt.Thousands(countObjects(s)), benchfmt.Thousands(s.namespaces*s.services), benchfmt.Thousands(s.namespaces*s.services*s.podsPerService), s.namespaces, s)
	fmt.Fprintf(w, "- proxies: %d delta ADS streams in the bench process, each on its own gRPC connection with its own node; a response is decoded, converted (wire.ToModel) and validated before its ACK is sent\n", s.namespaces)
	printZtunnelHeader(w, cfg)
	fmt.Fprintf(w, "- changes: %d per mode after %d unmeasured, a pod label and an HTTPRoute weight in turn, each in another namespace; the next change starts %s after the affected proxy's ACK\n\n",
		cfg.changes, cfg.warmup, cfg.settle)
}

func printTable(w io.Writer, cfg config, rs []*modeResult) {
	row := func(what string, cell func(r *modeResult) string, tgt, result string) {
		cells := make([]string, len(rs))
		for i, r := range rs {
			cells[i] = cell(r)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", what, strings.Join(cells, " | "), tgt, result)
	}
	judge := func(f func(r *modeResult) (bool, string)) string {
		var parts []string
		for _, r := range rs {
			ok, detail := f(r)
			parts = append(parts, fmt.Sprintf("%s %s (%s)", r.mode, benchfmt.Verdict(ok), detail))
		}
		return strings.Join(parts, "; ")
	}
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.name
	}
	fmt.Fprintf(w, "| measurement | %s | target | result |\n", strings.Join(names, " | "))
	fmt.Fprintf(w, "|---|%s---|---|\n", strings.Repeat("---|", len(rs)))

	row("store set-up (before the clock starts)", func(r *modeResult) string {
		if r.mode == "dir" {
			return fmt.Sprintf("%s objects written as %s files in %s", benchfmt.Thousands(r.objects), benchfmt.Thousands(r.files), secs(r.prepare))
		}
		return fmt.Sprintf("%s objects created in %s", benchfmt.Thousands(r.objects), secs(r.prepare))
	}, "—", "—")
	row("time to first full push: start → every proxy ACKed its first configuration", func(r *modeResult) string {
		return secs(r.firstPush)
	}, "—", "—")
	row("… of which until the control plane logged the push (store read, translated, handed to the push server)", func(r *modeResult) string {
		if r.firstLogged == 0 {
			return "—"
		}
		return secs(r.firstLogged)
	}, "—", "—")
	row("bytes of the first push, all proxies", func(r *modeResult) string { return kib(r.firstBytes) }, "—", "—")
	row("after the first push, until the control plane is idle (start-up writes: deployments, root certificates, status; < 50 ms CPU in each of 2 s)", func(r *modeResult) string {
		return secs(r.settled)
	}, "—", "—")
	row(fmt.Sprintf("change → ACK of the affected proxy, p50 / p90 / p99 / max (%d changes)", cfg.changes), func(r *modeResult) string {
		l := r.latencies("")
		return fmt.Sprintf("%s / %s / %s / %s ms", ms(pct(l, 50)), ms(pct(l, 90)), ms(pct(l, 99)), ms(pct(l, 100)))
	}, fmt.Sprintf("p99 ≤ %s ms", ms(targetChangeP99)), judge(func(r *modeResult) (bool, string) {
		p := pct(r.latencies(""), 99)
		return p <= targetChangeP99, ms(p) + " ms"
	}))
	for _, k := range []struct{ kind, what string }{{"pod", "pod label change"}, {"route", "HTTPRoute weight change"}} {
		row("… "+k.what+", p50 / p99", func(r *modeResult) string {
			l := r.latencies(k.kind)
			return fmt.Sprintf("%s / %s ms", ms(pct(l, 50)), ms(pct(l, 99)))
		}, "—", "—")
	}
	row("… of which the store write (dir: Update with fsync; memory: the command's round trip), p50 / p99", func(r *modeResult) string {
		var ws []time.Duration
		for _, c := range r.changes {
			ws = append(ws, c.write)
		}
		return fmt.Sprintf("%s / %s ms", ms(pct(ws, 50)), ms(pct(ws, 99)))
	}, "—", "—")
	row("… from the write's return (the change stored) to the ACK, p50 / p90 / p99", func(r *modeResult) string {
		var ds []time.Duration
		for _, c := range r.changes {
			ds = append(ds, c.latency-c.write)
		}
		return fmt.Sprintf("%s / %s / %s ms", ms(pct(ds, 50)), ms(pct(ds, 90)), ms(pct(ds, 99)))
	}, "—", "—")
	row("proxies that received anything per change, min / max (responses, max)", func(r *modeResult) string {
		var ps, resps []int
		for _, c := range r.changes {
			ps, resps = append(ps, c.proxies), append(resps, c.responses)
		}
		return fmt.Sprintf("%d / %d (%d)", pct(ps, 0), pct(ps, 100), pct(resps, 100))
	}, "1: only the affected proxy", judge(func(r *modeResult) (bool, string) {
		n := 0
		for _, c := range r.changes {
			if c.proxies != 1 || c.responses != 1 {
				n++
			}
		}
		return n == 0, fmt.Sprintf("%d of %d changes reached other proxies", n, len(r.changes))
	}))
	row("bytes pushed per change, p50 / max", func(r *modeResult) string {
		var bs []int
		for _, c := range r.changes {
			bs = append(bs, c.bytes)
		}
		return fmt.Sprintf("%s / %s", kib(pct(bs, 50)), kib(pct(bs, 100)))
	}, "—", "—")
	row("NACKs", func(r *modeResult) string { return fmt.Sprint(r.nacks) }, "0", judge(func(r *modeResult) (bool, string) {
		return r.nacks == 0, fmt.Sprint(r.nacks)
	}))
	row("control plane peak RSS (VmHWM): after the first push / at the end", func(r *modeResult) string {
		return fmt.Sprintf("%s / %s", mib(r.rssFirst), mib(r.rssPeak))
	}, "≤ 1 GiB", judge(func(r *modeResult) (bool, string) {
		return r.rssPeak <= targetRSS, mib(r.rssPeak)
	}))
	row("control plane CPU per change", func(r *modeResult) string {
		return ms(r.cpuChanges/time.Duration(max(1, len(r.changes)))) + " ms"
	}, "—", "—")
	row(fmt.Sprintf("control plane CPU in the %s after the last change (the full translation owed after incremental ones; dir: periodic rescans), responses pushed then", cfg.quiet), func(r *modeResult) string {
		return fmt.Sprintf("%s, %d", secs(r.cpuQuiet), r.quietPushes)
	}, "no responses", judge(func(r *modeResult) (bool, string) {
		return r.quietPushes == 0, fmt.Sprint(r.quietPushes)
	}))
	printZtunnelRows(w, cfg, rs, row, judge)
	for _, r := range rs {
		for _, p := range r.profiles {
			what := "CPU profile"
			if p == cfg.heapProfile {
				what = "heap profile at meshd's peak"
			}
			fmt.Fprintf(w, "\n%s (%s mode): %s\n", what, r.mode, p)
		}
	}
}
