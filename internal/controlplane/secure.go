package controlplane

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/push"
	"github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
)

// SecureOptions configure the control plane's secure port (15012, as
// istiod's): xDS and the CA's CSR service on one gRPC server over TLS,
// both for authenticated callers only.
type SecureOptions struct {
	// Push is the xDS server, the same instance the plaintext port serves.
	Push *push.Server
	// CA signs the certificates the CSR service issues.
	CA *identity.CA
	// Serving is the port's TLS certificate (identity.ServingCert).
	Serving identity.CertSource
	// Authn authenticates every call, xDS and CSR alike: a ServiceAccount
	// token on Kubernetes, a node token on the embedded store.
	Authn identity.Authenticator
	// CertAuthz decides which identities a caller may obtain.
	CertAuthz identity.Authorizer
	// SystemNamespace is the control plane's namespace: a ztunnel, which
	// needs every namespace's configuration, must run there (as Istio's).
	SystemNamespace string
	Logf            func(format string, args ...any)
}

// SecureServer serves SecureOptions' services on a listener.
type SecureServer struct {
	g *grpc.Server
}

// NewSecureServer builds the secure port's gRPC server.
func NewSecureServer(o SecureOptions) (*SecureServer, error) {
	if o.Push == nil || o.CA == nil || o.Serving == nil || o.Authn == nil || o.CertAuthz == nil {
		return nil, errors.New("controlplane.NewSecureServer: Push, CA, Serving, Authn and CertAuthz are required")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	g := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(identity.CAServerTLSConfig(o.Serving))),
		// As push.Server.Serve: find proxies that vanished without closing
		// their connection.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.StreamInterceptor(xdsAccess{authn: o.Authn, systemNamespace: o.SystemNamespace, logf: o.Logf}.intercept),
	)
	o.Push.Register(g)
	identity.NewServer(o.CA, o.Authn, o.CertAuthz).Register(g)
	return &SecureServer{g: g}, nil
}

// Serve answers on ln until Stop.
func (s *SecureServer) Serve(ln net.Listener) error {
	if err := s.g.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serving the secure port on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Stop closes every connection and the listener.
func (s *SecureServer) Stop() { s.g.Stop() }

// xdsAccess guards the xDS streams of the secure port (the CSR service,
// unary, authorizes each request itself): the caller must authenticate,
// and every request is checked against what the caller may see before the
// xDS server reads it, so a refused subscription never reaches the cache.
type xdsAccess struct {
	authn           identity.Authenticator
	systemNamespace string
	logf            func(string, ...any)
}

func (a xdsAccess) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	caller, err := a.authn.Authenticate(ss.Context())
	if err != nil {
		return identity.AuthStatus(err)
	}
	g := &guardedXDS{ServerStream: ss, access: a, caller: caller}
	err = handler(srv, g)
	if denied := g.deniedErr(); denied != nil {
		// The xDS server ends a stream whose Recv fails without an error
		// of its own; the caller is told why.
		return denied
	}
	return err
}

// guardedXDS checks each request of one stream as it is received.
type guardedXDS struct {
	grpc.ServerStream
	access xdsAccess
	caller identity.Caller

	mu     sync.Mutex
	node   *client.NodeInfo
	denied error
}

func (g *guardedXDS) deniedErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.denied
}

func (g *guardedXDS) RecvMsg(m any) error {
	if err := g.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	req, ok := m.(*discovery.DeltaDiscoveryRequest)
	if !ok {
		return g.deny(status.Errorf(codes.Unimplemented, "the secure port serves delta xDS only, not %T", m))
	}
	g.mu.Lock()
	if g.node == nil && req.GetNode() != nil {
		n := nodeOf(req.GetNode())
		g.node = &n
	}
	node := g.node
	g.mu.Unlock()
	if node == nil {
		return g.deny(status.Error(codes.InvalidArgument, "the first xDS request must carry the node: a proxy must identify itself"))
	}
	if err := AllowXDS(g.caller, *node, req.GetTypeUrl(), req.GetResourceNamesSubscribe(), g.access.systemNamespace); err != nil {
		g.access.logf("xds: refused %s (node %s): %v", g.caller, node.ID(), err)
		return g.deny(status.Error(codes.PermissionDenied, err.Error()))
	}
	return nil
}

func (g *guardedXDS) deny(err error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.denied == nil {
		g.denied = err
	}
	return err
}

// nodeOf reads what a proxy says about itself (client.NodeInfo.XDS).
func nodeOf(n *core.Node) client.NodeInfo {
	f := n.GetMetadata().GetFields()
	str := func(k string) string { return f[k].GetStringValue() }
	return client.NodeInfo{
		Kind: str(client.MetaKind), Namespace: str(client.MetaNamespace), Name: str(client.MetaName),
		Instance: str(client.MetaInstance), Node: str(client.MetaNode),
	}
}

// AllowXDS says whether caller may subscribe, as the proxy node, to the
// named resources of typeURL; nil allows. A ServiceAccount (a pod's token)
// gets only what its namespace's proxies need: a waypoint must claim its
// own namespace and subscribes to waypoint configurations of that
// namespace only, so a compromised waypoint cannot read another tenant's
// routes and policies; a ztunnel, which serves every namespace, must run
// in the control plane's namespace. A node (the embedded store's node
// tokens, held by the host's own agents) hosts workloads of any namespace
// and may subscribe to anything.
func AllowXDS(caller identity.Caller, node client.NodeInfo, typeURL string, names []string, systemNamespace string) error {
	if caller.Kind == identity.CallerNode {
		return nil
	}
	ns, sa, ok := caller.ServiceAccount()
	if !ok {
		return fmt.Errorf("%s may not subscribe to configuration", caller)
	}
	switch node.Kind {
	case client.KindWaypoint:
		if node.Namespace != ns {
			return fmt.Errorf("the token of ServiceAccount %s/%s is for namespace %q, but the proxy claims to be waypoint %s/%s; a waypoint receives only its own namespace's configuration", ns, sa, ns, node.Namespace, node.Name)
		}
		if typeURL != wire.WaypointType {
			return fmt.Errorf("a waypoint may subscribe only to %s, not %s", wire.WaypointType, typeURL)
		}
		for _, name := range names {
			if rns, rname, ok := strings.Cut(name, "/"); !ok || rns != ns || rname == "" {
				return fmt.Errorf("the token of ServiceAccount %s/%s may subscribe to waypoint configurations in namespace %q only (NAMESPACE/NAME), not %q", ns, sa, ns, name)
			}
		}
		return nil
	case client.KindZtunnel:
		if ns != systemNamespace {
			return fmt.Errorf("a ztunnel receives every namespace's configuration and must run in %s; the token is of ServiceAccount %s/%s", systemNamespace, ns, sa)
		}
		return nil
	}
	return fmt.Errorf("unknown proxy kind %q (want %q or %q)", node.Kind, client.KindWaypoint, client.KindZtunnel)
}
