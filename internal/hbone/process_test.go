package hbone_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

// The child process of TestTwoProcesses runs when these are set.
const (
	envChild = "MESHWAY_HBONE_TEST_CHILD"
	envCA    = "MESHWAY_HBONE_TEST_CA"    // CA gRPC address
	envRoots = "MESHWAY_HBONE_TEST_ROOTS" // root PEM file
	envToken = "MESHWAY_HBONE_TEST_TOKEN" // node token file
)

var caID = identity.MustWorkloadID(td, "mesh-system", "meshd")

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		if err := runChild(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild is a node agent: it obtains serverID's certificate from the CA
// over gRPC with its node token, serves HBONE echo on 127.0.0.1:0, prints
// the address and runs until stdin closes.
func runChild() error {
	rootPEM, err := os.ReadFile(os.Getenv(envRoots))
	if err != nil {
		return err
	}
	roots, err := identity.ParseCertsPEM(rootPEM)
	if err != nil {
		return err
	}
	bundle := identity.NewBundle(spiffeid.RequireTrustDomainFromString(td), roots...)
	conn, err := grpc.NewClient(os.Getenv(envCA),
		grpc.WithTransportCredentials(credentials.NewTLS(identity.ClientTLSConfig(nil, bundle, []spiffeid.ID{caID}))),
		grpc.WithPerRPCCredentials(identity.TokenFileCredentials(os.Getenv(envToken))))
	if err != nil {
		return err
	}
	defer conn.Close()
	mgr := identity.NewManager(identity.ManagerOptions{Issuer: identity.GRPCIssuer{Client: meshpb.NewCertificateServiceClient(conn)}, Bundle: bundle})
	defer mgr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	src, err := mgr.Source(ctx, serverID)
	if err != nil {
		return err
	}
	srv := &hbone.Server{Handler: echo, TLSConfig: identity.ServerTLSConfig(src, bundle, identity.ExpectIDs(clientID))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(ln)
	fmt.Printf("ADDR %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	return srv.Shutdown(ctx)
}

// TestTwoProcesses: this process runs the CA's gRPC service; a child
// process (this test binary re-executed) obtains its certificate from it as
// a node and serves HBONE; this process then tunnels to it with verified
// identities on both sides.
func TestTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	m := newMesh(t, 0)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	nodeToken := filepath.Join(dir, "node-token")
	roots := filepath.Join(dir, "roots.pem")
	for name, data := range map[string]string{tokens: "node-b s3cret-b\n", nodeToken: "s3cret-b\n", roots: string(m.ca.Bundle().PEM())} {
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	authn, err := identity.NewNodeTokenAuthenticator(tokens)
	if err != nil {
		t.Fatal(err)
	}
	var hosted identity.HostedIdentities
	hosted.Set("node-b", serverID)
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(identity.CAServerTLSConfig(m.source(t, caID)))))
	identity.NewServer(m.ca, authn, &hosted).Register(gs)
	caLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(caLn)
	defer gs.Stop()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=1", envCA+"="+caLn.Addr().String(), envRoots+"="+roots, envToken+"="+nodeToken)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if err != nil || !ok {
		t.Fatalf("child did not report its address: %q, %v", line, err)
	}

	pool := newPool(t, m)
	c, err := pool.Dial(ctxT(t), dialReq(m.source(t, clientID), addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.PeerID() != serverID {
		t.Errorf("child's identity %s; want %s", c.PeerID(), serverID)
	}
	if err := echoOnce(c, "across processes"); err != nil {
		t.Fatal(err)
	}
	// A client with another identity is refused by the child.
	_, err = pool.Dial(ctxT(t), dialReq(m.source(t, otherID), addr))
	if err == nil {
		t.Error("child accepted an identity it does not expect")
	}

	// The admin view shows the open tunnel.
	rec := httptest.NewRecorder()
	hbone.AdminHandler(nil, pool).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/tunnels", nil))
	var view struct{ Outbound []hbone.ConnInfo }
	if err := json.Unmarshal(rec.Body.Bytes(), &view); err != nil {
		t.Fatal(err)
	}
	if len(view.Outbound) != 1 || view.Outbound[0].Peer != serverID.String() || len(view.Outbound[0].Streams) != 1 || view.Outbound[0].Streams[0].Authority != "10.1.2.3:8080" {
		t.Errorf("admin view %s; want one connection to %s with one stream", rec.Body, serverID)
	}
}
