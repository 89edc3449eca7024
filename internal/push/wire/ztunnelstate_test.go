package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

// smallMesh is a waypoint with one pod, a workload bound to it with a
// policy, and a service in front of both workloads.
func smallMesh() *model.Ztunnel {
	return &model.Ztunnel{
		Workloads: []model.ZtunnelWorkload{
			{UID: "Kubernetes//Pod/ns/app", Name: "app", Namespace: "ns", Addresses: []string{"10.0.0.1"}, Node: "node-a",
				ServiceAccount: "app", Identity: "spiffe://cluster.local/ns/ns/sa/app", Protocol: model.TunnelHBONE, Captured: true,
				Waypoint: "ns/wp", Policies: []string{"ns/allow"}},
			{UID: "Kubernetes//Pod/ns/wp-1", Name: "wp-1", Namespace: "ns", Addresses: []string{"10.0.0.2"}, Node: "node-b",
				ServiceAccount: "wp", Identity: "spiffe://cluster.local/ns/ns/sa/wp", Protocol: model.TunnelHBONE},
		},
		Services: []model.ZtunnelService{{
			Name: "app", Namespace: "ns", Hostname: "app.ns.svc.cluster.local", Addresses: []string{"10.96.0.1"},
			Ports:     []model.PortMapping{{Port: 80, TargetPort: 8080}},
			Endpoints: []model.ZtunnelEndpoint{{Workload: "Kubernetes//Pod/ns/app", Ports: []model.PortMapping{{Port: 80, TargetPort: 8080}}}},
			Waypoint:  "ns/wp",
		}},
		Waypoints: []model.ZtunnelWaypoint{{Name: "wp", Namespace: "ns", Address: "10.96.0.9", HBONEPort: model.HBONEPort,
			Instances: []string{"Kubernetes//Pod/ns/wp-1"}, Identities: []string{"spiffe://cluster.local/ns/ns/sa/wp"}}},
		Policies: []model.AuthorizationPolicy{{Name: "allow", Namespace: "ns", Action: model.ActionAllow,
			Rules: []model.Rule{{From: []model.Source{{Namespaces: []string{"ns"}}}}}}},
	}
}

func applyAll(t *testing.T, st *ZtunnelState, res Resources, types ...string) {
	t.Helper()
	for _, typ := range types {
		if _, err := st.Apply(typ, res[typ], nil); err != nil {
			t.Fatalf("applying %s: %v", typ, err)
		}
	}
}

func TestZtunnelStateAssemblesOnceComplete(t *testing.T) {
	mesh := smallMesh()
	res := ZtunnelResources(mesh)
	st := NewZtunnelState()
	// Workloads and services first: they refer to a waypoint and a policy
	// not received yet.
	applyAll(t, st, res, ZtunnelWorkloadType, ZtunnelServiceType)
	_, err := st.Assemble("node-a")
	var inc *IncompleteError
	if !errors.As(err, &inc) {
		t.Fatalf("Assemble with waypoints and policies missing: %v, want an *IncompleteError", err)
	}
	want := []string{
		"workload Kubernetes//Pod/ns/app: waypoint ns/wp",
		"workload Kubernetes//Pod/ns/app: policy ns/allow",
		"service ns/app.ns.svc.cluster.local: waypoint ns/wp",
	}
	if diff := cmp.Diff(want, inc.Missing); diff != "" {
		t.Errorf("missing pieces (-want +got):\n%s", diff)
	}
	applyAll(t, st, res, ZtunnelWaypointType, ZtunnelPolicyType)
	got, err := st.Assemble("node-a")
	if err != nil {
		t.Fatal(err)
	}
	want2 := *mesh
	want2.Node = "node-a"
	if diff := cmp.Diff(&want2, got); diff != "" {
		t.Errorf("assembled (-want +got):\n%s", diff)
	}
}

