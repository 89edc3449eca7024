package push

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
	"weak"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// encodedCache serves a resource type from its resources' encodings:
// built for types that proxies subscribe to whole (the wildcard, as
// ztunnels do), with tens of thousands of resources and hundreds of
// subscribers, it serves types subscribed by name (a waypoint's
// configuration) too, where keeping bytes rather than messages saves
// three quarters of the memory. go-control-plane's LinearCache, for every
// change, compares every resource of the type with what each wildcard
// subscriber holds and copies that subscriber's map of name → version (as
// large as the type) into the response; it keeps such a map per stream,
// too. At 55,000 resources and 100 ztunnels that is a second of CPU per
// change and 4 MiB per ztunnel. This cache keeps instead a log of which
// resources each update changed, by revision, and leaves in a wildcard
// subscriber's state only the revision it holds the type at (revKey):
// what it lacks is the log's entries after that revision, so a change
// costs each subscriber time in proportion to the change, and a subscriber
// nothing in proportion to the type.
//
// A subscriber without a revision (a new stream, which names the versions
// it kept from an earlier one) is compared resource by resource once. A
// subscription by name is served as LinearCache serves it. Delta xDS only.
type encodedCache struct {
	typeURL string
	// retention is how long the log keeps an update. A subscriber's
	// revision is at most an ACK timeout old (the watchdog disconnects a
	// proxy that leaves a response unanswered longer), so retention
	// exceeds it; a revision the log no longer covers ends the stream,
	// and the proxy resyncs on a new one.
	retention time.Duration
	// limit bounds the big responses built and sent at once.
	limit *sendLimiter

	mu        sync.Mutex
	resources map[string]*wcEntry
	rev       uint64
	log       []wcChange // by revision
	floor     uint64     // the log holds every change after revision floor
	watches   map[*wcWatch]struct{}
	// full is the last first response's content for a subscriber that
	// holds nothing (see fullSet); weak, so that it lives only while
	// responses still being sent use it.
	full weak.Pointer[fullSet]
}

// fullSet is every resource of the type at one revision, as the first
// response to a subscriber that holds nothing (a ztunnel that starts)
// carries it. Such responses differ only in the nonce the server sets on
// each, so they share one: ztunnels that start together (a node pool
// scaled up, meshd restarted) cost one list of 55,000 resources, not one
// each, on top of their encodings in gRPC.
type fullSet struct {
	rev     uint64
	names   []string
	entries []*wcEntry

	once      sync.Once
	resources []*discovery.Resource // read-only once built
}

// build returns the resources, built on first use (out of the cache's
// lock, by the first stream to send them).
func (f *fullSet) build(typeURL string) []*discovery.Resource {
	f.once.Do(func() {
		f.resources = make([]*discovery.Resource, len(f.names))
		for i, name := range f.names {
			e := f.entries[i]
			f.resources[i] = &discovery.Resource{Name: name, Version: e.version, Resource: &anypb.Any{TypeUrl: typeURL, Value: e.bytes}}
		}
	})
	return f.resources
}

// fullLocked returns the fullSet of the current revision. The caller holds mu.
func (c *encodedCache) fullLocked() *fullSet {
	if f := c.full.Value(); f != nil && f.rev == c.rev {
		return f
	}
	f := &fullSet{rev: c.rev, names: make([]string, 0, len(c.resources)), entries: make([]*wcEntry, 0, len(c.resources))}
	// Unsorted, as other big responses: sorting 55,000 names would hold
	// the lock for milliseconds.
	for name, e := range c.resources {
		f.names = append(f.names, name)
		f.entries = append(f.entries, e)
	}
	c.full = weak.Make(f)
	return f
}

// wcEntry is one resource as it is sent: its encoding (shared by every
// response that carries it) and its version.
type wcEntry struct {
	bytes   []byte
	version string
}

// wcChange is one resource an update set or removed.
type wcChange struct {
	rev  uint64
	at   time.Time
	name string
}

type wcWatch struct {
	req *cache.DeltaRequest
	sub cache.Subscription
	out chan cache.DeltaResponse
}

// revKey holds, in a wildcard subscriber's returned resources (server-side
// state, never sent), the revision at which it holds every resource of the
// type. It cannot be a resource's name: names are not empty and do not
// start with NUL.
const revKey = "\x00revision"

// errTooFarBehind ends a stream whose revision the log no longer covers.
var errTooFarBehind = errors.New("the proxy's state is older than the change log: reconnect to resync")

