package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is the control plane process under test: meshd, or this binary in
// the memory mode. It gets SIGKILL from the kernel if the bench dies.
type proc struct {
	name   string
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	log    string // stderr goes there
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

func startProc(name, logPath string, args ...string) (*proc, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// call sends a command to a bench child and returns its "ok" answer's rest.
func (p *proc) call(cmd string) (string, error) {
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		return "", p.failed(err)
	}
	line, err := p.out.ReadString('\n')
	if err != nil {
		return "", p.failed(err)
	}
	line = strings.TrimSpace(line)
	if rest, ok := strings.CutPrefix(line, "ok"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("%s: %q: %s", p.name, cmd, line)
}

// stop ends the process: stdin closed and SIGTERM (meshd writes its CPU
// profile then), SIGKILL after 10 s.
func (p *proc) stop() {
	_ = p.in.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return
	case <-time.After(10 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// failed adds the end of the process's log to err when it has exited.
func (p *proc) failed(err error) error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%w): %w; its log ends:\n%s", p.name, p.err, err, p.lastLog())
	case <-time.After(100 * time.Millisecond):
		return fmt.Errorf("%s: %w (log: %s)", p.name, err, p.log)
	}
}

func (p *proc) lastLog() string {
	b, _ := os.ReadFile(p.log)
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// waitListening waits until addr accepts connections or the process exits.
func (p *proc) waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return p.failed(fmt.Errorf("never listened on %s", addr))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not listening on %s after %s", p.name, addr, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// peakRSS is the process's VmHWM (peak resident set), in bytes.
func (p *proc) peakRSS() uint64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "status"))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpu is the process's user + system CPU time so far.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "stat"))
	if err != nil {
		return 0
	}
	// Fields after the command name, which may hold spaces: state is
	// field 3, utime 14 and stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// freeAddr returns a loopback address nothing listens on now.
// freeAddrs returns n loopback addresses no one listens on, all different:
// each is held until all are picked, since a port just closed is the
// kernel's next pick.
func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer func() { _ = ln.Close() }()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

func freeAddr() (string, error) {
	addrs, err := freeAddrs(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// logTime finds the first line of the process's log containing what and
// returns its timestamp (meshd logs with log.LstdFlags|log.Lmicroseconds,
// after the "meshd: " prefix).
func (p *proc) logTime(what string) (time.Time, bool) {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return time.Time{}, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.Contains(line, what) {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, "meshd: "))
		if len(f) < 2 {
			continue
		}
		t, err := time.ParseInLocation("2006/01/02 15:04:05.000000", f[0]+" "+f[1], time.Local)
		if err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// logLines returns the lines of the process's log containing what.
func (p *proc) logLines(what string) []string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, what) {
			out = append(out, line)
		}
	}
	return out
}
