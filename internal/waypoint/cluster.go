package waypoint

import (
	"context"
	"hash/maphash"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshway/meshway/internal/model"
)

// cluster is a set of endpoints with its load-balancing, circuit-breaking
// and outlier-detection state.
type cluster struct {
	name  string
	hosts []*host // the healthy endpoints
	// h2 says its port is HTTP2 or GRPC: requests to it go h2c whatever
	// the client spoke.
	h2   bool
	lb   model.LoadBalancer
	next atomic.Uint64 // round robin

	// Circuit breaker: slots bounds requests in flight (nil: no bound);
	// maxPending how many more may wait for a slot.
	slots      chan struct{}
	maxPending int64
	pending    atomic.Int64
	maxRetries int64
	retries    atomic.Int64
	// maxUses is the requests an upstream connection carries before it
	// is closed, HTTP/1.1 (h1.go) or HTTP/2 (h2.go) (0: no limit).
	maxUses int

	outlier *model.OutlierDetection
	mu      sync.Mutex // guards host ejection state
	ejected int
}

// host is one endpoint and its state.
type host struct {
	ep     *model.Endpoint
	active atomic.Int64 // requests in flight, for LEAST_REQUEST
	// maxUses is the cluster's: requests per HTTP/1.1 connection (0: no
	// limit), here for the fast path's upstream side, which knows the
	// endpoint only.
	maxUses int

	// Outlier detection, guarded by cluster.mu.
	fails5xx, failsGateway int
	ejectedUntil           time.Time
	ejections              int
	returned               time.Time // when the last ejection ended
}

// newCluster builds a cluster from its configuration. prev, the cluster of
// the same name in the configuration being replaced, hands over the state
// of the endpoints both have (ejections, requests in flight), so a
// configuration push does not bring an ejected endpoint back early.
func newCluster(mc *model.Cluster, prev *cluster) *cluster {
	c := &cluster{name: mc.Name, lb: model.LoadBalancer{Policy: model.LBLeastRequest}, outlier: mc.OutlierDetection,
		h2: mc.Protocol == model.ProtocolHTTP2 || mc.Protocol == model.ProtocolGRPC}
	if mc.LoadBalancer != nil {
		c.lb = *mc.LoadBalancer
	}
	old := map[string]*host{}
	if prev != nil {
		for _, h := range prev.hosts {
			old[h.ep.Address] = h
		}
	}
	for i := range mc.Endpoints {
		ep := &mc.Endpoints[i]
		if ep.Unhealthy {
			continue
		}
		h := &host{ep: ep}
		if o := old[ep.Address]; o != nil {
			prev.mu.Lock()
			h.fails5xx, h.failsGateway, h.ejectedUntil, h.ejections, h.returned = o.fails5xx, o.failsGateway, o.ejectedUntil, o.ejections, o.returned
			prev.mu.Unlock()
			switch {
			case time.Now().Before(h.ejectedUntil):
				c.ejected++
			case !h.ejectedUntil.IsZero():
				// Its ejection ended before anyone looked: it is back
				// (and not counted in c.ejected, which isEjected would
				// otherwise decrement).
				h.returned, h.ejectedUntil = h.ejectedUntil, time.Time{}
			}
		}
		c.hosts = append(c.hosts, h)
	}
	if p := mc.ConnectionPool; p != nil {
		limit := p.HTTP2MaxRequests
		if p.MaxConnections > 0 && (limit == 0 || p.MaxConnections < limit) {
			limit = p.MaxConnections
		}
		if limit > 0 {
			c.slots = make(chan struct{}, limit)
			c.maxPending = int64(p.HTTP1MaxPendingRequests)
		}
		c.maxRetries = int64(p.MaxRetries)
		c.maxUses = p.MaxRequestsPerConnection
		for _, h := range c.hosts {
			h.maxUses = c.maxUses
		}
	}
	return c
}

// admit takes a slot for a request, waiting for one (as a pending request)
// only while fewer than maxPending wait; false means the circuit breaker
// tripped: the request must fail at once (503, response flag UO).
func (c *cluster) admit(ctx context.Context) (release func(), ok bool) {
	if c.slots == nil {
		return func() {}, true
	}
	select {
	case c.slots <- struct{}{}:
		return c.release, true
	default:
	}
	if c.pending.Add(1) > c.maxPending {
		c.pending.Add(-1)
		return nil, false
	}
	defer c.pending.Add(-1)
	select {
	case c.slots <- struct{}{}:
		return c.release, true
	case <-ctx.Done():
		return nil, false
	}
}

func (c *cluster) release() { <-c.slots }

// admitNow takes a slot of the circuit breaker only if one is free: a
// mirrored request counts against its cluster's limits, as Envoy's shadow
// requests do, but never waits for a slot.
func (c *cluster) admitNow() (release func(), ok bool) {
	if c.slots == nil {
		return func() {}, true
	}
	select {
	case c.slots <- struct{}{}:
		return c.release, true
	default:
		return nil, false
	}
}

// admitRetry takes a retry slot (DestinationRule maxRetries).
func (c *cluster) admitRetry() bool {
	if c.retries.Add(1) > c.maxRetries && c.maxRetries > 0 {
		c.retries.Add(-1)
		return false
	}
	return true
}

