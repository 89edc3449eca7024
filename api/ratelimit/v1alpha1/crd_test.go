package v1alpha1

import (
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

const examplePath = "../../../examples/ratelimit/reviews-ratelimit.yaml"

func readCRD(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile("crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := sigsyaml.UnmarshalStrict(data, &crd); err != nil {
		t.Fatalf("crd.yaml is not a CustomResourceDefinition: %v", err)
	}
	return &crd
}

func TestExampleDecodesStrictly(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var p LocalRateLimitPolicy
	if err := sigsyaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("%s: %v", examplePath, err)
	}
	if p.APIVersion != SchemeGroupVersion.String() || p.Kind != Kind || p.Name != "reviews-per-client" || p.Namespace != "default" {
		t.Fatalf("decoded %s %s/%s", p.GroupVersionKind(), p.Namespace, p.Name)
	}
	wantRefs := []gwv1.LocalPolicyTargetReferenceWithSectionName{{LocalPolicyTargetReference: gwv1.LocalPolicyTargetReference{Group: "", Kind: "Service", Name: "reviews"}}}
	if diff := cmp.Diff(wantRefs, p.Spec.TargetRefs); diff != "" {
		t.Errorf("targetRefs (-want +got):\n%s", diff)
	}
	distinct := SourceMatchDistinct
	burst := int32(20)
	rule := func(cidr string) RateLimitRule {
		return RateLimitRule{
			ClientSelectors: []RateLimitSelectCondition{{SourceCIDR: &SourceMatch{Type: &distinct, Value: cidr}}},
			Limit:           RateLimitValue{Requests: 10, Unit: RateLimitUnitSecond},
			Burst:           &burst,
		}
	}
	if diff := cmp.Diff([]RateLimitRule{rule("0.0.0.0/0"), rule("::/0")}, p.Spec.Rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	// And it is valid for the API server's schema.
	if err := validateObject(t, readCRD(t), data); err != nil {
		t.Errorf("%s does not validate against crd.yaml: %v", examplePath, err)
	}
}

func TestCRD(t *testing.T) {
	crd := readCRD(t)
	if crd.Name != Resource+"."+GroupName || crd.Spec.Group != GroupName || crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
		t.Errorf("name %s, group %s, scope %s", crd.Name, crd.Spec.Group, crd.Spec.Scope)
	}
	n := crd.Spec.Names
	if n.Kind != Kind || n.ListKind != Kind+"List" || n.Plural != Resource || n.Singular != strings.ToLower(Kind) {
		t.Errorf("names = %+v", n)
	}
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("%d versions, want 1", len(crd.Spec.Versions))
	}
	v := crd.Spec.Versions[0]
	if v.Name != Version || !v.Served || !v.Storage {
		t.Errorf("version %s served=%v storage=%v, want %s served and stored", v.Name, v.Served, v.Storage, Version)
	}
	// A status subresource: metadata.generation moves on spec changes only,
	// and status is written through /status, as for every Gateway API policy.
	if v.Subresources == nil || v.Subresources.Status == nil {
		t.Error("no status subresource")
	}
	if crd.Labels["gateway.networking.k8s.io/policy"] != "Direct" {
		t.Error(`want label gateway.networking.k8s.io/policy: Direct (a directly attached policy)`)
	}
}

func structural(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) *schema.Structural {
	t.Helper()
	var internal apiextensionsinternal.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, &internal, nil); err != nil {
		t.Fatal(err)
	}
	s, err := schema.NewStructural(&internal)
	if err != nil {
		t.Fatalf("schema is not structural: %v", err)
	}
	return s
}

func TestCRDSchemaIsStructural(t *testing.T) {
	s := structural(t, readCRD(t))
	if errs := schema.ValidateStructural(field.NewPath("openAPIV3Schema"), s); len(errs) > 0 {
		t.Fatalf("the API server would reject the schema: %v", errs.ToAggregate())
	}
}

// validateObject validates a YAML object against the CRD's schema as the
// API server's OpenAPI validation does (CEL rules, x-kubernetes-validations,
// are left to TestAgainstAPIServer).
func validateObject(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition, data []byte) error {
	t.Helper()
	js, err := sigsyaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(js, &obj); err != nil {
		t.Fatal(err)
	}
	v := validate.NewSchemaValidator(structural(t, crd).ToKubeOpenAPI(), nil, "", strfmt.Default)
	return v.Validate(obj).AsError()
}