func newEncodedCache(typeURL string, retention time.Duration, limit *sendLimiter) *encodedCache {
	return &encodedCache{typeURL: typeURL, retention: retention, limit: limit, resources: map[string]*wcEntry{}, watches: map[*wcWatch]struct{}{}}
}

// update sets and removes resources as one revision and answers the
// watches it concerns.
func (c *encodedCache) update(set map[string]*wcEntry, remove []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rev++
	now := time.Now()
	for name, e := range set {
		c.resources[name] = e
		c.log = append(c.log, wcChange{rev: c.rev, at: now, name: name})
	}
	for _, name := range remove {
		delete(c.resources, name)
		c.log = append(c.log, wcChange{rev: c.rev, at: now, name: name})
	}
	c.trim(now)
	for w := range c.watches {
		if resp, err := c.respond(w, false); err == nil && resp != nil {
			w.out <- resp // buffered: the stream holds one watch per type
			delete(c.watches, w)
		}
	}
}

// trim drops the log's updates older than the retention, whole revisions
// at a time.
func (c *encodedCache) trim(now time.Time) {
	i := 0
	for i < len(c.log) && now.Sub(c.log[i].at) > c.retention {
		i++
	}
	for i > 0 && i < len(c.log) && c.log[i].rev == c.log[i-1].rev {
		i-- // keep a revision whole
	}
	if i > 0 {
		c.floor = c.log[i-1].rev
		c.log = slices.Delete(c.log, 0, i)
	}
}

// CreateDeltaWatch answers at once if the subscriber lacks something (or
// on a wildcard subscription's first request, which a proxy waits for),
// else keeps the watch until an update concerns it.
func (c *encodedCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, out chan cache.DeltaResponse) (func(), error) {
	if req.GetTypeUrl() != c.typeURL {
		return nil, fmt.Errorf("request type %s does not match cache type %s", req.GetTypeUrl(), c.typeURL)
	}
	w := &wcWatch{req: req, sub: sub, out: out}
	c.mu.Lock()
	defer c.mu.Unlock()
	resp, err := c.respond(w, sub.IsWildcard() && req.GetResponseNonce() == "")
	if err != nil {
		return nil, err
	}
	if resp != nil {
		out <- resp
		return nil, nil
	}
	c.watches[w] = struct{}{}
	return func() {
		c.mu.Lock()
		delete(c.watches, w)
		c.mu.Unlock()
	}, nil
}

// respond computes what w's subscriber lacks; nil when nothing (unless
// always).
func (c *encodedCache) respond(w *wcWatch, always bool) (cache.DeltaResponse, error) {
	known := w.sub.ReturnedResources()
	if w.sub.IsWildcard() && len(known) == 0 {
		// A subscriber that holds nothing gets the shared full set.
		f := c.fullLocked()
		if len(f.names) == 0 && !always {
			return nil, nil
		}
		r := &wcResponse{req: w.req, typeURL: c.typeURL, system: strconv.FormatUint(c.rev, 10),
			next: map[string]string{revKey: strconv.FormatUint(c.rev, 10)}, full: f}
		if len(f.names) > bigResponse {
			r.limit, r.stream = c.limit, w.out
		}
		return r, nil
	}
	var send, removed []string
	var next map[string]string
	if w.sub.IsWildcard() {
		var err error
		if send, removed, err = c.wildcardChanges(known); err != nil {
			return nil, err
		}
		next = map[string]string{revKey: strconv.FormatUint(c.rev, 10)}
	} else {
		send, removed, next = c.namedChanges(known, w.sub.SubscribedResources())
	}
	if len(send) == 0 && len(removed) == 0 && !always {
		return nil, nil
	}
	if len(send) <= 1024 {
		slices.Sort(send) // a change's response reads the same every time
	}
	slices.Sort(removed)
	r := &wcResponse{req: w.req, typeURL: c.typeURL, system: strconv.FormatUint(c.rev, 10), removed: removed, next: next,
		names: send, entries: make([]*wcEntry, len(send))}
	if len(send) > bigResponse {
		// The stream's channel tells streams apart.
		r.limit, r.stream = c.limit, w.out
	}
	for i, name := range send {
		r.entries[i] = c.resources[name]
	}
	return r, nil
}

