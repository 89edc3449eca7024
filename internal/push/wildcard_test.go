package push

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshway/meshway/internal/push/client"
)

// A second type for the tests of several types on one stream.
const intType = "type.googleapis.com/google.protobuf.Int64Value"

// deltaRecorder is a ztunnel-like proxy's side: it applies whole responses
// of any type, keeps the values, and rejects a response holding "bad".
type deltaRecorder struct {
	mu     sync.Mutex
	deltas []client.Delta
	values map[string]map[string]string // type → name → value
}

func newDeltaRecorder() *deltaRecorder {
	return &deltaRecorder{values: map[string]map[string]string{stringType: {}, intType: {}}}
}

func valueOf(m proto.Message) string {
	switch v := m.(type) {
	case *wrapperspb.StringValue:
		return v.GetValue()
	case *wrapperspb.Int64Value:
		return fmt.Sprint(v.GetValue())
	}
	return fmt.Sprintf("%T", m)
}

func (d *deltaRecorder) Apply(delta client.Delta) error {
	for _, r := range slices.Concat(delta.Added, delta.Updated) {
		if valueOf(r.Message) == "bad" {
			return fmt.Errorf("%s: value \"bad\" is not allowed", r.Name)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deltas = append(d.deltas, delta)
	for _, r := range slices.Concat(delta.Added, delta.Updated) {
		d.values[delta.TypeURL][r.Name] = valueOf(r.Message)
	}
	for _, name := range delta.Removed {
		delete(d.values[delta.TypeURL], name)
	}
	return nil
}

func (d *deltaRecorder) value(typ, name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.values[typ][name]
}

// since returns the deltas after the first n, as "Type added=[..] updated=[..] removed=[..]",
// leaving out the empty ones (the server's answer to a subscription with
// nothing to send).
func (d *deltaRecorder) since(n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, x := range d.deltas[n:] {
		if len(x.Added)+len(x.Updated)+len(x.Removed) == 0 {
			continue
		}
		names := func(rs []client.Resource) []string {
			var ns []string
			for _, r := range rs {
				ns = append(ns, r.Name)
			}
			slices.Sort(ns)
			return ns
		}
		removed := slices.Sorted(slices.Values(x.Removed))
		out = append(out, fmt.Sprintf("%s added=%v updated=%v removed=%v", shortType(x.TypeURL), names(x.Added), names(x.Updated), removed))
	}
	return out
}

func (d *deltaRecorder) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.deltas)
}

// forEachCache runs a test with the two types served as types subscribed
// by name (as the waypoints' type is) and as wildcard types (as the
// ztunnels' types are); serve sets the types in the test's ServerOptions.
func forEachCache(t *testing.T, test func(t *testing.T, serve func(ServerOptions) ServerOptions)) {
	t.Run("Types", func(t *testing.T) {
		test(t, func(o ServerOptions) ServerOptions { o.Types = []string{stringType, intType}; return o })
	})
	t.Run("WildcardTypes", func(t *testing.T) {
		test(t, func(o ServerOptions) ServerOptions {
			o.Types, o.WildcardTypes = []string{}, []string{stringType, intType}
			return o
		})
	})
}

var ztunnelNode = client.NodeInfo{Kind: client.KindZtunnel, Namespace: "istio-system", Name: "ztunnel", Instance: "ztunnel-a", Node: "node-a"}

