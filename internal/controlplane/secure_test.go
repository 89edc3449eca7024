package controlplane_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/controlplane"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/push"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/store"
)

func TestAllowXDS(t *testing.T) {
	sa := identity.ServiceAccountCaller
	waypoint := func(ns string) pushclient.NodeInfo {
		return pushclient.NodeInfo{Kind: pushclient.KindWaypoint, Namespace: ns, Name: "waypoint"}
	}
	ztunnel := pushclient.NodeInfo{Kind: pushclient.KindZtunnel, Node: "node-a"}
	for _, tc := range []struct {
		name    string
		caller  identity.Caller
		node    pushclient.NodeInfo
		typeURL string
		names   []string
		err     string // "" allows
	}{
		{"waypoint of its namespace", sa("shop", "waypoint"), waypoint("shop"), wire.WaypointType, []string{"shop/waypoint", "shop/other"}, ""},
		{"claims another namespace", sa("shop", "waypoint"), waypoint("bank"), wire.WaypointType, []string{"bank/waypoint"}, "only its own namespace"},
		{"subscribes across namespaces", sa("shop", "waypoint"), waypoint("shop"), wire.WaypointType, []string{"bank/waypoint"}, `in namespace "shop" only`},
		{"wildcard", sa("shop", "waypoint"), waypoint("shop"), wire.WaypointType, []string{"*"}, `not "*"`},
		{"prefix trick", sa("shop", "waypoint"), waypoint("shop"), wire.WaypointType, []string{"shopping/waypoint"}, "shopping/waypoint"},
		{"another type", sa("shop", "waypoint"), waypoint("shop"), "type.googleapis.com/istio.workload.Address", nil, "may subscribe only to"},
		{"ztunnel in the system namespace", sa("istio-system", "ztunnel"), ztunnel, "type.googleapis.com/istio.workload.Address", []string{"*"}, ""},
		{"ztunnel elsewhere", sa("shop", "ztunnel"), ztunnel, "type.googleapis.com/istio.workload.Address", nil, "must run in istio-system"},
		{"unknown kind", sa("shop", "x"), pushclient.NodeInfo{Kind: "sidecar", Namespace: "shop"}, wire.WaypointType, nil, "unknown proxy kind"},
		{"node token (embedded store)", identity.Caller{Kind: identity.CallerNode, Name: "node-a"}, waypoint("bank"), wire.WaypointType, []string{"bank/waypoint"}, ""},
		{"other caller", identity.Caller{Kind: "user", Name: "alice"}, waypoint("shop"), wire.WaypointType, nil, "may not subscribe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := controlplane.AllowXDS(tc.caller, tc.node, tc.typeURL, tc.names, "istio-system")
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("got %v; want error containing %q", err, tc.err)
			}
		})
	}
}