func TestZtunnelStateApplyIsAllOrNothing(t *testing.T) {
	res := ZtunnelResources(smallMesh())
	st := NewZtunnelState()
	applyAll(t, st, res, ZtunnelTypes...)
	before, err := st.Assemble("node-a")
	if err != nil {
		t.Fatal(err)
	}
	badPort := proto.Clone(res[ZtunnelServiceType]["ns/app.ns.svc.cluster.local"]).(*meshpb.ZtunnelService)
	badPort.Ports[0].Port = 70000
	for _, tc := range []struct {
		name    string
		typ     string
		updated map[string]proto.Message
		want    string
	}{
		{"port out of range", ZtunnelServiceType, map[string]proto.Message{
			"ns/app.ns.svc.cluster.local":   badPort,
			"ns/other.ns.svc.cluster.local": &meshpb.ZtunnelService{Name: "other", Namespace: "ns", Hostname: "other.ns.svc.cluster.local"},
		}, "ns/app.ns.svc.cluster.local: ports[0].port: port 70000 is out of range"},
		{"name contradicts content", ZtunnelWorkloadType, map[string]proto.Message{
			"Kubernetes//Pod/ns/x": &meshpb.ZtunnelWorkload{Uid: "Kubernetes//Pod/ns/y"},
		}, `Kubernetes//Pod/ns/x: the resource is named "Kubernetes//Pod/ns/x" but its content names it "Kubernetes//Pod/ns/y"`},
		{"message of another type", ZtunnelPolicyType, map[string]proto.Message{
			"ns/allow": &meshpb.ZtunnelWaypoint{Name: "allow", Namespace: "ns"},
		}, "ns/allow: a *meshpb.ZtunnelWaypoint, not an AuthorizationPolicy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := st.Apply(tc.typ, tc.updated, []string{"ns/wp"}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v, want an error containing %q", err, tc.want)
			}
			after, err := st.Assemble("node-a")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("a refused Apply changed the state:\n%s", diff)
			}
		})
	}
}

// TestZtunnelStateUndo: a caller that finds the assembled result invalid
// undoes the response.
func TestZtunnelStateUndo(t *testing.T) {
	res := ZtunnelResources(smallMesh())
	st := NewZtunnelState()
	applyAll(t, st, res, ZtunnelTypes...)
	before, _ := st.Assemble("node-a")
	// A second workload with the first's address: each converts, but the
	// whole does not validate.
	dup := &meshpb.ZtunnelWorkload{Uid: "Kubernetes//Pod/ns/dup", Name: "dup", Namespace: "ns", Addresses: []string{"10.0.0.1"}, Protocol: "TCP"}
	changed := proto.Clone(res[ZtunnelWorkloadType]["Kubernetes//Pod/ns/wp-1"]).(*meshpb.ZtunnelWorkload)
	changed.Addresses = []string{"10.0.0.3"}
	undo, err := st.Apply(ZtunnelWorkloadType, map[string]proto.Message{"Kubernetes//Pod/ns/dup": dup, "Kubernetes//Pod/ns/wp-1": changed}, []string{"Kubernetes//Pod/ns/app"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Assemble("node-a"); err == nil {
		t.Fatal("Assemble after removing a referenced workload succeeded")
	}
	undo()
	after, err := st.Assemble("node-a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("undo left changes:\n%s", diff)
	}
	if n := st.Len(ZtunnelWorkloadType); n != 2 {
		t.Errorf("%d workloads after undo, want 2", n)
	}

	// Without the removal the references hold, and Validate refuses the
	// duplicate address: an error that is not an *IncompleteError.
	undo, err = st.Apply(ZtunnelWorkloadType, map[string]proto.Message{"Kubernetes//Pod/ns/dup": dup}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Assemble("node-a")
	var inc *IncompleteError
	if err == nil || errors.As(err, &inc) || !strings.Contains(err.Error(), "10.0.0.1 is also workloads[0].addresses[0]") {
		t.Fatalf("Assemble with a duplicate address: %v, want a validation error", err)
	}
	undo()
}