var hashSeed = maphash.MakeSeed()

// pick chooses an endpoint for a request by the cluster's policy, among
// the endpoints not ejected, preferring ones not in tried (Istio retries
// on other hosts). It returns nil when none is healthy.
func (c *cluster) pick(r *http.Request, src netip.Addr, tried []*host) *host {
	n := len(c.hosts)
	if n == 0 {
		return nil
	}
	now := time.Now()
	ok := func(h *host, strict bool) bool {
		if strict {
			for _, t := range tried {
				if t == h {
					return false
				}
			}
		}
		return !c.isEjected(h, now)
	}
	for _, strict := range []bool{true, false} {
		if !strict && len(tried) == 0 {
			break
		}
		switch c.lb.Policy {
		case model.LBRoundRobin:
			for range n {
				if h := c.hosts[(c.next.Add(1)-1)%uint64(n)]; ok(h, strict) {
					return h
				}
			}
		case model.LBConsistentHash:
			// Rendezvous hashing: the host with the highest hash of
			// (key, host) wins, so a key keeps its host while hosts come
			// and go, except the ones it was on.
			key := c.hashKey(r, src)
			var best *host
			var bestScore uint64
			for _, h := range c.hosts {
				if !ok(h, strict) {
					continue
				}
				if s := maphash.String(hashSeed, key+"\x00"+h.ep.Address); best == nil || s > bestScore {
					best, bestScore = h, s
				}
			}
			if best != nil {
				return best
			}
		default: // LEAST_REQUEST (power of two choices) and RANDOM
			var best *host
			seen := 0
			for range 8 {
				h := c.hosts[rand.IntN(n)]
				if !ok(h, strict) || h == best {
					continue
				}
				if c.lb.Policy == model.LBRandom || n == 1 {
					return h
				}
				if best == nil || h.active.Load() < best.active.Load() {
					best = h
				}
				if seen++; seen == 2 {
					break
				}
			}
			if best != nil {
				return best
			}
			for _, h := range c.hosts { // unlucky draws: scan
				if ok(h, strict) {
					return h
				}
			}
		}
	}
	return nil
}

func (c *cluster) hashKey(r *http.Request, src netip.Addr) string {
	switch {
	case r == nil: // TCP: only the source is known
		return src.String()
	case c.lb.HashHeader != "":
		return r.Header.Get(c.lb.HashHeader)
	case c.lb.HashCookie != "":
		if ck, err := r.Cookie(c.lb.HashCookie); err == nil {
			return ck.Value
		}
		return ""
	}
	return src.String()
}

func (c *cluster) isEjected(h *host, now time.Time) bool {
	if c.outlier == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.ejectedUntil.IsZero() {
		return false
	}
	if now.Before(h.ejectedUntil) {
		return true
	}
	// Back in the pool: the ejection time is over.
	h.returned = h.ejectedUntil
	h.ejectedUntil = time.Time{}
	c.ejected--
	return false
}

// Envoy's defaults for what DestinationRule leaves unset.
const (
	defaultEjectionInterval = 10 * time.Second
	defaultBaseEjectionTime = 30 * time.Second
	maxEjectionTime         = 300 * time.Second
)

// ejectionTime is how long h's next ejection lasts: the base time times
// its ejections, which Envoy's sweep lowers by one for every interval the
// endpoint spent in the pool since its last ejection ended (so an
// endpoint that fails again after long health starts over at the base
// time), capped like Envoy's max_ejection_time. c.mu is held.
func (c *cluster) ejectionTime(h *host, now time.Time) time.Duration {
	o := c.outlier
	base := time.Duration(o.BaseEjectionTime)
	if base <= 0 {
		base = defaultBaseEjectionTime
	}
	interval := time.Duration(o.Interval)
	if interval <= 0 {
		interval = defaultEjectionInterval
	}
	if !h.returned.IsZero() && now.After(h.returned) {
		h.ejections = max(0, h.ejections-int(now.Sub(h.returned)/interval))
	}
	h.ejections++
	return min(base*time.Duration(h.ejections), max(maxEjectionTime, base))
}

// report records a try's outcome for outlier detection: status is the
// response's (0 when the connection failed).
func (c *cluster) report(h *host, status int) {
	o := c.outlier
	if o == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case status == 0 || status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		h.fails5xx++
		h.failsGateway++
	case status >= 500:
		h.fails5xx++
		h.failsGateway = 0
	default:
		h.fails5xx, h.failsGateway = 0, 0
		return
	}
	trip := o.Consecutive5xxErrors > 0 && h.fails5xx >= o.Consecutive5xxErrors ||
		o.ConsecutiveGatewayErrors > 0 && h.failsGateway >= o.ConsecutiveGatewayErrors
	if !trip || !h.ejectedUntil.IsZero() {
		return
	}
	maxPct := o.MaxEjectionPercent
	if maxPct == 0 {
		maxPct = 10
	}
	if c.ejected*100 >= maxPct*len(c.hosts) {
		return // as Envoy: never more than maxEjectionPercent at once
	}
	now := time.Now()
	h.ejectedUntil = now.Add(c.ejectionTime(h, now))
	h.fails5xx, h.failsGateway = 0, 0
	c.ejected++
}
