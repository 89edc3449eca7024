package identity

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"time"
)

// CertInfo describes a held certificate, for admin pages.
type CertInfo struct {
	Identity  string    `json:"identity"`
	Serial    string    `json:"serial"` // hexadecimal
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// RenewAt is when the Manager will renew it (zero if not managed).
	RenewAt time.Time `json:"renewAt,omitzero"`
	Issuer  string    `json:"issuer"`
	// State is "valid", "expired" or, for a failed fetch, "error: ...".
	State string `json:"state"`
}

// RootInfo describes a trusted root, for admin pages.
type RootInfo struct {
	Subject  string    `json:"subject"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
}

// Info describes the bundle's roots.
func (b *Bundle) Info() []RootInfo {
	var out []RootInfo
	for _, r := range b.Roots() {
		out = append(out, RootInfo{Subject: r.Subject.String(), Serial: r.SerialNumber.Text(16), NotAfter: r.NotAfter})
	}
	return out
}

func certInfo(c *x509.Certificate, now time.Time) CertInfo {
	id, _ := idFromCert(c)
	state := "valid"
	if now.After(c.NotAfter) {
		state = "expired"
	}
	return CertInfo{
		Identity:  id.String(),
		Serial:    c.SerialNumber.Text(16),
		NotBefore: c.NotBefore,
		NotAfter:  c.NotAfter,
		Issuer:    c.Issuer.String(),
		State:     state,
	}
}

// AdminHandler serves, as JSON, the certificates m holds and the roots of
// its bundle: {"certificates": [...], "roots": [...]}. A nil m serves
// empty lists.
func AdminHandler(m *Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		out := struct {
			Certificates []CertInfo `json:"certificates"`
			Roots        []RootInfo `json:"roots"`
		}{Certificates: []CertInfo{}, Roots: []RootInfo{}}
		if m != nil {
			out.Certificates = append(out.Certificates, m.Certificates()...)
			out.Roots = append(out.Roots, m.bundle.Info()...)
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	})
}
