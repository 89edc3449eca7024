package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process the bench started: a peer (nginx, HAProxy, the
// waypoint binary) or the bench binary itself in a child mode. Every proc
// leads its own process group, so stopping it reaches its workers too,
// and gets SIGKILL from the kernel if the bench dies (Pdeathsig).
type proc struct {
	name   string
	cmd    *exec.Cmd
	in     io.WriteCloser // stdin; children of the bench exit when it closes
	out    *bufio.Reader  // stdout
	log    string         // stderr goes there
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

// procs are all the processes started, stopped at the end whatever
// happens.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

func (ps *procs) start(name, logPath string, args []string) (*proc, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	cmd.Stderr = logf
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, in: in, out: bufio.NewReader(out), log: logPath, exited: make(chan struct{})}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	ps.list = append(ps.list, p)
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// childEnv is this process's environment without GOMAXPROCS: every peer
// gets the machine's CPUs.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			env = append(env, kv)
		}
	}
	return env
}

// stopAll stops every process still running.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for _, p := range list {
		p.stop()
	}
}

// stop ends the process and its group: stdin closed and SIGTERM, then
// SIGKILL after 2 s.
func (p *proc) stop() {
	_ = p.in.Close()
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(2 * time.Second):
	}
	// Workers may outlive their master: the group goes in any case.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.exited
}

// lastLog returns the end of the process's stderr, for error messages.
func (p *proc) lastLog() string {
	b, _ := os.ReadFile(p.log)
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(no output)"
	}
	return string(b)
}

// failed wraps err with the process's state and its last output.
func (p *proc) failed(err error) error {
	select {
	case <-p.exited:
		state := "exit status 0"
		if p.err != nil {
			state = p.err.Error()
		}
		return fmt.Errorf("%s exited (%s): %w\n%s", p.name, state, err, p.lastLog())
	default:
		return fmt.Errorf("%s: %w\n%s", p.name, err, p.lastLog())
	}
}

// readLine reads a line the child printed, failing if it exits first or
// takes longer than timeout.
func (p *proc) readLine(timeout time.Duration) (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		l, err := p.out.ReadString('\n')
		ch <- result{strings.TrimSpace(l), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", p.failed(r.err)
		}
		return r.line, nil
	case <-time.After(timeout):
		return "", p.failed(errors.New("no answer in time"))
	}
}

// startChild starts the bench binary itself as a child (-child and args)
// and waits for its READY line; it returns the want fields after READY
// (the child's addresses). A proxy under test runs where -proxy-cpus says.
func (b *bench) startChild(name string, proxy bool, want int, args ...string) (*proc, []string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	argv := append([]string{exe, "-child"}, args...)
	if !b.cfg.hugePages {
		argv = append(argv, "-huge-pages=false")
	}
	if proxy {
		argv = b.plan.proxyArgs(argv)
	}
	p, err := b.procs.start(name, filepath.Join(b.tmp, name+".log"), argv)
	if err != nil {
		return nil, nil, err
	}
	line, err := p.readLine(30 * time.Second)
	if err != nil {
		return nil, nil, err
	}
	f := strings.Fields(line)
	if len(f) != want+1 || f[0] != "READY" {
		return nil, nil, p.failed(fmt.Errorf("said %q, not READY and %d addresses", line, want))
	}
	return p, f[1:], nil
}

// command sends a line to a child of the bench and returns its answer.
func (p *proc) command(line string) (string, error) {
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		return "", p.failed(err)
	}
	return p.readLine(30 * time.Second)
}

// expectOK sends a command and fails unless the child answers OK.
func (p *proc) expectOK(line string) error {
	ans, err := p.command(line)
	if err != nil {
		return err
	}
	if ans != "OK" {
		return p.failed(errors.New(ans))
	}
	return nil
}

