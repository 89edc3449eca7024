package wire

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

const (
	exampleFile = "../../../examples/waypoint/reviews.yaml"
	goldenGlob  = "../../translate/testdata/waypointconfig/*.out.yaml"
)

// roundTrip sends w the way the control plane does: converted, encoded,
// decoded by the proxy and converted back.
func roundTrip(tb testing.TB, w *model.Waypoint) *model.Waypoint {
	tb.Helper()
	b, err := proto.Marshal(Waypoint(w))
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	var pb meshpb.WaypointConfig
	if err := proto.Unmarshal(b, &pb); err != nil {
		tb.Fatalf("unmarshal: %v", err)
	}
	got, err := ToModel(&pb)
	if err != nil {
		tb.Fatalf("ToModel: %v", err)
	}
	return got
}

// loadGolden reads the waypoints of a translate golden file: a YAML list of
// waypoints, then "---" and a document of warnings, which is not ours.
// They are decoded as internal/waypoint's LoadFile decodes a configuration.
func loadGolden(tb testing.TB, path string) []model.Waypoint {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	waypoints, _, found := bytes.Cut(data, []byte("\n---\n"))
	if !found {
		tb.Fatalf("%s: no \"---\" between the waypoints and the warnings; has the golden format changed?", path)
	}
	var ws []model.Waypoint
	if err := sigsyaml.UnmarshalStrict(waypoints, &ws); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return ws
}

func TestRoundTripExample(t *testing.T) {
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	var w model.Waypoint
	if err := sigsyaml.UnmarshalStrict(data, &w); err != nil {
		t.Fatalf("%s: %v", exampleFile, err)
	}
	if diff := cmp.Diff(&w, roundTrip(t, &w)); diff != "" {
		t.Errorf("%s changed in the round trip (-before +after):\n%s", exampleFile, diff)
	}
}

func TestRoundTripTranslateGoldens(t *testing.T) {
	files, err := filepath.Glob(goldenGlob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files match %s: %v", goldenGlob, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			ws := loadGolden(t, file)
			if len(ws) == 0 {
				t.Skipf("%s holds no waypoint", file)
			}
			for i := range ws {
				w := &ws[i]
				if diff := cmp.Diff(w, roundTrip(t, w)); diff != "" {
					t.Errorf("waypoint %s/%s changed in the round trip (-before +after):\n%s", w.Namespace, w.Name, diff)
				}
			}
		})
	}
}

// TestOptionalScalarsKeepZero: the model's pointer scalars mean something
// different when nil (a default) and when zero, so both must survive.
func TestOptionalScalarsKeepZero(t *testing.T) {
	zeroWeight, zeroPercent := int32(0), 0.0
	w := &model.Waypoint{
		Name: "w",
		Services: []model.Service{{Ports: []model.ServicePort{{Routes: []model.HTTPRoute{{Rules: []model.RouteRule{{
			Backends: []model.Backend{{Cluster: "unset"}, {Cluster: "zero", Weight: &zeroWeight}},
		}}}}}}}},
		Telemetry: model.Telemetry{TracingPercent: &zeroPercent},
	}
	got := roundTrip(t, w)
	if diff := cmp.Diff(w, got); diff != "" {
		t.Fatalf("changed in the round trip (-before +after):\n%s", diff)
	}
	backends := got.Services[0].Ports[0].Routes[0].Rules[0].Backends
	if backends[0].Weight != nil || backends[1].Weight == nil {
		t.Errorf("backend weights: got %v, %v; want nil, 0", backends[0].Weight, backends[1].Weight)
	}
	if got.Telemetry.TracingPercent == nil {
		t.Error("tracingPercent 0 came back unset")
	}
}

// TestNoSharedMemory: the message must not alias the model's slices, maps
// or pointers, nor the model the message's: either may be reused.
func TestNoSharedMemory(t *testing.T) {
	weight, percent := int32(5), 10.0
	w := &model.Waypoint{
		Services:  []model.Service{{Addresses: []string{"10.0.0.1"}}},
		Clusters:  []model.Cluster{{Endpoints: []model.Endpoint{{Labels: map[string]string{"app": "a"}}}}},
		Telemetry: model.Telemetry{TracingPercent: &percent},
		Workloads: []model.Workload{{Addresses: []string{"10.0.0.2"}}},
	}
	w.Services = append(w.Services, model.Service{Ports: []model.ServicePort{{Routes: []model.HTTPRoute{{Rules: []model.RouteRule{{
		Backends: []model.Backend{{Weight: &weight}},
	}}}}}}})
	pb := Waypoint(w)
	pb.Services[0].Addresses[0] = "changed"
	pb.Clusters[0].Endpoints[0].Labels["app"] = "changed"
	*pb.Telemetry.TracingPercent = 99
	*pb.Services[1].Ports[0].Routes[0].Rules[0].Backends[0].Weight = 99
	if w.Services[0].Addresses[0] != "10.0.0.1" || w.Clusters[0].Endpoints[0].Labels["app"] != "a" || percent != 10 || weight != 5 {
		t.Error("changing the message changed the model it was made from")
	}
	pb = Waypoint(w)
	back, err := ToModel(pb)
	if err != nil {
		t.Fatal(err)
	}
	back.Workloads[0].Addresses[0] = "changed"
	*back.Telemetry.TracingPercent = 99
	if pb.Workloads[0].Addresses[0] != "10.0.0.2" || pb.Telemetry.GetTracingPercent() != 10 {
		t.Error("changing the model changed the message it was made from")
	}
}
