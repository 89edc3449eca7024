package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ManagerOptions configures a [Manager].
type ManagerOptions struct {
	// Issuer signs the manager's CSRs. Required.
	Issuer Issuer
	// Bundle is updated with the roots each response carries, so a root
	// rotation reaches the proxies with their next renewal. Required.
	Bundle *Bundle
	// TTL is the validity asked for; zero lets the CA choose (24 h).
	TTL time.Duration
	// IssueTimeout bounds one CSR round trip; zero means 30 s.
	IssueTimeout time.Duration
	// RetryMin and RetryMax bound the backoff after a failed renewal;
	// zero means 1 s and 1 min. Retries never wait past expiry.
	RetryMin, RetryMax time.Duration
	// Logf, if non-nil, receives renewal failures.
	Logf func(format string, args ...any)
}

// Manager holds the workload certificates of a proxy, one per identity,
// fetches each on first use and renews it at half of its remaining life.
// Renewal swaps the certificate that new TLS handshakes present; it never
// touches established connections. A Manager is safe for concurrent use.
type Manager struct {
	opts   ManagerOptions
	bundle *Bundle

	mu     sync.Mutex
	certs  map[spiffeid.ID]*managed
	closed bool
}

type managed struct {
	m  *Manager
	id spiffeid.ID

	cur     atomic.Pointer[tls.Certificate]
	ready   chan struct{} // closed once the first fetch finished (cur or firstErr set)
	renewMu sync.Mutex    // one renewal at a time

	mu       sync.Mutex
	renewAt  time.Time
	lastErr  error
	firstErr error
	timer    *time.Timer
	failures int
}

// NewManager returns a Manager; call Close to stop its renewals.
func NewManager(opts ManagerOptions) *Manager {
	if opts.Issuer == nil || opts.Bundle == nil {
		panic("identity.NewManager: Issuer and Bundle are required")
	}
	if opts.IssueTimeout <= 0 {
		opts.IssueTimeout = 30 * time.Second
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Minute
	}
	return &Manager{opts: opts, bundle: opts.Bundle, certs: map[spiffeid.ID]*managed{}}
}

// Bundle returns the trust bundle the manager keeps up to date.
func (m *Manager) Bundle() *Bundle { return m.bundle }

// Source returns a [CertSource] for id, fetching its first certificate
// now. Later calls for the same id share the certificate.
func (m *Manager) Source(ctx context.Context, id spiffeid.ID) (CertSource, error) {
	if _, err := m.Certificate(ctx, id); err != nil {
		return nil, err
	}
	return source{m: m, id: id}, nil
}

type source struct {
	m  *Manager
	id spiffeid.ID
}

func (s source) ID() spiffeid.ID { return s.id }

func (s source) TLSCertificate() (*tls.Certificate, error) {
	s.m.mu.Lock()
	mc := s.m.certs[s.id]
	s.m.mu.Unlock()
	if mc != nil {
		if c := mc.cur.Load(); c != nil {
			return c, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.m.opts.IssueTimeout)
	defer cancel()
	return s.m.Certificate(ctx, s.id)
}

// Certificate returns the current certificate for id, fetching it if the
// manager holds none yet.
func (m *Manager) Certificate(ctx context.Context, id spiffeid.ID) (*tls.Certificate, error) {
	mc, first, err := m.entry(id)
	if err != nil {
		return nil, err
	}
	if c := mc.cur.Load(); c != nil {
		return c, nil
	}
	if first {
		return m.initial(ctx, mc)
	}
	select {
	case <-mc.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("certificate for %s: %w", id, ctx.Err())
	}
	if c := mc.cur.Load(); c != nil {
		return c, nil
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return nil, mc.firstErr
}

func (m *Manager) entry(id spiffeid.ID) (*managed, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, false, fmt.Errorf("certificate manager closed")
	}
	if mc, ok := m.certs[id]; ok {
		return mc, false, nil
	}
	mc := &managed{m: m, id: id, ready: make(chan struct{})}
	m.certs[id] = mc
	return mc, true, nil
}

// Renew fetches a new certificate for id now (e.g. after a root rotation)
// and reschedules the next renewal.
func (m *Manager) Renew(ctx context.Context, id spiffeid.ID) error {
	mc, first, err := m.entry(id)
	if err != nil {
		return err
	}
	if first {
		_, err := m.initial(ctx, mc)
		return err
	}
	return mc.renew(ctx)
}

// initial runs the first fetch of a new entry and releases its waiters.
func (m *Manager) initial(ctx context.Context, mc *managed) (*tls.Certificate, error) {
	err := mc.renew(ctx)
	mc.mu.Lock()
	mc.firstErr = err
	mc.mu.Unlock()
	close(mc.ready)
	if err != nil {
		m.mu.Lock()
		if m.certs[mc.id] == mc {
			delete(m.certs, mc.id) // the next caller tries afresh
		}
		m.mu.Unlock()
		return nil, err
	}
	return mc.cur.Load(), nil
}

// Forget stops managing id (its workload left the node).
func (m *Manager) Forget(id spiffeid.ID) {
	m.mu.Lock()
	mc := m.certs[id]
	delete(m.certs, id)
	m.mu.Unlock()
	if mc != nil {
		mc.stopTimer()
	}
}

// Close stops all renewals. Certificates already handed out stay usable.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	all := m.certs
	m.certs = map[spiffeid.ID]*managed{}
	m.mu.Unlock()
	for _, mc := range all {
		mc.stopTimer()
	}
}

