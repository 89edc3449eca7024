package translate

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/push/wire"
)

// assembleFromResources does what the control plane and a ztunnel do with
// the shared pieces: converts them to the four resource types
// (wire.ZtunnelResources), sends each resource encoded, and, on the
// ztunnel's side, applies the types in the order given to a
// wire.ZtunnelState and assembles the configuration of node.
func assembleFromResources(tb testing.TB, mesh *model.Ztunnel, node string, order []string) (*model.Ztunnel, error) {
	tb.Helper()
	res := wire.ZtunnelResources(mesh)
	st := wire.NewZtunnelState()
	for _, typ := range order {
		got := map[string]proto.Message{}
		for name, msg := range res[typ] {
			b, err := proto.Marshal(msg)
			if err != nil {
				tb.Fatalf("%s %s: %v", typ, name, err)
			}
			back := msg.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(b, back); err != nil {
				tb.Fatalf("%s %s: %v", typ, name, err)
			}
			got[name] = back
		}
		if _, err := st.Apply(typ, got, nil); err != nil {
			tb.Fatalf("applying %s: %v", typ, err)
		}
	}
	return st.Assemble(node)
}

// TestZtunnelResourcesAssembleToConfigs is the equivalence of the two
// paths to a ztunnel's configuration: for every golden input of the
// waypoint and ztunnel translations, and every node, the configuration a
// ztunnel assembles from the shared resources (ZtunnelMesh →
// wire.ZtunnelResources → wire.ZtunnelState.Assemble) equals
// ZtunnelConfigs' for that node, whatever order the types arrive in —
// exactly: translation leaves no empty list that the wire would give back
// as nil. FuzzZtunnelConfigs checks the same on its inputs.
func TestZtunnelResourcesAssembleToConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/*config/*.in.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, file := range files {
		t.Run(filepath.Base(filepath.Dir(file))+"/"+filepath.Base(file), func(t *testing.T) {
			in := loadConfigInputs(t, file)
			zs, _ := ZtunnelConfigs(in)
			mesh, nodes, _ := ZtunnelMesh(in)
			if len(nodes) != len(zs) {
				t.Fatalf("ZtunnelMesh names %d nodes, ZtunnelConfigs makes %d ztunnels", len(nodes), len(zs))
			}
			if mesh.Node != "" {
				t.Errorf("the shared pieces name node %q", mesh.Node)
			}
			order := slices.Clone(wire.ZtunnelTypes)
			for i, want := range zs {
				if nodes[i] != want.Node {
					t.Fatalf("node %d: %s, ZtunnelConfigs has %s", i, nodes[i], want.Node)
				}
				r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				got, err := assembleFromResources(t, mesh, want.Node, order)
				if err != nil {
					t.Fatalf("node %s: assembling: %v", want.Node, err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("node %s: assembled from resources (+) differs from ZtunnelConfigs (-):\n%s", want.Node, diff)
				}
			}
		})
	}
}

// TestZtunnelPiecesSortByNamespaceThenName: waypoints, services and
// policies sort by namespace, then name, as the model says and the
// ztunnel's assembler sorts them — not by "namespace/name" as a string,
// which puts namespace a-b before a.
func TestZtunnelPiecesSortByNamespaceThenName(t *testing.T) {
	ip := gwv1.IPAddressType
	var in ConfigInputs
	for _, ns := range []string{"a-b", "a"} {
		in.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{LabelDataplaneMode: DataplaneModeAmbient}}})
		in.Add(&gwv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Name: "wp", Namespace: ns},
			Spec:       gwv1.GatewaySpec{GatewayClassName: WaypointClassName, Listeners: []gwv1.Listener{{Name: "mesh", Port: 15008, Protocol: "HBONE"}}},
			Status:     gwv1.GatewayStatus{Addresses: []gwv1.GatewayStatusAddress{{Type: &ip, Value: map[string]string{"a": "10.0.0.1", "a-b": "10.0.0.2"}[ns]}}},
		})
		in.Add(&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns},
			Spec:       corev1.PodSpec{NodeName: "node-1"},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: map[string]string{"a": "10.1.0.1", "a-b": "10.1.0.2"}[ns]},
		})
	}
	mesh, _, _ := ZtunnelMesh(in)
	var got []string
	for _, w := range mesh.Waypoints {
		got = append(got, w.Namespace+"/"+w.Name)
	}
	if want := []string{"a/wp", "a-b/wp"}; !slices.Equal(got, want) {
		t.Fatalf("waypoints in order %v, want %v", got, want)
	}
	assembled, err := assembleFromResources(t, mesh, "node-1", wire.ZtunnelTypes)
	if err != nil {
		t.Fatal(err)
	}
	want := *mesh
	want.Node = "node-1"
	if diff := cmp.Diff(&want, assembled); diff != "" {
		t.Errorf("assembled differently (-translated +assembled):\n%s", diff)
	}
}