func startWildcardClient(t *testing.T, addr string, h client.DeltaHandler) *client.Client {
	t.Helper()
	c := client.New(client.Options{
		Address: addr, Node: ztunnelNode, Logf: t.Logf,
		Subscriptions: []client.Subscription{
			{TypeURL: stringType, Names: []string{client.Wildcard}, Delta: h},
			{TypeURL: intType, Names: []string{client.Wildcard}, Delta: h},
		},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func setInts(t *testing.T, s *Server, kv map[string]int64) {
	t.Helper()
	res := map[string]proto.Message{}
	for k, v := range kv {
		res[k] = wrapperspb.Int64(v)
	}
	if _, err := s.SetResources(intType, maps.All(res)); err != nil {
		t.Fatal(err)
	}
}

// typeState finds a type's state on the proxy with the given instance.
func typeStateOf(s *Server, instance, typ string) TypeStatus {
	for _, p := range s.Status() {
		if p.Proxy.Instance != instance {
			continue
		}
		for _, ts := range p.Types {
			if ts.Type == typ {
				return ts
			}
		}
	}
	return TypeStatus{}
}

// TestWildcardTypesOnOneStream: one stream carries two types, each
// subscribed whole; the handler learns per type what was added, updated
// and removed, and only that is sent.
func TestWildcardTypesOnOneStream(t *testing.T) { forEachCache(t, testWildcardTypesOnOneStream) }

func testWildcardTypesOnOneStream(t *testing.T, serve func(ServerOptions) ServerOptions) {
	s, addr := startServer(t, "127.0.0.1:0", serve(ServerOptions{}))
	set(t, s, map[string]string{"a": "a1", "b": "b1"})
	setInts(t, s, map[string]int64{"x": 1})
	d := newDeltaRecorder()
	startWildcardClient(t, addr, d)
	waitFor(t, "both types", func() bool { return d.value(stringType, "b") == "b1" && d.value(intType, "x") == "1" })
	waitFor(t, "both types SYNCED", func() bool {
		return typeStateOf(s, "ztunnel-a", stringType).State == Synced && typeStateOf(s, "ztunnel-a", intType).State == Synced
	})
	got := d.since(0)
	slices.Sort(got)
	if want := []string{"Int64Value added=[x] updated=[] removed=[]", "StringValue added=[a b] updated=[] removed=[]"}; !slices.Equal(got, want) {
		t.Errorf("first responses: %q, want %q", got, want)
	}
	if ps := s.Status(); len(ps) != 1 || len(ps[0].Resources) != 0 || len(ps[0].Types) != 2 {
		t.Fatalf("status %+v: want one proxy tracked by type only", ps)
	}

	n := d.count()
	set(t, s, map[string]string{"a": "a2", "b": "b1", "c": "c1"})
	waitFor(t, "a2 and c1", func() bool { return d.value(stringType, "a") == "a2" && d.value(stringType, "c") == "c1" })
	set(t, s, map[string]string{"a": "a2", "c": "c1"})
	waitFor(t, "b removed", func() bool { return d.value(stringType, "b") == "" })
	waitFor(t, "SYNCED", func() bool { return typeStateOf(s, "ztunnel-a", stringType).State == Synced })
	want := []string{"StringValue added=[c] updated=[a] removed=[]", "StringValue added=[] updated=[] removed=[b]"}
	if got := d.since(n); !slices.Equal(got, want) {
		t.Errorf("after two changes of one type: %q, want %q", got, want)
	}
	if ts := typeStateOf(s, "ztunnel-a", stringType); ts.Current != ts.Acked || ts.SentResources != 0 {
		t.Errorf("string type state %+v: want acked = current, and the last response (a removal) carrying no resource", ts)
	}
}

// TestWildcardNackIsShownPerType: a rejected response marks its type
// NACKED with the proxy's reason, the other type stays SYNCED, and an
// accepted response of other resources does not hide the rejection.
func TestWildcardNackIsShownPerType(t *testing.T) { forEachCache(t, testWildcardNackIsShownPerType) }

func testWildcardNackIsShownPerType(t *testing.T, serve func(ServerOptions) ServerOptions) {
	reg := prometheus.NewRegistry()
	s, addr := startServer(t, "127.0.0.1:0", serve(ServerOptions{Metrics: NewMetrics(reg)}))
	set(t, s, map[string]string{"a": "a1"})
	setInts(t, s, map[string]int64{"x": 1})
	d := newDeltaRecorder()
	startWildcardClient(t, addr, d)
	waitFor(t, "SYNCED", func() bool { return typeStateOf(s, "ztunnel-a", stringType).State == Synced })

	set(t, s, map[string]string{"a": "bad"})
	waitFor(t, "NACKED", func() bool { return typeStateOf(s, "ztunnel-a", stringType).State == Nacked })
	ts := typeStateOf(s, "ztunnel-a", stringType)
	if !strings.Contains(ts.Error, `a: value "bad" is not allowed`) || ts.Rejected != 1 {
		t.Errorf("NACKED state %+v: want the proxy's reason and one rejected resource", ts)
	}
	if st := typeStateOf(s, "ztunnel-a", intType).State; st != Synced {
		t.Errorf("the other type is %s, want %s", st, Synced)
	}
	if d.value(stringType, "a") != "a1" {
		t.Errorf("the proxy lost its good value: %q", d.value(stringType, "a"))
	}
	if got := testutil.ToFloat64(s.opts.Metrics.rejects.WithLabelValues("StringValue")); got != 1 {
		t.Errorf("pilot_total_xds_rejects = %v, want 1", got)
	}

	// Another resource of the type, accepted: "a" is still rejected.
	set(t, s, map[string]string{"a": "bad", "b": "b1"})
	waitFor(t, "b1", func() bool { return d.value(stringType, "b") == "b1" })
	waitFor(t, "b's ACK", func() bool {
		return typeStateOf(s, "ztunnel-a", stringType).Acked == typeStateOf(s, "ztunnel-a", stringType).Current
	})
	if st := typeStateOf(s, "ztunnel-a", stringType).State; st != Nacked {
		t.Errorf("after an ACK of another resource: %s, want %s (a is still rejected)", st, Nacked)
	}

	set(t, s, map[string]string{"a": "fixed", "b": "b1"})
	waitFor(t, "SYNCED after the fix", func() bool { return typeStateOf(s, "ztunnel-a", stringType).State == Synced })
	if ts := typeStateOf(s, "ztunnel-a", stringType); ts.Error != "" || ts.Rejected != 0 {
		t.Errorf("state %+v after the fix: want no error", ts)
	}
}

// TestWildcardReconnectSendsOnlyChanges: a proxy reconnecting to a new
// control plane names the versions it holds, per type; it waits (keeping
// what it has) until the new control plane has set the types, then gets
// only what differs.
func TestWildcardReconnectSendsOnlyChanges(t *testing.T) {
	forEachCache(t, testWildcardReconnectSendsOnlyChanges)
}

func testWildcardReconnectSendsOnlyChanges(t *testing.T, serve func(ServerOptions) ServerOptions) {
	s1, addr := startServer(t, "127.0.0.1:0", serve(ServerOptions{}))
	set(t, s1, map[string]string{"a": "a1", "b": "b1", "c": "c1"})
	setInts(t, s1, map[string]int64{"x": 1})
	d := newDeltaRecorder()
	c := startWildcardClient(t, addr, d)
	waitFor(t, "everything", func() bool { return c.Held(stringType) == 3 && c.Held(intType) == 1 })

	s1.Stop()
	waitFor(t, "the client notices", func() bool { return !c.Connected() })
	s2, _ := startServer(t, addr, serve(ServerOptions{}))
	waitFor(t, "reconnected", func() bool { return len(s2.Status()) == 1 })
	// The new control plane has nothing yet: the proxy must not be told
	// that its resources are gone.
	time.Sleep(100 * time.Millisecond)
	n := d.count()
	if d.value(stringType, "a") != "a1" || c.Held(stringType) != 3 {
		t.Fatalf("before the new control plane set anything, the proxy lost resources: held %d", c.Held(stringType))
	}
	set(t, s2, map[string]string{"a": "a1", "b": "b2"}) // b changed, c gone
	setInts(t, s2, map[string]int64{"x": 1})
	waitFor(t, "both types SYNCED on the new server", func() bool {
		return typeStateOf(s2, "ztunnel-a", stringType).State == Synced && typeStateOf(s2, "ztunnel-a", intType).State == Synced
	})
	if got, want := d.since(n), []string{"StringValue added=[] updated=[b] removed=[c]"}; !slices.Equal(got, want) {
		t.Errorf("after reconnecting: %q, want %q (nothing unchanged sent again)", got, want)
	}
}

// TestSlowWildcardProxyIsDisconnected: the watchdog cuts off a stream that
// leaves a wildcard response unanswered, naming the type and version.
func TestSlowWildcardProxyIsDisconnected(t *testing.T) {
	forEachCache(t, testSlowWildcardProxyIsDisconnected)
}

func testSlowWildcardProxyIsDisconnected(t *testing.T, serve func(ServerOptions) ServerOptions) {
	s, addr := startServer(t, "127.0.0.1:0", serve(ServerOptions{AckTimeout: 200 * time.Millisecond}))
	set(t, s, map[string]string{"a": "a1"})
	setInts(t, s, nil)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: envoyNode(t, ztunnelNode), TypeUrl: stringType, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResources()) != 1 {
		t.Fatalf("first response carries %d resources, want 1", len(resp.GetResources()))
	}
	// A well-behaved ztunnel meanwhile gets its updates.
	d := newDeltaRecorder()
	startWildcardClient(t, addr, d)
	waitFor(t, "a1", func() bool { return d.value(stringType, "a") == "a1" })
	_, err = stream.Recv()
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "StringValue version 1 (1 resources) unanswered") {
		t.Fatalf("slow stream ended with %v, want Unavailable naming the unanswered response", err)
	}
}

// TestZtunnelMustNameItsNode: proxy-status lists ztunnels by node.
func TestZtunnelMustNameItsNode(t *testing.T) {
	_, addr := startServer(t, "127.0.0.1:0", ServerOptions{})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := ztunnelNode
	n.Node = ""
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: envoyNode(t, n), TypeUrl: stringType, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "metadata.node") {
		t.Fatalf("got %v, want InvalidArgument naming metadata.node", err)
	}
}

