package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// File names of the CA directory, as in Istio's cacerts secret.
const (
	CACertFile    = "ca-cert.pem"
	CAKeyFile     = "ca-key.pem"
	CertChainFile = "cert-chain.pem"
	RootCertFile  = "root-cert.pem"
)

// Defaults of [CAOptions].
const (
	DefaultCertTTL = 24 * time.Hour
	DefaultMaxTTL  = 7 * 24 * time.Hour
	DefaultRootTTL = 10 * 365 * 24 * time.Hour
)

// notBeforeSkew backdates issued certificates so that a peer whose clock is
// slightly behind still accepts them.
const notBeforeSkew = time.Minute

// CAOptions configures a [CA]. The zero value is not usable: TrustDomain is
// required.
type CAOptions struct {
	// TrustDomain of every identity the CA signs, e.g. "cluster.local".
	TrustDomain string
	// DefaultTTL is the validity of a certificate requested with TTL 0.
	// Zero means DefaultCertTTL (24 h).
	DefaultTTL time.Duration
	// MaxTTL caps requested validities. Zero means DefaultMaxTTL (7 days).
	MaxTTL time.Duration
	// RootTTL is the validity of generated roots. Zero means 10 years.
	RootTTL time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// CA signs workload certificates with a signing certificate and key kept
// in a directory (see the package doc for the layout). It is safe for
// concurrent use.
type CA struct {
	dir  string
	td   spiffeid.TrustDomain
	opts CAOptions

	bundle *Bundle

	mu     sync.RWMutex
	key    crypto.Signer
	cert   *x509.Certificate   // signing certificate
	chain  []*x509.Certificate // cert's issuers up to, excluding, the self-signed root
	rootCA bool                // cert is a self-signed root: StartRootRotation works

	nextKey  crypto.Signer // root rotation in progress: the next signer
	nextCert *x509.Certificate
}

// NewCA loads the CA from dir, or, if dir holds no ca-cert.pem, generates a
// self-signed root there (creating dir with mode 0700) and persists it.
func NewCA(dir string, opts CAOptions) (*CA, error) {
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); errors.Is(err, os.ErrNotExist) {
		return generateCA(dir, opts)
	}
	return LoadPluggedCA(dir, opts)
}

// LoadPluggedCA loads a CA from files an operator placed in dir
// (ca-cert.pem, ca-key.pem, root-cert.pem and optionally cert-chain.pem).
// It checks that the key matches the certificate, that the certificate may
// sign certificates, and that it chains to a root of root-cert.pem.
func LoadPluggedCA(dir string, opts CAOptions) (*CA, error) {
	ca, err := newCA(dir, opts)
	if err != nil {
		return nil, err
	}
	if err := ca.load(); err != nil {
		return nil, err
	}
	return ca, nil
}

func newCA(dir string, opts CAOptions) (*CA, error) {
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("CA trust domain %q: %w", opts.TrustDomain, err)
	}
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = DefaultCertTTL
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = DefaultMaxTTL
	}
	if opts.RootTTL <= 0 {
		opts.RootTTL = DefaultRootTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &CA{dir: dir, td: td, opts: opts, bundle: NewBundle(td)}, nil
}

func generateCA(dir string, opts CAOptions) (*CA, error) {
	ca, err := newCA(dir, opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("CA directory: %w", err)
	}
	key, cert, err := ca.newRoot()
	if err != nil {
		return nil, err
	}
	if err := ca.persist(key, cert, nil, []*x509.Certificate{cert}); err != nil {
		return nil, err
	}
	ca.key, ca.cert, ca.rootCA = key, cert, true
	ca.bundle.Add(cert)
	return ca, nil
}

