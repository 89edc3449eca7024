package hbone_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

func TestIdentityVerification(t *testing.T) {
	dir := t.TempDir()
	// A CA whose clock is two days back: its certificates are expired. The
	// mesh uses the same root with the right time.
	pastCA, err := identity.NewCA(dir, identity.CAOptions{TrustDomain: td, Now: func() time.Time { return time.Now().Add(-48 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	m := newMeshIn(t, dir, 0)
	foreign := newMesh(t, 0) // another mesh: another root
	for _, tc := range []struct {
		name     string
		client   func() identity.CertSource
		server   func() identity.CertSource
		accept   identity.Matcher
		expected []spiffeid.ID
		wantErr  string // "" for success
	}{
		{name: "accepted", accept: identity.ExpectIDs(clientID)},
		{name: "server rejects client identity", accept: identity.ExpectIDs(otherID), wantErr: "identity rejected"},
		{name: "client rejects server identity", expected: []spiffeid.ID{otherID}, wantErr: serverID.String() + " is not one of [" + otherID.String() + "]"},
		{name: "client certificate from another CA", client: func() identity.CertSource { return foreign.source(t, clientID) }, wantErr: "identity rejected"},
		{name: "server certificate from another CA", server: func() identity.CertSource { return foreign.source(t, serverID) }, wantErr: "certificate signed by unknown authority"},
		{name: "expired client certificate", client: func() identity.CertSource { return issue(t, pastCA, clientID, time.Hour) }, wantErr: "identity rejected"},
		{name: "expired server certificate", server: func() identity.CertSource { return issue(t, pastCA, serverID, time.Hour) }, wantErr: "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var served atomic.Int32
			h := hbone.HandlerFunc(func(ctx context.Context, s *hbone.Stream) {
				served.Add(1)
				echo(ctx, s)
			})
			serverSrc := m.source(t, serverID)
			if tc.server != nil {
				serverSrc = tc.server()
			}
			srv := &hbone.Server{Handler: h, TLSConfig: identity.ServerTLSConfig(serverSrc, m.mgr.Bundle(), tc.accept)}
			addr := serve(t, srv)
			clientSrc := m.source(t, clientID)
			if tc.client != nil {
				clientSrc = tc.client()
			}
			req := dialReq(clientSrc, addr)
			if tc.expected != nil {
				req.Expected = tc.expected
			}
			c, err := newPool(t, m).Dial(ctxT(t), req)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
				if served.Load() != 1 {
					t.Errorf("handler ran %d times; want 1", served.Load())
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded; want identity rejected")
			}
			if !errors.Is(err, hbone.ErrIdentityRejected) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v; want ErrIdentityRejected mentioning %q", err, tc.wantErr)
			}
			if served.Load() != 0 {
				t.Errorf("handler ran for a rejected peer")
			}
		})
	}
}
