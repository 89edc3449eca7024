package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/identity"
)

const td = "cluster.local"

var (
	nodeAWorkload = identity.MustWorkloadID(td, "default", "reviews")
	nodeBWorkload = identity.MustWorkloadID(td, "default", "ratings")
)

func newCA(t *testing.T, opts identity.CAOptions) *identity.CA {
	t.Helper()
	if opts.TrustDomain == "" {
		opts.TrustDomain = td
	}
	ca, err := identity.NewCA(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// csrFor returns a CSR (parsed and PEM) for tmpl signed by a fresh P-256
// key, or by key when non-nil.
func csrFor(t *testing.T, tmpl *x509.CertificateRequest, key any) (*x509.CertificateRequest, []byte) {
	t.Helper()
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func idCSR(t *testing.T, id spiffeid.ID) (*x509.CertificateRequest, []byte) {
	t.Helper()
	return csrFor(t, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, nil)
}
