package push

import (
	"errors"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// gatedCache holds a type's delta watches until the control plane has set
// the type once (open). Before that the cache is empty, and a proxy
// reconnecting to a control plane that just started would be told that
// every resource it holds was removed: a ztunnel would drop every
// workload and policy until the first push came. A proxy waits instead,
// with the configuration it has, as istiod makes proxies wait until it is
// ready.
type gatedCache struct {
	cache.Cache

	mu     sync.Mutex
	opened bool
	parked map[*parkedWatch]struct{}
}

// parkedWatch is a delta watch made before the gate opened, and the
// cache's watch made for it when it did.
type parkedWatch struct {
	req      *cache.DeltaRequest
	sub      cache.Subscription
	out      chan cache.DeltaResponse
	cancel   func() // the cache's, once created; may stay nil
	canceled bool
}

func newGatedCache(c cache.Cache) *gatedCache {
	return &gatedCache{Cache: c, parked: map[*parkedWatch]struct{}{}}
}

// CreateDeltaWatch passes the watch to the cache once the gate is open;
// before, it parks it.
func (g *gatedCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, out chan cache.DeltaResponse) (func(), error) {
	g.mu.Lock()
	if g.opened {
		g.mu.Unlock()
		return g.Cache.CreateDeltaWatch(req, sub, out)
	}
	w := &parkedWatch{req: req, sub: sub, out: out}
	g.parked[w] = struct{}{}
	g.mu.Unlock()
	// The stream cancels a watch when a new request of the type comes and
	// when it ends; possibly more than once.
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		delete(g.parked, w)
		if !w.canceled && w.cancel != nil {
			w.cancel()
		}
		w.canceled = true
	}, nil
}

// open lets watches through, those parked first. It is idempotent.
func (g *gatedCache) open() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opened {
		return nil
	}
	g.opened = true
	var errs []error
	for w := range g.parked {
		// The cache answers at once (into the stream's buffered channel)
		// or keeps the watch; either way the stream is not waited for.
		cancel, err := g.Cache.CreateDeltaWatch(w.req, w.sub, w.out)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w.cancel = cancel
	}
	g.parked = nil
	return errors.Join(errs...)
}
