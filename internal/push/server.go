package push

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/delta/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Types are the resource type URLs that proxies subscribe to by name
	// (e.g. wire.WaypointType).
	Types []string
	// WildcardTypes are more types served, that proxies subscribe to whole
	// (wire.ZtunnelTypes). Both kinds are served from a cache of encoded
	// resources whose cost per change and per subscriber does not grow
	// with the type's size (see encodedCache); a wildcard type's versions
	// are shorter, for its subscribers hold tens of thousands.
	WildcardTypes []string
	// AckTimeout is how long a proxy may leave a response unanswered before
	// it is disconnected to resync; 0 means 30s.
	AckTimeout time.Duration
	// Logf receives connections, NACKs and disconnections; nil discards.
	Logf func(format string, args ...any)
	// Metrics, if set, counts pushes, rejections and connected proxies.
	Metrics *Metrics
}

// Server is the delta ADS server. Set resources with SetResources; proxies
// subscribe to them by name, or to every resource of a type ("*").
type Server struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer

	opts    ServerOptions
	types   map[string]*typeCache
	delta   delta.Server
	tracker *tracker
	cancel  context.CancelFunc
	limit   *sendLimiter

	mu   sync.Mutex
	grpc *grpc.Server

	// running counts the watchdog and the streams' handler goroutines, which
	// can outlive the gRPC handler that started them; Stop waits for them so
	// nothing logs or counts after the server is stopped.
	running sync.WaitGroup
}

// wildcardVersionLen is how many hex digits of a resource's hash make its
// version, for a wildcard type.
const wildcardVersionLen = 16

// typeCache is one resource type's cache and what the server knows of it.
// Each type has locks of its own so that a slow update of one (the
// ztunnel types' tens of thousands of resources, which the cache compares
// for every wildcard subscriber) never holds up another's (a waypoint's
// configuration).
type typeCache struct {
	cache *encodedCache
	gate  *gatedCache
	// wildcard: subscribed whole (short versions).
	wildcard bool
	// write serializes the writers of the type; readers of versions
	// (status) take only vmu, for a moment, never waiting for a cache
	// update to finish.
	write    sync.Mutex
	vmu      sync.RWMutex
	versions map[string]string // name → version (hash of the bytes)
	// version mirrors the cache's revision, which it puts in each
	// response's system_version_info: the number of updates that changed
	// something. A wildcard subscriber that ACKed a response of this
	// version holds every resource of the type as it is now.
	version atomic.Uint64
}

// NewServer returns a server with no resources.
func NewServer(opts ServerOptions) *Server {
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 30 * time.Second
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{opts: opts, types: map[string]*typeCache{}, cancel: cancel, limit: newSendLimiter(bigSendsAtOnce)}
	mux := &cache.MuxCache{
		Classify:      func(r *cache.Request) string { return r.GetTypeUrl() },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return r.GetTypeUrl() },
		Caches:        map[string]cache.Cache{},
	}
	serve := func(t string, wildcard bool) {
		// The log outlives any revision a connected proxy can hold (see
		// encodedCache.retention).
		c := newEncodedCache(t, max(4*opts.AckTimeout, time.Minute), s.limit)
		tc := &typeCache{cache: c, gate: newGatedCache(c), wildcard: wildcard, versions: map[string]string{}}
		s.types[t] = tc
		mux.Caches[t] = tc.gate
	}
	for _, t := range opts.Types {
		serve(t, false)
	}
	for _, t := range opts.WildcardTypes {
		serve(t, true)
	}
	s.tracker = newTracker(opts.Logf, opts.Metrics, s.currentVersion, s.typeVersion)
	s.tracker.limit = s.limit
	// Legacy wildcard off: a proxy gets exactly what it names, or every
	// resource of a type when it names "*" (a ztunnel), never "everything"
	// for a request that names nothing.
	s.delta = delta.NewServer(ctx, mux, s.tracker, delta.DeactivateLegacyWildcard())
	s.running.Go(func() { s.watchdog(ctx) })
	return s
}

// Resources yields resources keyed by name, for SetResources and
// UpdateResources. The server encodes each as it is yielded and keeps only
// the bytes, so a caller that builds each message when asked for it holds
// one decoded message at a time: a ztunnel's first push is 55,000 of them,
// four times their encoded size, and building them all first made meshd's
// peak memory. maps.All turns a map into Resources.
type Resources = iter.Seq2[string, proto.Message]

// SetResources makes the resources of type typeURL exactly those given,
// keyed by name. Only resources whose bytes changed are updated in the cache,
// so only the proxies subscribed to them receive anything. It reports how
// many resources changed (added, modified or removed).
func (s *Server) SetResources(typeURL string, resources Resources) (int, error) {
	return s.update(typeURL, resources, nil, true)
}

// UpdateResources changes only the resources named: those in set are added
// or replaced (as by SetResources, only when their bytes changed), those in
// remove deleted (a name in both is deleted); the others stay as they are.
// A caller that knows what may have changed saves encoding and hashing
// every resource, which SetResources must do to find the changes. It
// reports how many resources changed. set may be nil.
func (s *Server) UpdateResources(typeURL string, set Resources, remove []string) (int, error) {
	return s.update(typeURL, set, remove, false)
}