// TestDeltaHandlerErrorRecordsNoVersion: a rejected response leaves the
// client's versions as they were, so a reconnection asks for it again.
func TestDeltaHandlerErrorRecordsNoVersion(t *testing.T) {
	forEachCache(t, testDeltaHandlerErrorRecordsNoVersion)
}

func testDeltaHandlerErrorRecordsNoVersion(t *testing.T, serve func(ServerOptions) ServerOptions) {
	s, addr := startServer(t, "127.0.0.1:0", serve(ServerOptions{}))
	set(t, s, map[string]string{"a": "a1"})
	setInts(t, s, nil)
	d := newDeltaRecorder()
	c := startWildcardClient(t, addr, d)
	waitFor(t, "a1", func() bool { return d.value(stringType, "a") == "a1" })
	good := c.VersionOf(stringType, "a")
	set(t, s, map[string]string{"a": "bad", "b": "b1"})
	waitFor(t, "NACKED", func() bool { return typeStateOf(s, "ztunnel-a", stringType).State == Nacked })
	if v := c.VersionOf(stringType, "a"); v != good || c.Held(stringType) != 1 {
		t.Errorf("after a rejected response the client holds version %q of a and %d resources; want %q and 1", v, c.Held(stringType), good)
	}
	if d.value(stringType, "b") != "" {
		t.Errorf("b was applied from a rejected response")
	}
}

