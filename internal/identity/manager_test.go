package identity_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshway/meshway/internal/identity"
)

// flakyIssuer signs with a CA, records each issue, and fails while failing
// is set.
type flakyIssuer struct {
	ca *identity.CA

	mu      sync.Mutex
	failing bool
	issued  chan time.Time
}

func (f *flakyIssuer) Issue(ctx context.Context, id spiffeid.ID, csr []byte, ttl time.Duration) ([]*x509.Certificate, []*x509.Certificate, error) {
	f.mu.Lock()
	failing := f.failing
	f.mu.Unlock()
	select {
	case f.issued <- time.Now():
	default:
	}
	if failing {
		return nil, nil, errors.New("CA unreachable")
	}
	return identity.CAIssuer{CA: f.ca}.Issue(ctx, id, csr, ttl)
}

func (f *flakyIssuer) setFailing(v bool) {
	f.mu.Lock()
	f.failing = v
	f.mu.Unlock()
}

func TestManagerRenewsAtHalfLife(t *testing.T) {
	ca := newCA(t, identity.CAOptions{})
	iss := &flakyIssuer{ca: ca, issued: make(chan time.Time, 16)}
	const ttl = 2 * time.Second
	mgr := identity.NewManager(identity.ManagerOptions{Issuer: iss, Bundle: identity.NewBundle(ca.TrustDomain(), ca.Bundle().Roots()...), TTL: ttl})
	defer mgr.Close()
	ctx := context.Background()
	src, err := mgr.Source(ctx, nodeAWorkload)
	if err != nil {
		t.Fatal(err)
	}
	first := <-iss.issued
	c1, _ := src.TLSCertificate()
	info := mgr.Certificates()
	if len(info) != 1 || info[0].Identity != nodeAWorkload.String() || info[0].Serial != c1.Leaf.SerialNumber.Text(16) {
		t.Fatalf("Certificates() = %+v", info)
	}
	// Half of the remaining life (NotAfter is whole seconds).
	half := c1.Leaf.NotAfter.Sub(first) / 2
	if d := info[0].RenewAt.Sub(first); d < half-100*time.Millisecond || d > half+100*time.Millisecond {
		t.Errorf("renewal scheduled %s after issue; want half the remaining life, %s", d, half)
	}
	select {
	case second := <-iss.issued:
		if d := second.Sub(first); d < half-100*time.Millisecond {
			t.Errorf("renewed after %s; want about %s", d, half)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no renewal within 5 s of a 2 s certificate")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c2, _ := src.TLSCertificate()
		if c2.Leaf.SerialNumber.Cmp(c1.Leaf.SerialNumber) != 0 {
			if c2.PrivateKey == c1.PrivateKey {
				t.Error("renewal reused the private key")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("source still presents the first certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestManagerKeepsCertificateWhenRenewalFails(t *testing.T) {
	ca := newCA(t, identity.CAOptions{})
	iss := &flakyIssuer{ca: ca, issued: make(chan time.Time, 64)}
	mgr := identity.NewManager(identity.ManagerOptions{
		Issuer: iss, Bundle: identity.NewBundle(ca.TrustDomain(), ca.Bundle().Roots()...),
		TTL: time.Hour, RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	defer mgr.Close()
	ctx := context.Background()
	c1, err := mgr.Certificate(ctx, nodeAWorkload)
	if err != nil {
		t.Fatal(err)
	}
	iss.setFailing(true)
	if err := mgr.Renew(ctx, nodeAWorkload); err == nil {
		t.Fatal("Renew succeeded while the CA fails")
	}
	if c, err := mgr.Certificate(ctx, nodeAWorkload); err != nil || c != c1 {
		t.Fatalf("after a failed renewal: %v; want the old certificate kept", err)
	}
	if info := mgr.Certificates(); !strings.Contains(info[0].State, "CA unreachable") {
		t.Errorf("admin state %q; want the renewal error", info[0].State)
	}
	// Retries follow with backoff; once the CA is back one succeeds.
	<-iss.issued
	<-iss.issued
	iss.setFailing(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, _ := mgr.Certificate(ctx, nodeAWorkload); c != c1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no successful retry after the CA came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if info := mgr.Certificates(); info[0].State != "valid" {
		t.Errorf("state %q after recovery; want valid", info[0].State)
	}
}

func TestManagerFirstFetchError(t *testing.T) {
	ca := newCA(t, identity.CAOptions{})
	iss := &flakyIssuer{ca: ca, failing: true, issued: make(chan time.Time, 4)}
	mgr := identity.NewManager(identity.ManagerOptions{Issuer: iss, Bundle: ca.Bundle()})
	defer mgr.Close()
	if _, err := mgr.Source(context.Background(), nodeAWorkload); err == nil || !strings.Contains(err.Error(), "CA unreachable") {
		t.Fatalf("got %v; want the issuer's error", err)
	}
	iss.setFailing(false)
	if _, err := mgr.Source(context.Background(), nodeAWorkload); err != nil {
		t.Fatalf("second attempt: %v", err)
	}
}

func TestAdminHandler(t *testing.T) {
	ca := newCA(t, identity.CAOptions{})
	mgr := identity.NewManager(identity.ManagerOptions{Issuer: identity.CAIssuer{CA: ca}, Bundle: ca.Bundle()})
	defer mgr.Close()
	c, err := mgr.Certificate(context.Background(), nodeAWorkload)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	identity.AdminHandler(mgr).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/certs", nil))
	var got struct {
		Certificates []identity.CertInfo
		Roots        []identity.RootInfo
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Certificates) != 1 || got.Certificates[0].Identity != nodeAWorkload.String() ||
		got.Certificates[0].Serial != c.Leaf.SerialNumber.Text(16) || !got.Certificates[0].NotAfter.Equal(c.Leaf.NotAfter) {
		t.Errorf("certificates %+v; want %s serial %s", got.Certificates, nodeAWorkload, c.Leaf.SerialNumber.Text(16))
	}
	if len(got.Roots) != 1 {
		t.Errorf("roots %+v; want 1", got.Roots)
	}
}