// update is SetResources (all: the resources not in set are removed) and
// UpdateResources.
func (s *Server) update(typeURL string, set Resources, remove []string, all bool) (int, error) {
	tc, ok := s.types[typeURL]
	if !ok {
		return 0, fmt.Errorf("push: resource type %q is not served", typeURL)
	}
	tc.write.Lock()
	defer tc.write.Unlock()
	// Only writers change versions, and they hold write: reading it
	// without vmu is safe here.
	known := tc.versions
	removed := map[string]bool{}
	for _, name := range remove {
		if _, ok := known[name]; ok {
			removed[name] = true
		}
	}
	// The resources that changed, encoded: the cache keeps bytes, a
	// quarter of the decoded messages' size (a waypoint's configuration
	// of 25 KiB is 100 KiB of Go structs).
	encoded := map[string]*wcEntry{}
	versions := map[string]string{}
	if all {
		versions = make(map[string]string, len(known))
	}
	var encodeErr error
	for name, msg := range orNone(set) {
		if removed[name] {
			continue
		}
		b, err := cache.MarshalResource(msg)
		if err != nil {
			encodeErr = fmt.Errorf("push: encoding %s %q: %w", typeURL, name, err)
			break
		}
		v := cache.HashResource(b)
		if tc.wildcard {
			// 64 bits tell a resource's versions apart as well as 256 do,
			// and a ztunnel's first responses carry 55,000 of them: 2.6 MB
			// less each.
			v = strings.Clone(v[:wildcardVersionLen])
		}
		versions[name] = v
		if known[name] == v {
			continue
		}
		encoded[name] = &wcEntry{bytes: b, version: v}
	}
	if encodeErr != nil {
		return 0, encodeErr
	}
	if all {
		for name := range known {
			if _, ok := versions[name]; !ok {
				removed[name] = true
			}
		}
	}
	if len(encoded) == 0 && len(removed) == 0 {
		return 0, tc.openGate(typeURL)
	}
	del := make([]string, 0, len(removed))
	for name := range removed {
		del = append(del, name)
	}
	// The cache's version moves with this call; count it first, so that a
	// response it triggers is never newer than what status calls current.
	tc.version.Add(1)
	tc.cache.update(encoded, del)
	tc.vmu.Lock()
	if all {
		tc.versions = versions
	} else {
		for name, v := range versions {
			known[name] = v
		}
		for _, name := range del {
			delete(known, name)
		}
	}
	tc.vmu.Unlock()
	return len(encoded) + len(del), tc.openGate(typeURL)
}

// orNone is set, or nothing when it is nil.
func orNone(set Resources) Resources {
	if set == nil {
		return func(func(string, proto.Message) bool) {}
	}
	return set
}

// openGate lets the type's subscribers through once it has been set (see
// gatedCache).
func (tc *typeCache) openGate(typeURL string) error {
	if err := tc.gate.open(); err != nil {
		return fmt.Errorf("push: serving %s: %w", typeURL, err)
	}
	return nil
}

// currentVersion is the version of a resource the proxies should have (""
// if none).
func (s *Server) currentVersion(typeURL, name string) string {
	tc := s.types[typeURL]
	if tc == nil {
		return ""
	}
	tc.vmu.RLock()
	defer tc.vmu.RUnlock()
	return tc.versions[name]
}

// typeVersion is the version of a whole type (see typeCache.version).
func (s *Server) typeVersion(typeURL string) uint64 {
	if tc := s.types[typeURL]; tc != nil {
		return tc.version.Load()
	}
	return 0
}

// Serve answers xDS on ln until Stop. It registers the aggregated discovery
// service on a gRPC server of its own.
func (s *Server) Serve(ln net.Listener) error {
	g := grpc.NewServer(
		// Find proxies that vanished without closing their connection.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	s.Register(g)
	s.mu.Lock()
	s.grpc = g
	s.mu.Unlock()
	if err := g.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("push: serving xDS on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Register adds the aggregated discovery service to a gRPC server the
// caller runs (to share it with other services).
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, s)
}

// Stop closes every stream and the listener given to Serve.
func (s *Server) Stop() {
	s.cancel()
	s.mu.Lock()
	g := s.grpc
	s.mu.Unlock()
	if g != nil {
		g.Stop()
	}
	s.running.Wait()
}

// Status lists the connected proxies, sorted by name.
func (s *Server) Status() []ProxyStatus {
	out := s.tracker.status()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// DeltaAggregatedResources serves one proxy's stream. The stream runs on a
// goroutine of its own so that a proxy found too slow can be cut off here:
// returning ends the gRPC stream, which unblocks that goroutine's Send or
// Recv.
func (s *Server) DeltaAggregatedResources(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	// The tracker finds the way to cut the stream off in its context.
	gs := &guardedStream{DeltaStream: stream, ctx: context.WithValue(ctx, abortKey{}, cancel)}
	errc := make(chan error, 1)
	s.running.Go(func() { errc <- s.delta.DeltaStreamHandler(gs, resource.AnyType) })
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return status.Error(codes.Unavailable, cause.Error())
		}
		return nil
	}
}

// guardedStream refuses to Send once the handler has given the stream up,
// so go-control-plane's goroutine never writes to a finished gRPC stream.
type guardedStream struct {
	stream.DeltaStream
	ctx context.Context
}

func (g *guardedStream) Context() context.Context { return g.ctx }

func (g *guardedStream) Send(r *discovery.DeltaDiscoveryResponse) error {
	if err := g.ctx.Err(); err != nil {
		return err
	}
	return g.DeltaStream.Send(r)
}

// abortKey holds, in a stream's context, the context.CancelCauseFunc that
// ends it.
type abortKey struct{}

// watchdog disconnects proxies that leave a response unanswered too long.
func (s *Server) watchdog(ctx context.Context) {
	t := time.NewTicker(s.opts.AckTimeout / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.tracker.abortSlow(now, s.opts.AckTimeout)
		}
	}
}
