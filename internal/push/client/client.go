// Package client is the proxies' side of push: one delta xDS stream to
// the control plane, kept up with backoff, speaking Envoy's discovery
// protocol with the lean message subset in api/meshpb (xds.proto), so that
// a proxy does not link go-control-plane and Envoy's API.
package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/api/meshpb"
)

// deltaADS is the method meshd's go-control-plane server serves (Envoy's
// aggregated discovery service, incremental variant).
const deltaADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

var deltaADSStream = &grpc.StreamDesc{StreamName: "DeltaAggregatedResources", ServerStreams: true, ClientStreams: true}

// Handler applies what the control plane sends.
type Handler interface {
	// Update applies a new version of a resource. An error rejects it: the
	// client NACKs with the error's text and the proxy is expected to keep
	// what it had.
	Update(name, version string, msg proto.Message) error
	// Remove says the control plane no longer has the resource.
	Remove(name string)
}

// Options configure a Client.
type Options struct {
	// Address is the control plane's xDS address, host:port (plaintext).
	Address string
	Node    NodeInfo
	// TypeURL and Names are what the proxy subscribes to.
	TypeURL string
	Names   []string
	Handler Handler
	Logf    func(format string, args ...any)
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts (doubling, with jitter); 0 means 100ms and 15s.
	MinBackoff, MaxBackoff time.Duration
	// DialOptions are added to the gRPC client's (tests, TLS).
	DialOptions []grpc.DialOption
}

// Client keeps one delta ADS stream to the control plane, reconnecting with
// backoff. While the control plane is away the proxy keeps its last good
// configuration; on reconnection the client names the versions it holds so
// that only what changed meanwhile is sent again.
type Client struct {
	opts Options

	mu        sync.Mutex
	versions  map[string]string // accepted versions, by name
	connected bool
}

// maxConfigBytes is the largest response the client accepts: a waypoint's
// configuration for a big mesh exceeds gRPC's 4 MiB default.
const maxConfigBytes = 256 << 20

// New returns a client; Run starts it.
func New(opts Options) *Client {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 15 * time.Second
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &Client{opts: opts, versions: map[string]string{}}
}

// Connected reports whether a stream is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// Version is the accepted version of a resource, "" if none.
func (c *Client) Version(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[name]
}

// Run keeps a stream up until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxConfigBytes)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}, c.opts.DialOptions...)
	conn, err := grpc.NewClient(c.opts.Address, opts...)
	if err != nil {
		return fmt.Errorf("xds: control plane address %q: %w", c.opts.Address, err)
	}
	defer func() { _ = conn.Close() }()
	backoff := c.opts.MinBackoff
	for {
		began := time.Now()
		err := c.stream(ctx, conn)
		c.setConnected(false)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(began) > stableStream {
			backoff = c.opts.MinBackoff // the stream was up a while: start over
		}
		// Jitter keeps a fleet of proxies from reconnecting in lockstep
		// when the control plane restarts.
		wait := backoff/2 + rand.N(backoff/2+1)
		c.opts.Logf("xds: stream to %s ended (%v); reconnecting in %s, keeping the current configuration", c.opts.Address, err, wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, c.opts.MaxBackoff)
	}
}

func (c *Client) setConnected(v bool) {
	c.mu.Lock()
	c.connected = v
	c.mu.Unlock()
}

// stableStream is how long a stream must have lasted for the next
// reconnection to start again from the shortest backoff.
const stableStream = 5 * time.Second

// stream runs one stream until it fails.
func (c *Client) stream(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := conn.NewStream(ctx, deltaADSStream, deltaADS)
	if err != nil {
		return err
	}
	c.mu.Lock()
	initial := make(map[string]string, len(c.versions))
	for n, v := range c.versions {
		initial[n] = v
	}
	c.mu.Unlock()
	err = s.SendMsg(&meshpb.XdsDeltaRequest{
		Node:                    c.opts.Node.XDS(),
		TypeUrl:                 c.opts.TypeURL,
		ResourceNamesSubscribe:  c.opts.Names,
		InitialResourceVersions: initial,
	})
	if err != nil {
		return err
	}
	// The server answers only with what changed since the versions named,
	// possibly nothing: the stream is up once the subscription is sent.
	c.setConnected(true)
	c.opts.Logf("xds: subscribed to %s at %s", strings.Join(c.opts.Names, ", "), c.opts.Address)
	for {
		resp := &meshpb.XdsDeltaResponse{}
		if err := s.RecvMsg(resp); err != nil {
			return err
		}
		ack := &meshpb.XdsDeltaRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
		if err := c.apply(resp); err != nil {
			c.opts.Logf("xds: rejected configuration: %v", err)
			ack.ErrorDetail = &meshpb.XdsStatus{Code: int32(codes.InvalidArgument), Message: err.Error()}
		}
		if err := s.SendMsg(ack); err != nil {
			return err
		}
	}
}

// apply hands each resource of a response to the handler; the error lists
// those it rejected.
func (c *Client) apply(resp *meshpb.XdsDeltaResponse) error {
	if resp.GetTypeUrl() != c.opts.TypeURL {
		return fmt.Errorf("unexpected resource type %q (subscribed to %q)", resp.GetTypeUrl(), c.opts.TypeURL)
	}
	var errs []string
	for _, r := range resp.GetResources() {
		msg, err := r.GetResource().UnmarshalNew()
		if err == nil {
			err = c.opts.Handler.Update(r.GetName(), r.GetVersion(), msg)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", r.GetName(), err))
			continue
		}
		c.mu.Lock()
		c.versions[r.GetName()] = r.GetVersion()
		c.mu.Unlock()
	}
	for _, name := range resp.GetRemovedResources() {
		c.opts.Handler.Remove(name)
		c.mu.Lock()
		delete(c.versions, name)
		c.mu.Unlock()
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}
