package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
)

// The load generator: the same code drives every target. Each connection
// is a keep-alive HTTP/1.1 connection (a TCP connection, or an HBONE
// tunnel) written and read directly with a bufio.Reader: one request at a
// time per connection, no pipelining, no allocation per request on the
// happy path.

// bodySize is the size of every response body.
const bodySize = 1024

// dialFunc opens one connection to a target.
type dialFunc func(ctx context.Context) (net.Conn, error)

// request is what the generator sends, to every target alike.
var request = []byte("GET /bench HTTP/1.1\r\nHost: reviews.default.svc.cluster.local:9080\r\nUser-Agent: meshway-bench\r\n\r\n")

// httpConn is one keep-alive connection of the generator.
type httpConn struct {
	dial  dialFunc
	c     net.Conn
	br    *bufio.Reader
	close bool // the server said Connection: close

	// Open-loop mode: the scheduled send time of the request in flight.
	pending chan time.Time
}

func newHTTPConn(ctx context.Context, dial dialFunc) (*httpConn, error) {
	h := &httpConn{dial: dial}
	return h, h.redial(ctx)
}

func (h *httpConn) redial(ctx context.Context) error {
	h.shut()
	h.c = nil
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := h.dial(ctx)
	if err != nil {
		return err
	}
	h.c, h.close = c, false
	if h.br == nil {
		h.br = bufio.NewReaderSize(c, 4096)
	} else {
		h.br.Reset(c)
	}
	return nil
}

// shut closes the connection.
func (h *httpConn) shut() {
	if h.c != nil {
		_ = h.c.Close()
	}
}

var (
	errStatus   = errors.New("status not 200")
	errBodySize = errors.New("body is not 1 KiB")
)

// readResponse reads one response and checks it: 200 with a 1 KiB body
// (Content-Length or chunked).
func (h *httpConn) readResponse() error {
	line, err := h.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return fmt.Errorf("bad status line %q", line)
	}
	status := ""
	if !bytes.Equal(line[9:12], []byte("200")) {
		status = string(bytes.TrimSpace(line))
	}
	length, chunked := -1, false
	for {
		line, err = h.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, val, found := bytes.Cut(line, []byte(":"))
		if !found {
			return fmt.Errorf("bad header line %q", line)
		}
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = atoi(val); err != nil {
				return err
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(val, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(val, []byte("close")) {
				h.close = true
			}
		}
	}
	var n int
	switch {
	case chunked:
		if n, err = h.readChunked(); err != nil {
			return err
		}
	case length >= 0:
		if n, err = h.br.Discard(length); err != nil {
			return err
		}
	default:
		return errors.New("response without Content-Length or chunked encoding")
	}
	if status != "" {
		return fmt.Errorf("%w: %q", errStatus, status)
	}
	if n != bodySize {
		return fmt.Errorf("%w: %d bytes", errBodySize, n)
	}
	return nil
}

func (h *httpConn) readChunked() (int, error) {
	total := 0
	for {
		line, err := h.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size := 0
		for _, c := range line {
			switch {
			case '0' <= c && c <= '9':
				size = size<<4 | int(c-'0')
			case 'a' <= c && c <= 'f':
				size = size<<4 | int(c-'a'+10)
			case 'A' <= c && c <= 'F':
				size = size<<4 | int(c-'A'+10)
			default:
				return 0, fmt.Errorf("bad chunk size %q", line)
			}
		}
		if size == 0 { // last chunk; no trailers expected
			for {
				l, err := h.br.ReadSlice('\n')
				if err != nil {
					return 0, err
				}
				if len(bytes.TrimRight(l, "\r\n")) == 0 {
					return total, nil
				}
			}
		}
		if _, err := h.br.Discard(size + 2); err != nil {
			return 0, err
		}
		total += size
	}
}