// wildcardChanges is what a wildcard subscriber lacks: with a revision,
// the log's changes after it (and any name the stream asks again, with an
// empty version, after an unsubscription); without, every resource it
// does not hold at its version and every name it holds that is gone.
func (c *encodedCache) wildcardChanges(known map[string]string) (send, removed []string, err error) {
	add := func(name string) {
		if _, ok := c.resources[name]; ok {
			send = append(send, name)
		} else {
			removed = append(removed, name)
		}
	}
	rev, ok := known[revKey]
	if !ok {
		for name, e := range c.resources {
			if known[name] != e.version {
				send = append(send, name)
			}
		}
		for name := range known {
			if _, ok := c.resources[name]; !ok {
				removed = append(removed, name)
			}
		}
		return send, removed, nil
	}
	r, err := strconv.ParseUint(rev, 10, 64)
	if err != nil || r < c.floor {
		return nil, nil, errTooFarBehind
	}
	seen := map[string]bool{}
	for _, ch := range c.log[sort.Search(len(c.log), func(i int) bool { return c.log[i].rev > r }):] {
		if !seen[ch.name] {
			seen[ch.name] = true
			add(ch.name)
		}
	}
	for name, v := range known {
		if name == revKey || seen[name] {
			continue
		}
		if e, ok := c.resources[name]; !ok || e.version != v {
			seen[name] = true
			add(name)
		}
	}
	return send, removed, nil
}

// namedChanges is LinearCache's answer to a subscription by name: the
// subscribed resources the subscriber does not hold at their version, and
// the names it holds that are gone or no longer subscribed.
func (c *encodedCache) namedChanges(known map[string]string, subscribed map[string]struct{}) (send, removed []string, next map[string]string) {
	for name := range subscribed {
		e, ok := c.resources[name]
		v, held := known[name]
		switch {
		case ok && (!held || v != e.version):
			send = append(send, name)
		case !ok && held:
			removed = append(removed, name)
		}
	}
	for name := range known {
		if _, ok := subscribed[name]; !ok {
			removed = append(removed, name)
		}
	}
	// Every update asks each watch of the type (a waypoint each): most
	// lack nothing, and are answered without a copy of what they hold.
	if len(send) == 0 && len(removed) == 0 {
		return nil, nil, known
	}
	next = maps.Clone(known)
	for _, name := range send {
		next[name] = c.resources[name].version
	}
	for _, name := range removed {
		delete(next, name)
	}
	return send, removed, next
}

// CreateWatch refuses state-of-the-world subscriptions: the server speaks
// delta xDS only.
func (c *encodedCache) CreateWatch(*cache.Request, cache.Subscription, chan cache.Response) (func(), error) {
	return nil, fmt.Errorf("%s is served over delta xDS only", c.typeURL)
}

// Fetch is not supported either.
func (c *encodedCache) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, fmt.Errorf("%s is served over delta xDS only", c.typeURL)
}

// wcResponse is one response, built when the stream sends it (on the
// stream's goroutine, out of the cache's lock: a first response carries
// the whole type).
type wcResponse struct {
	req      *cache.DeltaRequest
	typeURL  string
	system   string
	names    []string
	entries  []*wcEntry
	full     *fullSet // instead of names and entries: everything, shared
	removed  []string
	next     map[string]string
	limit    *sendLimiter // for a big response; nil for others
	stream   any          // the stream it is for, for limit
	once     sync.Once
	response *discovery.DeltaDiscoveryResponse
}

func (r *wcResponse) GetDeltaDiscoveryResponse() (*discovery.DeltaDiscoveryResponse, error) {
	r.once.Do(func() {
		if r.limit != nil {
			r.limit.acquire(r.stream)
			defer func() { r.limit.hand(r.response, r.stream) }()
		}
		var res []*discovery.Resource
		if r.full != nil {
			// Shared with other streams' responses: the server only
			// sets the nonce of its own message, and encoding reads.
			res = r.full.build(r.typeURL)
		} else {
			res = make([]*discovery.Resource, len(r.names))
			for i, name := range r.names {
				e := r.entries[i]
				res[i] = &discovery.Resource{Name: name, Version: e.version, Resource: &anypb.Any{TypeUrl: r.typeURL, Value: e.bytes}}
			}
		}
		r.response = &discovery.DeltaDiscoveryResponse{
			Resources: res, RemovedResources: r.removed, TypeUrl: r.typeURL, SystemVersionInfo: r.system,
		}
	})
	return r.response, nil
}

func (r *wcResponse) GetDeltaRequest() *discovery.DeltaDiscoveryRequest { return r.req }
func (r *wcResponse) GetSystemVersion() (string, error)                 { return r.system, nil }
func (r *wcResponse) GetResponseVersion() string                        { return r.system }
func (r *wcResponse) GetNextVersionMap() map[string]string              { return r.next }
func (r *wcResponse) GetReturnedResources() map[string]string           { return r.next }
func (r *wcResponse) GetContext() context.Context                       { return context.Background() }
