package push

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/meshway/meshway/internal/push/client"
)

// Sync states of one resource on one proxy, as proxy-status prints them
// (Istio's words).
const (
	Synced  = "SYNCED"   // the proxy ACKed the current version
	Stale   = "STALE"    // the proxy has not ACKed the current version yet
	NotSent = "NOT SENT" // nothing was sent: the control plane has no such resource yet
	Nacked  = "NACKED"   // the proxy rejected the version it was sent
)

// ProxyStatus is one connected proxy, as /debug/syncz and proxy-status show it.
type ProxyStatus struct {
	ID        string           `json:"id"`
	Proxy     client.NodeInfo  `json:"proxy"`
	Peer      string           `json:"peer,omitempty"`
	Connected time.Time        `json:"connected"`
	Resources []ResourceStatus `json:"resources"`
	// Types are the types the proxy subscribes to whole (a ztunnel's),
	// whose state is kept per type rather than per resource.
	Types []TypeStatus `json:"types,omitempty"`
}

// ResourceStatus is one subscribed resource on one proxy.
type ResourceStatus struct {
	Type    string    `json:"type"`
	Name    string    `json:"name"`
	Current string    `json:"current,omitempty"` // the version the control plane has
	Sent    string    `json:"sent,omitempty"`
	SentAt  time.Time `json:"sentAt,omitzero"`
	Acked   string    `json:"acked,omitempty"`
	Nacked  string    `json:"nacked,omitempty"`
	Error   string    `json:"error,omitempty"` // the proxy's reason for the last NACK
	State   string    `json:"state"`
}

func (r *ResourceStatus) state() string {
	switch {
	case r.Nacked != "" && r.Nacked == r.Sent && r.Acked != r.Current:
		return Nacked
	case r.Current == "" && r.Sent == "":
		return NotSent
	case r.Acked == r.Current:
		return Synced
	}
	return Stale
}

// wildcard is the resource name that subscribes to every resource of a
// type.
const wildcard = "*"

type resKey struct{ typeURL, name string }

type sentResponse struct {
	typeURL string
	// versions are a response's resources (name → version) on a stream
	// that subscribes to them by name.
	versions map[string]string
	// A response of a wildcard subscription: the type's version it brings
	// the proxy to, how many resources it carried and, when few, their
	// names and those it removed (see maxTrackedNames).
	wildcard bool
	system   uint64
	count    int
	names    []string
	at       time.Time
	// slot is the stream holding a sendLimiter slot for this response,
	// released when it is answered or the stream ends.
	slot    any
	hasSlot bool
}

// maxTrackedNames bounds the names a wildcard response's in-flight record
// and a type's rejected set keep, so that what the tracker holds per
// ztunnel does not grow with the mesh (a first push carries every
// resource of the type). Beyond it, a NACK counts against the whole type
// until the proxy reconnects.
const maxTrackedNames = 1024

// typeState is one wildcard subscription's state on one stream: per type,
// not per resource.
type typeState struct {
	sent, acked, nacked          uint64
	hasSent, hasAcked, hasNacked bool
	sentAt                       time.Time
	sentCount                    int
	err                          string // the proxy's reason for the last NACK
	// rejected are the resources the proxy refused and has not accepted
	// since (a later ACK of a response carrying them clears them);
	// rejectedAll says a refused response was too big to name them.
	rejected    map[string]bool
	rejectedAll bool
}

type streamState struct {
	node       client.NodeInfo
	identified bool
	peer       string
	connected  time.Time
	abort      context.CancelCauseFunc
	inflight   map[string]sentResponse // nonce → what it carried
	resources  map[resKey]*ResourceStatus
	named      map[string]int // type → how many resources of it are in resources
	types      map[string]*typeState
}

// tracker follows every stream's subscriptions, responses, ACKs and NACKs.
// It implements go-control-plane's delta callbacks. A subscription by name
// is tracked per resource (a waypoint's one configuration); a wildcard
// subscription per type (a ztunnel's tens of thousands of resources).
type tracker struct {
	logf        func(format string, args ...any)
	metrics     *Metrics
	current     func(typeURL, name string) string
	typeVersion func(typeURL string) uint64
	limit       *sendLimiter // nil: no big responses to account for

	mu      sync.Mutex
	streams map[int64]*streamState
}

func newTracker(logf func(string, ...any), m *Metrics, current func(string, string) string, typeVersion func(string) uint64) *tracker {
	return &tracker{logf: logf, metrics: m, current: current, typeVersion: typeVersion, streams: map[int64]*streamState{}}
}

