package push

import (
	"context"
	"fmt"
	"sort"
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

type resKey struct{ typeURL, name string }

type sentResponse struct {
	typeURL  string
	versions map[string]string // name → version
	at       time.Time
}

type streamState struct {
	node       client.NodeInfo
	identified bool
	peer       string
	connected  time.Time
	abort      context.CancelCauseFunc
	inflight   map[string]sentResponse // nonce → what it carried
	resources  map[resKey]*ResourceStatus
}

// tracker follows every stream's subscriptions, responses, ACKs and NACKs.
// It implements go-control-plane's delta callbacks.
type tracker struct {
	logf    func(format string, args ...any)
	metrics *Metrics
	current func(typeURL, name string) string

	mu      sync.Mutex
	streams map[int64]*streamState
}

func newTracker(logf func(string, ...any), m *Metrics, current func(string, string) string) *tracker {
	return &tracker{logf: logf, metrics: m, current: current, streams: map[int64]*streamState{}}
}

func (t *tracker) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	st := &streamState{connected: time.Now(), inflight: map[string]sentResponse{}, resources: map[resKey]*ResourceStatus{}}
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
		k := resKey{typ, name}
		if st.resources[k] == nil {
			st.resources[k] = &ResourceStatus{Type: typ, Name: name}
		}
	}
	for name, v := range req.GetInitialResourceVersions() {
		// What the proxy kept from an earlier stream counts as ACKed.
		if r := st.resources[resKey{typ, name}]; r != nil {
			r.Sent, r.Acked = v, v
		}
	}
	for _, name := range req.GetResourceNamesUnsubscribe() {
		delete(st.resources, resKey{typ, name})
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
	if e := req.GetErrorDetail(); e != nil {
		t.metrics.rejected(sent.typeURL)
		for name, v := range sent.versions {
			if r := st.resources[resKey{sent.typeURL, name}]; r != nil {
				r.Nacked, r.Error = v, e.GetMessage()
			}
		}
		t.logf("xds: %s rejected %s %s: %s", st.node, shortType(sent.typeURL), names(sent.versions), e.GetMessage())
		return nil
	}
	for name, v := range sent.versions {
		if r := st.resources[resKey{sent.typeURL, name}]; r != nil {
			r.Acked, r.Nacked, r.Error = v, "", ""
		}
	}
	t.metrics.acked(sent.typeURL, time.Since(sent.at))
	return nil
}

func (t *tracker) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	now := time.Now()
	sent := sentResponse{typeURL: resp.GetTypeUrl(), versions: map[string]string{}, at: now}
	for _, r := range resp.GetResources() {
		sent.versions[r.GetName()] = r.GetVersion()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[id]
	if st == nil {
		return
	}
	st.inflight[resp.GetNonce()] = sent
	for name, v := range sent.versions {
		if r := st.resources[resKey{sent.typeURL, name}]; r != nil {
			r.Sent, r.SentAt = v, now
		}
	}
	for _, name := range resp.GetRemovedResources() {
		if r := st.resources[resKey{sent.typeURL, name}]; r != nil {
			r.Sent, r.Acked, r.Nacked, r.Error = "", "", "", ""
		}
	}
	t.metrics.pushed(sent.typeURL)
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
			err := fmt.Errorf("%s left %s %s unanswered for %s: disconnected, so that it reconnects and resyncs",
				st.node, shortType(sent.typeURL), names(sent.versions), now.Sub(sent.at).Round(time.Millisecond))
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
