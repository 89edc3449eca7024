package waypoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/identity"
)

// This file is the waypoint's side of the control plane's secure port
// (15012): TLS verified against the mesh root (root-cert.pem from the
// istio-ca-root-cert ConfigMap), authenticated with the pod's projected
// ServiceAccount token, for both xDS and certificates.

// secureDialOptions are the gRPC options for the secure port: TLS against
// o.RootCert and the token of o.TokenFile on every call.
func secureDialOptions(o Options) ([]grpc.DialOption, error) {
	roots, err := identity.NewRootFile(o.RootCert)
	if err != nil {
		return nil, fmt.Errorf("-root-cert: %w", err)
	}
	if o.TokenFile == "" {
		return nil, errors.New("-root-cert: talking to the control plane over TLS needs -token-file (the pod's ServiceAccount token for audience istio-ca)")
	}
	if _, err := os.Stat(o.TokenFile); err != nil {
		return nil, fmt.Errorf("-token-file: %w (in a pod: the projected ServiceAccount token volume for audience istio-ca)", err)
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(roots.TransportCredentials()),
		grpc.WithPerRPCCredentials(identity.TokenFileCredentials(o.TokenFile)),
	}, nil
}

// remoteCertificates obtains the waypoint's certificate from the control
// plane's CSR service at addr and keeps it renewed at half-life. The
// first certificate is retried while the control plane is unreachable
// (Unavailable), but a refusal (the token is not accepted, or may not have
// this identity) fails at once: retrying would not change it.
func remoteCertificates(ctx context.Context, o Options, addr string, id spiffeid.ID) (identity.CertSource, *identity.Manager, func(), error) {
	opts, err := secureDialOptions(o)
	if err != nil {
		return nil, nil, nil, err
	}
	roots, err := identity.NewRootFile(o.RootCert)
	if err != nil {
		return nil, nil, nil, err
	}
	rootCerts, _ := roots.Roots()
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("-ca-address %q: %w", addr, err)
	}
	mgr := identity.NewManager(identity.ManagerOptions{
		Issuer: identity.GRPCIssuer{Client: meshpb.NewCertificateServiceClient(conn)},
		Bundle: identity.NewBundle(id.TrustDomain(), rootCerts...),
		Logf:   o.Logf,
	})
	closeAll := func() { mgr.Close(); _ = conn.Close() }
	wait := time.Second
	for {
		src, err := mgr.Source(ctx, id)
		if err == nil {
			return src, mgr, closeAll, nil
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		default:
			closeAll()
			return nil, nil, nil, fmt.Errorf("certificate for %s from the CA at %s: %w", id, addr, err)
		}
		if o.Logf != nil {
			o.Logf("certificate for %s from the CA at %s: %v; retrying in %s", id, addr, err, wait)
		}
		select {
		case <-ctx.Done():
			closeAll()
			return nil, nil, nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}