func (t *tracker) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	st := &streamState{
		connected: time.Now(), inflight: map[string]sentResponse{}, resources: map[resKey]*ResourceStatus{},
		named: map[string]int{}, types: map[string]*typeState{},
	}
	st.abort, _ = ctx.Value(abortKey{}).(context.CancelCauseFunc)
	if p, ok := peer.FromContext(ctx); ok {
		st.peer = p.Addr.String()
	}
	t.mu.Lock()
	t.streams[id] = st
	t.mu.Unlock()
	return nil
}

func (t *tracker) OnDeltaStreamClosed(id int64, _ *core.Node) {
	t.mu.Lock()
	st := t.streams[id]
	delete(t.streams, id)
	t.mu.Unlock()
	if st != nil {
		for _, sent := range st.inflight {
			if sent.hasSlot {
				t.limit.release(sent.slot)
			}
		}
	}
	if st != nil && st.identified {
		t.metrics.disconnected()
		t.logf("xds: %s disconnected after %s", st.node, time.Since(st.connected).Round(time.Millisecond))
	}
}

func (t *tracker) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[id]
	if st == nil {
		return status.Error(codes.Internal, "stream not tracked")
	}
	if !st.identified {
		n, err := nodeInfo(req.GetNode())
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		st.node, st.identified = n, true
		t.metrics.connected()
		t.logf("xds: %s connected from %s (node %s)", n, st.peer, n.Node)
	}
	typ := req.GetTypeUrl()
	for _, name := range req.GetResourceNamesSubscribe() {
		if name == wildcard {
			if st.types[typ] == nil {
				st.types[typ] = &typeState{}
			}
			continue
		}
		k := resKey{typ, name}
		if st.resources[k] == nil {
			st.resources[k] = &ResourceStatus{Type: typ, Name: name}
			st.named[typ]++
		}
	}
	for name, v := range req.GetInitialResourceVersions() {
		// What the proxy kept from an earlier stream counts as ACKed. (A
		// wildcard subscription's first response, which the server always
		// sends, says whether it is current.)
		if r := st.resources[resKey{typ, name}]; r != nil {
			r.Sent, r.Acked = v, v
		}
	}
	for _, name := range req.GetResourceNamesUnsubscribe() {
		if name == wildcard {
			delete(st.types, typ)
			continue
		}
		if _, ok := st.resources[resKey{typ, name}]; ok {
			delete(st.resources, resKey{typ, name})
			st.named[typ]--
		}
	}
	nonce := req.GetResponseNonce()
	if nonce == "" {
		return nil
	}
	sent, ok := st.inflight[nonce]
	if !ok {
		return nil // an answer to a response already superseded
	}
	delete(st.inflight, nonce)
	if sent.hasSlot {
		t.limit.release(sent.slot)
	}
	if e := req.GetErrorDetail(); e != nil {
		t.metrics.rejected(sent.typeURL)
		for name, v := range sent.versions {
			if r := st.resources[resKey{sent.typeURL, name}]; r != nil {
				r.Nacked, r.Error = v, e.GetMessage()
			}
		}
		if ts := st.types[sent.typeURL]; ts != nil && sent.wildcard {
			ts.nack(sent, e.GetMessage())
		}
		t.logf("xds: %s rejected %s: %s", st.node, sent.describe(), e.GetMessage())
		return nil
	}
	for name, v := range sent.versions {
		if r := st.resources[resKey{sent.typeURL, name}]; r != nil {
			r.Acked, r.Nacked, r.Error = v, "", ""
		}
	}
	if ts := st.types[sent.typeURL]; ts != nil && sent.wildcard {
		ts.ack(sent)
	}
	t.metrics.acked(sent.typeURL, time.Since(sent.at))
	return nil
}

// nack records a refused wildcard response.
func (ts *typeState) nack(sent sentResponse, msg string) {
	ts.nacked, ts.hasNacked, ts.err = sent.system, true, msg
	if sent.names == nil && sent.count > 0 {
		ts.rejectedAll = true
		return
	}
	if ts.rejected == nil {
		ts.rejected = map[string]bool{}
	}
	for _, name := range sent.names {
		ts.rejected[name] = true
	}
	if len(ts.rejected) > maxTrackedNames {
		ts.rejected, ts.rejectedAll = nil, true
	}
}

