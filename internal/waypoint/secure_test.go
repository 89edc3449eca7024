package waypoint_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/waypoint"
)

// TestRunCertificateFromCA: with -ca-address the waypoint obtains its
// certificate from the control plane's CSR service over TLS (verified with
// -root-cert, authenticated with -token-file) and serves HBONE with it; a
// CA that refuses the identity stops Run with the CA's reason rather than
// retrying forever.
func TestRunCertificateFromCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := identity.NewCA(filepath.Join(dir, "ca"), identity.CAOptions{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	authn, err := identity.NewNodeTokenAuthenticator(write("tokens", "node-a good\n"))
	if err != nil {
		t.Fatal(err)
	}
	hosted := &identity.HostedIdentities{}
	hosted.Set("node-a", waypointID)
	serving, err := identity.NewServingCert(ca, spiffeid.ID{}, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(identity.CAServerTLSConfig(serving))))
	identity.NewServer(ca, authn, hosted).Register(gs)
	caLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(caLn)
	t.Cleanup(gs.Stop)

	b := newBackend(t, "reviews")
	conf := write("waypoint.yaml", reviewsYAML(b.addr()))
	opts := func(id spiffeid.ID) waypoint.Options {
		addr := freeAddr(t)
		return waypoint.Options{
			ConfigPath: conf, HBONEAddr: addr, Identity: id.String(), Logf: t.Logf,
			CAAddress: caLn.Addr().String(), RootCert: write("root-cert.pem", string(ca.Bundle().PEM())), TokenFile: write("token", "good"),
		}
	}

	t.Run("refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := waypoint.Run(ctx, opts(sleepID))
		if err == nil || !strings.Contains(err.Error(), "PermissionDenied") || ctx.Err() != nil {
			t.Errorf("Run as an identity the CA refuses: %v; want it to stop at once with PermissionDenied", err)
		}
	})

	o := opts(waypointID)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- waypoint.Run(ctx, o) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	m := identity.NewManager(identity.ManagerOptions{Issuer: identity.CAIssuer{CA: ca}, Bundle: identity.NewBundle(ca.TrustDomain(), ca.Bundle().Roots()...)})
	defer m.Close()
	pool := &hbone.Pool{Bundle: m.Bundle()}
	defer pool.Close()
	var conn *hbone.Conn
	eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		conn, err = pool.Dial(ctx, hbone.Request{Source: source(t, m, sleepID), Addr: o.HBONEAddr, Authority: reviewsVIP, Expected: []spiffeid.ID{waypointID}})
		return err == nil
	}, "the waypoint to accept an HBONE tunnel with the CA's certificate")
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Backend") != "reviews" {
		t.Errorf("through the waypoint: %d from %q", resp.StatusCode, resp.Header.Get("X-Backend"))
	}
}
