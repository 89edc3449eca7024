package waypoint

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/api/meshpb"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
)

// xdsConfig loads what the control plane pushes into the proxy; an invalid
// configuration is NACKed and the current one keeps serving.
type xdsConfig struct {
	p      *Proxy
	logf   func(string, ...any)
	once   sync.Once
	loaded chan struct{}
}

func (x *xdsConfig) Update(name, version string, msg proto.Message) error {
	pb, ok := msg.(*meshpb.WaypointConfig)
	if !ok {
		return fmt.Errorf("resource is a %T, not a WaypointConfig", msg)
	}
	w, err := wire.ToModel(pb)
	if err != nil {
		return err
	}
	if err := x.p.Load(w); err != nil {
		return err
	}
	x.logf("configuration of %s loaded (version %s)", name, pushclient.ShortVersion(version))
	x.once.Do(func() { close(x.loaded) })
	return nil
}

func (x *xdsConfig) Remove(name string) {
	// The Gateway is gone and this waypoint will be too; until then, keep
	// serving what it had rather than failing the traffic still arriving.
	x.logf("the control plane no longer has a configuration for %s; keeping the current one", name)
}

// startXDS subscribes to the waypoint's configuration. loaded is closed
// after the first one is in; done after the client stopped (ctx ended).
func startXDS(ctx context.Context, p *Proxy, o Options, logf func(string, ...any)) (loaded, done chan struct{}, err error) {
	n := o.XDSNode
	if n.Namespace == "" || n.Name == "" {
		return nil, nil, errors.New("-xds-address needs the waypoint's Gateway: -waypoint NAMESPACE/NAME (or $POD_NAMESPACE and $GATEWAY_NAME)")
	}
	n.Kind = pushclient.KindWaypoint
	var dial []grpc.DialOption
	if o.RootCert != "" {
		if dial, err = secureDialOptions(o); err != nil {
			return nil, nil, err
		}
	}
	x := &xdsConfig{p: p, logf: logf, loaded: make(chan struct{})}
	c := pushclient.New(pushclient.Options{
		Address: o.XDSAddress, Node: n, TypeURL: wire.WaypointType,
		Names: []string{n.Namespace + "/" + n.Name}, Handler: x, Logf: logf,
		DialOptions: dial,
	})
	done = make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	return x.loaded, done, nil
}
