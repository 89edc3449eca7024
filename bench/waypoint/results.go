package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/meshway/meshway/bench/internal/benchfmt"
)

// Targets from the issue, for the waypoint.
const (
	targetCPUPer1000   = 0.1  // CPU-seconds per 1,000 requests at 1,000 req/s (0.1 vCPU)
	targetRSS          = 30e6 // bytes, peak RSS at 1,000 req/s
	targetThroughput   = 0.70 // of nginx's maximum throughput
	targetP99OverNginx = 200 * time.Microsecond
)

// targetResult is one column.
type targetResult struct {
	key, name        string
	proxied          bool
	fixed, max       *runStats
	rssFixed, rssMax uint64 // bytes, summed VmHWM of the proxy's processes
	profiles         []string
	note             string
	stealReruns      int             // fixed-rate runs measured again for the hypervisor's steal
	rounds           []*targetResult // what pool pooled, in the order measured
}

// pool makes one result of a target's rounds: latencies pooled (so the
// percentiles are over every round's requests), counts, times and CPU
// summed (so CPU per 1,000 requests and throughput are over all rounds),
// peak RSS the highest.
func pool(rounds []*targetResult) *targetResult {
	first := rounds[0]
	out := &targetResult{key: first.key, name: first.name, proxied: first.proxied, note: first.note, rounds: rounds,
		fixed: &runStats{}, max: &runStats{}}
	for _, r := range rounds {
		out.profiles = append(out.profiles, r.profiles...)
		out.rssFixed, out.rssMax = max(out.rssFixed, r.rssFixed), max(out.rssMax, r.rssMax)
		out.stealReruns += r.stealReruns
		addStats(out.fixed, r.fixed)
		addStats(out.max, r.max)
	}
	slices.Sort(out.fixed.lat)
	slices.Sort(out.fixed.late)
	slices.Sort(out.max.lat)
	slices.Sort(out.max.late)
	return out
}

func addStats(to, s *runStats) {
	to.sent += s.sent
	to.errs += s.errs
	to.reconnects += s.reconnects
	if to.firstErr == nil {
		to.firstErr = s.firstErr
	}
	to.elapsed += s.elapsed
	to.lat = append(to.lat, s.lat...)
	to.late = append(to.late, s.late...)
	to.genCPU += s.genCPU
	to.proxyCPU += s.proxyCPU
	to.proxyAct = to.proxyAct.plus(s.proxyAct)
	to.backendCPU += s.backendCPU
	to.stolen += s.stolen
	to.stalls.bursts += s.stalls.bursts
	to.stalls.requests += s.stalls.requests
	to.stalls.biggest = max(to.stalls.biggest, s.stalls.biggest)
	to.stalls.longest = max(to.stalls.longest, s.stalls.longest)
}

// stealShare is the share of the machine's CPU time the hypervisor took
// during the run.
func stealShare(s *runStats) string {
	return fmt.Sprintf("%.1f%%", 100*stealFraction(s))
}

func stealFraction(s *runStats) float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return s.stolen.Seconds() / (s.elapsed.Seconds() * float64(runtime.NumCPU()))
}

// cpuPer1000 is the proxy's CPU-seconds per 1,000 requests answered.
func cpuPer1000(s *runStats) float64 { return per1000(s, s.proxyCPU) }

func genPer1000(s *runStats) float64 { return per1000(s, s.genCPU) }

func backendPer1000(s *runStats) float64 { return per1000(s, s.backendCPU) }