// tree returns pid and all its descendants.
func tree(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(n); err == nil {
			children[st.ppid] = append(children[st.ppid], n)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

type procStat struct {
	ppid         int
	utime, stime uint64 // clock ticks
}

// readStat reads /proc/PID/stat: the parent and the CPU time of all the
// process's threads.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	// The command name, in parentheses, may hold anything: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var st procStat
	st.ppid, _ = strconv.Atoi(f[1])
	st.utime, _ = strconv.ParseUint(f[11], 10, 64)
	st.stime, _ = strconv.ParseUint(f[12], 10, 64)
	return st, nil
}

// cpuOf returns the CPU time (user + system) used so far by pid and its
// descendants.
func cpuOf(pid int) time.Duration {
	var ticks uint64
	for _, p := range tree(pid) {
		if st, err := readStat(p); err == nil {
			ticks += st.utime + st.stime
		}
	}
	return time.Duration(ticks) * time.Second / time.Duration(clockTicks())
}

// activity is what a process tree's threads did so far that costs a proxy
// at a low rate beside its own instructions: read and write system calls
// (/proc/PID/io's syscr and syscw: read, write and their vector forms;
// not epoll), and sleeps and preemptions (the voluntary and involuntary
// context switches of /proc/PID/task/*/status; a thread that ended takes
// its own with it).
type activity struct {
	syscalls, sleeps, preempted uint64
}

func (a activity) minus(b activity) activity {
	return activity{a.syscalls - b.syscalls, a.sleeps - b.sleeps, a.preempted - b.preempted}
}

func (a activity) plus(b activity) activity {
	return activity{a.syscalls + b.syscalls, a.sleeps + b.sleeps, a.preempted + b.preempted}
}

// activityOf returns the activity so far of pid and its descendants.
func activityOf(pid int) activity {
	var a activity
	for _, p := range tree(pid) {
		dir := filepath.Join("/proc", strconv.Itoa(p))
		if b, err := os.ReadFile(filepath.Join(dir, "io")); err == nil {
			a.syscalls += field(b, "syscr:") + field(b, "syscw:")
		}
		tasks, _ := os.ReadDir(filepath.Join(dir, "task"))
		for _, t := range tasks {
			if b, err := os.ReadFile(filepath.Join(dir, "task", t.Name(), "status")); err == nil {
				a.sleeps += field(b, "voluntary_ctxt_switches:")
				a.preempted += field(b, "nonvoluntary_ctxt_switches:")
			}
		}
	}
	return a
}

// field returns the number after name at the start of a line of b (a
// unit after it, such as " kB", ignored), 0 if none.
func field(b []byte, name string) uint64 {
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			num, _, _ := strings.Cut(strings.TrimSpace(v), " ")
			n, _ := strconv.ParseUint(num, 10, 64)
			return n
		}
	}
	return 0
}

// stolen is the CPU time the hypervisor gave other guests while this
// machine's CPUs wanted to run (/proc/stat's steal, all CPUs summed): a
// pause no process here can see, and the reason a fixed-rate run's tail
// moves from one run to the next on a shared VM.
func stolen() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	// cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	ticks, _ := strconv.ParseUint(f[8], 10, 64)
	return time.Duration(ticks) * time.Second / time.Duration(clockTicks())
}

// peakRSS returns the sum of VmHWM (peak resident set) over pid and its
// descendants, in bytes.
func peakRSS(pid int) uint64 {
	var total uint64
	for _, p := range tree(pid) {
		if b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "status")); err == nil {
			total += field(b, "VmHWM:") << 10 // kB
		}
	}
	return total
}

var (
	clkOnce sync.Once
	clkTck  uint64
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times, from the
// auxiliary vector (AT_CLKTCK); 100 if it cannot be read.
func clockTicks() uint64 {
	clkOnce.Do(func() {
		clkTck = 100
		b, err := os.ReadFile("/proc/self/auxv")
		if err != nil {
			return
		}
		const atClkTck = 17
		for len(b) >= 16 {
			k, v := binary.NativeEndian.Uint64(b), binary.NativeEndian.Uint64(b[8:])
			b = b[16:]
			if k == atClkTck && v > 0 {
				clkTck = v
				return
			}
		}
	})
	return clkTck
}
