package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
)

// ztAck is one response a bench ztunnel applied and answered.
type ztAck struct {
	ztunnel   int
	typeURL   string
	recv, at  time.Time
	bytes     int // the DeltaDiscoveryResponse's encoded size
	resources int // resources carried plus removed
	// names are the resources carried and removed, when not too many
	// (maxAckNames).
	names []string
	nack  string
}

// maxAckNames bounds the names a ztAck keeps: a change's response, or a
// burst of the Services meshd deploys, not a first push of the bench's
// mesh.
const maxAckNames = 1024

// ztFleet is the ztunnels: one delta ADS stream each, on a gRPC connection
// of its own, subscribed to every resource of the four ztunnel types, as
// pushclient.Client with pushclient.ZtunnelSubscriptions does. A response
// is decoded and each of its resources converted to the model
// (wire.ZtunnelState.Apply) before the ACK; ztunnel 0 also keeps what it
// accepted, so that the bench can assemble and validate a node's whole
// configuration from what was pushed (check). The others do not assemble:
// validating 50,000 workloads after every response costs a ztunnel 0.1–0.3 s
// (see docs/benchmarks.md), which would measure that, not the push.
type ztFleet struct {
	addr string
	n    int

	mu      sync.Mutex
	log     []ztAck
	conns   []*grpc.ClientConn
	streams sync.WaitGroup
	errs    []error
	state   *wire.ZtunnelState // ztunnel 0's
}

func newZtFleet(addr string, n int) *ztFleet {
	return &ztFleet{addr: addr, n: n, state: wire.NewZtunnelState()}
}

// ztNode is how ztunnel i identifies itself: a DaemonSet pod on node i.
func ztNode(i int) *core.Node {
	n := pushclient.NodeInfo{Kind: pushclient.KindZtunnel, Namespace: "istio-system", Name: "ztunnel", Instance: fmt.Sprintf("ztunnel-%03d-bench", i), Node: fmt.Sprintf("node-%d", i)}
	md, _ := structpb.NewStruct(map[string]any{
		"kind": n.Kind, "namespace": n.Namespace, "name": n.Name, "instance": n.Instance, "node": n.Node,
	})
	return &core.Node{Id: n.ID(), Metadata: md, UserAgentName: "meshway-bench"}
}

func (z *ztFleet) start(ctx context.Context) {
	for i := range z.n {
		z.streams.Add(1)
		go func() {
			defer z.streams.Done()
			if err := z.run(ctx, i); ctx.Err() == nil {
				z.mu.Lock()
				z.errs = append(z.errs, fmt.Errorf("ztunnel %d: %w", i, err))
				z.mu.Unlock()
			}
		}()
	}
}

func (z *ztFleet) run(ctx context.Context, i int) error {
	conn, err := grpc.NewClient(z.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return err
	}
	z.mu.Lock()
	z.conns = append(z.conns, conn)
	z.mu.Unlock()
	s, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("opening the stream: %w", err)
	}
	for k, t := range wire.ZtunnelTypes {
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: []string{pushclient.Wildcard}}
		if k == 0 {
			req.Node = ztNode(i)
		}
		if err := s.Send(req); err != nil {
			return fmt.Errorf("subscribing: %w", err)
		}
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		recv := time.Now()
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
		a := ztAck{ztunnel: i, typeURL: resp.GetTypeUrl(), recv: recv, bytes: proto.Size(resp), resources: len(resp.GetResources()) + len(resp.GetRemovedResources())}
		if err := z.apply(i, resp); err != nil {
			a.nack = err.Error()
			req.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: a.nack}
		}
		if err := s.Send(req); err != nil {
			return err
		}
		a.at = time.Now()
		if a.resources <= maxAckNames {
			for _, r := range resp.GetResources() {
				a.names = append(a.names, r.GetName())
			}
			a.names = append(a.names, resp.GetRemovedResources()...)
		}
		z.mu.Lock()
		z.log = append(z.log, a)
		z.mu.Unlock()
	}
}

// apply decodes a response and converts its resources; ztunnel 0 keeps
// them.
func (z *ztFleet) apply(i int, resp *discovery.DeltaDiscoveryResponse) error {
	updated := make(map[string]proto.Message, len(resp.GetResources()))
	for _, r := range resp.GetResources() {
		msg, err := r.GetResource().UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: %w", r.GetName(), err)
		}
		updated[r.GetName()] = msg
	}
	st := wire.NewZtunnelState()
	if i == 0 {
		z.mu.Lock()
		defer z.mu.Unlock()
		st = z.state
	}
	_, err := st.Apply(resp.GetTypeUrl(), updated, resp.GetRemovedResources())
	return err
}

// check assembles and validates ztunnel 0's configuration from what it
// holds: every piece pushed must fit with the others.
func (z *ztFleet) check() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, err := z.state.Assemble("node-0"); err != nil {
		return fmt.Errorf("ztunnel 0's configuration, assembled from what was pushed: %w", err)
	}
	return nil
}

// acks copies the log.
func (z *ztFleet) acks() []ztAck {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]ztAck(nil), z.log...)
}

// firstPush reports, once every ztunnel has ACKed a response of each type
// (the first of each is the whole type: the server holds a type's
// subscribers until the control plane has set it), when the last did and
// the bytes of those first responses, all ztunnels; ok false before.
func (z *ztFleet) firstPush() (last time.Time, bytes, nacks int, ok bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	seen := map[[2]int]bool{}
	typeIndex := map[string]int{}
	for k, t := range wire.ZtunnelTypes {
		typeIndex[t] = k
	}
	for _, a := range z.log {
		k := [2]int{a.ztunnel, typeIndex[a.typeURL]}
		if seen[k] {
			continue
		}
		seen[k] = true
		bytes += a.bytes
		if a.nack != "" {
			nacks++
		}
		if a.at.After(last) {
			last = a.at
		}
	}
	return last, bytes, nacks, len(seen) == z.n*len(wire.ZtunnelTypes)
}

func (z *ztFleet) err() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return errors.Join(z.errs...)
}

func (z *ztFleet) close() {
	z.streams.Wait()
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, c := range z.conns {
		_ = c.Close()
	}
	z.conns = nil
}
