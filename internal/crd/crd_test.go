package crd_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/crd"
	"github.com/meshway/meshway/internal/manifest"
)

func gvr(k *manifest.Kind, version string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: k.Group, Version: version, Resource: k.Resource}
}

// TestEmbeddedCRDsAreTheKindsMeshwayReads: every custom resource kind of
// internal/manifest has its CRD, serving every version meshway reads, and
// no other CRD is embedded (make gen keeps them in step).
func TestEmbeddedCRDsAreTheKindsMeshwayReads(t *testing.T) {
	var want []string
	for _, k := range manifest.All {
		s, err := crd.For(gvr(k, k.Version))
		if crd.BuiltInGroup(k.Group) {
			if s != nil || err != nil {
				t.Errorf("%s is built in, but has a CRD schema (%v)", k.Kind, err)
			}
			continue
		}
		want = append(want, k.Resource+"."+k.Group)
		for _, v := range append([]string{k.Version}, k.OtherVersions...) {
			s, err := crd.For(gvr(k, v))
			if err != nil || s == nil {
				t.Fatalf("%s %s: no schema: %v", k.Kind, v, err)
			}
			if got := s.GroupVersionKind; got != (schema.GroupVersionKind{Group: k.Group, Version: v, Kind: k.Kind}) {
				t.Errorf("%s %s: schema of %s", k.Kind, v, got)
			}
			if !s.HasStatusSubresource {
				t.Errorf("%s %s: no status subresource", k.Kind, v)
			}
		}
		if s == nil || s.Origin == "" || s.Origin == "unknown origin" {
			t.Errorf("%s: no origin in the embedded file", k.Kind)
		}
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, crd.Names()); diff != "" {
		t.Errorf("embedded CRDs (-kinds meshway reads +embedded); run make gen:\n%s", diff)
	}
	if _, err := crd.For(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1alpha1", Resource: "httproutes"}); err == nil {
		t.Error("a version the CRD does not serve: no error")
	}
}

// TestServedVersionsShareOneSchema: the versions meshway reads of a kind
// have the same schema. manifest.Decode reads an older version into the
// stored one (and the stores keep it so) relying on that; if a CRD ever
// differs between versions, the version written must reach the store.
func TestServedVersionsShareOneSchema(t *testing.T) {
	for _, name := range crd.Names() {
		c, err := crd.Read(name)
		if err != nil {
			t.Fatal(err)
		}
		var first *runtime.RawExtension
		for _, v := range c.Spec.Versions {
			if !v.Served {
				continue
			}
			data, err := utiljson.Marshal(v.Schema)
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = &runtime.RawExtension{Raw: data}
			} else if string(first.Raw) != string(data) {
				t.Errorf("%s: version %s has another schema than %s", name, v.Name, c.Spec.Versions[0].Name)
			}
		}
	}
}

// TestEveryRuleCompiles validates an object of every kind, which compiles
// every CEL rule of its schema: a rule the API server's CEL environment
// cannot compile would show as an error.
func TestEveryRuleCompiles(t *testing.T) {
	for _, k := range manifest.All {
		s, err := crd.For(gvr(k, k.Version))
		if err != nil || s == nil {
			continue
		}
		obj := map[string]any{"apiVersion": k.APIVersion(), "kind": k.Kind, "metadata": map[string]any{"name": "x", "namespace": "default"}, "spec": map[string]any{}}
		s.Default(obj)
		errs, err := s.Validate(t.Context(), crd.Create, obj, nil)
		if err != nil {
			t.Fatalf("%s: %v", k.Kind, err)
		}
		for _, e := range errs {
			if strings.Contains(e.Error(), "compil") {
				t.Errorf("%s: %v", k.Kind, e)
			}
		}
	}
}

