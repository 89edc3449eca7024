package translate

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/model"
)

// goldenWaypointConfigs is a golden file: the waypoints, then (a second
// document) the warnings.
func goldenWaypointConfigs(wps []*model.Waypoint, warnings []Warning) ([]byte, error) {
	y, err := sigsyaml.Marshal(wps)
	if err != nil {
		return nil, err
	}
	w, err := sigsyaml.Marshal(map[string][]Warning{"warnings": warnings})
	if err != nil {
		return nil, err
	}
	return append(append(y, "---\n"...), w...), nil
}

// loadConfigInputs reads a golden input: multi-document manifests, plus the
// files named by "# include: PATH" lines (relative to the input's directory)
// read first, so the guide's examples are used as they are. A "# node: NAME"
// line schedules the included pods that name no node on NAME, as the
// scheduler would place the examples' pods, so that they have a ztunnel.
func loadConfigInputs(t *testing.T, path string) ConfigInputs {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var in ConfigInputs
	node := ""
	for _, line := range strings.Split(string(data), "\n") {
		if inc, ok := strings.CutPrefix(line, "# include: "); ok {
			addManifests(t, &in, filepath.Join(filepath.Dir(path), strings.TrimSpace(inc)))
		}
		if n, ok := strings.CutPrefix(line, "# node: "); ok {
			node = strings.TrimSpace(n)
		}
	}
	for _, p := range in.Pods {
		if p.Spec.NodeName == "" {
			p.Spec.NodeName = node
		}
	}
	addManifests(t, &in, path)
	return in
}

func addManifests(t *testing.T, in *ConfigInputs, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Decode(path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		manifest.ApplyDefaults(d.Object)
		in.Add(d.Object)
	}
}

// TestWaypointConfigGolden translates testdata/waypointconfig/*.in.yaml and
// compares with *.out.yaml; regenerate with
// go test ./internal/translate -run WaypointConfigGolden -update.
func TestWaypointConfigGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/waypointconfig/*.in.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			in := loadConfigInputs(t, file)
			wps, warnings := WaypointConfigs(in)
			for _, w := range wps {
				if err := w.Validate(); err != nil {
					t.Errorf("waypoint %s/%s does not validate:\n%v", w.Namespace, w.Name, err)
				}
				// What `waypoint -config` does with each document.
				y, err := sigsyaml.Marshal(w)
				if err != nil {
					t.Fatal(err)
				}
				var back model.Waypoint
				if err := sigsyaml.UnmarshalStrict(y, &back); err != nil {
					t.Errorf("waypoint %s/%s does not load back: %v", w.Namespace, w.Name, err)
				}
			}
			got, err := goldenWaypointConfigs(wps, warnings)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join("testdata", "waypointconfig", name+".out.yaml")
			if *update {
				if err := os.WriteFile(out, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-want +got); run with -update if intended:\n%s", out, diff)
			}
		})
	}
}

// TestWaypointConfigsDeterministic shuffles every input slice and expects
// the same output.
func TestWaypointConfigsDeterministic(t *testing.T) {
	files, _ := filepath.Glob("testdata/waypointconfig/*.in.yaml")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			in := loadConfigInputs(t, file)
			wantW, wantWarn := WaypointConfigs(in)
			r := rand.New(rand.NewPCG(1, 2))
			for range 5 {
				shuffleSlices(r, reflect.ValueOf(&in).Elem())
				gotW, gotWarn := WaypointConfigs(in)
				if diff := cmp.Diff(wantW, gotW); diff != "" {
					t.Fatalf("waypoints depend on input order:\n%s", diff)
				}
				if diff := cmp.Diff(wantWarn, gotWarn); diff != "" {
					t.Fatalf("warnings depend on input order:\n%s", diff)
				}
			}
		})
	}
}

func shuffleSlices(r *rand.Rand, v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Struct:
			shuffleSlices(r, f)
		case reflect.Slice:
			r.Shuffle(f.Len(), reflect.Swapper(f.Interface()))
		}
	}
}

func TestPortProtocol(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		app  *string
		name string
		want model.Protocol
	}{
		{nil, "http", model.ProtocolHTTP},
		{nil, "http-web", model.ProtocolHTTP},
		{nil, "HTTP2", model.ProtocolHTTP2},
		{nil, "grpc", model.ProtocolGRPC},
		{nil, "grpc-web", model.ProtocolGRPC}, // the prefix before '-' decides, as in Istio
		{str("grpc-web"), "x", model.ProtocolHTTP},
		{str("kubernetes.io/h2c"), "", model.ProtocolHTTP2},
		{str("http"), "tcp", model.ProtocolHTTP},
		{nil, "", model.ProtocolTCP},
		{nil, "mongo", model.ProtocolTCP},
		{nil, "redis-main", model.ProtocolTCP},
		{nil, "https", model.ProtocolTCP},
		{nil, "web", model.ProtocolTCP},
	} {
		if got := portProtocol(c.app, c.name); got != c.want {
			t.Errorf("portProtocol(%v, %q) = %s, want %s", valueOf(c.app), c.name, got, c.want)
		}
	}
}
