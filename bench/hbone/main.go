// Command hbone benchmarks HBONE against its physical limit on this
// machine: it runs raw TCP, plain TLS 1.3 (mutual, SPIFFE-verified) and
// HBONE (HTTP/2 CONNECT over that TLS) servers in a child process on
// 127.0.0.1, drives them from this process with bounded loads, and prints
// one markdown table with the targets and whether they are met.
//
// Run it with `make bench-hbone` (or `go run ./bench/hbone`), on a quiet
// machine. Flags shorten or lengthen the runs; see -help.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/meshway/meshway/bench/internal/benchfmt"
	"github.com/meshway/meshway/internal/identity"
)

const trustDomain = "cluster.local"

// maxStreamsPerConn lets the idle-stream measurement put every stream on one
// connection, so the per-stream figure holds no connection overhead.
const maxStreamsPerConn = 2000

var (
	clientID = identity.MustWorkloadID(trustDomain, "bench", "client")
	serverID = identity.MustWorkloadID(trustDomain, "bench", "server")
)

func main() {
	child := flag.String("child", "", "internal: run the servers with the CA in this directory")
	dur := flag.Duration("duration", 3*time.Second, "length of each throughput run")
	setups := flag.Int("setups", 3000, "stream set-ups timed on a warm connection")
	handshakes := flag.Int("handshakes", 300, "new connections timed per protocol")
	idleStreams := flag.Int("idle-streams", 1000, "idle streams opened for the memory measurement")
	idleConns := flag.Int("idle-conns", 200, "idle connections opened per protocol for the memory measurement")
	flag.Parse()
	if *child != "" {
		if err := runChild(*child); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	cfg := config{duration: *dur, setups: *setups, handshakes: *handshakes, idleStreams: *idleStreams, idleConns: *idleConns}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type config struct {
	duration               time.Duration
	setups, handshakes     int
	idleStreams, idleConns int
}

// childProc is the server process and its control channel.
type childProc struct {
	cmd                      *exec.Cmd
	in                       io.WriteCloser
	out                      *bufio.Reader
	tcpAddr, tlsAddr, hbAddr string
}

func startChild(caDir string) (*childProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-child", caDir)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &childProc{cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("child did not start: %w", err)
	}
	if _, err := fmt.Sscanf(line, "READY %s %s %s", &c.tcpAddr, &c.tlsAddr, &c.hbAddr); err != nil {
		return nil, fmt.Errorf("child said %q: %w", line, err)
	}
	return c, nil
}

// mem asks the child for its memory in use and open stream count.
func (c *childProc) mem() (bytes uint64, open int64, err error) {
	if _, err := io.WriteString(c.in, "mem\n"); err != nil {
		return 0, 0, err
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return 0, 0, err
	}
	_, err = fmt.Sscanf(line, "%d %d", &bytes, &open)
	return bytes, open, err
}

// waitOpen polls the child until it serves want streams, returning its
// memory then.
func (c *childProc) waitOpen(want int64) (uint64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, open, err := c.mem()
		if err != nil {
			return 0, err
		}
		if open == want {
			return m, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("child serves %d streams, want %d", open, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *childProc) stop() {
	_, _ = io.WriteString(c.in, "quit\n")
	_ = c.in.Close()
	_ = c.cmd.Wait()
}

func run(cfg config) error {
	caDir, err := os.MkdirTemp("", "meshway-bench-ca-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(caDir) }()
	ca, err := identity.NewCA(caDir, identity.CAOptions{TrustDomain: trustDomain})
	if err != nil {
		return err
	}
	child, err := startChild(caDir)
	if err != nil {
		return err
	}
	defer child.stop()
	cl, err := newClients(ca, child)
	if err != nil {
		return err
	}
	defer cl.close()

	// Warm up: a short run of each kind so page faults and lazy init are
	// out of the way.
	for _, k := range cl.kinds() {
		if _, err := throughput(k.dial, 1, 300*time.Millisecond); err != nil {
			return fmt.Errorf("%s warm-up: %w", k.name, err)
		}
	}
	load := benchfmt.LoadAverage()
	var r results
	if err := r.measure(cfg, cl, child); err != nil {
		return err
	}
	printHeader(load)
	r.print(os.Stdout)
	return nil
}

func printHeader(load string) {
	host, _ := os.Hostname()
	fmt.Printf("# HBONE benchmark\n\n")
	fmt.Printf("- date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("- machine: %s, %d CPUs (GOMAXPROCS %d), %s\n", host, runtime.NumCPU(), runtime.GOMAXPROCS(0), benchfmt.CPUModel())
	fmt.Printf("- go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("- load average (1, 5, 15 min) when the measurements started: %s\n", load)
	fmt.Printf("- servers in a child process, clients here, all on 127.0.0.1; TLS 1.3 with mutual SPIFFE verification\n\n")
}