// Certificates describes the certificates held, sorted by identity.
func (m *Manager) Certificates() []CertInfo {
	m.mu.Lock()
	all := make([]*managed, 0, len(m.certs))
	for _, mc := range m.certs {
		all = append(all, mc)
	}
	m.mu.Unlock()
	now := time.Now()
	out := make([]CertInfo, 0, len(all))
	for _, mc := range all {
		c := mc.cur.Load()
		mc.mu.Lock()
		renewAt, lastErr := mc.renewAt, mc.lastErr
		mc.mu.Unlock()
		var info CertInfo
		if c != nil {
			info = certInfo(c.Leaf, now)
			info.RenewAt = renewAt
		} else {
			info.Identity = mc.id.String()
		}
		if lastErr != nil {
			info.State = "error: " + lastErr.Error()
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b CertInfo) int {
		if a.Identity < b.Identity {
			return -1
		}
		if a.Identity > b.Identity {
			return 1
		}
		return 0
	})
	return out
}

// renew obtains a fresh key and certificate and schedules the next renewal.
func (mc *managed) renew(ctx context.Context) error {
	mc.renewMu.Lock()
	defer mc.renewMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, mc.m.opts.IssueTimeout)
	defer cancel()
	cert, err := mc.m.issue(ctx, mc.id)
	mc.mu.Lock()
	defer mc.mu.Unlock()
	now := time.Now()
	if err != nil {
		mc.lastErr = err
		mc.failures++
		if mc.m.opts.Logf != nil {
			mc.m.opts.Logf("identity: renewing certificate for %s failed (attempt %d): %v", mc.id, mc.failures, err)
		}
		if mc.cur.Load() != nil {
			wait := min(mc.m.opts.RetryMin<<min(mc.failures-1, 16), mc.m.opts.RetryMax)
			if exp := mc.cur.Load().Leaf.NotAfter; now.Add(wait).After(exp) {
				wait = max(exp.Sub(now)/2, 10*time.Millisecond)
			}
			mc.scheduleLocked(now.Add(wait))
		}
		return err
	}
	mc.cur.Store(cert)
	mc.lastErr, mc.failures = nil, 0
	mc.scheduleLocked(now.Add(cert.Leaf.NotAfter.Sub(now) / 2))
	return nil
}

func (mc *managed) scheduleLocked(at time.Time) {
	mc.renewAt = at
	if mc.timer != nil {
		mc.timer.Stop()
	}
	mc.timer = time.AfterFunc(time.Until(at), func() {
		mc.m.mu.Lock()
		live := mc.m.certs[mc.id] == mc
		mc.m.mu.Unlock()
		if live {
			_ = mc.renew(context.Background())
		}
	})
}

func (mc *managed) stopTimer() {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if mc.timer != nil {
		mc.timer.Stop()
	}
}

// issue generates a key, sends a CSR and checks the answer.
func (m *Manager) issue(ctx context.Context, id spiffeid.ID) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		return nil, err
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	chain, roots, err := m.opts.Issuer.Issue(ctx, id, csrPEM, m.opts.TTL)
	if err != nil {
		return nil, fmt.Errorf("certificate for %s: %w", id, err)
	}
	leaf := chain[0]
	if !publicKeysEqual(key.Public(), leaf.PublicKey) {
		return nil, fmt.Errorf("certificate for %s: CA returned a certificate for another key", id)
	}
	// Accept the new roots first: the new certificate may chain to a root
	// this proxy has not seen yet (root rotation).
	m.bundle.Replace(roots)
	if got, err := m.bundle.Verify(chain, time.Now()); err != nil {
		return nil, fmt.Errorf("certificate for %s from the CA does not verify: %w", id, err)
	} else if got != id {
		return nil, fmt.Errorf("CA returned a certificate for %s, asked for %s", got, id)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, nil
}
