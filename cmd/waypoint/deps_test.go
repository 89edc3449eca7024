package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: the waypoint never links the store, translation, the
// Kubernetes client or meshctl (ARCHITECTURE.md): it gets its configuration
// pushed or from a file. Nor the tests' helpers.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/meshway/meshway/internal/store",
		"github.com/meshway/meshway/internal/translate",
		"github.com/meshway/meshway/internal/kube",
		"github.com/meshway/meshway/internal/cli",
		"github.com/meshway/meshway/internal/chaos", // tests' helpers
		"k8s.io/client-go",
		"sigs.k8s.io/controller-runtime",
		// The control plane's xDS server; the proxy speaks xDS with the
		// lean messages of api/meshpb (internal/push/client).
		"github.com/envoyproxy/go-control-plane",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("cmd/waypoint depends on %s", dep)
			}
		}
	}
}