func (ca *CA) newRoot() (crypto.Signer, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := ca.opts.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{Organization: []string{ca.td.Name()}, CommonName: "meshway root CA " + now.UTC().Format("20060102T150405Z")},
		NotBefore:             now.Add(-notBeforeSkew),
		NotAfter:              now.Add(ca.opts.RootTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

// persist writes the four CA files. root-cert.pem is written first so that
// a crash part-way leaves a bundle that trusts both the old and new signer.
func (ca *CA) persist(key crypto.Signer, cert *x509.Certificate, chain, roots []*x509.Certificate) error {
	keyPEM, err := encodeKeyPEM(key)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{RootCertFile, EncodeCertsPEM(roots...), 0o644},
		{CAKeyFile, keyPEM, 0o600},
		{CACertFile, EncodeCertsPEM(cert), 0o644},
		{CertChainFile, EncodeCertsPEM(append([]*x509.Certificate{cert}, chain...)...), 0o644},
	} {
		if err := writeFileAtomic(filepath.Join(ca.dir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("writing CA file %s: %w", f.name, err)
		}
	}
	return nil
}

func (ca *CA) load() error {
	read := func(name string, optional bool) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(ca.dir, name))
		if err != nil && (!optional || !errors.Is(err, os.ErrNotExist)) {
			return nil, fmt.Errorf("CA: %w (a plugged CA needs %s, %s, %s and optionally %s)", err, CACertFile, CAKeyFile, RootCertFile, CertChainFile)
		}
		return b, nil
	}
	certPEM, err := read(CACertFile, false)
	if err != nil {
		return err
	}
	keyPEM, err := read(CAKeyFile, false)
	if err != nil {
		return err
	}
	rootPEM, err := read(RootCertFile, false)
	if err != nil {
		return err
	}
	chainPEM, err := read(CertChainFile, true)
	if err != nil {
		return err
	}
	where := func(name string) string { return filepath.Join(ca.dir, name) }
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		return fmt.Errorf("CA: %s: %w", where(CACertFile), err)
	}
	cert := certs[0]
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return fmt.Errorf("CA: %s: %w", where(CAKeyFile), err)
	}
	roots, err := ParseCertsPEM(rootPEM)
	if err != nil {
		return fmt.Errorf("CA: %s: %w", where(RootCertFile), err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return fmt.Errorf("CA: %s does not match the public key of %s; replace both together", where(CAKeyFile), where(CACertFile))
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("CA: %s is not a CA certificate (needs basic constraints CA:TRUE and key usage certSign)", where(CACertFile))
	}
	var chain []*x509.Certificate
	if len(chainPEM) > 0 {
		all, err := ParseCertsPEM(chainPEM)
		if err != nil {
			return fmt.Errorf("CA: %s: %w", where(CertChainFile), err)
		}
		if !all[0].Equal(cert) {
			return fmt.Errorf("CA: %s must start with the certificate in %s", where(CertChainFile), where(CACertFile))
		}
		for _, c := range all[1:] {
			if !isSelfSigned(c) {
				chain = append(chain, c)
			}
		}
	}
	bundle := NewBundle(ca.td, roots...)
	inter := x509.NewCertPool()
	for _, c := range chain {
		inter.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: bundle.Pool(), Intermediates: inter, CurrentTime: ca.opts.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("CA: %s does not chain to a root in %s (through %s): %w", where(CACertFile), where(RootCertFile), where(CertChainFile), err)
	}
	nextKey, nextCert, err := ca.loadNext()
	if err != nil {
		return err
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.key, ca.cert, ca.chain, ca.rootCA = key, cert, chain, isSelfSigned(cert)
	ca.nextKey, ca.nextCert = nextKey, nextCert
	ca.bundle.Replace(roots)
	return nil
}

// loadNext loads the next root of a rotation in progress, if any.
func (ca *CA) loadNext() (crypto.Signer, *x509.Certificate, error) {
	certPEM, err := os.ReadFile(filepath.Join(ca.dir, nextCACertFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(ca.dir, nextCAKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("CA: root rotation in progress but: %w", err)
	}
	certs, err := ParseCertsPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA: %s: %w", nextCACertFile, err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA: %s: %w", nextCAKeyFile, err)
	}
	if !publicKeysEqual(key.Public(), certs[0].PublicKey) {
		return nil, nil, fmt.Errorf("CA: %s does not match %s", nextCAKeyFile, nextCACertFile)
	}
	return key, certs[0], nil
}

// Reload re-reads the CA files, e.g. after an operator replaced a plugged
// CA. On error the CA keeps its current state.
func (ca *CA) Reload() error { return ca.load() }

// TrustDomain returns the trust domain the CA signs for.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.td }

// Bundle returns the roots the mesh trusts; it changes on rotation.
func (ca *CA) Bundle() *Bundle { return ca.bundle }

// SigningCert returns the certificate the CA currently signs with.
func (ca *CA) SigningCert() *x509.Certificate {
	ca.mu.RLock()
	defer ca.mu.RUnlock()
	return ca.cert
}

// Sign issues a workload certificate for csr, valid for ttl (0: the default;
// clamped to the maximum and to the signing certificate's own expiry). The
// CSR must be signed by an ECDSA P-256 key and carry exactly one URI SAN, a
// workload ID of the CA's trust domain, and no other SAN. It returns the
// chain to present in TLS: the new certificate, then intermediates (never
// the self-signed root).
func (ca *CA) Sign(csr *x509.CertificateRequest, ttl time.Duration) ([]*x509.Certificate, error) {
	id, err := csrID(csr, ca.td)
	if err != nil {
		return nil, err
	}
	switch {
	case ttl < 0:
		return nil, fmt.Errorf("negative validity %s", ttl)
	case ttl == 0:
		ttl = ca.opts.DefaultTTL
	case ttl > ca.opts.MaxTTL:
		ttl = ca.opts.MaxTTL
	}
	ca.mu.RLock()
	key, signer, chain := ca.key, ca.cert, ca.chain
	ca.mu.RUnlock()
	now := ca.opts.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(signer.NotAfter) {
		notAfter = signer.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		NotBefore:             now.Add(-notBeforeSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, csr.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %s: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	out := []*x509.Certificate{leaf}
	if !isSelfSigned(signer) {
		out = append(out, signer)
	}
	return append(out, chain...), nil
}

// csrID validates a CSR and returns the workload ID it asks for.
func csrID(csr *x509.CertificateRequest, td spiffeid.TrustDomain) (spiffeid.ID, error) {
	if csr == nil {
		return spiffeid.ID{}, fmt.Errorf("no certificate request")
	}
	if err := csr.CheckSignature(); err != nil {
		return spiffeid.ID{}, fmt.Errorf("certificate request signature: %w", err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return spiffeid.ID{}, fmt.Errorf("certificate request key must be ECDSA P-256, got %T", csr.PublicKey)
	}
	if len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) > 0 {
		return spiffeid.ID{}, fmt.Errorf("certificate request may carry only a URI SAN (found DNS, IP or email SANs)")
	}
	if len(csr.URIs) != 1 {
		return spiffeid.ID{}, fmt.Errorf("certificate request must carry exactly one URI SAN, found %d", len(csr.URIs))
	}
	id, err := ParseID(csr.URIs[0].String())
	if err != nil {
		return spiffeid.ID{}, err
	}
	if !id.MemberOf(td) {
		return spiffeid.ID{}, fmt.Errorf("identity %s is not in the CA's trust domain %q", id, td)
	}
	return id, nil
}

// Files of a root rotation in progress: the next signing key and root.
const (
	nextCAKeyFile  = "next-ca-key.pem"
	nextCACertFile = "next-ca-cert.pem"
)

// StartRootRotation generates the next self-signed root and adds it to the
// trust bundle (root-cert.pem) while the CA keeps signing with the current
// one. Proxies learn the new root with their next certificate; once all
// have it (at least half a certificate lifetime, or after forcing
// renewals), [CA.CompleteRootRotation] switches signing to it, and
// [CA.RetireRoot] later drops the old root. A plugged CA (signing with an
// intermediate) is rotated by its operator instead: new files, then
// [CA.Reload].
func (ca *CA) StartRootRotation() (*x509.Certificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if !ca.rootCA {
		return nil, fmt.Errorf("CA in %s signs with an intermediate; rotate the plugged CA's files and call Reload", ca.dir)
	}
	if ca.nextCert != nil {
		return ca.nextCert, nil
	}
	key, cert, err := ca.newRoot()
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	roots := append(ca.bundle.Roots(), cert)
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{nextCAKeyFile, keyPEM, 0o600},
		{nextCACertFile, EncodeCertsPEM(cert), 0o644},
		{RootCertFile, EncodeCertsPEM(roots...), 0o644},
	} {
		if err := writeFileAtomic(filepath.Join(ca.dir, f.name), f.data, f.perm); err != nil {
			return nil, fmt.Errorf("writing CA file %s: %w", f.name, err)
		}
	}
	ca.nextKey, ca.nextCert = key, cert
	ca.bundle.Replace(roots)
	return cert, nil
}

// CompleteRootRotation makes the root created by StartRootRotation the
// signer. Both roots stay trusted.
func (ca *CA) CompleteRootRotation() error {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if ca.nextCert == nil {
		return fmt.Errorf("no root rotation in progress in %s; call StartRootRotation first", ca.dir)
	}
	roots := []*x509.Certificate{ca.nextCert}
	for _, r := range ca.bundle.Roots() {
		if !r.Equal(ca.nextCert) {
			roots = append(roots, r)
		}
	}
	if err := ca.persist(ca.nextKey, ca.nextCert, nil, roots); err != nil {
		return err
	}
	for _, name := range []string{nextCAKeyFile, nextCACertFile} {
		if err := os.Remove(filepath.Join(ca.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	ca.key, ca.cert, ca.chain = ca.nextKey, ca.nextCert, nil
	ca.nextKey, ca.nextCert = nil, nil
	ca.bundle.Replace(roots)
	return nil
}

// RetireRoot removes a root from the bundle and root-cert.pem after a
// rotation. The root the CA signs with cannot be retired.
func (ca *CA) RetireRoot(root *x509.Certificate) error {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if root.Equal(ca.cert) || (ca.nextCert != nil && root.Equal(ca.nextCert)) {
		return fmt.Errorf("root %q is the CA's current or next signer; it cannot be retired", root.Subject.CommonName)
	}
	var keep []*x509.Certificate
	for _, r := range ca.bundle.Roots() {
		if !r.Equal(root) {
			keep = append(keep, r)
		}
	}
	if err := writeFileAtomic(filepath.Join(ca.dir, RootCertFile), EncodeCertsPEM(keep...), 0o644); err != nil {
		return fmt.Errorf("writing CA file %s: %w", RootCertFile, err)
	}
	ca.bundle.Replace(keep)
	return nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
