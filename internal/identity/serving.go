package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// SignServing issues the control plane's own TLS serving certificate for
// pub. Unlike a workload certificate ([CA.Sign]) it names the DNS names
// and IP addresses clients dial, because Istio-shaped clients verify the
// control plane by hostname against the mesh root (as Envoy and
// pilot-agent verify istiod.istio-system.svc), and it may only serve
// (extended key usage serverAuth), so it cannot stand in for a workload
// as a TLS client. id, if not zero, is added as the URI SAN so that a
// client verifying SPIFFE IDs instead accepts it too.
func (ca *CA) SignServing(pub crypto.PublicKey, id spiffeid.ID, dnsNames []string, ips []net.IP, ttl time.Duration) ([]*x509.Certificate, error) {
	if len(dnsNames)+len(ips) == 0 {
		return nil, fmt.Errorf("a serving certificate needs at least one DNS name or IP address")
	}
	if !id.IsZero() && !id.MemberOf(ca.td) {
		return nil, fmt.Errorf("serving identity %s is not in the CA's trust domain %q", id, ca.td)
	}
	if ttl <= 0 {
		ttl = ca.opts.DefaultTTL
	}
	ca.mu.RLock()
	key, signer, chain := ca.key, ca.cert, ca.chain
	ca.mu.RUnlock()
	now := ca.opts.Now()
	notAfter := now.Add(min(ttl, ca.opts.MaxTTL))
	if notAfter.After(signer.NotAfter) {
		notAfter = signer.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		NotBefore:             now.Add(-notBeforeSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	if !id.IsZero() {
		tmpl.URIs = []*url.URL{id.URL()}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, pub, key)
	if err != nil {
		return nil, fmt.Errorf("signing the serving certificate for %v: %w", dnsNames, err)
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

// ServingCert is the control plane's serving certificate, issued by its
// own CA and kept fresh without a timer: each handshake checks whether the
// certificate is past half its life or the CA signs with another
// certificate than the one that issued it (a root rotation, a replaced
// plugged CA), and if so issues a new one before answering. It is a
// [CertSource] for [CAServerTLSConfig].
type ServingCert struct {
	ca       *CA
	id       spiffeid.ID
	dnsNames []string
	ips      []net.IP
	ttl      time.Duration

	mu     sync.Mutex
	cur    *tls.Certificate
	signer *x509.Certificate // the CA's signing certificate when cur was issued
	renew  time.Time
}

// NewServingCert issues the first serving certificate (see
// [CA.SignServing]); ttl 0 means the CA's default.
func NewServingCert(ca *CA, id spiffeid.ID, dnsNames []string, ips []net.IP, ttl time.Duration) (*ServingCert, error) {
	s := &ServingCert{ca: ca, id: id, dnsNames: slices.Clone(dnsNames), ips: slices.Clone(ips), ttl: ttl}
	if _, err := s.TLSCertificate(); err != nil {
		return nil, err
	}
	return s, nil
}

// ID implements [CertSource].
func (s *ServingCert) ID() spiffeid.ID { return s.id }

// TLSCertificate implements [CertSource]. On a failed renewal it keeps
// presenting the current certificate while that is valid.
func (s *ServingCert) TLSCertificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	signer := s.ca.SigningCert()
	now := s.ca.opts.Now()
	if s.cur != nil && now.Before(s.renew) && signer.Equal(s.signer) {
		return s.cur, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return s.fallbackLocked(now, err)
	}
	chain, err := s.ca.SignServing(key.Public(), s.id, s.dnsNames, s.ips, s.ttl)
	if err != nil {
		return s.fallbackLocked(now, err)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	s.cur, s.signer = tc, signer
	s.renew = now.Add(chain[0].NotAfter.Sub(now) / 2)
	return tc, nil
}

func (s *ServingCert) fallbackLocked(now time.Time, err error) (*tls.Certificate, error) {
	if s.cur != nil && now.Before(s.cur.Leaf.NotAfter) {
		return s.cur, nil
	}
	return nil, fmt.Errorf("control plane serving certificate: %w", err)
}
