package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// RootFile is a PEM file of mesh roots that a proxy trusts the control
// plane by: in a pod, root-cert.pem of the istio-ca-root-cert ConfigMap,
// mounted at /var/run/secrets/istio. The control plane rewrites the
// ConfigMap on a root rotation and the kubelet updates the mounted file,
// so the file is read again whenever it changed (by size or modification
// time) when a connection is made.
type RootFile struct {
	path string

	mu    sync.Mutex
	mod   time.Time
	size  int64
	roots []*x509.Certificate
}

// NewRootFile reads the roots in path; it fails if the file cannot be
// read or holds no certificate.
func NewRootFile(path string) (*RootFile, error) {
	r := &RootFile{path: path}
	if _, err := r.Roots(); err != nil {
		return nil, err
	}
	return r, nil
}

// Path is the file's path.
func (r *RootFile) Path() string { return r.path }

// Roots returns the roots, re-reading the file if it changed. A file that
// changed into something unreadable keeps the roots read last (a
// ConfigMap update swaps a symlink, never leaves a torn file, but an
// operator's edit might), and the error says so.
func (r *RootFile) Roots() ([]*x509.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := os.Stat(r.path)
	if err == nil && r.roots != nil && st.ModTime().Equal(r.mod) && st.Size() == r.size {
		return r.roots, nil
	}
	var certs []*x509.Certificate
	if err == nil {
		var data []byte
		if data, err = os.ReadFile(r.path); err == nil {
			certs, err = ParseCertsPEM(data)
		}
	}
	if err != nil {
		err = fmt.Errorf("root certificate file %s (the mesh CA's root-cert.pem, from the istio-ca-root-cert ConfigMap in a pod): %w", r.path, err)
		if r.roots != nil {
			return r.roots, err
		}
		return nil, err
	}
	r.roots, r.mod, r.size = certs, st.ModTime(), st.Size()
	return certs, nil
}

// TransportCredentials returns gRPC credentials for dialing the control
// plane over TLS: the server's certificate must chain to the file's roots
// and name the host dialed (a DNS name or IP address SAN), as Istio's
// proxies verify istiod. Each connection reads the roots afresh (see
// [RootFile.Roots]), so a rotated root-cert.pem is used without a restart.
func (r *RootFile) TransportCredentials() credentials.TransportCredentials {
	return &rootFileCreds{r: r}
}

type rootFileCreds struct {
	r          *RootFile
	serverName string // "" : the host of the address dialed
}

func (c *rootFileCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	roots, err := c.r.Roots()
	if roots == nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	for _, root := range roots {
		pool.AddCert(root)
	}
	tc := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: c.serverName})
	conn, info, err := tc.ClientHandshake(ctx, authority, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS to the control plane at %s (verified against the roots in %s): %w", authority, c.r.path, err)
	}
	return conn, info, nil
}

func (c *rootFileCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("identity: root file credentials are for clients only")
}

func (c *rootFileCreds) Info() credentials.ProtocolInfo {
	return credentials.NewTLS(nil).Info()
}

func (c *rootFileCreds) Clone() credentials.TransportCredentials {
	cp := *c
	return &cp
}

// OverrideServerName is part of the interface until gRPC removes it.
func (c *rootFileCreds) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}
