package hbone_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

// roundTrip opens a stream on a new connection (so a fresh TLS handshake
// sees the current certificates) and echoes msg.
func roundTrip(t *testing.T, m *identity.Manager, src identity.CertSource, addr, msg string) error {
	t.Helper()
	pool := &hbone.Pool{Bundle: m.Bundle()}
	defer pool.Close()
	c, err := pool.Dial(ctxT(t), dialReq(src, addr))
	if err != nil {
		return err
	}
	defer c.Close()
	return echoOnce(c, msg)
}

func echoOnce(c *hbone.Conn, msg string) error {
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch: " + string(buf))
	}
	return nil
}

// TestRotationUnderContinuousTraffic: certificates living 2 s are renewed
// at half-life while traffic flows; no stream fails, new handshakes present
// the new certificates and an established stream outlives the certificate
// it was opened with.
func TestRotationUnderContinuousTraffic(t *testing.T) {
	m := newMesh(t, 2*time.Second)
	seen := make(chan string, 4096)
	srv := &hbone.Server{
		Handler:   echo,
		TLSConfig: recordSerials(identity.ServerTLSConfig(m.source(t, serverID), m.mgr.Bundle(), nil), seen),
	}
	addr := serve(t, srv)
	src := m.source(t, clientID)
	first, err := m.mgr.Certificate(context.Background(), clientID)
	if err != nil {
		t.Fatal(err)
	}

	long, err := newPool(t, m).Dial(ctxT(t), dialReq(src, addr))
	if err != nil {
		t.Fatal(err)
	}
	guard(long)
	defer long.Close()

	end := first.Leaf.NotAfter.Add(500 * time.Millisecond) // past the first certificate's expiry
	streams := 0
	for time.Now().Before(end) {
		if err := echoOnce(long, "long-lived"); err != nil {
			t.Fatalf("long-lived stream failed after %d round trips: %v", streams, err)
		}
		if err := roundTrip(t, m.mgr, src, addr, "fresh"); err != nil {
			t.Fatalf("new connection failed after %d streams: %v", streams, err)
		}
		streams++
	}
	// Not closed: a server-side handshake may still be recording.
	serials := map[string]bool{}
	for drained := false; !drained; {
		select {
		case s := <-seen:
			serials[s] = true
		default:
			drained = true
		}
	}
	if len(serials) < 3 {
		t.Errorf("server saw %d distinct client certificates over %d connections; want at least 3 (renewal every ~1 s)", len(serials), streams)
	}
	if time.Now().Before(first.Leaf.NotAfter) {
		t.Fatal("test ended before the first certificate expired")
	}
	if err := echoOnce(long, "after expiry"); err != nil {
		t.Errorf("established stream broke when its certificate expired: %v", err)
	}
}

// TestRootRotation walks a root rotation: new root trusted everywhere
// first, then signing switches to it, then the old root is retired, with
// traffic checked at each step.
func TestRootRotation(t *testing.T) {
	m := newMesh(t, 0)
	ca := m.ca
	client := newManager(t, ca, 0) // two proxies, each with its own bundle
	server := newManager(t, ca, 0)
	ctx := ctxT(t)
	srcOf := func(m *identity.Manager, id spiffeid.ID) identity.CertSource {
		s, err := m.Source(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	srv := &hbone.Server{Handler: echo, TLSConfig: identity.ServerTLSConfig(srcOf(server, serverID), server.Bundle(), nil)}
	addr := serve(t, srv)
	clientSrc := srcOf(client, clientID)
	step := func(name string) {
		t.Helper()
		if err := roundTrip(t, client, clientSrc, addr, name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	issuer := func(m *identity.Manager, id spiffeid.ID) string {
		c, err := m.Certificate(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.Issuer.CommonName
	}
	renew := func() {
		t.Helper()
		if err := client.Renew(ctx, clientID); err != nil {
			t.Fatal(err)
		}
		if err := server.Renew(ctx, serverID); err != nil {
			t.Fatal(err)
		}
	}
	step("before rotation")
	oldRoot := ca.SigningCert()
	stale := issue(t, ca, clientID, time.Hour) // signed by the old root

	newRoot, err := ca.StartRootRotation()
	if err != nil {
		t.Fatal(err)
	}
	renew()
	for name, m := range map[string]*identity.Manager{"client": client, "server": server} {
		if n := len(m.Bundle().Roots()); n != 2 {
			t.Fatalf("%s bundle has %d roots after the rotation started; want 2", name, n)
		}
	}
	if got := issuer(client, clientID); got != oldRoot.Subject.CommonName {
		t.Errorf("during phase 1 the CA signed with %q; want the old root", got)
	}
	step("new root trusted, old root signing")

	if err := ca.CompleteRootRotation(); err != nil {
		t.Fatal(err)
	}
	if err := client.Renew(ctx, clientID); err != nil {
		t.Fatal(err)
	}
	if got := issuer(client, clientID); got != newRoot.Subject.CommonName {
		t.Fatalf("after completing, the client's certificate is from %q; want the new root", got)
	}
	step("client on the new root, server on the old")
	if err := server.Renew(ctx, serverID); err != nil {
		t.Fatal(err)
	}
	step("both on the new root")

	if err := ca.RetireRoot(oldRoot); err != nil {
		t.Fatal(err)
	}
	renew()
	if n := len(server.Bundle().Roots()); n != 1 {
		t.Fatalf("server bundle has %d roots after retirement; want 1", n)
	}
	step("old root retired")
	err = roundTrip(t, client, stale, addr, "stale")
	if !errors.Is(err, hbone.ErrIdentityRejected) {
		t.Errorf("certificate from the retired root: got %v; want ErrIdentityRejected", err)
	}
}