func atoi(b []byte) (int, error) {
	if len(b) == 0 || len(b) > 9 {
		return 0, fmt.Errorf("bad number %q", b)
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad number %q", b)
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// roundTrip sends one request and reads its response.
func (h *httpConn) roundTrip() error {
	if _, err := h.c.Write(request); err != nil {
		return err
	}
	return h.readResponse()
}

// runStats is what one run of the generator measured.
type runStats struct {
	sent, errs int
	reconnects int // after a Connection: close
	firstErr   error
	elapsed    time.Duration
	lat        []time.Duration // sorted
	late       []time.Duration // open loop: how late each send left, sorted
	genCPU     time.Duration   // this process's CPU during the run
	proxyCPU   time.Duration   // the proxy's CPU during the run (set by the caller)
	proxyAct   activity        // the proxy's system calls and context switches during the run (set by the caller)
	backendCPU time.Duration   // the backend's process's CPU during the run (set by the caller)
	stolen     time.Duration   // CPU time the hypervisor took during the run (set by the caller)
	stalls     stalls          // open loop only
}

// stalls describes the slow requests of an open-loop run: at a fixed rate,
// a pause anywhere (in a process, the kernel, the hypervisor) makes every
// request due during it slow, so slow requests come in bursts, and the
// p99 counts bursts more than it measures any one request's path.
type stalls struct {
	bursts   int           // runs of slow requests, each ≤ stallGap from the next
	requests int           // slow requests, in all bursts
	biggest  int           // requests in the biggest burst
	longest  time.Duration // the slowest request's latency
}

const (
	stallLatency = time.Millisecond     // a slow request takes longer
	stallGap     = 3 * time.Millisecond // slow requests due this close are one burst
)

// sample is one request of an open-loop run: when it was due (from the
// run's start) and its latency.
type sample struct{ due, lat time.Duration }

// findStalls groups the slow requests of samples (sorted by due) into
// bursts.
func findStalls(samples []sample) stalls {
	var st stalls
	var lastDue time.Duration
	run := 0
	for _, s := range samples {
		if s.lat <= stallLatency {
			continue
		}
		if run == 0 || s.due-lastDue > stallGap {
			st.bursts++
			run = 0
		}
		run++
		lastDue = s.due
		st.requests++
		st.biggest = max(st.biggest, run)
		st.longest = max(st.longest, s.lat)
	}
	return st
}

func (s *runStats) rate() float64 { return float64(len(s.lat)) / s.elapsed.Seconds() }

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(float64(len(d)) * p / 100)
	return d[min(i, len(d)-1)]
}

// fixedRate sends rate requests per second for dur over conns, open loop:
// request i is due at start + i/rate whatever happened before, and its
// latency runs from that due time to the end of its response, so time a
// request waits for a free connection (or for a late sender) counts
// (no coordinated omission). Sends leave from one goroutine locked to an
// OS thread that sleeps with nanosleep (timer slack 1 ns): the runtime's
// timers fire up to 1 ms late on an idle process, which would swamp the
// latencies measured.
func fixedRate(ctx context.Context, conns []*httpConn, rate int, dur time.Duration) (*runStats, error) {
	interval := time.Second / time.Duration(rate)
	total := int(dur / interval)
	free := make(chan *httpConn, len(conns))
	var start time.Time // set before the first send; readers use it after
	var all []sample
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		st   = &runStats{lat: make([]time.Duration, 0, total)}
		fail = func(err error) {
			mu.Lock()
			defer mu.Unlock()
			st.errs++
			if st.firstErr == nil {
				st.firstErr = err
			}
		}
	)
	for _, c := range conns {
		c.pending = make(chan time.Time, 1)
		free <- c
		wg.Go(func() {
			samples := make([]sample, 0, total/len(conns)+16)
			for due := range c.pending {
				err := c.readResponse()
				done := time.Now()
				if err == nil {
					samples = append(samples, sample{due: due.Sub(start), lat: done.Sub(due)})
				} else {
					fail(err)
				}
				if err != nil || c.close {
					if err == nil {
						mu.Lock()
						st.reconnects++
						mu.Unlock()
					}
					if err := c.redial(ctx); err != nil {
						fail(err)
						// Leave the connection out: the run ends short.
						continue
					}
				}
				free <- c
			}
			mu.Lock()
			all = append(all, samples...)
			mu.Unlock()
		})
	}
	late := make([]time.Duration, 0, total)
	cpu0 := selfCPU()
	start = time.Now().Add(time.Millisecond)
	err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		setTimerSlack(1)
		defer setTimerSlack(0) // back to the default
		for i := range total {
			due := start.Add(time.Duration(i) * interval)
			sleepUntil(due)
			var c *httpConn
			select {
			case c = <-free:
			default: // all busy: wait, the request is already late
				t := time.NewTimer(10 * time.Second)
				select {
				case c = <-free:
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
				if c == nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					return errors.New("no connection came free for 10 s")
				}
			}
			conn := c.c
			late = append(late, time.Since(due))
			c.pending <- due
			if _, err := conn.Write(request); err != nil {
				_ = conn.Close() // the reader sees the error and redials
			}
		}
		return nil
	}()
	// Wait for every connection to come back.
	for range conns {
		if err != nil {
			break
		}
		select {
		case <-free:
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(10 * time.Second):
			err = errors.New("responses still outstanding 10 s after the last send")
		}
	}
	st.elapsed = time.Since(start)
	st.genCPU = selfCPU() - cpu0
	for _, c := range conns {
		close(c.pending)
	}
	if err != nil {
		for _, c := range conns {
			c.shut() // unblock the readers
		}
		wg.Wait()
		return nil, err
	}
	wg.Wait()
	st.sent = total
	for _, x := range all {
		st.lat = append(st.lat, x.lat)
	}
	slices.Sort(st.lat)
	slices.Sort(late)
	st.late = late
	slices.SortFunc(all, func(a, b sample) int { return cmp.Compare(a.due, b.due) })
	st.stalls = findStalls(all)
	return st, nil
}

// maxRate has every connection send back to back for dur (closed loop).
func maxRate(ctx context.Context, conns []*httpConn, dur time.Duration) (*runStats, error) {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		st = &runStats{}
	)
	cpu0 := selfCPU()
	start := time.Now()
	end := start.Add(dur)
	for _, c := range conns {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1<<14)
			var errs, sent, reconnects int
			var first error
			for ctx.Err() == nil {
				t := time.Now()
				if t.After(end) {
					break
				}
				sent++
				err := c.roundTrip()
				if err == nil {
					lat = append(lat, time.Since(t))
				} else {
					errs++
					if first == nil {
						first = err
					}
				}
				if err != nil || c.close {
					if err == nil {
						reconnects++
					}
					if err := c.redial(ctx); err != nil {
						errs++
						break
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			st.lat = append(st.lat, lat...)
			st.errs += errs
			st.sent += sent
			st.reconnects += reconnects
			if st.firstErr == nil {
				st.firstErr = first
			}
		})
	}
	wg.Wait()
	st.elapsed = time.Since(start)
	st.genCPU = selfCPU() - cpu0
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.Sort(st.lat)
	return st, nil
}

// sleepUntil blocks the calling OS thread until t.
func sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		_ = syscall.Nanosleep(&ts, nil) // EINTR: loop
	}
}

// setTimerSlack sets the calling thread's timer slack (PR_SET_TIMERSLACK).
func setTimerSlack(ns uintptr) {
	const prSetTimerSlack = 29
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, ns, 0)
}

// selfCPU is this process's user + system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
