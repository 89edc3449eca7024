package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/meshway/meshway/internal/controlplane"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/kube"
	"github.com/meshway/meshway/internal/store"
)

// embeddedCADir is where meshd keeps its CA on the embedded store: in the
// store's directory, like the .meshd.lock beside it, so that each store
// has one mesh CA (as a cluster has its Secret); the store never reads
// dot-directories.
const embeddedCADir = ".meshd-ca"

// caFiles are the CA directory's files, as in Istio's cacerts Secret.
var caFiles = []string{identity.CACertFile, identity.CAKeyFile, identity.CertChainFile, identity.RootCertFile}

// meshCA is meshd's CA and where it comes from.
type meshCA struct {
	ca       *identity.CA
	describe string
	// check looks at the source again and reloads the CA if it changed.
	check   func(ctx context.Context) error
	cleanup func()
}

// openCA loads or creates the mesh CA: from -ca-dir (Istio's cacerts
// layout; generated there if empty), else on a cluster from the Secret
// cacerts (an operator's plugged CA) or istio-ca-secret (created on first
// start and shared by every replica), else in the embedded store's
// directory.
func openCA(ctx context.Context, o options, be *backendInfo) (*meshCA, error) {
	opts := identity.CAOptions{TrustDomain: o.trustDomain}
	switch {
	case o.caDir != "":
		return dirCA(o.caDir, opts, "-ca-dir")
	case be.caSecrets != nil:
		return secretCA(ctx, be.caSecrets, o.systemNamespace, opts)
	default:
		return dirCA(filepath.Join(be.dir, embeddedCADir), opts, "the embedded store's CA directory")
	}
}

func dirCA(dir string, opts identity.CAOptions, what string) (*meshCA, error) {
	ca, err := identity.NewCA(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, dir, err)
	}
	last := stamp(dir)
	return &meshCA{
		ca:       ca,
		describe: "directory " + dir,
		check: func(context.Context) error {
			now := stamp(dir)
			if now == last {
				return nil
			}
			if err := ca.Reload(); err != nil {
				return fmt.Errorf("reloading the CA in %s: %w (still signing with the previous one)", dir, err)
			}
			last = now
			return nil
		},
		cleanup: func() {},
	}, nil
}

// stamp summarizes the CA files' sizes and modification times.
func stamp(dir string) string {
	var b bytes.Buffer
	for _, name := range append(caFiles, "next-ca-cert.pem") {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil {
			fmt.Fprintf(&b, "%s %d %d;", name, st.Size(), st.ModTime().UnixNano())
		}
	}
	return b.String()
}

// secretCA takes the CA from a Secret, written to a private temporary
// directory (the CA works on files) that goes when meshd stops.
func secretCA(ctx context.Context, secrets *kube.CASecrets, ns string, opts identity.CAOptions) (*meshCA, error) {
	dir, err := os.MkdirTemp("", "meshd-ca-")
	if err != nil {
		return nil, fmt.Errorf("directory for the CA's files: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	generate := func() (map[string][]byte, error) {
		gen := filepath.Join(dir, "generated")
		if _, err := identity.NewCA(gen, opts); err != nil {
			return nil, fmt.Errorf("generating the mesh CA: %w", err)
		}
		defer func() { _ = os.RemoveAll(gen) }()
		data := map[string][]byte{}
		for _, name := range caFiles {
			b, err := os.ReadFile(filepath.Join(gen, name))
			if err != nil {
				return nil, err
			}
			data[name] = b
		}
		return data, nil
	}
	sec, err := secrets.Load(ctx, generate)
	if err != nil {
		cleanup()
		return nil, err
	}
	where := func(s kube.CASecret) string { return "Secret " + ns + "/" + s.Name }
	if err := writeCAFiles(dir, sec.Data); err != nil {
		cleanup()
		return nil, fmt.Errorf("%s: %w", where(sec), err)
	}
	ca, err := identity.LoadPluggedCA(dir, opts)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("%s: %w (fix or delete the Secret)", where(sec), err)
	}
	return &meshCA{
		ca:       ca,
		describe: where(sec),
		check: func(ctx context.Context) error {
			now, err := secrets.Load(ctx, nil)
			if err != nil {
				return err
			}
			if now.Name == sec.Name && now.ResourceVersion == sec.ResourceVersion {
				return nil
			}
			if err := writeCAFiles(dir, now.Data); err != nil {
				return fmt.Errorf("%s: %w", where(now), err)
			}
			if err := ca.Reload(); err != nil {
				return fmt.Errorf("%s changed but cannot be used (still signing with %s): %w", where(now), where(sec), err)
			}
			sec = now
			return nil
		},
		cleanup: cleanup,
	}, nil
}

