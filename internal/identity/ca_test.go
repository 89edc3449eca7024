package identity_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshway/meshway/internal/identity"
)

func TestNewCAGeneratesPersistsAndReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := identity.NewCA(dir, identity.CAOptions{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"}, names); diff != "" {
		t.Errorf("CA directory (-want +got; no temporary files may remain):\n%s", diff)
	}
	st, err := os.Stat(filepath.Join(dir, identity.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("ca-key.pem mode %v; want 0600", st.Mode().Perm())
	}
	again, err := identity.NewCA(dir, identity.CAOptions{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	if !again.SigningCert().Equal(ca.SigningCert()) {
		t.Error("second start generated a new root instead of loading the persisted one")
	}
	// A certificate from the reloaded CA verifies against the first's bundle.
	csr, _ := idCSR(t, nodeAWorkload)
	chain, err := again.Sign(csr, 0)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := ca.Bundle().Verify(chain, time.Now()); err != nil || id != nodeAWorkload {
		t.Errorf("Verify = %v, %v", id, err)
	}
}

func TestSignedCertificateProfile(t *testing.T) {
	now := time.Now()
	ca := newCA(t, identity.CAOptions{MaxTTL: 48 * time.Hour, Now: func() time.Time { return now }})
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{"default 24h", 0, 24 * time.Hour},
		{"configured", 2 * time.Hour, 2 * time.Hour},
		{"clamped to max", 30 * 24 * time.Hour, 48 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr, _ := idCSR(t, nodeAWorkload)
			chain, err := ca.Sign(csr, tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 1 {
				t.Fatalf("chain of %d certificates; a root-signed leaf travels alone", len(chain))
			}
			c := chain[0]
			if want := now.Add(tc.want).Truncate(time.Second); !c.NotAfter.Equal(want) {
				t.Errorf("NotAfter %s; want now+%s = %s", c.NotAfter, tc.want, want)
			}
			if len(c.URIs) != 1 || c.URIs[0].String() != nodeAWorkload.String() || len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) != 0 {
				t.Errorf("SANs URIs=%v DNS=%v IP=%v; want only the SPIFFE URI", c.URIs, c.DNSNames, c.IPAddresses)
			}
			if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("key %T; want ECDSA P-256", c.PublicKey)
			}
			if c.IsCA || !c.BasicConstraintsValid {
				t.Error("workload certificate must be a non-CA leaf")
			}
			if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, c.ExtKeyUsage); diff != "" {
				t.Errorf("ext key usage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSignRejectsBadRequests(t *testing.T) {
	ca := newCA(t, identity.CAOptions{})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	uri := func(s string) *url.URL { u, _ := url.Parse(s); return u }
	for _, tc := range []struct {
		name    string
		tmpl    *x509.CertificateRequest
		key     crypto.Signer
		ttl     time.Duration
		wantErr string
	}{
		{"no SAN", &x509.CertificateRequest{}, nil, 0, "exactly one URI SAN, found 0"},
		{"two URIs", &x509.CertificateRequest{URIs: []*url.URL{nodeAWorkload.URL(), nodeBWorkload.URL()}}, nil, 0, "exactly one URI SAN, found 2"},
		{"DNS SAN", &x509.CertificateRequest{URIs: []*url.URL{nodeAWorkload.URL()}, DNSNames: []string{"reviews"}}, nil, 0, "only a URI SAN"},
		{"other trust domain", &x509.CertificateRequest{URIs: []*url.URL{uri("spiffe://evil.example/ns/default/sa/reviews")}}, nil, 0, "not in the CA's trust domain"},
		{"not a workload path", &x509.CertificateRequest{URIs: []*url.URL{uri("spiffe://cluster.local/admin")}}, nil, 0, "not a workload identity"},
		{"RSA key", &x509.CertificateRequest{URIs: []*url.URL{nodeAWorkload.URL()}}, rsaKey, 0, "ECDSA P-256"},
		{"negative TTL", &x509.CertificateRequest{URIs: []*url.URL{nodeAWorkload.URL()}}, nil, -time.Second, "negative validity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var key any
			if tc.key != nil {
				key = tc.key
			}
			csr, _ := csrFor(t, tc.tmpl, key)
			_, err := ca.Sign(csr, tc.ttl)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Sign error %v; want containing %q", err, tc.wantErr)
			}
		})
	}
}

// pluggedDir writes an operator's cacerts: a root and an intermediate that
// signs workloads.
func pluggedDir(t *testing.T) (dir string, root, inter *x509.Certificate, interKey *ecdsa.PrivateKey) {
	t.Helper()
	mk := func(tmpl, parent *x509.Certificate, pub, signer any) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := func(cn string, serial int64) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		}
	}
	rootTmpl := caTmpl("operator root", 1)
	root = mk(rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	inter = mk(caTmpl("cluster intermediate", 2), root, interKey.Public(), rootKey)
	keyDER, _ := x509.MarshalECPrivateKey(interKey)
	dir = t.TempDir()
	for name, data := range map[string][]byte{
		identity.CACertFile:    identity.EncodeCertsPEM(inter),
		identity.CAKeyFile:     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		identity.RootCertFile:  identity.EncodeCertsPEM(root),
		identity.CertChainFile: identity.EncodeCertsPEM(inter, root),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, root, inter, interKey
}

func TestLoadPluggedCA(t *testing.T) {
	dir, root, inter, _ := pluggedDir(t)
	ca, err := identity.LoadPluggedCA(dir, identity.CAOptions{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := idCSR(t, nodeAWorkload)
	chain, err := ca.Sign(csr, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || !chain[1].Equal(inter) {
		t.Fatalf("chain %d certs; want leaf + intermediate", len(chain))
	}
	bundle := identity.NewBundle(ca.TrustDomain(), root)
	if id, err := bundle.Verify(chain, time.Now()); err != nil || id != nodeAWorkload {
		t.Errorf("Verify = %v, %v", id, err)
	}
	if _, err := bundle.Verify(chain[:1], time.Now()); err == nil {
		t.Error("leaf without its intermediate verified")
	}
	if _, err := ca.StartRootRotation(); err == nil {
		t.Error("StartRootRotation on a plugged intermediate CA succeeded; the operator rotates those")
	}
}

func TestLoadPluggedCAErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(t *testing.T, dir string)
		wantErr string
	}{
		{"missing key", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, identity.CAKeyFile)) }, "ca-key.pem"},
		{"key of another certificate", func(t *testing.T, dir string) {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			der, _ := x509.MarshalECPrivateKey(k)
			os.WriteFile(filepath.Join(dir, identity.CAKeyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
		}, "does not match the public key"},
		{"root of someone else", func(t *testing.T, dir string) {
			other, _, _, _ := pluggedDir(t)
			b, _ := os.ReadFile(filepath.Join(other, identity.RootCertFile))
			os.WriteFile(filepath.Join(dir, identity.RootCertFile), b, 0o600)
		}, "does not chain to a root"},
		{"chain not starting with ca-cert", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, identity.RootCertFile))
			os.WriteFile(filepath.Join(dir, identity.CertChainFile), b, 0o600)
		}, "must start with the certificate"},
		{"garbage certificate", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, identity.CACertFile), []byte("not pem"), 0o600)
		}, "no PEM CERTIFICATE block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, _, _ := pluggedDir(t)
			tc.mutate(t, dir)
			_, err := identity.LoadPluggedCA(dir, identity.CAOptions{TrustDomain: td})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v; want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestRootRotationFiles(t *testing.T) {
	dir := t.TempDir()
	ca, err := identity.NewCA(dir, identity.CAOptions{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	old := ca.SigningCert()
	next, err := ca.StartRootRotation()
	if err != nil {
		t.Fatal(err)
	}
	if !ca.SigningCert().Equal(old) {
		t.Error("signer changed when the rotation started; it must wait until the new root is distributed")
	}
	// A restart in the middle keeps the pending rotation.
	restarted, err := identity.NewCA(dir, identity.CAOptions{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(restarted.Bundle().Roots()); n != 2 {
		t.Fatalf("restarted CA trusts %d roots; want 2", n)
	}
	if err := restarted.CompleteRootRotation(); err != nil {
		t.Fatal(err)
	}
	if !restarted.SigningCert().Equal(next) {
		t.Error("after completing, the signer is not the new root")
	}
	if err := restarted.RetireRoot(next); err == nil {
		t.Error("retiring the current signer succeeded")
	}
	if err := restarted.RetireRoot(old); err != nil {
		t.Fatal(err)
	}
	final, err := identity.LoadPluggedCA(dir, identity.CAOptions{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	if roots := final.Bundle().Roots(); len(roots) != 1 || !roots[0].Equal(next) {
		t.Errorf("after retirement root-cert.pem holds %d roots; want only the new one", len(roots))
	}
}
