package translate

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// goldenObjectStatus is one object's entry in a status golden file.
type goldenObjectStatus struct {
	WaypointBound    *metav1.Condition        `json:"istio.io/WaypointBound,omitempty"`
	WaypointAccepted *metav1.Condition        `json:"WaypointAccepted,omitempty"`
	Parents          []gwv1.RouteParentStatus `json:"parents,omitempty"`
}

// goldenStatuses prints Statuses as a golden file: objects by "Kind ns/name"
// ({} for an object that gets no condition), then attachedRoutes by
// "ns/name listener". Conditions have no lastTransitionTime to print.
func goldenStatuses(t *testing.T, s Statuses) []byte {
	t.Helper()
	objects := map[string]goldenObjectStatus{}
	for ref, c := range s.WaypointBound {
		e := objects[ref.String()]
		e.WaypointBound = c
		objects[ref.String()] = e
	}
	for ref, c := range s.WaypointAccepted {
		e := objects[ref.String()]
		e.WaypointAccepted = c
		objects[ref.String()] = e
	}
	for ref, ps := range s.RouteParents {
		e := objects[ref.String()]
		e.Parents = ps
		objects[ref.String()] = e
	}
	attached := map[string]int32{}
	for gw, ls := range s.AttachedRoutes {
		for l, n := range ls {
			attached[gw.String()+" "+string(l)] = n
		}
	}
	data, err := json.Marshal(map[string]any{"objects": objects, "attachedRoutes": attached})
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := json.Unmarshal(data, &tree); err != nil {
		t.Fatal(err)
	}
	dropKey(tree, "lastTransitionTime")
	out, err := sigsyaml.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dropKey removes key from every object in a JSON tree.
func dropKey(tree any, key string) {
	switch v := tree.(type) {
	case map[string]any:
		delete(v, key)
		for _, e := range v {
			dropKey(e, key)
		}
	case []any:
		for _, e := range v {
			dropKey(e, key)
		}
	}
}

// TestStatusGolden computes the status of testdata/status/*.in.yaml and
// compares it with *.out.yaml; regenerate with
// go test ./internal/translate -run StatusGolden -update.
func TestStatusGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/status/*.in.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			got := goldenStatuses(t, ObjectStatuses(loadConfigInputs(t, file)))
			out := filepath.Join("testdata", "status", name+".out.yaml")
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

// TestObjectStatusesDeterministic shuffles every input slice and expects
// the same statuses.
func TestObjectStatusesDeterministic(t *testing.T) {
	files, _ := filepath.Glob("testdata/status/*.in.yaml")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			in := loadConfigInputs(t, file)
			want := ObjectStatuses(in)
			r := rand.New(rand.NewPCG(3, 4))
			for range 5 {
				shuffleSlices(r, reflect.ValueOf(&in).Elem())
				if diff := cmp.Diff(want, ObjectStatuses(in)); diff != "" {
					t.Fatalf("statuses depend on input order:\n%s", diff)
				}
			}
		})
	}
}

func TestFlattenPolicyBindings(t *testing.T) {
	bound := policyBinding{ancestor: "Service.core:default/a", bound: true, reason: ReasonPolicyAccepted, message: "bound to default/waypoint"}
	unbound := policyBinding{ancestor: "Service.core:default/b", reason: ReasonPolicyAncestorNotBound, message: "Service default/b is not bound to a waypoint"}
	missing := policyBinding{ancestor: "Gateway.gateway.networking.k8s.io:default/c", reason: ReasonPolicyTargetNotFound, message: "not bound"}
	for _, tc := range []struct {
		name     string
		bindings []policyBinding
		want     metav1.Condition
	}{
		{"one bound", []policyBinding{bound}, metav1.Condition{Status: metav1.ConditionTrue, Reason: ReasonPolicyAccepted, Message: "bound to default/waypoint"}},
		{"one unbound", []policyBinding{unbound}, metav1.Condition{Status: metav1.ConditionFalse, Reason: ReasonPolicyAncestorNotBound, Message: unbound.message}},
		{"all bound", []policyBinding{bound, bound}, metav1.Condition{Status: metav1.ConditionTrue, Reason: ReasonPolicyAccepted}},
		{"some bound", []policyBinding{bound, unbound, missing}, metav1.Condition{Status: metav1.ConditionTrue, Reason: ReasonPolicyPartiallyInvalid,
			Message: "Invalid targetRefs: Service.core:default/b, Gateway.gateway.networking.k8s.io:default/c"}},
		{"none bound", []policyBinding{unbound, missing}, metav1.Condition{Status: metav1.ConditionFalse, Reason: ReasonPolicyInvalid,
			Message: "Invalid targetRefs: Service.core:default/b, Gateway.gateway.networking.k8s.io:default/c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.Type = ConditionWaypointAccepted
			if diff := cmp.Diff(&tc.want, flattenPolicyBindings(tc.bindings)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
