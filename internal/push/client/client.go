// Package client is the proxies' side of push: one delta xDS stream to
// the control plane, kept up with backoff, speaking Envoy's discovery
// protocol with the lean message subset in api/meshpb (xds.proto), so that
// a proxy does not link go-control-plane and Envoy's API. The stream
// carries every type the proxy subscribes to: a waypoint its one
// configuration, by name; a ztunnel the four ztunnel types, whole
// (ZtunnelSubscriptions), whose responses ZtunnelConfig assembles into its
// node's configuration.
package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
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

// Handler applies what the control plane sends, resource by resource (a
// waypoint's one configuration).
type Handler interface {
	// Update applies a new version of a resource. An error rejects it: the
	// client NACKs with the error's text and the proxy is expected to keep
	// what it had.
	Update(name, version string, msg proto.Message) error
	// Remove says the control plane no longer has the resource.
	Remove(name string)
}

// DeltaHandler applies what the control plane sends response by response:
// what a proxy needs that builds one configuration from many resources (a
// ztunnel), and must accept or refuse a response's changes together.
type DeltaHandler interface {
	// Apply applies one response of a type. An error rejects all of it:
	// the client NACKs with the error's text and records none of its
	// versions, and the handler must have kept its state as it was.
	Apply(d Delta) error
}

// Delta is one response of a type: what it added, updated and removed.
type Delta struct {
	TypeURL string
	// Added are resources the client held no version of; Updated new
	// versions of resources it held.
	Added, Updated []Resource
	// Removed are the resources the control plane no longer has.
	Removed []string
}

// Resource is one resource of a response.
type Resource struct {
	Name, Version string
	Message       proto.Message
}

// Wildcard, as a subscription's only name, subscribes to every resource of
// the type (as a ztunnel does).
const Wildcard = "*"

// Subscription is one resource type a client subscribes to; a client
// carries all of its subscriptions on one stream (aggregated xDS).
type Subscription struct {
	TypeURL string
	// Names are the resources subscribed to: names, or Wildcard.
	Names []string
	// Exactly one of Handler (resource by resource) and Delta (response
	// by response) receives the type's resources.
	Handler Handler
	Delta   DeltaHandler
}

// Options configure a Client.
type Options struct {
	// Address is the control plane's xDS address, host:port (plaintext).
	Address string
	Node    NodeInfo
	// TypeURL, Names and Handler are one subscription (a waypoint's);
	// Subscriptions are others, for a client that subscribes to several
	// types (a ztunnel). The stream carries TypeURL's first, if set.
	TypeURL       string
	Names         []string
	Handler       Handler
	Subscriptions []Subscription
	Logf          func(format string, args ...any)
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts (doubling, with jitter); 0 means 100ms and 15s.
	MinBackoff, MaxBackoff time.Duration
	// DialOptions are added to the gRPC client's (tests, TLS).
	DialOptions []grpc.DialOption
}

// Client keeps one delta ADS stream to the control plane, reconnecting with
// backoff. While the control plane is away the proxy keeps its last good
// configuration; on reconnection the client names the versions it holds,
// per type, so that only what changed meanwhile is sent again.
type Client struct {
	opts Options
	subs []Subscription
	// byType indexes subs by type URL.
	byType map[string]*Subscription

	mu        sync.Mutex
	versions  map[string]map[string]string // accepted versions, by type and name
	connected bool
}

// maxConfigBytes is the largest response the client accepts: a waypoint's
// configuration for a big mesh exceeds gRPC's 4 MiB default, and so does a
// ztunnel's first response of workloads.
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
	c := &Client{opts: opts, byType: map[string]*Subscription{}, versions: map[string]map[string]string{}}
	if opts.TypeURL != "" {
		c.subs = append(c.subs, Subscription{TypeURL: opts.TypeURL, Names: opts.Names, Handler: opts.Handler})
	}
	c.subs = append(c.subs, opts.Subscriptions...)
	for i := range c.subs {
		c.byType[c.subs[i].TypeURL] = &c.subs[i]
		c.versions[c.subs[i].TypeURL] = map[string]string{}
	}
	return c
}

// Connected reports whether a stream is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

// Version is the accepted version of a resource of the first
// subscription's type, "" if none.
func (c *Client) Version(name string) string {
	if len(c.subs) == 0 {
		return ""
	}
	return c.VersionOf(c.subs[0].TypeURL, name)
}

// VersionOf is the accepted version of a resource, "" if none.
func (c *Client) VersionOf(typeURL, name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[typeURL][name]
}

