package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// CertSource supplies the certificate a proxy presents for one identity.
// [Manager.Source] returns one that follows renewals; [StaticSource] wraps a
// fixed certificate.
type CertSource interface {
	// ID is the identity the certificates are for.
	ID() spiffeid.ID
	// TLSCertificate returns the current certificate (with its private key
	// and chain). It is called once per TLS handshake.
	TLSCertificate() (*tls.Certificate, error)
}

// StaticSource returns a [CertSource] that always presents cert for id.
func StaticSource(id spiffeid.ID, cert *tls.Certificate) CertSource {
	return staticSource{id: id, cert: cert}
}

type staticSource struct {
	id   spiffeid.ID
	cert *tls.Certificate
}

func (s staticSource) ID() spiffeid.ID                           { return s.id }
func (s staticSource) TLSCertificate() (*tls.Certificate, error) { return s.cert, nil }

// Matcher decides whether a verified peer identity is acceptable; it returns
// nil to accept. A nil Matcher accepts every identity of the bundle's trust
// domain.
type Matcher func(spiffeid.ID) error

// ErrPeerIDRejected marks a peer whose certificate verified but whose
// identity is not one of those expected. Test with errors.Is.
var ErrPeerIDRejected = errors.New("peer identity not accepted")

// ExpectIDs returns a Matcher accepting exactly the given identities.
// With no identities it accepts none.
func ExpectIDs(ids ...spiffeid.ID) Matcher {
	ids = slices.Clone(ids)
	return func(got spiffeid.ID) error {
		if slices.Contains(ids, got) {
			return nil
		}
		names := make([]string, len(ids))
		for i, id := range ids {
			names[i] = id.String()
		}
		return fmt.Errorf("%w: %s is not one of [%s]", ErrPeerIDRejected, got, strings.Join(names, " "))
	}
}

// ServerTLSConfig returns a TLS 1.3-only server configuration with ALPN h2
// that presents src's certificate, requires a client certificate verifying
// against bundle and passes the client's SPIFFE ID to accept (nil: any
// identity of the trust domain). Session tickets are off, so every
// connection runs the full verification.
func ServerTLSConfig(src CertSource, bundle *Bundle, accept Matcher) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		NextProtos:             []string{"h2"},
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return src.TLSCertificate()
		},
		VerifyConnection: verifyPeer(bundle, accept),
	}
}

// ClientTLSConfig returns a TLS 1.3-only client configuration with ALPN h2,
// no SNI, presenting src's certificate (nil src: none, e.g. a node asking
// the CA for its first certificate) and accepting a server only if its
// certificate verifies against bundle and its SPIFFE ID is in expected.
// An empty expected set accepts any identity of the trust domain.
func ClientTLSConfig(src CertSource, bundle *Bundle, expected []spiffeid.ID) *tls.Config {
	var accept Matcher
	if len(expected) > 0 {
		accept = ExpectIDs(expected...)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		// Verification is done by VerifyConnection against SPIFFE IDs;
		// hostnames play no part.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection:   verifyPeer(bundle, accept),
	}
	if src != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.TLSCertificate()
		}
	}
	return cfg
}

func verifyPeer(bundle *Bundle, accept Matcher) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		id, err := bundle.Verify(cs.PeerCertificates, time.Now())
		if err != nil {
			return err
		}
		if accept != nil {
			return accept(id)
		}
		return nil
	}
}

// PeerID returns the SPIFFE ID of a connection's verified peer.
func PeerID(cs tls.ConnectionState) (spiffeid.ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, fmt.Errorf("peer presented no certificate")
	}
	return idFromCert(cs.PeerCertificates[0])
}

func idFromCert(c *x509.Certificate) (spiffeid.ID, error) {
	return x509svid.IDFromCert(c)
}

// CAServerTLSConfig returns the TLS configuration of the CA's gRPC
// endpoint: TLS 1.3, ALPN h2, presenting src's certificate and asking no
// client certificate — callers authenticate with a token, since a node's
// first request comes before it holds any certificate.
func CAServerTLSConfig(src CertSource) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return src.TLSCertificate()
		},
	}
}
