package identity_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/identity"
)

var caID = identity.MustWorkloadID(td, "mesh-system", "meshd")

// caService runs the CSR service over gRPC+TLS on loopback and returns
// its address, the CA and the tokens file.
func caService(t *testing.T) (string, *identity.CA, string, *identity.HostedIdentities) {
	t.Helper()
	ca := newCA(t, identity.CAOptions{})
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# node tokens\nnode-a token-a\nnode-b token-b # trailing comment\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	authn, err := identity.NewNodeTokenAuthenticator(tokens)
	if err != nil {
		t.Fatal(err)
	}
	hosted := &identity.HostedIdentities{}
	hosted.Set("node-a", nodeAWorkload)
	hosted.Set("node-b", nodeBWorkload)
	mgr := identity.NewManager(identity.ManagerOptions{Issuer: identity.CAIssuer{CA: ca}, Bundle: ca.Bundle()})
	t.Cleanup(mgr.Close)
	src, err := mgr.Source(context.Background(), caID)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(identity.CAServerTLSConfig(src))))
	identity.NewServer(ca, authn, hosted).Register(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	return ln.Addr().String(), ca, tokens, hosted
}

func caClient(t *testing.T, addr string, bundle *identity.Bundle, tokenFile string) meshpb.CertificateServiceClient {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(identity.ClientTLSConfig(nil, bundle, []spiffeid.ID{caID})))}
	if tokenFile != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(identity.TokenFileCredentials(tokenFile)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return meshpb.NewCertificateServiceClient(conn)
}

func tokenFile(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCertificateService(t *testing.T) {
	addr, ca, _, _ := caService(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name     string
		token    string // "" sends no credentials
		id       spiffeid.ID
		identity string
		validity int64
		want     codes.Code
		wantMsg  string
	}{
		{name: "node gets its workload's identity", token: "token-a", id: nodeAWorkload, want: codes.OK},
		{name: "node asks for another node's workload", token: "token-a", id: nodeBWorkload, want: codes.PermissionDenied, wantMsg: "node/node-a hosts no workload with identity " + nodeBWorkload.String()},
		{name: "unknown token", token: "forged", id: nodeAWorkload, want: codes.Unauthenticated, wantMsg: "unknown node token"},
		{name: "no token", id: nodeAWorkload, want: codes.Unauthenticated, wantMsg: "authorization"},
		{name: "identity differs from CSR", token: "token-a", id: nodeAWorkload, identity: nodeBWorkload.String(), want: codes.InvalidArgument, wantMsg: "differs from the CSR"},
		{name: "negative validity", token: "token-a", id: nodeAWorkload, validity: -5, want: codes.InvalidArgument, wantMsg: "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tf string
			if tc.token != "" {
				tf = tokenFile(t, tc.token)
			}
			client := caClient(t, addr, ca.Bundle(), tf)
			_, csrPEM := idCSR(t, tc.id)
			resp, err := client.CreateCertificate(ctx, &meshpb.CreateCertificateRequest{Csr: string(csrPEM), Identity: tc.identity, ValiditySeconds: tc.validity})
			if got := status.Code(err); got != tc.want || (tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg)) {
				t.Fatalf("got %v (%v); want %v containing %q", got, err, tc.want, tc.wantMsg)
			}
			if tc.want != codes.OK {
				return
			}
			chain, err := identity.ParseCertsPEM([]byte(strings.Join(resp.GetCertChain(), "")))
			if err != nil {
				t.Fatal(err)
			}
			if id, err := ca.Bundle().Verify(chain, time.Now()); err != nil || id != tc.id {
				t.Errorf("issued certificate verifies as %v, %v", id, err)
			}
			if len(resp.GetTrustBundle()) != 1 {
				t.Errorf("trust bundle has %d roots; want 1", len(resp.GetTrustBundle()))
			}
		})
	}
}

func TestNodeTokensReloadAndHostedUpdates(t *testing.T) {
	addr, ca, tokens, hosted := caService(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	newNode := identity.MustWorkloadID(td, "shop", "cart")
	client := caClient(t, addr, ca.Bundle(), tokenFile(t, "token-c"))
	ask := func() codes.Code {
		_, csrPEM := idCSR(t, newNode)
		_, err := client.CreateCertificate(ctx, &meshpb.CreateCertificateRequest{Csr: string(csrPEM)})
		return status.Code(err)
	}
	if got := ask(); got != codes.Unauthenticated {
		t.Fatalf("before node-c's token exists: %v; want Unauthenticated", got)
	}
	if err := os.WriteFile(tokens, []byte("node-a token-a\nnode-c token-c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := ask(); got != codes.PermissionDenied {
		t.Fatalf("token known, workload not hosted: %v; want PermissionDenied", got)
	}
	hosted.Set("node-c", newNode)
	if got := ask(); got != codes.OK {
		t.Fatalf("workload scheduled on node-c: %v; want OK", got)
	}
}

func TestNodeTokenFileErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(p, []byte("node-a token-a\njust-one-field\n"), 0o600)
	_, err := identity.NewNodeTokenAuthenticator(p)
	if err == nil || !strings.Contains(err.Error(), p+":2:") {
		t.Errorf("got %v; want an error naming %s:2", err, p)
	}
	if _, err := identity.NewNodeTokenAuthenticator(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing tokens file accepted")
	}
}

// TestManagerOverGRPC: the client-side manager obtains and renews through
// the gRPC service, and learns the trust bundle from it.
func TestManagerOverGRPC(t *testing.T) {
	addr, ca, _, _ := caService(t)
	bundle := identity.NewBundle(ca.TrustDomain(), ca.Bundle().Roots()...)
	client := caClient(t, addr, bundle, tokenFile(t, "token-a"))
	mgr := identity.NewManager(identity.ManagerOptions{Issuer: identity.GRPCIssuer{Client: client}, Bundle: bundle, TTL: time.Hour})
	defer mgr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := mgr.Certificate(ctx, nodeAWorkload)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := time.Until(c.Leaf.NotAfter); ttl > time.Hour || ttl < 59*time.Minute {
		t.Errorf("certificate lives %s; asked for 1h", ttl)
	}
	if _, err := mgr.Certificate(ctx, nodeBWorkload); status.Code(err) != codes.PermissionDenied {
		t.Errorf("certificate for another node's workload: %v; want PermissionDenied", err)
	}
	if _, err := ca.StartRootRotation(); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Renew(ctx, nodeAWorkload); err != nil {
		t.Fatal(err)
	}
	if n := len(bundle.Roots()); n != 2 {
		t.Errorf("after a renewal during root rotation the bundle has %d roots; want 2", n)
	}
}
