package wire

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

const ztunnelGoldenGlob = "../../translate/testdata/ztunnelconfig/*.out.yaml"

// roundTripZtunnel sends z the way the control plane does: converted,
// encoded, decoded by the proxy and converted back.
func roundTripZtunnel(tb testing.TB, z *model.Ztunnel) *model.Ztunnel {
	tb.Helper()
	b, err := proto.Marshal(Ztunnel(z))
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	var pb meshpb.ZtunnelConfig
	if err := proto.Unmarshal(b, &pb); err != nil {
		tb.Fatalf("unmarshal: %v", err)
	}
	got, err := ZtunnelToModel(&pb)
	if err != nil {
		tb.Fatalf("ZtunnelToModel: %v", err)
	}
	return got
}

// TestZtunnelEveryModelFieldSurvives: see TestEveryModelFieldSurvives; a
// field added to model.Ztunnel and forgotten in ztunnel.proto or here
// fails, named by its path.
func TestZtunnelEveryModelFieldSurvives(t *testing.T) {
	var z model.Ztunnel
	f := &modelFiller{}
	if err := f.fill(reflect.ValueOf(&z).Elem(), "Ztunnel"); err != nil {
		t.Fatal(err)
	}
	var diffs fieldDiffs
	if !cmp.Equal(&z, roundTripZtunnel(t, &z), cmp.Reporter(&diffs)) {
		t.Errorf("the round trip lost or changed model fields; give each its counterpart in "+
			"api/meshpb/ztunnel.proto (then make gen) and convert it in internal/push/wire:\n%s", &diffs)
	}
}

// TestZtunnelEveryProtoFieldSurvives: every field of the message, set,
// must come back from the model.
func TestZtunnelEveryProtoFieldSurvives(t *testing.T) {
	pb := &meshpb.ZtunnelConfig{}
	f := &protoFiller{}
	if err := f.fill(pb.ProtoReflect()); err != nil {
		t.Fatal(err)
	}
	z, err := ZtunnelToModel(pb)
	if err != nil {
		t.Fatalf("ZtunnelToModel: %v", err)
	}
	if back := Ztunnel(z); !proto.Equal(pb, back) {
		var diffs fieldDiffs
		cmp.Equal(pb, back, protocmp.Transform(), cmp.Reporter(&diffs))
		t.Errorf("message fields lost or changed through the model; convert each in internal/push/wire:\n%s", &diffs)
	}
}

// TestZtunnelRoundTripTranslateGoldens sends every ztunnel the translate
// goldens hold: a YAML list of ztunnels, then "---" and the warnings.
func TestZtunnelRoundTripTranslateGoldens(t *testing.T) {
	files, err := filepath.Glob(ztunnelGoldenGlob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files match %s: %v", ztunnelGoldenGlob, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			ztunnels, _, found := bytes.Cut(data, []byte("\n---\n"))
			if !found {
				t.Fatalf("%s: no \"---\" between the ztunnels and the warnings; has the golden format changed?", file)
			}
			var zs []model.Ztunnel
			if err := sigsyaml.UnmarshalStrict(ztunnels, &zs); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(zs) == 0 {
				t.Fatalf("%s holds no ztunnel", file)
			}
			for i := range zs {
				z := &zs[i]
				if diff := cmp.Diff(z, roundTripZtunnel(t, z)); diff != "" {
					t.Errorf("ztunnel of node %s changed in the round trip (-before +after):\n%s", z.Node, diff)
				}
			}
		})
	}
}

