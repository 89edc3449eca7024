// Package chaos holds what the chaos tests share: a dialer whose
// connections can be cut under their users, and a check that the
// goroutines a test started have ended. Tests only: nothing in the
// proxies imports it.
package chaos

import (
	"context"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Dialer dials TCP connections and records them, so that Cut can close
// one under the streams or requests it carries.
type Dialer struct {
	mu    sync.Mutex
	conns []net.Conn
	cuts  atomic.Int64
}

// DialContext dials and records the connection; it fits hbone.Pool's
// DialContext.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		if len(d.conns) >= 64 {
			d.conns = slices.DeleteFunc(d.conns, closed)
		}
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

// closed says whether c's user closed it. The connections stay what the
// dialer returned (a *net.TCPConn, which the proxies read and write raw),
// so the socket is asked.
func closed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	return err != nil || rc.Control(func(uintptr) {}) != nil
}

// Cut closes a connection picked with r among those still open, if any.
// Cuts moves before the close, so whatever fails of it sees Cuts moved;
// Cut then waits until the connection's user noticed — until seen says so
// (it gets the connection's local address; a second at most), or 250 ms
// without seen — and moves Cuts again: a failure that began after both
// moves has no cut to blame (CutSince).
func (d *Dialer) Cut(r *rand.Rand, seen func(local string) bool) {
	d.mu.Lock()
	d.conns = slices.DeleteFunc(d.conns, closed)
	// With seen, only a connection its user has taken in (seen says no)
	// is cut: one still being set up is not listed yet, so seen would say
	// yes at once, and the user could take it in broken after both moves.
	var pick []int
	for i, c := range d.conns {
		if seen == nil || !seen(c.LocalAddr().String()) {
			pick = append(pick, i)
		}
	}
	if len(pick) == 0 {
		d.mu.Unlock()
		return
	}
	i := pick[r.IntN(len(pick))]
	c := d.conns[i]
	d.conns = append(d.conns[:i], d.conns[i+1:]...)
	d.mu.Unlock()
	d.cuts.Add(1)
	local := c.LocalAddr().String()
	_ = c.Close()
	if seen == nil {
		time.Sleep(250 * time.Millisecond) // a loaded machine under -race is slow to notice
		d.cuts.Add(1)
		return
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline) && !seen(local); {
		time.Sleep(time.Millisecond)
	}
	d.cuts.Add(1)
}

// CutUntil cuts a connection (picked with r, seen is Cut's) at the pace
// of Paced until ctx ends.
func (d *Dialer) CutUntil(ctx context.Context, r *rand.Rand, seen func(local string) bool, progress func() int64) {
	Paced(ctx, r, progress, func() { d.Cut(r, seen) })
}

// Paced calls f every 50 to 200 ms (picked with r) until ctx ends. With
// progress (a count of work done, such as requests answered), each call
// also waits for 5 more of it: on a slow machine (-race, other packages'
// tests beside) every request would otherwise meet a cut, and the test
// would check nothing else.
func Paced(ctx context.Context, r *rand.Rand, progress func() int64, f func()) {
	var last int64
	for ctx.Err() == nil {
		time.Sleep(time.Duration(50+r.IntN(150)) * time.Millisecond)
		for progress != nil && progress() < last+5 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		if ctx.Err() != nil {
			return
		}
		if progress != nil {
			last = progress()
		}
		f()
	}
}

// Cuts counts the moves of Cut: two per cut, so odd while one is under
// way. Take it before a call, and ask CutSince after a failure.
func (d *Dialer) Cuts() int64 { return d.cuts.Load() }

// CutSince says whether a cut may explain the failure of what began when
// Cuts said mark: Cuts moved since, or a cut was under way at the mark — a
// call can begin and fail on the cut connection between its two moves.
func (d *Dialer) CutSince(mark int64) bool { return mark%2 == 1 || d.cuts.Load() != mark }

// Run returns the context of a chaos run: it ends after 2 s, 500 ms with
// -short.
func Run() (context.Context, context.CancelFunc) {
	d := 2 * time.Second
	if testing.Short() {
		d = 500 * time.Millisecond
	}
	return context.WithTimeout(context.Background(), d)
}

// Goroutines returns the number of goroutines now, for Settled.
func Goroutines() int { return runtime.NumGoroutine() }

// Settled fails t unless, within 5 s, at most slack goroutines more than
// before are left (the test's own helpers and timers may still end), and
// then lists them all.
func Settled(t testing.TB, before, slack int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+slack && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+slack {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left (%d before):\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
