package translate

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/push/wire"
)

// FuzzWaypointConfigs feeds the translator manifests mutated from the golden
// inputs (the guide's examples, routes, VirtualServices, ServiceEntries):
// whatever decodes, translation must not panic, every waypoint it returns
// must pass Validate (the proxies refuse what does not), and the result must
// not depend on anything but the input.
func FuzzWaypointConfigs(f *testing.F) {
	paths, err := filepath.Glob("testdata/waypointconfig/*.in.yaml")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed inputs: %v", err)
	}
	for _, p := range paths {
		f.Add(inlineIncludes(f, p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := manifest.Decode("fuzz.yaml", bytes.NewReader(data))
		if err != nil {
			return
		}
		var in ConfigInputs
		for _, d := range docs {
			in.Add(d.Object)
		}
		wps, warnings := WaypointConfigs(in)
		for _, w := range wps {
			if err := w.Validate(); err != nil {
				t.Fatalf("waypoint %s/%s does not validate: %v", w.Namespace, w.Name, err)
			}
		}
		again, againWarnings := WaypointConfigs(in)
		if d := cmp.Diff(wps, again); d != "" {
			t.Fatalf("translation is not deterministic (-first +second):\n%s", d)
		}
		if d := cmp.Diff(warnings, againWarnings); d != "" {
			t.Fatalf("warnings are not deterministic (-first +second):\n%s", d)
		}
	})
}

// FuzzZtunnelConfigs is FuzzWaypointConfigs for ztunnels: seeded with the
// golden inputs of both, every ztunnel returned must pass Validate, equal
// what a ztunnel assembles from the shared resources, and the result must
// not depend on anything but the input.
func FuzzZtunnelConfigs(f *testing.F) {
	paths, err := filepath.Glob("testdata/*config/*.in.yaml")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed inputs: %v", err)
	}
	for _, p := range paths {
		f.Add(inlineIncludes(f, p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := manifest.Decode("fuzz.yaml", bytes.NewReader(data))
		if err != nil {
			return
		}
		var in ConfigInputs
		for _, d := range docs {
			in.Add(d.Object)
		}
		zs, warnings := ZtunnelConfigs(in)
		for _, z := range zs {
			if err := z.Validate(); err != nil {
				t.Fatalf("ztunnel of node %s does not validate: %v", z.Node, err)
			}
		}
		// The shared resources assemble to each node's configuration (see
		// TestZtunnelResourcesAssembleToConfigs); an empty list may come
		// back as nil.
		mesh, _, _ := ZtunnelMesh(in)
		for _, z := range zs {
			got, err := assembleFromResources(t, mesh, z.Node, wire.ZtunnelTypes)
			if err != nil {
				t.Fatalf("node %s: assembling the shared resources: %v", z.Node, err)
			}
			if d := cmp.Diff(z, got, cmpopts.EquateEmpty()); d != "" {
				t.Fatalf("node %s: assembled from resources (+) differs from ZtunnelConfigs (-):\n%s", z.Node, d)
			}
		}
		again, againWarnings := ZtunnelConfigs(in)
		if d := cmp.Diff(zs, again); d != "" {
			t.Fatalf("translation is not deterministic (-first +second):\n%s", d)
		}
		if d := cmp.Diff(warnings, againWarnings); d != "" {
			t.Fatalf("warnings are not deterministic (-first +second):\n%s", d)
		}
	})
}

// inlineIncludes is a golden input with its "# include:" files prepended.
func inlineIncludes(f *testing.F, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	var out []byte
	for _, line := range strings.Split(string(data), "\n") {
		if inc, ok := strings.CutPrefix(line, "# include: "); ok {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(path), strings.TrimSpace(inc)))
			if err != nil {
				f.Fatal(err)
			}
			out = append(append(out, b...), "\n---\n"...)
		}
	}
	return append(out, data...)
}
