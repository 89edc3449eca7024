package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/manifest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata from the current output")

// caseOptions are the Options of golden cases that need other than the defaults.
var caseOptions = map[string]Options{
	"infrastructure": {Network: "network-1", Revision: "canary", ClusterDomain: "example.org", TrustDomain: "corp.example", XDSAddress: "meshd.mesh.svc:15012"},
}

// loadCase reads testdata/<name>.in.yaml: one Gateway and any ConfigMaps.
func loadCase(t *testing.T, path string) (*gwv1.Gateway, []*corev1.ConfigMap) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	docs, err := manifest.Decode(path, f)
	if err != nil {
		t.Fatal(err)
	}
	var gw *gwv1.Gateway
	var cms []*corev1.ConfigMap
	for _, d := range docs {
		switch obj := d.Object.(type) {
		case *gwv1.Gateway:
			if gw != nil {
				t.Fatalf("%s: more than one Gateway", path)
			}
			gw = obj
		case *corev1.ConfigMap:
			cms = append(cms, obj)
		default:
			t.Fatalf("%s: document %d: only a Gateway and ConfigMaps belong in a case, not %T", path, d.Index, obj)
		}
	}
	if gw == nil {
		t.Fatalf("%s: no Gateway", path)
	}
	return gw, cms
}

// renderYAML prints objects as YAML documents, as the golden files hold
// them: without a null creationTimestamp or a status.
func renderYAML(t *testing.T, objs []manifest.Object) string {
	t.Helper()
	var docs []string
	for _, obj := range objs {
		data, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if md, ok := m["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
			delete(md, "creationTimestamp")
		}
		delete(m, "status") // rendered objects are desired state; their status is the API server's

		if tmpl, ok := lookup(m, "spec", "template", "metadata").(map[string]any); ok && tmpl["creationTimestamp"] == nil {
			delete(tmpl, "creationTimestamp")
		}
		out, err := sigsyaml.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(out))
	}
	return strings.Join(docs, "---\n")
}

func lookup(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

func goldenCases(t *testing.T) []string {
	t.Helper()
	ins, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no testdata/*.in.yaml (%v)", err)
	}
	for i, in := range ins {
		ins[i] = strings.TrimSuffix(filepath.Base(in), ".in.yaml")
	}
	return ins
}

// TestGolden renders each testdata/<case>.in.yaml and compares the result
// (or the error, as "error: ...") with <case>.out.yaml. Regenerate with
// `go test ./internal/deploy -run Golden -update`.
func TestGolden(t *testing.T) {
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			gw, cms := loadCase(t, filepath.Join("testdata", name+".in.yaml"))
			objs, err := Render(gw, cms, caseOptions[name])
			var got string
			if err != nil {
				got = "error: " + err.Error() + "\n"
			} else {
				got = renderYAML(t, objs)
				again, err := Render(gw, cms, caseOptions[name])
				if err != nil || renderYAML(t, again) != got {
					t.Fatalf("a second Render differs (err %v): Render must be deterministic", err)
				}
			}
			outPath := filepath.Join("testdata", name+".out.yaml")
			if *update {
				if err := os.WriteFile(outPath, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatalf("%v; run `go test ./internal/deploy -run Golden -update`", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s differs (-want +got); if the change is intended, run `go test ./internal/deploy -run Golden -update` and review the diff:\n%s", outPath, diff)
			}
		})
	}
}

// TestRoundTrip marshals every rendered object with sigs.k8s.io/yaml and reads
// it back with manifest's strict decoder, which must give the same object.
// HorizontalPodAutoscaler and PodDisruptionBudget are not kinds
// internal/manifest reads, so they are only checked to be skipped knowingly.
func TestRoundTrip(t *testing.T) {
	checked := map[string]bool{}
	for _, name := range goldenCases(t) {
		gw, cms := loadCase(t, filepath.Join("testdata", name+".in.yaml"))
		objs, err := Render(gw, cms, caseOptions[name])
		if err != nil {
			continue
		}
		for _, obj := range objs {
			kind := obj.GetObjectKind().GroupVersionKind().Kind
			if _, err := manifest.KindOf(obj); err != nil {
				if kind != "HorizontalPodAutoscaler" && kind != "PodDisruptionBudget" {
					t.Errorf("%s: %s is not a kind internal/manifest reads: %v", name, kind, err)
				}
				continue
			}
			data, err := sigsyaml.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			docs, err := manifest.Decode(name+"/"+kind, bytes.NewReader(data))
			if err != nil {
				t.Errorf("%s: %s does not round-trip: %v\n%s", name, kind, err, data)
				continue
			}
			if len(docs) != 1 {
				t.Fatalf("%s: %s: decoded %d documents", name, kind, len(docs))
			}
			if diff := cmp.Diff(obj, docs[0].Object); diff != "" {
				t.Errorf("%s: %s changed in the round trip (-rendered +decoded):\n%s", name, kind, diff)
			}
			checked[kind] = true
		}
	}
	for _, k := range []string{"ServiceAccount", "Deployment", "Service"} {
		if !checked[k] {
			t.Errorf("no %s was round-tripped", k)
		}
	}
	gc := GatewayClass()
	data, err := sigsyaml.Marshal(gc)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Decode("GatewayClass", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("GatewayClass does not round-trip: %v", err)
	}
	if diff := cmp.Diff(manifest.Object(gc), docs[0].Object); diff != "" {
		t.Errorf("GatewayClass changed in the round trip:\n%s", diff)
	}
}
