package hbone_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

const td = "cluster.local"

var (
	clientID = identity.MustWorkloadID(td, "default", "client")
	serverID = identity.MustWorkloadID(td, "istio-system", "waypoint")
	otherID  = identity.MustWorkloadID(td, "default", "other")
)

// mesh is a CA plus a certificate manager signing in-process.
type mesh struct {
	ca  *identity.CA
	mgr *identity.Manager
}

func newMesh(t testing.TB, ttl time.Duration) *mesh {
	t.Helper()
	return newMeshIn(t, t.TempDir(), ttl)
}

// newMeshIn uses (or creates) the CA in dir.
func newMeshIn(t testing.TB, dir string, ttl time.Duration) *mesh {
	t.Helper()
	ca, err := identity.NewCA(dir, identity.CAOptions{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	return &mesh{ca: ca, mgr: newManager(t, ca, ttl)}
}

// issue signs a certificate for id directly with ca, bypassing the
// Manager's checks (so it can be expired).
func issue(t testing.TB, ca *identity.CA, id spiffeid.ID, ttl time.Duration) identity.CertSource {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ca.Sign(csr, ttl)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return identity.StaticSource(id, tc)
}

// newManager returns a manager with its own bundle, as a separate proxy
// would have.
func newManager(t testing.TB, ca *identity.CA, ttl time.Duration) *identity.Manager {
	t.Helper()
	m := identity.NewManager(identity.ManagerOptions{
		Issuer: identity.CAIssuer{CA: ca},
		Bundle: identity.NewBundle(ca.TrustDomain(), ca.Bundle().Roots()...),
		TTL:    ttl,
	})
	t.Cleanup(m.Close)
	return m
}

func (m *mesh) source(t testing.TB, id spiffeid.ID) identity.CertSource {
	t.Helper()
	src, err := m.mgr.Source(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// startServer serves h on 127.0.0.1:0 as serverID, accepting clients that
// accept allows (nil: any).
func startServer(t testing.TB, m *mesh, accept identity.Matcher, h hbone.Handler, tweak ...func(*hbone.Server)) (*hbone.Server, string) {
	t.Helper()
	srv := &hbone.Server{
		Handler:   h,
		TLSConfig: identity.ServerTLSConfig(m.source(t, serverID), m.mgr.Bundle(), accept),
		Logf:      t.Logf,
	}
	for _, f := range tweak {
		f(srv)
	}
	return srv, serve(t, srv)
}

func serve(t testing.TB, srv *hbone.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-errc; !errors.Is(err, hbone.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func newPool(t testing.TB, m *mesh) *hbone.Pool {
	t.Helper()
	p := &hbone.Pool{Bundle: m.mgr.Bundle()}
	t.Cleanup(func() { p.Close() })
	return p
}

// echo accepts and copies the stream back to itself, half-closing when the
// client does.
var echo = hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
	if _, err := io.Copy(s, s); err != nil {
		s.Close()
		return
	}
	s.CloseWrite()
})

func dialReq(src identity.CertSource, addr string) hbone.Request {
	return hbone.Request{Source: src, Addr: addr, Authority: "10.1.2.3:8080", Expected: []spiffeid.ID{serverID}}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// tlsRecorder wraps a server TLS config to record the serial numbers of the
// client certificates it saw.
func recordSerials(conf *tls.Config, seen chan<- string) *tls.Config {
	c := conf.Clone()
	verify := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verify(cs); err != nil {
			return err
		}
		select {
		case seen <- cs.PeerCertificates[0].SerialNumber.Text(16):
		default:
		}
		return nil
	}
	return c
}

// guard bounds a test stream's life so a broken half-close fails the test
// instead of hanging it.
func guard(c *hbone.Conn) *hbone.Conn {
	c.SetDeadline(time.Now().Add(15 * time.Second))
	return c
}