func TestZtunnelToModelErrorsNameTheField(t *testing.T) {
	small := func() *meshpb.ZtunnelConfig {
		return Ztunnel(&model.Ztunnel{
			Node: "node-1",
			Services: []model.ZtunnelService{{Name: "a"}, {
				Name:      "reviews",
				Ports:     []model.PortMapping{{Port: 9080, TargetPort: 9080}},
				Endpoints: []model.ZtunnelEndpoint{{Workload: "w", Ports: []model.PortMapping{{Port: 9080, TargetPort: 9080}, {Port: 80, TargetPort: 8080}}}},
			}},
			Waypoints: []model.ZtunnelWaypoint{{Name: "waypoint", HBONEPort: model.HBONEPort}},
		})
	}
	for _, tc := range []struct {
		name   string
		mutate func(*meshpb.ZtunnelConfig)
		want   string
	}{
		{"service port", func(pb *meshpb.ZtunnelConfig) { pb.Services[1].Ports[0].Port = 70000 }, "services[1].ports[0].port: port 70000 is out of range 0-65535"},
		{"service target port", func(pb *meshpb.ZtunnelConfig) { pb.Services[1].Ports[0].TargetPort = 65536 }, "services[1].ports[0].targetPort: port 65536"},
		{"endpoint target port", func(pb *meshpb.ZtunnelConfig) { pb.Services[1].Endpoints[0].Ports[1].TargetPort = 1 << 20 },
			"services[1].endpoints[0].ports[1].targetPort: port 1048576"},
		{"waypoint port", func(pb *meshpb.ZtunnelConfig) { pb.Waypoints[0].HbonePort = 150080 }, "waypoints[0].hbonePort: port 150080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pb := small()
			if _, err := ZtunnelToModel(pb); err != nil {
				t.Fatalf("the unbroken configuration fails: %v", err)
			}
			tc.mutate(pb)
			_, err := ZtunnelToModel(pb)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error:\n  %v\nwant it to start with\n  %s", err, tc.want)
			}
		})
	}
}

func TestZtunnelNil(t *testing.T) {
	if _, err := ZtunnelToModel(nil); err == nil {
		t.Error("ZtunnelToModel(nil): no error")
	}
	if Ztunnel(nil) != nil {
		t.Error("Ztunnel(nil) is not nil")
	}
	// Nil list elements (a message built in Go) convert as empty ones.
	z, err := ZtunnelToModel(&meshpb.ZtunnelConfig{
		Workloads: []*meshpb.ZtunnelWorkload{nil},
		Services:  []*meshpb.ZtunnelService{{Endpoints: []*meshpb.ZtunnelEndpoint{nil}, Ports: []*meshpb.PortMapping{nil}}},
		Waypoints: []*meshpb.ZtunnelWaypoint{nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(z.Workloads) != 1 || len(z.Services[0].Endpoints) != 1 || len(z.Waypoints) != 1 {
		t.Errorf("nil elements were dropped: %+v", z)
	}
}

// TestZtunnelNoSharedMemory: translation shares the mesh's slices between
// nodes, so the message must never alias the model, nor the model the
// message.
func TestZtunnelNoSharedMemory(t *testing.T) {
	z := &model.Ztunnel{
		Workloads: []model.ZtunnelWorkload{{Addresses: []string{"10.0.0.1"}, Policies: []string{"ns/p"}}},
		Services:  []model.ZtunnelService{{Addresses: []string{"10.96.0.1"}}},
		Waypoints: []model.ZtunnelWaypoint{{Identities: []string{"spiffe://a"}}},
	}
	pb := Ztunnel(z)
	pb.Workloads[0].Addresses[0] = "changed"
	pb.Workloads[0].Policies[0] = "changed"
	pb.Services[0].Addresses[0] = "changed"
	pb.Waypoints[0].Identities[0] = "changed"
	if z.Workloads[0].Addresses[0] != "10.0.0.1" || z.Workloads[0].Policies[0] != "ns/p" ||
		z.Services[0].Addresses[0] != "10.96.0.1" || z.Waypoints[0].Identities[0] != "spiffe://a" {
		t.Error("changing the message changed the model it was made from")
	}
	pb = Ztunnel(z)
	back, err := ZtunnelToModel(pb)
	if err != nil {
		t.Fatal(err)
	}
	back.Workloads[0].Addresses[0] = "changed"
	if pb.Workloads[0].Addresses[0] != "10.0.0.1" {
		t.Error("changing the model changed the message it was made from")
	}
}
