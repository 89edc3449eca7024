package waypoint

import (
	"math"
	"time"
)

// The fast path notices a client going away mid-request as net/http's
// server does — by reading the connection while the request runs — but
// only for requests that run a while. net/http starts a goroutine per
// request for that; a timer per request was no better: arming one wakes
// another thread to poll the network (runtime.wakeNetPoller), at every
// request, which at 1,000 requests/s cost more than the request. Arming is
// an atomic store instead, and one sweeper per proxy, ticking while the
// fast path has connections, starts the read for requests armed at least
// a tick ago.

// watchTick is the sweeper's period: a request is watched once it has run
// for one to two of them.
const watchTick = 100 * time.Millisecond

// watching is the watch state of a connection whose watcher was started.
const watching = math.MaxUint64

// arm makes the request watchable. Only the serving goroutine calls it,
// once the request body is read: the watcher reads the connection.
func (dc *h1Down) arm() {
	if dc.watchArmed {
		return
	}
	dc.watchArmed = true
	dc.watchState.Store(dc.p.h1tick.Load() + 1)
}

// disarm ends the watch: the connection is the loop's to read again.
func (dc *h1Down) disarm() {
	if !dc.watchArmed {
		return
	}
	dc.watchArmed = false
	if dc.watchState.Swap(0) != watching {
		return
	}
	// The watcher runs or ran: interrupt its read, wait for it.
	_ = dc.ic.SetReadDeadline(aLongTimeAgo)
	<-dc.watchDone
	_ = dc.ic.SetReadDeadline(time.Time{})
}

// sweep starts the watchers of requests armed a tick ago or more, until
// the fast path has no connection.
func (p *Proxy) sweep() {
	t := time.NewTicker(watchTick)
	defer t.Stop()
	for range t.C {
		tick := p.h1tick.Add(1)
		p.h1mu.Lock()
		if len(p.h1conns) == 0 {
			p.h1sweeping = false
			p.h1mu.Unlock()
			return
		}
		for _, dc := range p.h1conns {
			if s := dc.watchState.Load(); s != 0 && s != watching && tick-(s-1) >= 2 && dc.watchState.CompareAndSwap(s, watching) {
				go dc.watch()
			}
		}
		p.h1mu.Unlock()
	}
}

// watch reads the connection while a request runs: data is the next
// (pipelined) request, left buffered; the end of the connection ends the
// request, as net/http's server does.
func (dc *h1Down) watch() {
	defer func() { dc.watchDone <- struct{}{} }()
	_, err := dc.br.Peek(1)
	if err == nil || isTimeout(err) { // a request, or disarm's interrupt
		return
	}
	dc.upMu.Lock()
	dc.gone = true
	dc.upMu.Unlock()
	dc.cancel() // first: a try the interrupt fails sees the context ended
	dc.upMu.Lock()
	if pc := dc.upConn; pc != nil {
		pc.interrupt()
	}
	dc.upMu.Unlock()
}