func httpRoute(t *testing.T) *crd.Schema {
	t.Helper()
	s, err := crd.For(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"})
	if err != nil || s == nil {
		t.Fatal(err)
	}
	return s
}

func object(t *testing.T, yaml string) map[string]any {
	t.Helper()
	js, err := sigsyaml.YAMLToJSON([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := utiljson.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const route = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 9080}
`

func TestDefault(t *testing.T) {
	obj := object(t, route)
	httpRoute(t).Default(obj)
	rule := obj["spec"].(map[string]any)["rules"].([]any)[0].(map[string]any)
	want := map[string]any{
		"backendRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "reviews-v1", "port": int64(9080), "weight": int64(1)}},
		"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/"}}},
	}
	if diff := cmp.Diff(want, rule); diff != "" {
		t.Errorf("defaulted rule (-want +got):\n%s", diff)
	}
	// No rules at all: the CRD's default is one rule matching every path.
	bare := object(t, strings.Split(route, "  rules:")[0])
	httpRoute(t).Default(bare)
	if got := bare["spec"].(map[string]any)["rules"]; !reflect.DeepEqual(got, []any{map[string]any{"matches": []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/"}}}}}) {
		t.Errorf("rules defaulted to %v", got)
	}
}

func TestPrune(t *testing.T) {
	obj := object(t, route+"    color: blue\n  owner: me\n")
	s := httpRoute(t)
	if got, want := s.UnknownFields(obj), []string{"spec.owner", "spec.rules[0].color"}; !slices.Equal(got, want) {
		t.Errorf("UnknownFields = %v, want %v", got, want)
	}
	if _, ok := obj["spec"].(map[string]any)["owner"]; !ok {
		t.Error("UnknownFields modified the object")
	}
	s.Default(obj)
	if s.UnknownFields(obj) != nil {
		t.Errorf("after Default, unknown fields %v remain", s.UnknownFields(obj))
	}
	if _, ok := obj["metadata"].(map[string]any)["name"]; !ok {
		t.Error("metadata pruned")
	}
}

func fields(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Field)
	}
	return out
}

func validate(t *testing.T, op crd.Operation, obj, old map[string]any) field.ErrorList {
	t.Helper()
	s := httpRoute(t)
	s.Default(obj)
	if old != nil {
		s.Default(old)
	}
	errs, err := s.Validate(t.Context(), op, obj, old)
	if err != nil {
		t.Fatal(err)
	}
	return errs
}

func TestValidateSchemaAndCEL(t *testing.T) {
	if errs := validate(t, crd.Create, object(t, route), nil); len(errs) > 0 {
		t.Fatalf("a valid route: %v", errs.ToAggregate())
	}
	bad := object(t, strings.Replace(route, "reviews-v1, port: 9080}", "reviews-v1, port: 9080, weight: -5}", 1))
	errs := validate(t, crd.Create, bad, nil)
	if got := fields(errs); !slices.Equal(got, []string{"spec.rules[0].backendRefs[0].weight"}) || !strings.Contains(errs[0].Error(), "should be greater than or equal to 0") {
		t.Errorf("weight -5: %v", errs.ToAggregate())
	}
	// A CEL rule: no Service backendRef without a port.
	noPort := object(t, strings.Replace(route, "{name: reviews-v1, port: 9080}", "{name: reviews-v1}", 1))
	errs = validate(t, crd.Create, noPort, nil)
	if len(errs) != 1 || errs[0].Field != "spec.rules[0].backendRefs[0]" || !strings.Contains(errs[0].Detail, "Must have port for Service reference") {
		t.Errorf("backendRef without port: %v", errs.ToAggregate())
	}
}

// TestRatcheting: on update, an error in a field left unchanged is ignored
// (the object was stored before the rule existed); a change to it is not.
func TestRatcheting(t *testing.T) {
	old := object(t, strings.Replace(route, "{name: reviews-v1, port: 9080}", "{name: reviews-v1}", 1)+"  hostnames: [a.example.com]\n")
	changedElsewhere := object(t, strings.Replace(route, "{name: reviews-v1, port: 9080}", "{name: reviews-v1}", 1)+"  hostnames: [b.example.com]\n")
	if errs := validate(t, crd.Update, changedElsewhere, old); len(errs) > 0 {
		t.Errorf("update leaving the invalid backendRef as it was: %v", errs.ToAggregate())
	}
	if errs := validate(t, crd.Create, changedElsewhere, nil); len(errs) == 0 {
		t.Error("create of the same object: no error")
	}
	old = object(t, strings.Replace(route, "reviews-v1, port: 9080}", "reviews-v1, port: 9080, weight: -5}", 1)+"  hostnames: [a.example.com]\n")
	changed := object(t, strings.Replace(route, "reviews-v1, port: 9080}", "reviews-v1, port: 9080, weight: -6}", 1)+"  hostnames: [a.example.com]\n")
	if errs := validate(t, crd.Update, changed, old); len(errs) != 1 || errs[0].Field != "spec.rules[0].backendRefs[0].weight" {
		t.Errorf("update changing the invalid weight: %v", errs.ToAggregate())
	}
}

func TestSortErrors(t *testing.T) {
	errs := field.ErrorList{
		field.Invalid(nil, nil, "later"),
		field.Invalid(field.NewPath("spec", "b"), 1, "b"),
		field.Invalid(field.NewPath("spec", "a"), 1, "a"),
	}
	crd.SortErrors(errs)
	if got := fields(errs); !slices.Equal(got, []string{"spec.a", "spec.b", "<nil>"}) {
		t.Errorf("sorted: %v", got)
	}
}
