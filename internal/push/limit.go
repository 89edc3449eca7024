package push

import (
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// A ztunnel's first response of workloads carries every workload of the
// mesh: 10 MB at 50,000 pods, built and encoded for each stream, and
// queued in gRPC until the proxy reads it. Hundreds of ztunnels starting
// at once (a ztunnel that reconnects names what it holds and gets only
// what changed) would take gigabytes. sendLimiter lets a few streams at a
// time have a response of more than bigResponse resources outstanding,
// from its building to the proxy's ACK (or the stream's end); the others
// wait their turn, which does not count against their ACK timeout (it
// starts when a response is handed to the stream). A stream that holds a
// slot takes its next big responses (other types) without waiting, so
// that it never waits for a slot it must release itself.
const (
	bigResponse    = 1024
	bigSendsAtOnce = 2
)

type sendLimiter struct {
	slots chan struct{}

	mu      sync.Mutex
	holders map[any]int // stream → its big responses outstanding
	// built are the big responses built, by the stream they are for,
	// until the tracker takes them (claim) as it records the response.
	built map[*discovery.DeltaDiscoveryResponse]any
}

func newSendLimiter(n int) *sendLimiter {
	return &sendLimiter{slots: make(chan struct{}, n), holders: map[any]int{}, built: map[*discovery.DeltaDiscoveryResponse]any{}}
}

// acquire takes a slot for stream, waiting unless it holds one already.
// Only the stream's own goroutine acquires for it.
func (l *sendLimiter) acquire(stream any) {
	l.mu.Lock()
	if l.holders[stream] > 0 {
		l.holders[stream]++
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	l.slots <- struct{}{}
	l.mu.Lock()
	l.holders[stream]++
	l.mu.Unlock()
}

// hand records the response built with stream's slot.
func (l *sendLimiter) hand(r *discovery.DeltaDiscoveryResponse, stream any) {
	l.mu.Lock()
	l.built[r] = stream
	l.mu.Unlock()
}

// claim returns the stream whose slot r holds, if it holds one, for the
// tracker to release when r is answered.
func (l *sendLimiter) claim(r *discovery.DeltaDiscoveryResponse) (stream any, ok bool) {
	if l == nil {
		return nil, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	stream, ok = l.built[r]
	delete(l.built, r)
	return stream, ok
}

// release gives back one of stream's big responses; the slot is free when
// it has none left.
func (l *sendLimiter) release(stream any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holders[stream]--; l.holders[stream] > 0 {
		return
	}
	delete(l.holders, stream)
	<-l.slots
}
