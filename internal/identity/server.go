package identity

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshway/meshway/api/meshpb"
)

// Server is the CA's gRPC CSR service, meshpb.CertificateService.
type Server struct {
	meshpb.UnimplementedCertificateServiceServer

	ca    *CA
	authn Authenticator
	authz Authorizer
}

// NewServer returns the CSR service for ca. Every request is authenticated
// by authn and authorized by authz; both are required.
func NewServer(ca *CA, authn Authenticator, authz Authorizer) *Server {
	if ca == nil || authn == nil || authz == nil {
		panic("identity.NewServer: ca, authenticator and authorizer are required")
	}
	return &Server{ca: ca, authn: authn, authz: authz}
}

// Register registers the service on a gRPC server.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	meshpb.RegisterCertificateServiceServer(r, s)
}

// CreateCertificate implements meshpb.CertificateServiceServer.
func (s *Server) CreateCertificate(ctx context.Context, req *meshpb.CreateCertificateRequest) (*meshpb.CreateCertificateResponse, error) {
	caller, err := s.authn.Authenticate(ctx)
	if err != nil {
		return nil, AuthStatus(err)
	}
	block, _ := pem.Decode([]byte(req.GetCsr()))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, status.Error(codes.InvalidArgument, "csr: want a PEM \"CERTIFICATE REQUEST\" block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	id, err := csrID(csr, s.ca.TrustDomain())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	if want := req.GetIdentity(); want != "" && want != id.String() {
		return nil, status.Errorf(codes.InvalidArgument, "requested identity %q differs from the CSR's URI SAN %q", want, id)
	}
	if err := s.authz.Authorize(ctx, caller, id); err != nil {
		return nil, AuthStatus(err)
	}
	if req.GetValiditySeconds() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "validity_seconds %d is negative", req.GetValiditySeconds())
	}
	chain, err := s.ca.Sign(csr, time.Duration(req.GetValiditySeconds())*time.Second)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "signing: %v", err)
	}
	resp := &meshpb.CreateCertificateResponse{}
	for _, c := range chain {
		resp.CertChain = append(resp.CertChain, string(EncodeCertsPEM(c)))
	}
	for _, r := range s.ca.Bundle().Roots() {
		resp.TrustBundle = append(resp.TrustBundle, string(EncodeCertsPEM(r)))
	}
	return resp, nil
}

// AuthStatus is the gRPC status of an [Authenticator] or [Authorizer]
// error: Unauthenticated or PermissionDenied for the caller's fault, and
// Unavailable for a check that could not be made (the Kubernetes API is
// away), which the caller should retry.
func AuthStatus(err error) error {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

// Issuer obtains signed certificates for a [Manager].
type Issuer interface {
	// Issue sends csrPEM (a PEM CERTIFICATE REQUEST for id) and returns the
	// certificate chain (leaf first) and the current trust bundle.
	Issue(ctx context.Context, id spiffeid.ID, csrPEM []byte, ttl time.Duration) (chain, roots []*x509.Certificate, err error)
}

// GRPCIssuer is an [Issuer] calling a remote CA's CertificateService.
// Authentication travels as per-RPC credentials set on the client's
// connection (see [TokenFileCredentials]).
type GRPCIssuer struct {
	Client meshpb.CertificateServiceClient
}

// Issue implements [Issuer].
func (g GRPCIssuer) Issue(ctx context.Context, id spiffeid.ID, csrPEM []byte, ttl time.Duration) ([]*x509.Certificate, []*x509.Certificate, error) {
	resp, err := g.Client.CreateCertificate(ctx, &meshpb.CreateCertificateRequest{
		Csr:             string(csrPEM),
		ValiditySeconds: int64(ttl / time.Second),
		Identity:        id.String(),
	})
	if err != nil {
		return nil, nil, err
	}
	parse := func(what string, pems []string) ([]*x509.Certificate, error) {
		var out []*x509.Certificate
		for _, p := range pems {
			c, err := ParseCertsPEM([]byte(p))
			if err != nil {
				return nil, fmt.Errorf("CA response %s: %w", what, err)
			}
			out = append(out, c...)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("CA response has no %s", what)
		}
		return out, nil
	}
	chain, err := parse("cert_chain", resp.GetCertChain())
	if err != nil {
		return nil, nil, err
	}
	roots, err := parse("trust_bundle", resp.GetTrustBundle())
	if err != nil {
		return nil, nil, err
	}
	return chain, roots, nil
}

// CAIssuer is an [Issuer] signing in-process with a local CA, for the
// control plane's own certificates, tests and benchmarks.
type CAIssuer struct {
	CA *CA
}

// Issue implements [Issuer].
func (c CAIssuer) Issue(_ context.Context, _ spiffeid.ID, csrPEM []byte, ttl time.Duration) ([]*x509.Certificate, []*x509.Certificate, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return nil, nil, errors.New("no PEM block in CSR")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	chain, err := c.CA.Sign(csr, ttl)
	if err != nil {
		return nil, nil, err
	}
	return chain, c.CA.Bundle().Roots(), nil
}
