package identity_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
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

// servingCA serves the CSR service with a hostname-verifiable serving
// certificate (as meshd's secure port) and authn/authz as given.
func servingCA(t *testing.T, ca *identity.CA, authn identity.Authenticator, authz identity.Authorizer) (string, *identity.ServingCert) {
	t.Helper()
	sc, err := identity.NewServingCert(ca, caID, []string{"meshd.istio-system.svc", "localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(identity.CAServerTLSConfig(sc))))
	identity.NewServer(ca, authn, authz).Register(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	return ln.Addr().String(), sc
}

func writeRoots(t *testing.T, ca *identity.CA) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "root-cert.pem")
	if err := os.WriteFile(p, ca.Bundle().PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServingCertHostnameVerification: a proxy holding only root-cert.pem
// reaches the CSR service by an address the serving certificate names,
// and refuses a server that is not the mesh CA's or not named so.
func TestServingCertHostnameVerification(t *testing.T) {
	ca := newCA(t, identity.CAOptions{})
	addr, sc := servingCA(t, ca, staticAuthn{identity.ServiceAccountCaller("default", "reviews")}, identity.OwnServiceAccount{})
	leaf, err := sc.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if got := leaf.Leaf.ExtKeyUsage; len(got) != 1 || got[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("serving certificate extended key usages %v; want serverAuth only", got)
	}
	if got, err := identity.PeerID(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf.Leaf}}); err != nil || got != caID {
		t.Errorf("serving certificate URI SAN = %v, %v; want %s", got, err, caID)
	}
	_, port, _ := net.SplitHostPort(addr)
	roots, err := identity.NewRootFile(writeRoots(t, ca))
	if err != nil {
		t.Fatal(err)
	}
	other := newCA(t, identity.CAOptions{})
	otherRoots, err := identity.NewRootFile(writeRoots(t, other))
	if err != nil {
		t.Fatal(err)
	}
	ask := func(target string, roots *identity.RootFile, opts ...grpc.DialOption) error {
		conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(roots.TransportCredentials()),
			grpc.WithPerRPCCredentials(identity.TokenFileCredentials(tokenFile(t, "any"))))...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, csrPEM := idCSR(t, nodeAWorkload)
		_, err = meshpb.NewCertificateServiceClient(conn).CreateCertificate(ctx, &meshpb.CreateCertificateRequest{Csr: string(csrPEM)})
		return err
	}
	for _, target := range []string{"127.0.0.1:" + port, "localhost:" + port} {
		if err := ask(target, roots); err != nil {
			t.Errorf("%s: %v; want a certificate", target, err)
		}
	}
	if err := ask("127.0.0.1:"+port, otherRoots); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("another mesh's root: %v; want the handshake refused (unknown authority)", err)
	}
	// A client dialing a name the certificate does not carry refuses it.
	if err := ask("127.0.0.1:"+port, roots, grpc.WithAuthority("meshd.other.svc:"+port)); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "meshd.other.svc") {
		t.Errorf("a host name the serving certificate does not carry: %v; want the handshake refused", err)
	}
}