func TestSchemaRejects(t *testing.T) {
	crd := readCRD(t)
	base, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"zero requests", "requests: 10", "requests: 0", "spec.rules[0].limit.requests in body should be greater than or equal to 1"},
		{"too many requests", "requests: 10", "requests: 1000001", "spec.rules[0].limit.requests in body should be less than or equal to 1000000"},
		{"unknown unit", "unit: Second", "unit: Day", `spec.rules[0].limit.unit in body should be one of [Second Minute Hour]`},
		{"no unit", "      unit: Second\n", "", "spec.rules[0].limit.unit in body is required"},
		{"zero burst", "burst: 20", "burst: 0", "spec.rules[0].burst in body should be greater than or equal to 1"},
		{"unknown source type", "type: Distinct", "type: Each", `spec.rules[0].clientSelectors[0].sourceCIDR.type in body should be one of [Exact Distinct]`},
		{"no targetRefs", "  targetRefs:\n  - group: \"\"\n    kind: Service\n    name: reviews\n", "", "spec.targetRefs in body is required"},
		{"no target name", "    name: reviews\n", "", "spec.targetRefs[0].name in body is required"},
		{"header without name", "    - sourceCIDR:\n", "    - headers:\n      - type: Exact\n        value: x\n      sourceCIDR:\n", "spec.rules[0].clientSelectors[0].headers[0].name in body is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(string(base), c.old, c.new, 1)
			if doc == string(base) {
				t.Fatalf("%q is not in the example", c.old)
			}
			err := validateObject(t, crd, []byte(doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// TestCRDMatchesTypes keeps the hand-written schema and the Go types in
// step: the same property names everywhere, the same required fields for
// this package's types, and the same enums as the constants.
func TestCRDMatchesTypes(t *testing.T) {
	props := readCRD(t).Spec.Versions[0].Schema.OpenAPIV3Schema.Properties
	compareType(t, "spec", props["spec"], reflect.TypeFor[LocalRateLimitPolicySpec]())
	compareType(t, "status", props["status"], reflect.TypeFor[gwv1.PolicyStatus]())
	for _, c := range []struct {
		path string
		want []string
	}{
		{"spec.rules.clientSelectors.headers.type", []string{string(HeaderMatchExact), string(HeaderMatchRegularExpression), string(HeaderMatchDistinct)}},
		{"spec.rules.clientSelectors.sourceCIDR.type", []string{string(SourceMatchExact), string(SourceMatchDistinct)}},
		{"spec.rules.clientSelectors.sourcePrincipal.type", []string{string(SourceMatchExact), string(SourceMatchDistinct)}},
		{"spec.rules.route.kind", []string{string(RouteKindHTTPRoute), string(RouteKindGRPCRoute)}},
		{"spec.rules.limit.unit", []string{string(RateLimitUnitSecond), string(RateLimitUnitMinute), string(RateLimitUnitHour)}},
	} {
		s := lookup(t, props, c.path)
		var got []string
		for _, e := range s.Enum {
			got = append(got, strings.Trim(string(e.Raw), `"`))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: enum %v, want %v", c.path, got, c.want)
		}
	}
}

func lookup(t *testing.T, props map[string]apiextensionsv1.JSONSchemaProps, path string) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	var s apiextensionsv1.JSONSchemaProps
	for part := range strings.SplitSeq(path, ".") {
		var ok bool
		if s, ok = props[part]; !ok {
			t.Fatalf("%s: no property %s", path, part)
		}
		if s.Items != nil {
			s = *s.Items.Schema
		}
		props = s.Properties
	}
	return s
}

var ownPkg = reflect.TypeFor[LocalRateLimitPolicy]().PkgPath()

func compareType(t *testing.T, at string, s apiextensionsv1.JSONSchemaProps, typ reflect.Type) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ.Kind() == reflect.Slice {
		if s.Type != "array" || s.Items == nil || s.Items.Schema == nil {
			t.Errorf("%s: Go slice, schema type %q", at, s.Type)
			return
		}
		compareType(t, at+"[]", *s.Items.Schema, typ.Elem())
		return
	}
	if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[metav1.Time]() || typ == reflect.TypeFor[metav1.Condition]() {
		return // scalars; upstream types with their own published schema
	}
	fields := map[string]bool{} // name -> required
	collectFields(typ, fields, map[string]reflect.Type{})
	var goNames, schemaNames []string
	types := map[string]reflect.Type{}
	collectFields(typ, map[string]bool{}, types)
	for n := range fields {
		goNames = append(goNames, n)
	}
	for n := range s.Properties {
		schemaNames = append(schemaNames, n)
	}
	sort.Strings(goNames)
	sort.Strings(schemaNames)
	if !slices.Equal(goNames, schemaNames) {
		t.Errorf("%s: Go fields %v, schema properties %v", at, goNames, schemaNames)
	}
	if typ.PkgPath() == ownPkg || typ == reflect.TypeFor[gwv1.LocalPolicyTargetReferenceWithSectionName]() {
		var required []string
		for n, req := range fields {
			if req {
				required = append(required, n)
			}
		}
		sort.Strings(required)
		got := slices.Sorted(slices.Values(s.Required))
		if !slices.Equal(required, got) {
			t.Errorf("%s: fields without omitempty %v, schema requires %v", at, required, got)
		}
	}
	for n, ft := range types {
		if p, ok := s.Properties[n]; ok {
			compareType(t, at+"."+n, p, ft)
		}
	}
}

// collectFields lists typ's JSON fields (inlined embedded structs
// included): whether each is required (no omitempty or omitzero) and its
// type.
func collectFields(typ reflect.Type, required map[string]bool, types map[string]reflect.Type) {
	for f := range typ.Fields() {
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" && f.Anonymous {
			collectFields(f.Type, required, types)
			continue
		}
		if name == "" {
			name = f.Name
		}
		required[name] = !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero")
		types[name] = f.Type
	}
}

func TestScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for kind, want := range map[string]runtime.Object{Kind: &LocalRateLimitPolicy{}, Kind + "List": &LocalRateLimitPolicyList{}} {
		obj, err := s.New(SchemeGroupVersion.WithKind(kind))
		if err != nil {
			t.Fatal(err)
		}
		if reflect.TypeOf(obj) != reflect.TypeOf(want) {
			t.Errorf("scheme gives %T for %s, want %T", obj, kind, want)
		}
	}
	// Every upstream object interface: what the manifest and kube layers need.
	var _ interface {
		metav1.Object
		runtime.Object
	} = &LocalRateLimitPolicy{}
}