// TestBigResponseSlotsAreFreed: a big response's slot (sendLimiter) is
// freed by its ACK, and by the end of a stream that never answered it.
func TestBigResponseSlotsAreFreed(t *testing.T) {
	s, addr := startServer(t, "127.0.0.1:0", ServerOptions{Types: []string{}, WildcardTypes: []string{stringType, intType}})
	big := map[string]string{}
	for i := range bigResponse + 1 {
		big[fmt.Sprintf("r%04d", i)] = "v"
	}
	set(t, s, big)
	setInts(t, s, nil)
	held := func() int { return len(s.limit.slots) }

	// A stream that never answers, then goes away.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: envoyNode(t, ztunnelNode), TypeUrl: stringType, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || len(resp.GetResources()) != bigResponse+1 {
		t.Fatalf("first response: %v resources, %v", len(resp.GetResources()), err)
	}
	if held() != 1 {
		t.Errorf("%d slots held while the big response is unanswered, want 1", held())
	}
	conn.Close()
	waitFor(t, "the slot freed by the stream's end", func() bool { return held() == 0 })

	// A ztunnel that ACKs.
	d := newDeltaRecorder()
	c := startWildcardClient(t, addr, d)
	waitFor(t, "everything", func() bool { return c.Held(stringType) == bigResponse+1 })
	waitFor(t, "the slot freed by the ACK", func() bool { return held() == 0 })
}