// TestSecurePortEmbedded: the secure port on the embedded store, with the
// node-token authenticator: a node obtains the identity of a pod it hosts
// and subscribes to configuration over TLS; anything else is refused with
// the right code, before the xDS server sees the request.
func TestSecurePortEmbedded(t *testing.T) {
	st := store.NewMemory(store.Options{InitialNamespaces: []string{"istio-system"}})
	apply(t, st, meshYAML+`---
apiVersion: v1
kind: Pod
metadata:
  name: reviews-v1
  namespace: default
spec:
  nodeName: node-a
  serviceAccountName: bookinfo-reviews
  containers:
  - name: reviews
    image: reviews
`)
	dir := t.TempDir()
	ca, err := identity.NewCA(filepath.Join(dir, "ca"), identity.CAOptions{TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	writeFile(t, tokens, "node-a token-a\n")
	authn, err := identity.NewNodeTokenAuthenticator(tokens)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := identity.NewServingCert(ca, spiffeid.ID{}, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, Logf: t.Logf})
	t.Cleanup(srv.Stop)
	ss, err := controlplane.NewSecureServer(controlplane.SecureOptions{
		Push: srv, CA: ca, Serving: serving, Authn: authn, CertAuthz: controlplane.PodsOnNode{Store: st},
		SystemNamespace: "istio-system", Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ss.Serve(ln) }()
	t.Cleanup(ss.Stop)
	ctl := controlplane.New(controlplane.Options{Store: st, Push: srv, Logf: t.Logf})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ctl.Synced()

	roots := filepath.Join(dir, "root-cert.pem")
	writeFile(t, roots, string(ca.Bundle().PEM()))
	dial := func(token string) *grpc.ClientConn {
		rf, err := identity.NewRootFile(roots)
		if err != nil {
			t.Fatal(err)
		}
		opts := []grpc.DialOption{grpc.WithTransportCredentials(rf.TransportCredentials())}
		if token != "" {
			p := filepath.Join(t.TempDir(), "token")
			writeFile(t, p, token)
			opts = append(opts, grpc.WithPerRPCCredentials(identity.TokenFileCredentials(p)))
		}
		conn, err := grpc.NewClient(ln.Addr().String(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	csr := func(conn *grpc.ClientConn, sa string) error {
		id := identity.MustWorkloadID("cluster.local", "default", sa)
		_, err := meshpb.NewCertificateServiceClient(conn).CreateCertificate(ctx, &meshpb.CreateCertificateRequest{Csr: string(csrFor(t, id))})
		return err
	}
	node := &pushclient.NodeInfo{Kind: pushclient.KindWaypoint, Namespace: "default", Name: "waypoint", Instance: "t"}
	for _, tc := range []struct {
		name  string
		token string
		call  func(*grpc.ClientConn) error
		want  codes.Code
		text  string
	}{
		{"certificate of a pod on the node", "token-a", func(c *grpc.ClientConn) error { return csr(c, "bookinfo-reviews") }, codes.OK, ""},
		{"certificate of no pod on the node", "token-a", func(c *grpc.ClientConn) error { return csr(c, "ratings") }, codes.PermissionDenied, "no pod on node node-a"},
		{"configuration", "token-a", func(c *grpc.ClientConn) error { return rawSubscribe(ctx, c, node, "default/waypoint") }, codes.OK, ""},
		{"first request without a node", "token-a", func(c *grpc.ClientConn) error { return rawSubscribe(ctx, c, nil, "default/waypoint") }, codes.InvalidArgument, "must carry the node"},
		{"unknown token", "forged", func(c *grpc.ClientConn) error { return rawSubscribe(ctx, c, node, "default/waypoint") }, codes.Unauthenticated, "unknown node token"},
		{"no token, certificate", "", func(c *grpc.ClientConn) error { return csr(c, "bookinfo-reviews") }, codes.Unauthenticated, "authorization"},
		{"no token, configuration", "", func(c *grpc.ClientConn) error { return rawSubscribe(ctx, c, node, "default/waypoint") }, codes.Unauthenticated, "authorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(dial(tc.token))
			if status.Code(err) != tc.want || (tc.text != "" && !strings.Contains(err.Error(), tc.text)) {
				t.Errorf("got %v; want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
}

// rawSubscribe sends one delta xDS subscription (with node, if not nil)
// and waits for a response carrying name.
func rawSubscribe(ctx context.Context, conn *grpc.ClientConn, node *pushclient.NodeInfo, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "DeltaAggregatedResources", ServerStreams: true, ClientStreams: true},
		"/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources")
	if err != nil {
		return err
	}
	req := &meshpb.XdsDeltaRequest{TypeUrl: wire.WaypointType, ResourceNamesSubscribe: []string{name}}
	if node != nil {
		req.Node = node.XDS()
	}
	// A stream the server already ended makes SendMsg return io.EOF; its
	// status comes from RecvMsg.
	if err := s.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	resp := &meshpb.XdsDeltaResponse{}
	if err := s.RecvMsg(resp); err != nil {
		return err
	}
	for _, r := range resp.GetResources() {
		if r.GetName() == name {
			return nil
		}
	}
	return status.Errorf(codes.NotFound, "the response carries no %s", name)
}

func csrFor(t *testing.T, id spiffeid.ID) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
