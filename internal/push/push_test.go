package push

import (
	"context"
	"errors"
	"maps"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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

// The push layer is independent of what it carries: these tests push
// StringValues.
const stringType = "type.googleapis.com/google.protobuf.StringValue"

// recorder is a proxy's side: it keeps what it accepted and rejects "bad".
type recorder struct {
	mu      sync.Mutex
	values  map[string]string
	updates int
	removed int
	changed chan struct{}
}

func newRecorder() *recorder {
	return &recorder{values: map[string]string{}, changed: make(chan struct{}, 100)}
}

func (r *recorder) Update(name, _ string, msg proto.Message) error {
	v := msg.(*wrapperspb.StringValue).GetValue()
	if v == "bad" {
		return errors.New("value \"bad\" is not allowed")
	}
	r.mu.Lock()
	r.values[name] = v
	r.updates++
	r.mu.Unlock()
	r.changed <- struct{}{}
	return nil
}

func (r *recorder) Remove(name string) {
	r.mu.Lock()
	delete(r.values, name)
	r.removed++
	r.mu.Unlock()
	r.changed <- struct{}{}
}

func (r *recorder) value(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.values[name]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.updates
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// envoyNode is the node a meshway proxy sends, decoded as Envoy's: the
// proxies' lean messages (meshpb.XdsNode) must be Envoy's on the wire.
func envoyNode(t *testing.T, n client.NodeInfo) *core.Node {
	t.Helper()
	b, err := proto.Marshal(n.XDS())
	if err != nil {
		t.Fatal(err)
	}
	out := &core.Node{}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func startServer(t *testing.T, addr string, opts ServerOptions) (*Server, string) {
	t.Helper()
	if opts.Types == nil {
		opts.Types = []string{stringType}
	}
	opts.Logf = t.Logf
	s := NewServer(opts)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return s, ln.Addr().String()
}

func startClient(t *testing.T, addr, name string, h client.Handler) *client.Client {
	t.Helper()
	c := client.New(client.Options{
		Address: addr, TypeURL: stringType, Names: []string{name}, Handler: h, Logf: t.Logf,
		Node:       client.NodeInfo{Kind: client.KindWaypoint, Namespace: "default", Name: strings.TrimPrefix(name, "default/"), Instance: "pod-" + name[len("default/"):]},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func set(t *testing.T, s *Server, kv map[string]string) int {
	t.Helper()
	res := map[string]proto.Message{}
	for k, v := range kv {
		res[k] = wrapperspb.String(v)
	}
	n, err := s.SetResources(stringType, maps.All(res))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func stateOf(s *Server, instance, name string) ResourceStatus {
	for _, p := range s.Status() {
		if p.Proxy.Instance != instance {
			continue
		}
		for _, r := range p.Resources {
			if r.Name == name {
				return r
			}
		}
	}
	return ResourceStatus{}
}

func TestOnlySubscribersOfAChangeReceiveIt(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, addr := startServer(t, "127.0.0.1:0", ServerOptions{Metrics: NewMetrics(reg)})
	a, b := newRecorder(), newRecorder()
	startClient(t, addr, "default/a", a)
	startClient(t, addr, "default/b", b)
	waitFor(t, "both proxies listed", func() bool { return len(s.Status()) == 2 })
	if st := stateOf(s, "pod-a", "default/a").State; st != NotSent {
		t.Errorf("before any resource exists: state %q, want %q", st, NotSent)
	}

	if n := set(t, s, map[string]string{"default/a": "a1", "default/b": "b1"}); n != 2 {
		t.Errorf("SetResources reported %d changes, want 2", n)
	}
	waitFor(t, "a1 and b1", func() bool { return a.value("default/a") == "a1" && b.value("default/b") == "b1" })
	waitFor(t, "a SYNCED", func() bool { return stateOf(s, "pod-a", "default/a").State == Synced })

	// Change only b: a receives nothing.
	set(t, s, map[string]string{"default/a": "a1", "default/b": "b2"})
	waitFor(t, "b2", func() bool { return b.value("default/b") == "b2" })
	waitFor(t, "b SYNCED", func() bool { return stateOf(s, "pod-b", "default/b").State == Synced })
	if got := a.count(); got != 1 {
		t.Errorf("proxy a received %d updates, want 1: it must not get b's change", got)
	}
	// Setting the same content again pushes nothing.
	if n := set(t, s, map[string]string{"default/a": "a1", "default/b": "b2"}); n != 0 {
		t.Errorf("unchanged SetResources reported %d changes, want 0", n)
	}
	if got := testutil.ToFloat64(s.opts.Metrics.pushes.WithLabelValues("StringValue")); got != 3 {
		t.Errorf("pilot_xds_pushes = %v, want 3 (a1, b1, b2)", got)
	}
	if got := testutil.ToFloat64(s.opts.Metrics.proxies); got != 2 {
		t.Errorf("pilot_xds = %v, want 2", got)
	}

	// Removing b's resource tells b.
	set(t, s, map[string]string{"default/a": "a1"})
	waitFor(t, "b removed", func() bool { return b.value("default/b") == "" })
	if got := a.count(); got != 1 {
		t.Errorf("proxy a received %d updates, want 1", got)
	}
}

// TestUpdateResourcesLeavesOthers: a partial update changes what it names
// and nothing else.
func TestUpdateResourcesLeavesOthers(t *testing.T) {
	s, addr := startServer(t, "127.0.0.1:0", ServerOptions{})
	a, b := newRecorder(), newRecorder()
	startClient(t, addr, "default/a", a)
	startClient(t, addr, "default/b", b)
	set(t, s, map[string]string{"default/a": "a1", "default/b": "b1"})
	waitFor(t, "a1 and b1", func() bool { return a.value("default/a") == "a1" && b.value("default/b") == "b1" })

	update := func(kv map[string]string, remove ...string) int {
		t.Helper()
		res := map[string]proto.Message{}
		for k, v := range kv {
			res[k] = wrapperspb.String(v)
		}
		n, err := s.UpdateResources(stringType, maps.All(res), remove)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := update(map[string]string{"default/b": "b2"}); n != 1 {
		t.Errorf("UpdateResources reported %d changes, want 1", n)
	}
	waitFor(t, "b2", func() bool { return b.value("default/b") == "b2" })
	if got := a.count(); got != 1 || a.value("default/a") != "a1" {
		t.Errorf("proxy a has %q after %d updates; want a1 after 1: a resource not named must stay", a.value("default/a"), got)
	}
	if n := update(map[string]string{"default/b": "b2"}); n != 0 {
		t.Errorf("unchanged UpdateResources reported %d changes, want 0", n)
	}
	if n := update(nil, "default/b", "default/none"); n != 1 {
		t.Errorf("removing reported %d changes, want 1 (default/none does not exist)", n)
	}
	waitFor(t, "b removed", func() bool { return b.value("default/b") == "" })
	// SetResources sees what UpdateResources did: setting a1 alone changes nothing.
	if n := set(t, s, map[string]string{"default/a": "a1"}); n != 0 {
		t.Errorf("SetResources after UpdateResources reported %d changes, want 0", n)
	}
}

func TestNackIsTrackedAndOldValueKept(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, addr := startServer(t, "127.0.0.1:0", ServerOptions{Metrics: NewMetrics(reg)})
	a := newRecorder()
	c := startClient(t, addr, "default/a", a)
	set(t, s, map[string]string{"default/a": "good"})
	waitFor(t, "good", func() bool { return a.value("default/a") == "good" })
	good := c.Version("default/a")

	set(t, s, map[string]string{"default/a": "bad"})
	waitFor(t, "NACK", func() bool { return stateOf(s, "pod-a", "default/a").State == Nacked })
	r := stateOf(s, "pod-a", "default/a")
	if !strings.Contains(r.Error, `value "bad" is not allowed`) {
		t.Errorf("NACK error %q does not carry the proxy's reason", r.Error)
	}
	if r.Acked != good {
		t.Errorf("acked version %q, want the good one %q", r.Acked, good)
	}
	if a.value("default/a") != "good" || c.Version("default/a") != good {
		t.Errorf("proxy lost its good value: %q (version %q)", a.value("default/a"), c.Version("default/a"))
	}
	if got := testutil.ToFloat64(s.opts.Metrics.rejects.WithLabelValues("StringValue")); got != 1 {
		t.Errorf("pilot_total_xds_rejects = %v, want 1", got)
	}

	set(t, s, map[string]string{"default/a": "fixed"})
	waitFor(t, "SYNCED after fix", func() bool { return stateOf(s, "pod-a", "default/a").State == Synced })
	if r := stateOf(s, "pod-a", "default/a"); r.Error != "" {
		t.Errorf("error %q kept after an ACK", r.Error)
	}
}

func TestClientKeepsConfigAcrossControlPlaneRestart(t *testing.T) {
	s1, addr := startServer(t, "127.0.0.1:0", ServerOptions{})
	a := newRecorder()
	c := startClient(t, addr, "default/a", a)
	set(t, s1, map[string]string{"default/a": "v1"})
	waitFor(t, "v1", func() bool { return a.value("default/a") == "v1" })

	s1.Stop()
	waitFor(t, "client notices", func() bool { return !c.Connected() })
	if a.value("default/a") != "v1" {
		t.Fatal("the proxy dropped its configuration when the control plane went away")
	}

	// A new control plane with the same state: the client names the version
	// it holds, so nothing is sent again.
	s2, _ := startServer(t, addr, ServerOptions{})
	set(t, s2, map[string]string{"default/a": "v1"})
	waitFor(t, "reconnected", func() bool { return len(s2.Status()) == 1 })
	waitFor(t, "SYNCED on the new server", func() bool { return stateOf(s2, "pod-a", "default/a").State == Synced })
	if got := a.count(); got != 1 {
		t.Errorf("proxy received %d updates, want 1: an unchanged resource was sent again after reconnecting", got)
	}
	set(t, s2, map[string]string{"default/a": "v2"})
	waitFor(t, "v2", func() bool { return a.value("default/a") == "v2" })
	if a.removed != 0 {
		t.Errorf("Remove called %d times", a.removed)
	}
}

// A proxy that never answers is cut off after the ACK timeout, and the
// others are served meanwhile.
func TestSlowProxyIsDisconnected(t *testing.T) {
	s, addr := startServer(t, "127.0.0.1:0", ServerOptions{AckTimeout: 200 * time.Millisecond})
	set(t, s, map[string]string{"default/slow": "s1", "default/a": "a1"})

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	node := client.NodeInfo{Kind: client.KindWaypoint, Namespace: "default", Name: "slow", Instance: "pod-slow"}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: envoyNode(t, node), TypeUrl: stringType, ResourceNamesSubscribe: []string{"default/slow"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	// Never ACK. Meanwhile a well-behaved proxy keeps getting updates.
	a := newRecorder()
	startClient(t, addr, "default/a", a)
	waitFor(t, "a1", func() bool { return a.value("default/a") == "a1" })
	set(t, s, map[string]string{"default/slow": "s2", "default/a": "a2"})
	waitFor(t, "a2", func() bool { return a.value("default/a") == "a2" })

	start := time.Now()
	_, err = stream.Recv()
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "unanswered") {
		t.Fatalf("slow stream ended with %v, want Unavailable saying the response went unanswered", err)
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("slow proxy cut off after %s", waited)
	}
	waitFor(t, "slow proxy gone from status", func() bool { return len(s.Status()) == 1 })
}

func TestProxyMustIdentifyItself(t *testing.T) {
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
	node := client.NodeInfo{Kind: client.KindWaypoint, Instance: "x"} // no namespace/name
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: envoyNode(t, node), TypeUrl: stringType, ResourceNamesSubscribe: []string{"default/a"}}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "metadata.namespace and metadata.name") {
		t.Fatalf("got %v, want InvalidArgument naming the missing metadata", err)
	}
}

func TestUnknownTypeRefused(t *testing.T) {
	s := NewServer(ServerOptions{Types: []string{stringType}})
	defer s.Stop()
	if _, err := s.SetResources("type.googleapis.com/nope", nil); err == nil || !strings.Contains(err.Error(), "not served") {
		t.Fatalf("got %v", err)
	}
}