// ack records an accepted wildcard response: the resources it carried or
// removed are no longer rejected.
func (ts *typeState) ack(sent sentResponse) {
	ts.acked, ts.hasAcked = sent.system, true
	for _, name := range sent.names {
		delete(ts.rejected, name)
	}
	if len(ts.rejected) == 0 && !ts.rejectedAll {
		ts.hasNacked, ts.err = false, ""
	}
}

func (t *tracker) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	now := time.Now()
	typ := resp.GetTypeUrl()
	slot, hasSlot := t.limit.claim(resp)
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[id]
	if st == nil {
		if hasSlot {
			t.limit.release(slot)
		}
		return
	}
	sent := sentResponse{typeURL: typ, at: now, count: len(resp.GetResources()) + len(resp.GetRemovedResources()), slot: slot, hasSlot: hasSlot}
	if ts := st.types[typ]; ts != nil {
		sent.wildcard = true
		// The cache's version, which Server.typeVersion mirrors.
		sent.system, _ = strconv.ParseUint(resp.GetSystemVersionInfo(), 10, 64)
		if sent.count <= maxTrackedNames {
			sent.names = make([]string, 0, sent.count)
			for _, r := range resp.GetResources() {
				sent.names = append(sent.names, r.GetName())
			}
			sent.names = append(sent.names, resp.GetRemovedResources()...)
		}
		ts.sent, ts.hasSent, ts.sentAt, ts.sentCount = sent.system, true, now, len(resp.GetResources())
	}
	// Resources of the type also subscribed by name (none for a ztunnel
	// today) keep their own state.
	if st.named[typ] > 0 {
		sent.versions = map[string]string{}
		for _, r := range resp.GetResources() {
			if res := st.resources[resKey{typ, r.GetName()}]; res != nil {
				sent.versions[r.GetName()] = r.GetVersion()
				res.Sent, res.SentAt = r.GetVersion(), now
			}
		}
		for _, name := range resp.GetRemovedResources() {
			if r := st.resources[resKey{typ, name}]; r != nil {
				r.Sent, r.Acked, r.Nacked, r.Error = "", "", "", ""
			}
		}
	}
	st.inflight[resp.GetNonce()] = sent
	t.metrics.pushed(typ)
}

// describe names what a response carried, for logs.
func (s sentResponse) describe() string {
	if s.wildcard {
		return fmt.Sprintf("%s version %d (%d resources)", shortType(s.typeURL), s.system, s.count)
	}
	return shortType(s.typeURL) + " " + names(s.versions)
}

// abortSlow disconnects every proxy holding a response unanswered for longer
// than timeout.
func (t *tracker) abortSlow(now time.Time, timeout time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, st := range t.streams {
		for _, sent := range st.inflight {
			if now.Sub(sent.at) < timeout || st.abort == nil {
				continue
			}
			err := fmt.Errorf("%s left %s unanswered for %s: disconnected, so that it reconnects and resyncs",
				st.node, sent.describe(), now.Sub(sent.at).Round(time.Millisecond))
			t.logf("xds: %v", err)
			t.metrics.slow()
			st.abort(err)
			break
		}
	}
}

func (t *tracker) status() []ProxyStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ProxyStatus, 0, len(t.streams))
	for _, st := range t.streams {
		if !st.identified {
			continue
		}
		ps := ProxyStatus{ID: st.node.ID(), Proxy: st.node, Peer: st.peer, Connected: st.connected}
		for _, r := range st.resources {
			c := *r
			c.Current = t.current(c.Type, c.Name)
			c.State = c.state()
			ps.Resources = append(ps.Resources, c)
		}
		sort.Slice(ps.Resources, func(i, j int) bool {
			a, b := ps.Resources[i], ps.Resources[j]
			return a.Type < b.Type || a.Type == b.Type && a.Name < b.Name
		})
		for typ, ts := range st.types {
			ps.Types = append(ps.Types, ts.status(typ, t.typeVersion(typ)))
		}
		sort.Slice(ps.Types, func(i, j int) bool { return ps.Types[i].Type < ps.Types[j].Type })
		out = append(out, ps)
	}
	return out
}

// shortType is the message name of a type URL, for logs and metric labels.
func shortType(typeURL string) string {
	return typeURL[strings.LastIndexByte(typeURL, '.')+1:]
}

func names(versions map[string]string) string {
	var ns []string
	for n, v := range versions {
		ns = append(ns, n+"@"+ShortVersion(v))
	}
	sort.Strings(ns)
	return strings.Join(ns, ", ")
}

// ShortVersion abbreviates a version (a SHA-256 in hex) for display.
func ShortVersion(v string) string { return client.ShortVersion(v) }