// per1000 is cpu in seconds per 1,000 requests of s answered.
func per1000(s *runStats, cpu time.Duration) float64 {
	if len(s.lat) == 0 {
		return 0
	}
	return cpu.Seconds() / (float64(len(s.lat)) / 1000)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

func signedUS(d time.Duration) string {
	return fmt.Sprintf("%+.0f µs", float64(d)/float64(time.Microsecond))
}

func mb(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func printTable(w io.Writer, cfg config, node string, rs []*targetResult) {
	find := func(key string) *targetResult {
		for _, r := range rs {
			if r.key == key {
				return r
			}
		}
		return nil
	}
	direct, nginx := find("direct"), find("nginx")
	wps := []*targetResult{find("waypoint"), find("waypoint-1cpu"), find("waypoint-hbone")}

	// row prints one line: the cell of each target, the target and the
	// result.
	row := func(what string, cell func(r *targetResult) string, tgt, result string) {
		cells := make([]string, len(rs))
		for i, r := range rs {
			cells[i] = cell(r)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", what, strings.Join(cells, " | "), tgt, result)
	}
	proxyOnly := func(f func(r *targetResult) string) func(r *targetResult) string {
		return func(r *targetResult) string {
			if !r.proxied {
				return "—"
			}
			return f(r)
		}
	}
	// judge gives the verdict for each waypoint column present.
	judge := func(f func(r *targetResult) (bool, string)) string {
		var parts []string
		for _, r := range wps {
			if r == nil {
				continue
			}
			ok, detail := f(r)
			label := map[string]string{"waypoint-1cpu": "1 thread ", "waypoint-hbone": "HBONE "}[r.key]
			parts = append(parts, fmt.Sprintf("%s%s (%s)", label, benchfmt.Verdict(ok), detail))
		}
		if len(parts) == 0 {
			return "—"
		}
		return strings.Join(parts, "; ")
	}
	// base is what a target's latency is added to: direct for the plain
	// proxies, and for direct over HBONE itself (the two tunnel ends'
	// cost); direct over HBONE for the HBONE waypoint, so that its added
	// latency is what a waypoint adds to a mesh that already tunnels, as
	// nginx's is what nginx adds to a plain path.
	directHBONE := find("direct-hbone")
	base := func(r *targetResult) *targetResult {
		if overHBONE(r.key) && directHBONE != nil {
			return directHBONE
		}
		return direct
	}
	addedOver := func(r *targetResult, p float64) time.Duration {
		return pct(r.fixed.lat, p) - pct(base(r).fixed.lat, p)
	}
	added := func(p float64) func(r *targetResult) string {
		return func(r *targetResult) string {
			if !r.proxied && r.key != "direct-hbone" {
				return "—"
			}
			return signedUS(addedOver(r, p))
		}
	}

	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.name
	}
	fmt.Fprintf(w, "| measurement | %s | target | result |\n", strings.Join(names, " | "))
	fmt.Fprintf(w, "|---|%s---|---|\n", strings.Repeat("---|", len(rs)))

	rate := benchfmt.Thousands(cfg.rate)
	row(fmt.Sprintf("latency at %s req/s, p50 / p90 / p99", rate), func(r *targetResult) string {
		return fmt.Sprintf("%s / %s / %s µs", us(pct(r.fixed.lat, 50)), us(pct(r.fixed.lat, 90)), us(pct(r.fixed.lat, 99)))
	}, "—", "—")
	addedWhat := "proxy − direct"
	if directHBONE != nil {
		addedWhat = "proxy − direct; HBONE waypoint and floor − direct over HBONE; direct over HBONE − direct"
	}
	row(fmt.Sprintf("added latency at %s req/s (%s), p50", rate, addedWhat), added(50), "—", "—")
	row("added latency, p90", added(90), "—", "—")
	p99Result := "—"
	if nginx != nil {
		nginxAdded := pct(nginx.fixed.lat, 99) - pct(direct.fixed.lat, 99)
		p99Result = judge(func(r *targetResult) (bool, string) {
			over := addedOver(r, 99) - nginxAdded
			return over <= targetP99OverNginx, signedUS(over) + " vs nginx"
		})
	}
	row("added latency, p99", added(99), fmt.Sprintf("waypoint ≤ nginx + %s µs", us(targetP99OverNginx)), p99Result)
	row(fmt.Sprintf("CPU time taken by the hypervisor (steal) during the %s req/s run, share of the machine's", rate), func(r *targetResult) string {
		return stealShare(r.fixed)
	}, "—", "—")
	row(fmt.Sprintf("requests over %s at %s req/s: bursts (requests due ≤ %s apart) / requests in them / the biggest burst / the slowest request", stallLatency, rate, stallGap), func(r *targetResult) string {
		st := r.fixed.stalls
		return fmt.Sprintf("%d / %d / %d / %s µs", st.bursts, st.requests, st.biggest, us(st.longest))
	}, "—", "—")

	// floorOf is the Go floor a waypoint column is read against: the
	// least a Go proxy does on the same path, plain or HBONE.
	floorOf := func(r *targetResult) *targetResult {
		if r.key == "waypoint-hbone" {
			return find("floor-hbone")
		}
		return find("floor")
	}
	tpResult := "—"
	if nginx != nil {
		tpResult = judge(func(r *targetResult) (bool, string) {
			ratio := r.max.rate() / nginx.max.rate()
			detail := fmt.Sprintf("%.0f%% of nginx", ratio*100)
			if b := base(r); b != direct {
				// Beside the target, the same ratio to its own baseline
				// as nginx's to direct.
				detail += fmt.Sprintf("; %.0f%% of direct over HBONE, nginx %.0f%% of direct",
					100*r.max.rate()/b.max.rate(), 100*nginx.max.rate()/direct.max.rate())
			}
			if f := floorOf(r); f != nil {
				detail += fmt.Sprintf("; %s %.0f%% of nginx", f.name, 100*f.max.rate()/nginx.max.rate())
			}
			return ratio >= targetThroughput, detail
		})
	}
	row(fmt.Sprintf("maximum throughput, %d connections", cfg.maxConns), func(r *targetResult) string {
		return benchfmt.Thousands(int(r.max.rate())) + " req/s"
	}, fmt.Sprintf("waypoint ≥ %.0f%% of nginx", targetThroughput*100), tpResult)
	row("latency at maximum throughput, p50 / p99", func(r *targetResult) string {
		return fmt.Sprintf("%s / %s µs", us(pct(r.max.lat, 50)), us(pct(r.max.lat, 99)))
	}, "—", "—")

	row(fmt.Sprintf("proxy CPU per 1,000 requests at %s req/s", rate), proxyOnly(func(r *targetResult) string {
		return fmt.Sprintf("%.3f s", cpuPer1000(r.fixed))
	}), fmt.Sprintf("waypoint ≤ %.1f s (%.1f vCPU)", targetCPUPer1000, targetCPUPer1000), judge(func(r *targetResult) (bool, string) {
		c := cpuPer1000(r.fixed)
		detail := fmt.Sprintf("%.3f s", c)
		if f := floorOf(r); f != nil {
			detail += fmt.Sprintf("; %s %.3f s", f.name, cpuPer1000(f.fixed))
		}
		return c <= targetCPUPer1000, detail
	}))
	row("proxy CPU per 1,000 requests at maximum throughput", proxyOnly(func(r *targetResult) string {
		return fmt.Sprintf("%.3f s", cpuPer1000(r.max))
	}), "—", "—")
	perRequest := func(s *runStats, n uint64) string {
		return fmt.Sprintf("%.1f", float64(n)/float64(max(len(s.lat), 1)))
	}
	row(fmt.Sprintf("proxy read and write system calls per request (/proc/PID/io: recv and send, which nginx and HAProxy use, are not counted), %s req/s / maximum", rate), proxyOnly(func(r *targetResult) string {
		return perRequest(r.fixed, r.fixed.proxyAct.syscalls) + " / " + perRequest(r.max, r.max.proxyAct.syscalls)
	}), "—", "—")
	row(fmt.Sprintf("proxy threads' sleeps / preemptions per request at %s req/s (context switches)", rate), proxyOnly(func(r *targetResult) string {
		return perRequest(r.fixed, r.fixed.proxyAct.sleeps) + " / " + perRequest(r.fixed, r.fixed.proxyAct.preempted)
	}), "—", "—")
	row(fmt.Sprintf("proxy peak RSS after the %s req/s run", rate), proxyOnly(func(r *targetResult) string { return mb(r.rssFixed) }),
		fmt.Sprintf("waypoint ≤ %.0f MB", targetRSS/1e6), judge(func(r *targetResult) (bool, string) {
			return float64(r.rssFixed) <= targetRSS, mb(r.rssFixed)
		}))
	row("proxy peak RSS after the maximum-throughput run", proxyOnly(func(r *targetResult) string { return mb(r.rssMax) }), "—", "—")
	row(fmt.Sprintf("requests answered / errors, %s req/s run; max run", rate), func(r *targetResult) string {
		return fmt.Sprintf("%s / %d; %s / %d", benchfmt.Thousands(len(r.fixed.lat)), r.fixed.errs, benchfmt.Thousands(len(r.max.lat)), r.max.errs)
	}, "no errors", benchfmt.Verdict(noErrors(rs)))

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Notes: latency at the fixed rate runs from each request's scheduled send time (request i is due at")
	fmt.Fprintf(w, "start + i/%d s, sent on the next free one of %d keep-alive connections) to the last byte of its\n", cfg.rate, cfg.rateConns)
	fmt.Fprintln(w, "response, so a stall delays and counts every request behind it (no coordinated omission); sends")
	fmt.Fprintln(w, "leave from an OS thread sleeping with nanosleep (timer slack 1 ns). Added latency = the target's")
	fmt.Fprintln(w, "percentile − its baseline's (direct's; for the HBONE waypoint and floor, direct over HBONE's).")
	fmt.Fprintln(w, "Maximum throughput = responses / wall time, each connection sending its next")
	fmt.Fprintln(w, "request as soon as the previous response ended. Proxy CPU = utime + stime from /proc/PID/stat of the")
	fmt.Fprintln(w, "proxy's processes (nginx: master and workers; HAProxy: its one process and its threads; waypoint: its")
	fmt.Fprintln(w, "process), before and after the measured run, / (responses / 1,000). Peak RSS = VmHWM from")
	fmt.Fprintln(w, "/proc/PID/status summed over those processes, since they started (warm-ups included; pages nginx's")
	fmt.Fprintln(w, "master and workers share count once per process); MB = 10^6 bytes.")
	if cfg.proxyCPUs == "" {
		fmt.Fprintln(w, "The load generator, the backend and the proxy share the machine's CPUs, as do other processes.")
	} else {
		fmt.Fprintln(w, "The proxy runs alone on its CPUs (-proxy-cpus), the load generator and the backend on the others;")
		fmt.Fprintln(w, "other processes of the machine are not moved.")
	}
	fmt.Fprintln(w, "Steal: /proc/stat's steal over the run / (its wall time × the CPUs): time a CPU of this VM wanted to")
	fmt.Fprintln(w, "run and the hypervisor ran another guest; every request due meanwhile waits, whatever the target.")
	if cfg.maxSteal > 0 {
		var reruns []string
		for _, r := range rs {
			reruns = append(reruns, fmt.Sprintf("%s %d", r.name, r.stealReruns))
		}
		fmt.Fprintf(w, "A fixed-rate run with more than %g%% steal is measured again, up to %d times, the one with\n", cfg.maxSteal, stealReruns)
		fmt.Fprintf(w, "the least steal kept (-max-steal); runs measured again: %s.\n", strings.Join(reruns, ", "))
	}
	if find("floor") != nil {
		fmt.Fprintln(w, "Go floor: a child of the bench that moves each request's head to a backend connection of its own")
		fmt.Fprintln(w, "and the response back, parsing only line ends and Content-Length, with the waypoint's goroutine per")
		fmt.Fprintln(w, "connection, raw socket I/O, thread sizing and code on huge pages: what Go's runtime and a proxy's")
		fmt.Fprintln(w, "system calls cost here; the waypoint's CPU above it is its own work.")
	}
	if find("floor-hbone") != nil {
		fmt.Fprintln(w, "Go floor, HBONE both sides: the Go floor serving the generator's tunnels (an hbone.Server) and")
		fmt.Fprintln(w, "opening a tunnel of its own to the backend's node for each (an hbone.Pool), as the HBONE waypoint")
		fmt.Fprintln(w, "does: what the tunnels' two ends in a Go proxy cost here; the HBONE waypoint's CPU above it is its own")
		fmt.Fprintln(w, "work, as the plain waypoint's is above the Go floor. Its added latency is over direct over HBONE.")
	}
	fmt.Fprintln(w, "HBONE: the generator opens its connections as HBONE tunnels (hbone.Pool, mTLS, all on one HTTP/2")
	fmt.Fprintln(w, "connection) to the waypoint binary's HBONE listener (-hbone, its certificate from the bench's CA by")
	fmt.Fprintln(w, "-ca-dir, Istio's metrics on) and speaks HTTP/1.1 in them; the waypoint reaches the backend over HBONE")
	fmt.Fprintln(w, "through the backend node's hbone.Server (in the backend's process), which splices to the backend; its")
	fmt.Fprintln(w, "CPU and RSS are the waypoint's process's only. Direct over HBONE: the generator's")
	fmt.Fprintln(w, "tunnels go straight to the backend's node, as in a mesh without a waypoint (ztunnel to ztunnel); the")
	fmt.Fprintln(w, "HBONE waypoint's added latency is over it. The waypoint routes with one HTTPRoute rule to a one-endpoint")
	fmt.Fprintln(w, "cluster.")
	var gen []string
	for _, r := range rs {
		gen = append(gen, fmt.Sprintf("%s %.3f / %.3f s", r.name, genPer1000(r.fixed), genPer1000(r.max)))
	}
	fmt.Fprintf(w, "Load generator's own CPU per 1,000 requests (getrusage of the bench process), %s req/s / maximum: %s.\n", rate, strings.Join(gen, ", "))
	var back []string
	for _, r := range rs {
		back = append(back, fmt.Sprintf("%s %.3f / %.3f s", r.name, backendPer1000(r.fixed), backendPer1000(r.max)))
	}
	fmt.Fprintf(w, "The backend's process's CPU per 1,000 requests (/proc; for HBONE it also runs the backend node's tunnel ends), %s req/s / maximum: %s.\n", rate, strings.Join(back, ", "))
	var late []string
	for _, r := range rs {
		late = append(late, fmt.Sprintf("%s %s / %s", r.name, us(pct(r.fixed.late, 50)), us(pct(r.fixed.late, 99))))
	}
	fmt.Fprintf(w, "How late sends left their schedule at %s req/s, p50 / p99 µs (counted in the latencies): %s.\n", rate, strings.Join(late, ", "))
	if cfg.rounds > 1 {
		fmt.Fprintf(w, "Each of the %d rounds alone (the table pools them):\n", cfg.rounds)
		var cpus, maxes, p99s []string
		for _, r := range rs {
			var c, m, p []string
			for _, x := range r.rounds {
				c = append(c, fmt.Sprintf("%.3f", cpuPer1000(x.fixed)))
				m = append(m, benchfmt.Thousands(int(x.max.rate())))
				p = append(p, fmt.Sprintf("%s (steal %s)", us(pct(x.fixed.lat, 99)), stealShare(x.fixed)))
			}
			if r.proxied {
				cpus = append(cpus, fmt.Sprintf("%s %s s", r.name, strings.Join(c, " / ")))
			}
			maxes = append(maxes, fmt.Sprintf("%s %s req/s", r.name, strings.Join(m, " / ")))
			p99s = append(p99s, fmt.Sprintf("%s %s µs", r.name, strings.Join(p, " / ")))
		}
		fmt.Fprintf(w, "- proxy CPU per 1,000 requests at %s req/s: %s.\n", rate, strings.Join(cpus, "; "))
		fmt.Fprintf(w, "- maximum throughput: %s.\n", strings.Join(maxes, "; "))
		fmt.Fprintf(w, "- latency p99 at %s req/s (and the hypervisor's steal during the run): %s.\n", rate, strings.Join(p99s, "; "))
	}
	if node != nodeAddr && directHBONE != nil {
		fmt.Fprintf(w, "The backend's node could not listen on %s (taken): it listened on %s and the waypoint's pool dialled that instead.\n", nodeAddr, node)
	}
	for _, r := range rs {
		if r.note != "" {
			fmt.Fprintf(w, "%s: %s.\n", r.name, r.note)
		}
		if len(r.profiles) > 0 {
			fmt.Fprintf(w, "%s: CPU profiles and execution traces (measured while they were on): %s.\n", r.name, strings.Join(r.profiles, ", "))
		}
		if n := r.fixed.reconnects + r.max.reconnects; n > 0 {
			fmt.Fprintf(w, "%s: the server closed %d connections (Connection: close); the generator reconnected, counting the time.\n", r.name, n)
		}
		for _, s := range []*runStats{r.fixed, r.max} {
			if s.firstErr != nil {
				fmt.Fprintf(w, "%s: first error: %v.\n", r.name, s.firstErr)
				break
			}
		}
	}
}

func noErrors(rs []*targetResult) bool {
	for _, r := range rs {
		if r.fixed.errs > 0 || r.max.errs > 0 {
			return false
		}
	}
	return true
}
