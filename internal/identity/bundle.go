package identity

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Bundle is the set of root certificates a trust domain accepts. It holds
// more than one root while a root rotation is under way: certificates
// chaining to either are accepted. A Bundle is safe for concurrent use;
// verifications see the roots as they were when they started.
//
// The zero Bundle has no trust domain and accepts nothing; use [NewBundle].
type Bundle struct {
	td spiffeid.TrustDomain

	mu    sync.Mutex
	roots []*x509.Certificate
	pool  *x509.CertPool // rebuilt on change, read without copying
	subs  []chan struct{}
}

// NewBundle returns a bundle for the trust domain holding roots.
func NewBundle(td spiffeid.TrustDomain, roots ...*x509.Certificate) *Bundle {
	b := &Bundle{td: td}
	for _, r := range roots {
		b.addLocked(r)
	}
	b.pool = b.buildPoolLocked()
	return b
}

// TrustDomain returns the trust domain whose roots the bundle holds.
func (b *Bundle) TrustDomain() spiffeid.TrustDomain { return b.td }

// Add adds a root; it reports whether the root was new.
func (b *Bundle) Add(root *x509.Certificate) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.addLocked(root) {
		return false
	}
	b.changedLocked()
	return true
}

// Remove removes a root; it reports whether the root was present.
func (b *Bundle) Remove(root *x509.Certificate) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, r := range b.roots {
		if r.Equal(root) {
			b.roots = append(b.roots[:i:i], b.roots[i+1:]...)
			b.changedLocked()
			return true
		}
	}
	return false
}

// Replace sets the roots to exactly roots (as received from the CA).
// It reports whether anything changed.
func (b *Bundle) Replace(roots []*x509.Certificate) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sameCerts(b.roots, roots) {
		return false
	}
	b.roots = nil
	for _, r := range roots {
		b.addLocked(r)
	}
	b.changedLocked()
	return true
}

// Roots returns a copy of the roots, in the order they were added.
func (b *Bundle) Roots() []*x509.Certificate {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*x509.Certificate(nil), b.roots...)
}

// Pool returns the roots as a cert pool. The pool must not be modified.
func (b *Bundle) Pool() *x509.CertPool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pool
}

// PEM returns the roots PEM-encoded, concatenated.
func (b *Bundle) PEM() []byte {
	var buf bytes.Buffer
	for _, r := range b.Roots() {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})
	}
	return buf.Bytes()
}

// Changed returns a channel closed at the next change of the roots.
func (b *Bundle) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan struct{})
	b.subs = append(b.subs, ch)
	return ch
}

func (b *Bundle) addLocked(root *x509.Certificate) bool {
	for _, r := range b.roots {
		if r.Equal(root) {
			return false
		}
	}
	b.roots = append(b.roots, root)
	return true
}

func (b *Bundle) changedLocked() {
	b.pool = b.buildPoolLocked()
	for _, ch := range b.subs {
		close(ch)
	}
	b.subs = nil
}

func (b *Bundle) buildPoolLocked() *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range b.roots {
		p.AddCert(r)
	}
	return p
}

// ErrUntrusted marks a peer certificate that does not verify against the
// trust bundle: unknown or wrong signer, expired, not yet valid, or not a
// SPIFFE workload certificate. Test with errors.Is.
var ErrUntrusted = errors.New("peer certificate not trusted")

// Verify checks a peer's certificate chain (leaf first, as presented in a
// TLS handshake) against the bundle at time now and returns the leaf's
// SPIFFE ID. The leaf must be a SPIFFE X.509-SVID of the bundle's trust
// domain: not a CA, exactly one URI SAN.
func (b *Bundle) Verify(chain []*x509.Certificate, now time.Time) (spiffeid.ID, error) {
	if len(chain) == 0 {
		return spiffeid.ID{}, fmt.Errorf("%w: no certificate presented", ErrUntrusted)
	}
	leaf := chain[0]
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	if leaf.IsCA {
		return spiffeid.ID{}, fmt.Errorf("%w: %s: leaf certificate is a CA", ErrUntrusted, id)
	}
	if !id.MemberOf(b.td) {
		return spiffeid.ID{}, fmt.Errorf("%w: %s is not in trust domain %q", ErrUntrusted, id, b.td)
	}
	var inter *x509.CertPool
	if len(chain) > 1 {
		inter = x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:         b.Pool(),
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: %s (serial %s): %w", ErrUntrusted, id, leaf.SerialNumber.Text(16), err)
	}
	return id, nil
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
