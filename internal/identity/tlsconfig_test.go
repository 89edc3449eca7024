package identity_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/identity"
)

// handshake runs a real TLS handshake over loopback and returns each
// side's error and view of the peer.
func handshake(t *testing.T, serverConf, clientConf *tls.Config) (serverPeer spiffeid.ID, serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		id  spiffeid.ID
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		tc := tls.Server(c, serverConf)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		id, err := identity.PeerID(tc.ConnectionState())
		tc.Write([]byte("ok"))
		done <- result{id, err}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), clientConf)
	if err == nil {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 2)) // TLS 1.3: server-side rejection shows here
		c.Close()
	}
	r := <-done
	return r.id, r.err, err
}

func TestTLSConfigsVerifyPeerIDs(t *testing.T) {
	ca := newCA(t, identity.CAOptions{})
	mgr := identity.NewManager(identity.ManagerOptions{Issuer: identity.CAIssuer{CA: ca}, Bundle: ca.Bundle()})
	defer mgr.Close()
	ctx := context.Background()
	src := func(id spiffeid.ID) identity.CertSource {
		s, err := mgr.Source(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	client, server := nodeAWorkload, nodeBWorkload
	other := identity.MustWorkloadID(td, "default", "other")
	for _, tc := range []struct {
		name               string
		accept             identity.Matcher
		expected           []spiffeid.ID
		wantServerRejected bool
		wantClientRejected bool
	}{
		{name: "both accepted", accept: identity.ExpectIDs(client), expected: []spiffeid.ID{server}},
		{name: "any identity of the trust domain", accept: nil, expected: nil},
		{name: "server rejects the client", accept: identity.ExpectIDs(other), expected: []spiffeid.ID{server}, wantServerRejected: true},
		{name: "client rejects the server", accept: identity.ExpectIDs(client), expected: []spiffeid.ID{other}, wantClientRejected: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer, serr, cerr := handshake(t,
				identity.ServerTLSConfig(src(server), ca.Bundle(), tc.accept),
				identity.ClientTLSConfig(src(client), ca.Bundle(), tc.expected))
			switch {
			case tc.wantServerRejected:
				if !errors.Is(serr, identity.ErrPeerIDRejected) || cerr == nil {
					t.Errorf("server err %v, client err %v; want server ErrPeerIDRejected and the client told", serr, cerr)
				}
			case tc.wantClientRejected:
				if !errors.Is(cerr, identity.ErrPeerIDRejected) {
					t.Errorf("client err %v; want ErrPeerIDRejected", cerr)
				}
			default:
				if serr != nil || cerr != nil || peer != client {
					t.Errorf("server saw %s (%v), client err %v; want success with peer %s", peer, serr, cerr, client)
				}
			}
		})
	}
}

func TestBundleVerifyAndChanges(t *testing.T) {
	ca := newCA(t, identity.CAOptions{})
	other := newCA(t, identity.CAOptions{})
	csr, _ := idCSR(t, nodeAWorkload)
	chain, err := other.Sign(csr, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := identity.NewBundle(ca.TrustDomain(), ca.Bundle().Roots()...)
	if _, err := b.Verify(chain, time.Now()); !errors.Is(err, identity.ErrUntrusted) {
		t.Fatalf("certificate from another root: %v; want ErrUntrusted", err)
	}
	changed := b.Changed()
	if !b.Add(other.SigningCert()) {
		t.Fatal("Add reported no change")
	}
	select {
	case <-changed:
	default:
		t.Error("Changed not signalled by Add")
	}
	if _, err := b.Verify(chain, time.Now()); err != nil {
		t.Fatalf("after adding its root: %v", err)
	}
	if _, err := b.Verify(chain, time.Now().Add(2*time.Hour)); !errors.Is(err, identity.ErrUntrusted) {
		t.Errorf("expired certificate: %v; want ErrUntrusted", err)
	}
	if !b.Remove(other.SigningCert()) || b.Remove(other.SigningCert()) {
		t.Error("Remove should report true once, then false")
	}
	if _, err := b.Verify(chain, time.Now()); !errors.Is(err, identity.ErrUntrusted) {
		t.Error("certificate still trusted after its root was removed")
	}
	if _, err := b.Verify(nil, time.Now()); err == nil {
		t.Error("empty chain verified")
	}
	foreignTD := identity.NewBundle(spiffeid.RequireTrustDomainFromString("other.example"), other.SigningCert())
	if _, err := foreignTD.Verify(chain, time.Now()); err == nil {
		t.Error("certificate of cluster.local verified against another trust domain's bundle")
	}
}
