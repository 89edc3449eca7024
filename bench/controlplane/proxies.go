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

	"github.com/meshway/meshway/api/meshpb"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
)

// ack is one response a proxy applied and answered.
type ack struct {
	proxy int
	// recv is when the response arrived, at when the ACK (or NACK) had
	// been handed to gRPC.
	recv, at time.Time
	bytes    int // the DeltaDiscoveryResponse's encoded size
	nack     string
}

// fleet is the waypoint proxies: one delta ADS stream each, on a gRPC
// connection of its own (as separate proxies have), each naming itself with
// its own node. They are raw streams rather than pushclient.Client so that the
// time an ACK is sent and the size of each response can be recorded; they
// do what pushclient.Client and the waypoint do with a response: decode it,
// convert it to the model (wire.ToModel) and validate it, then ACK.
type fleet struct {
	addr  string
	names []string
	acks  chan ack

	mu      sync.Mutex
	conns   []*grpc.ClientConn
	streams sync.WaitGroup
	errs    []error
}

func newFleet(addr string, n int) *fleet {
	f := &fleet{addr: addr, acks: make(chan ack, 4*n+1024)}
	for i := range n {
		f.names = append(f.names, waypointName(i))
	}
	return f
}

// nodeOf is how proxy i identifies itself, as pushclient.NodeInfo's core() puts
// it on the wire (kind, namespace, name, instance, node in the metadata).
func nodeOf(i int) *core.Node {
	n := pushclient.NodeInfo{Kind: pushclient.KindWaypoint, Namespace: nsName(i), Name: "waypoint", Instance: fmt.Sprintf("waypoint-%03d-bench", i), Node: fmt.Sprintf("node-%d", i%50)}
	md, _ := structpb.NewStruct(map[string]any{
		"kind": n.Kind, "namespace": n.Namespace, "name": n.Name, "instance": n.Instance, "node": n.Node,
	})
	return &core.Node{Id: n.ID(), Metadata: md, UserAgentName: "meshway-bench"}
}

// start opens every stream, all at once as proxies waiting for a control
// plane to come back do. Each runs until ctx ends; a stream that fails is an
// error of the run (the bench does not reconnect: nothing should fail).
func (f *fleet) start(ctx context.Context) {
	for i, name := range f.names {
		f.streams.Add(1)
		go func() {
			defer f.streams.Done()
			if err := f.run(ctx, i); ctx.Err() == nil {
				f.mu.Lock()
				f.errs = append(f.errs, fmt.Errorf("proxy %s: %w", name, err))
				f.mu.Unlock()
			}
		}()
	}
}

// run serves proxy i until its stream fails, which is always an error.
func (f *fleet) run(ctx context.Context, i int) error {
	conn, err := grpc.NewClient(f.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.conns = append(f.conns, conn)
	f.mu.Unlock()
	s, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("opening the stream: %w", err)
	}
	err = s.Send(&discovery.DeltaDiscoveryRequest{Node: nodeOf(i), TypeUrl: wire.WaypointType, ResourceNamesSubscribe: []string{f.names[i]}})
	if err != nil {
		return fmt.Errorf("subscribing: %w", err)
	}
	return f.serve(i, s)
}

func (f *fleet) serve(i int, s discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient) error {
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		recv := time.Now()
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
		nack := ""
		if err := apply(resp); err != nil {
			nack = err.Error()
			req.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: nack}
		}
		if err := s.Send(req); err != nil {
			return err
		}
		f.acks <- ack{proxy: i, recv: recv, at: time.Now(), bytes: proto.Size(resp), nack: nack}
	}
}

// apply is what a waypoint does with a configuration before it ACKs,
// short of building its routing tables.
func apply(resp *discovery.DeltaDiscoveryResponse) error {
	for _, r := range resp.GetResources() {
		msg, err := r.GetResource().UnmarshalNew()
		if err != nil {
			return err
		}
		pb, ok := msg.(*meshpb.WaypointConfig)
		if !ok {
			return fmt.Errorf("%s: a %T, not a WaypointConfig", r.GetName(), msg)
		}
		w, err := wire.ToModel(pb)
		if err != nil {
			return err
		}
		if err := w.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// err reports the first stream that failed.
func (f *fleet) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.errs...)
}

// close waits for the streams, which end with the context given to start,
// and closes the connections.
func (f *fleet) close() {
	f.streams.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
}
