package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuPlan splits the machine's CPUs between the proxy under test and the
// rest (the load generator and the backend), as proxy benchmarks do
// (Envoy's and Nighthawk's guidance: the proxy on cores of its own), so
// that the proxy's latency is not its wait for a CPU the generator or the
// backend holds. Without -proxy-cpus every process shares every CPU.
type cpuPlan struct {
	proxy, rest []int // empty: not pinned
}

func (p cpuPlan) pinned() bool { return len(p.proxy) > 0 }

// newCPUPlan gives the proxy the CPUs in list and the rest of this
// process's CPUs to everything else.
func newCPUPlan(list string) (cpuPlan, error) {
	if list == "" {
		return cpuPlan{}, nil
	}
	proxy, err := parseCPUList(list)
	if err != nil {
		return cpuPlan{}, fmt.Errorf("-proxy-cpus %q: %w", list, err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return cpuPlan{}, fmt.Errorf("reading this process's CPUs: %w", err)
	}
	var plan cpuPlan
	for cpu := range 1024 {
		if !set.IsSet(cpu) {
			continue
		}
		if slices.Contains(proxy, cpu) {
			plan.proxy = append(plan.proxy, cpu)
		} else {
			plan.rest = append(plan.rest, cpu)
		}
	}
	if len(plan.proxy) != len(proxy) {
		return cpuPlan{}, fmt.Errorf("-proxy-cpus %q: this process may run only on CPUs %s", list, formatCPUs(append(plan.proxy, plan.rest...)))
	}
	if len(plan.rest) == 0 {
		return cpuPlan{}, fmt.Errorf("-proxy-cpus %q leaves no CPU for the load generator and the backend", list)
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return cpuPlan{}, fmt.Errorf("-proxy-cpus needs taskset (util-linux): %w", err)
	}
	return plan, nil
}

// parseCPUList reads a CPU list as taskset -c and cpusets write it:
// "1", "2-3", "0,2-3".
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		first, err := strconv.Atoi(lo)
		if err != nil || first < 0 {
			return nil, fmt.Errorf("%q is not a CPU number or range", part)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil || last < first {
				return nil, fmt.Errorf("%q is not a CPU range", part)
			}
		}
		for c := first; c <= last; c++ {
			if !slices.Contains(cpus, c) {
				cpus = append(cpus, c)
			}
		}
	}
	slices.Sort(cpus)
	return cpus, nil
}

func formatCPUs(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// pinSelf moves every thread of this process to the rest's CPUs; threads
// and children started later inherit it. GOMAXPROCS stays: the fixed-rate
// sender sleeps in a system call holding its P, and the readers need
// another.
func (p cpuPlan) pinSelf() error {
	if !p.pinned() {
		return nil
	}
	var set unix.CPUSet
	for _, c := range p.rest {
		set.Set(c)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("listing this process's threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("pinning thread %d to CPUs %s: %w", tid, formatCPUs(p.rest), err)
		}
	}
	return nil
}

// cpus is how many CPUs the proxy under test may use: nginx gets a worker
// and HAProxy a thread for each.
func (b *bench) cpus() int {
	if b.plan.pinned() {
		return len(b.plan.proxy)
	}
	return runtime.NumCPU()
}

// proxyArgs returns the command line that runs args on the proxy's CPUs.
func (p cpuPlan) proxyArgs(args []string) []string {
	if !p.pinned() {
		return args
	}
	return append([]string{"taskset", "-c", formatCPUs(p.proxy)}, args...)
}