// TestServingCertFollowsTheCA: after the CA signs with a new root, the
// next handshake gets a serving certificate from it.
func TestServingCertFollowsTheCA(t *testing.T) {
	ca := newCA(t, identity.CAOptions{})
	sc, err := identity.NewServingCert(ca, spiffeid.ID{}, []string{"meshd"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := sc.TLSCertificate()
	if b, _ := sc.TLSCertificate(); b != a {
		t.Error("a fresh serving certificate was replaced without cause")
	}
	if _, err := ca.StartRootRotation(); err != nil {
		t.Fatal(err)
	}
	if err := ca.CompleteRootRotation(); err != nil {
		t.Fatal(err)
	}
	b, err := sc.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Leaf.CheckSignatureFrom(ca.SigningCert()); err != nil {
		t.Errorf("after the rotation the serving certificate is not signed by the new root: %v", err)
	}
	if _, err := identity.NewServingCert(ca, spiffeid.ID{}, nil, nil, 0); err == nil {
		t.Error("a serving certificate without names was issued")
	}
}

// TestRootFileReload: a rewritten root-cert.pem is read again; a broken
// one keeps the roots read last and says which file is wrong.
func TestRootFileReload(t *testing.T) {
	a, b := newCA(t, identity.CAOptions{}), newCA(t, identity.CAOptions{})
	p := writeRoots(t, a)
	rf, err := identity.NewRootFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(a.Bundle().PEM(), b.Bundle().PEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	_ = os.Chtimes(p, later, later)
	if roots, err := rf.Roots(); err != nil || len(roots) != 2 {
		t.Errorf("after the rotation: %d roots, %v; want 2", len(roots), err)
	}
	if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if roots, err := rf.Roots(); len(roots) != 2 || err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("broken file: %d roots, %v; want the last 2 kept and an error naming %s", len(roots), err, p)
	}
	if _, err := identity.NewRootFile(filepath.Join(t.TempDir(), "missing.pem")); err == nil || !strings.Contains(err.Error(), "istio-ca-root-cert") {
		t.Errorf("missing file: %v; want an error saying where the file comes from", err)
	}
}

type staticAuthn struct{ c identity.Caller }

func (s staticAuthn) Authenticate(ctx context.Context) (identity.Caller, error) {
	if _, err := identity.BearerToken(ctx); err != nil {
		return identity.Caller{}, err
	}
	return s.c, nil
}

type failingAuthn struct{}

func (failingAuthn) Authenticate(context.Context) (identity.Caller, error) {
	return identity.Caller{}, errors.New("the TokenReview API is away")
}

// TestOwnServiceAccount: a ServiceAccount token obtains its own identity
// and nothing else; a check that could not be made is Unavailable, not
// the caller's fault.
func TestOwnServiceAccount(t *testing.T) {
	ca := newCA(t, identity.CAOptions{})
	roots := writeRoots(t, ca)
	ask := func(addr string, id spiffeid.ID) error {
		rf, err := identity.NewRootFile(roots)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(rf.TransportCredentials()),
			grpc.WithPerRPCCredentials(identity.TokenFileCredentials(tokenFile(t, "t"))))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, csrPEM := idCSR(t, id)
		_, err = meshpb.NewCertificateServiceClient(conn).CreateCertificate(context.Background(), &meshpb.CreateCertificateRequest{Csr: string(csrPEM)})
		return err
	}
	addr, _ := servingCA(t, ca, staticAuthn{identity.ServiceAccountCaller("default", "reviews")}, identity.OwnServiceAccount{})
	if err := ask(addr, nodeAWorkload); err != nil { // default/reviews
		t.Errorf("own identity: %v", err)
	}
	if err := ask(addr, nodeBWorkload); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "only its own identity") {
		t.Errorf("another ServiceAccount's identity: %v; want PermissionDenied", err)
	}
	nodeAddr, _ := servingCA(t, ca, staticAuthn{identity.Caller{Kind: identity.CallerNode, Name: "n"}}, identity.OwnServiceAccount{})
	if err := ask(nodeAddr, nodeAWorkload); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a node caller under OwnServiceAccount: %v; want PermissionDenied", err)
	}
	downAddr, _ := servingCA(t, ca, failingAuthn{}, identity.OwnServiceAccount{})
	if err := ask(downAddr, nodeAWorkload); status.Code(err) != codes.Unavailable {
		t.Errorf("authenticator failing for its own reasons: %v; want Unavailable", err)
	}
}

func TestTokenServiceAccount(t *testing.T) {
	jwt := func(payload string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	}
	for _, tc := range []struct {
		name, token, ns, sa, err string
	}{
		{"kubernetes.io claim", jwt(`{"sub":"x","kubernetes.io":{"namespace":"shop","serviceaccount":{"name":"cart"}}}`), "shop", "cart", ""},
		{"subject only", jwt(`{"sub":"system:serviceaccount:shop:cart"}`), "shop", "cart", ""},
		{"a user's token", jwt(`{"sub":"alice"}`), "", "", "not a ServiceAccount"},
		{"not a JWT", "opaque-token", "", "", "three dot-separated parts"},
		{"bad payload", "a.!!!.c", "", "", "JWT payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, sa, err := identity.TokenServiceAccount(tc.token)
			if ns != tc.ns || sa != tc.sa || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("got %q %q %v; want %q %q, error containing %q", ns, sa, err, tc.ns, tc.sa, tc.err)
			}
		})
	}
}