// Versions copies the accepted versions of a type's resources, by name.
func (c *Client) Versions(typeURL string) map[string]string { return c.held(typeURL) }

// Held counts the resources of a type the client holds an accepted
// version of.
func (c *Client) Held(typeURL string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.versions[typeURL])
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
	if len(c.subs) == 0 {
		return errors.New("nothing to subscribe to (no TypeURL and no Subscriptions)")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := conn.NewStream(ctx, deltaADSStream, deltaADS)
	if err != nil {
		return err
	}
	for i, sub := range c.subs {
		req := &meshpb.XdsDeltaRequest{
			TypeUrl:                 sub.TypeURL,
			ResourceNamesSubscribe:  sub.Names,
			InitialResourceVersions: c.held(sub.TypeURL),
		}
		if i == 0 {
			req.Node = c.opts.Node.XDS() // the server keeps it for the stream
		}
		if err := s.SendMsg(req); err != nil {
			return err
		}
	}
	// The server answers only with what changed since the versions named,
	// possibly nothing: the stream is up once the subscriptions are sent.
	c.setConnected(true)
	c.opts.Logf("xds: subscribed to %s at %s", c.describe(), c.opts.Address)
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

// held copies the versions of a type the client holds, for a new stream's
// initial_resource_versions.
func (c *Client) held(typeURL string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	held := make(map[string]string, len(c.versions[typeURL]))
	for n, v := range c.versions[typeURL] {
		held[n] = v
	}
	return held
}

// describe lists the subscriptions for logs: the names of one type (a
// waypoint's), else each type with its names.
func (c *Client) describe() string {
	if len(c.subs) == 1 {
		return strings.Join(c.subs[0].Names, ", ")
	}
	var out []string
	for _, sub := range c.subs {
		out = append(out, shortType(sub.TypeURL)+" "+strings.Join(sub.Names, ","))
	}
	return strings.Join(out, ", ")
}

// shortType is the message name of a type URL.
func shortType(typeURL string) string {
	return typeURL[strings.LastIndexByte(typeURL, '.')+1:]
}

// apply hands a response to its type's handler; the error says what was
// rejected.
func (c *Client) apply(resp *meshpb.XdsDeltaResponse) error {
	sub := c.byType[resp.GetTypeUrl()]
	if sub == nil {
		var types []string
		for _, s := range c.subs {
			types = append(types, strconv.Quote(s.TypeURL))
		}
		return fmt.Errorf("unexpected resource type %q (subscribed to %s)", resp.GetTypeUrl(), strings.Join(types, ", "))
	}
	if sub.Delta != nil {
		return c.applyDelta(sub, resp)
	}
	return c.applyEach(sub, resp)
}

// applyEach hands each resource of a response to a Handler; the error
// lists those it rejected, and the others are accepted.
func (c *Client) applyEach(sub *Subscription, resp *meshpb.XdsDeltaResponse) error {
	versions := c.versions[sub.TypeURL] // the map is fixed; its content is under mu
	var errs []string
	for _, r := range resp.GetResources() {
		msg, err := r.GetResource().UnmarshalNew()
		if err == nil {
			err = sub.Handler.Update(r.GetName(), r.GetVersion(), msg)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", r.GetName(), err))
			continue
		}
		c.mu.Lock()
		versions[r.GetName()] = r.GetVersion()
		c.mu.Unlock()
	}
	for _, name := range resp.GetRemovedResources() {
		sub.Handler.Remove(name)
		c.mu.Lock()
		delete(versions, name)
		c.mu.Unlock()
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// applyDelta hands a whole response to a DeltaHandler: accepted or
// rejected as one.
func (c *Client) applyDelta(sub *Subscription, resp *meshpb.XdsDeltaResponse) error {
	d := Delta{TypeURL: sub.TypeURL, Removed: resp.GetRemovedResources()}
	var errs []string
	c.mu.Lock()
	versions := c.versions[sub.TypeURL]
	for _, r := range resp.GetResources() {
		msg, err := r.GetResource().UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", r.GetName(), err))
			continue
		}
		res := Resource{Name: r.GetName(), Version: r.GetVersion(), Message: msg}
		if _, held := versions[r.GetName()]; held {
			d.Updated = append(d.Updated, res)
		} else {
			d.Added = append(d.Added, res)
		}
	}
	c.mu.Unlock()
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	if err := sub.Delta.Apply(d); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range d.Added {
		versions[r.Name] = r.Version
	}
	for _, r := range d.Updated {
		versions[r.Name] = r.Version
	}
	for _, name := range d.Removed {
		delete(versions, name)
	}
	return nil
}
