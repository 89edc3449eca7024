package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/identity"
)

// TestWriteCAFilesFromIstiod: an istio-ca-secret that istiod wrote (its
// self-signed root in ca-cert.pem, root-cert.pem and cert-chain.pem empty)
// loads, with ca-cert.pem as the root, so what istiod issued stays trusted.
func TestWriteCAFilesFromIstiod(t *testing.T) {
	src := t.TempDir()
	if _, err := identity.NewCA(src, identity.CAOptions{TrustDomain: "cluster.local"}); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	istiod := map[string][]byte{
		"ca-cert.pem": read(identity.CACertFile), "ca-key.pem": read(identity.CAKeyFile),
		"cert-chain.pem": {}, "key.pem": {}, "root-cert.pem": {},
	}
	dir := t.TempDir()
	if err := writeCAFiles(dir, istiod); err != nil {
		t.Fatal(err)
	}
	ca, err := identity.LoadPluggedCA(dir, identity.CAOptions{TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatalf("istiod's CA Secret: %v", err)
	}
	if roots := ca.Bundle().Roots(); len(roots) != 1 || !roots[0].Equal(ca.SigningCert()) {
		t.Errorf("roots %d; want ca-cert.pem itself", len(roots))
	}
	if err := writeCAFiles(dir, map[string][]byte{"ca-cert.pem": istiod["ca-cert.pem"]}); err == nil {
		t.Error("a Secret without ca-key.pem was accepted")
	}
}

// TestDirCAReloads: an operator replacing the files of -ca-dir is noticed
// by the periodic check, and the roots change (which republishes
// istio-ca-root-cert).
func TestDirCAReloads(t *testing.T) {
	dir := t.TempDir()
	opts := identity.CAOptions{TrustDomain: "cluster.local"}
	mc, err := dirCA(dir, opts, "-ca-dir")
	if err != nil {
		t.Fatal(err)
	}
	before := mc.ca.SigningCert()
	changed := mc.ca.Bundle().Changed()
	if err := mc.check(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
		t.Fatal("the roots changed with nothing replaced")
	default:
	}
	other := t.TempDir()
	if _, err := identity.NewCA(other, opts); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	for _, name := range caFiles {
		b, err := os.ReadFile(filepath.Join(other, name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p, later, later)
	}
	if err := mc.check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mc.ca.SigningCert().Equal(before) {
		t.Error("the replaced CA was not reloaded")
	}
	select {
	case <-changed:
	default:
		t.Error("the roots did not change: istio-ca-root-cert would not be republished")
	}
}