// writeCAFiles writes a CA Secret's data as the CA's files. An
// istio-ca-secret that istiod wrote holds its self-signed root in
// ca-cert.pem and leaves root-cert.pem and cert-chain.pem empty: the root
// is then ca-cert.pem itself, so a cluster moving from istiod keeps
// trusting what istiod issued.
func writeCAFiles(dir string, data map[string][]byte) error {
	if len(data[identity.CACertFile]) == 0 || len(data[identity.CAKeyFile]) == 0 {
		return fmt.Errorf("the CA Secret needs %s and %s", identity.CACertFile, identity.CAKeyFile)
	}
	files := map[string][]byte{}
	for _, name := range caFiles {
		files[name] = data[name]
	}
	if len(files[identity.RootCertFile]) == 0 {
		files[identity.RootCertFile] = data[identity.CACertFile]
	}
	for _, name := range caFiles {
		p := filepath.Join(dir, name)
		if len(files[name]) == 0 {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			continue
		}
		// Temporary file and rename: a concurrent reload never reads a
		// torn file.
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, files[name], 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	return nil
}

// watchCA reloads the CA when its source changes, until ctx ends, and has
// the writers run again (ConfigMap istio-ca-root-cert) whenever the roots
// change.
func watchCA(ctx context.Context, mc *meshCA, every time.Duration, ctl *controlplane.Controller, logf func(string, ...any)) {
	go func() {
		for {
			changed := mc.ca.Bundle().Changed()
			select {
			case <-ctx.Done():
				return
			case <-changed:
				logf("ca: the mesh's roots changed; publishing them")
				ctl.Rewrite()
			}
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		msg := ""
		if err := mc.check(ctx); err != nil && ctx.Err() == nil {
			msg = err.Error()
		}
		if msg != last && msg != "" {
			logf("ca: %s", msg)
		}
		last = msg
	}
}

// servingNames are the names meshd's serving certificate carries: its
// Service's in every form a pod may dial (and istiod's, for clients
// configured for Istio whose DNS points at meshd), and loopback for a
// local run. A waypoint verifies the name it dials against these.
func servingNames(systemNamespace, secureAddr string) ([]string, []net.IP) {
	var dns []string
	for _, svc := range []string{"meshd", "istiod"} {
		dns = append(dns, svc, svc+"."+systemNamespace, svc+"."+systemNamespace+".svc", svc+"."+systemNamespace+".svc.cluster.local")
	}
	dns = append(dns, "localhost")
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if host, _, err := net.SplitHostPort(secureAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
			ips = append(ips, ip)
		}
	}
	return dns, ips
}

// secureAuth is how the secure port authenticates and authorizes: a
// ServiceAccount token reviewed by the API server on a cluster; node
// tokens from -node-tokens on the embedded store.
func secureAuth(o options, be *backendInfo, st store.Store) (identity.Authenticator, identity.Authorizer, error) {
	if be.tokenReview != nil {
		if o.nodeTokens != "" {
			return nil, nil, errors.New("-node-tokens is for the embedded store; on a cluster proxies authenticate with their ServiceAccount tokens")
		}
		return be.tokenReview, identity.OwnServiceAccount{}, nil
	}
	authz := controlplane.PodsOnNode{Store: st}
	if o.nodeTokens == "" {
		return noTokens{}, authz, nil
	}
	authn, err := identity.NewNodeTokenAuthenticator(o.nodeTokens)
	if err != nil {
		return nil, nil, fmt.Errorf("-node-tokens: %w", err)
	}
	return authn, authz, nil
}

// noTokens refuses every caller of an embedded-store meshd started
// without node tokens, saying how to allow them.
type noTokens struct{}

func (noTokens) Authenticate(context.Context) (identity.Caller, error) {
	return identity.Caller{}, fmt.Errorf("%w: meshd on the embedded store was started without -node-tokens, so no caller is accepted on the secure port; give it a file of \"<node-name> <token>\" lines", identity.ErrUnauthenticated)
}
