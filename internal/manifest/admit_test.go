package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// invalidRoute is the HTTPRoute of the issue: four fields a cluster refuses.
const invalidRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: -5}
    - {name: reviews-v2, port: 99999, weight: 10}
    matches: [{path: {type: Foo, value: "/x"}}]
    timeouts: {request: "abc"}
`

func decodeOne(t *testing.T, yaml string) Object {
	t.Helper()
	docs, err := Decode("in.yaml", strings.NewReader(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%d documents", len(docs))
	}
	return docs[0].Object
}

func TestAdmitNamesEveryField(t *testing.T) {
	for _, version := range []string{"v1", "v1beta1"} {
		obj := decodeOne(t, strings.Replace(invalidRoute, "/v1\n", "/"+version+"\n", 1))
		before, _ := json.Marshal(obj)
		_, err := Admit(t.Context(), Create, version, obj, nil)
		var status *apierrors.StatusError
		if !apierrors.IsInvalid(err) || !errors.As(err, &status) {
			t.Fatalf("%s: got %v, want Invalid", version, err)
		}
		var fields []string
		for _, c := range status.ErrStatus.Details.Causes {
			fields = append(fields, c.Field)
		}
		want := []string{
			"spec.rules[0].backendRefs[0].weight", "spec.rules[0].backendRefs[1].port",
			"spec.rules[0].matches[0].path.type", "spec.rules[0].timeouts.request", "<nil>",
		}
		if diff := cmp.Diff(want, fields); diff != "" {
			t.Errorf("%s: fields (-want +got):\n%s", version, diff)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, `HTTPRoute.gateway.networking.k8s.io "reviews" is invalid: [spec.rules[0].backendRefs[0].weight: Invalid value: -5: spec.rules[0].backendRefs[0].weight in body should be greater than or equal to 0, `) {
			t.Errorf("%s: message %q", version, msg)
		}
		if after, _ := json.Marshal(obj); !bytes.Equal(before, after) {
			t.Errorf("%s: Admit modified its input", version)
		}
	}
}

func TestAdmitDefaults(t *testing.T) {
	route := strings.NewReplacer("weight: -5", "weight: 5", "99999", "9080", "Foo", "Exact", `"abc"`, "10s", "{name: reviews-v1, port: 9080", "{name: reviews-v1, port: 9080, group: '', kind: Service").Replace(invalidRoute)
	route = strings.Replace(route, ", weight: 10}", "}", 1)
	out, err := Admit(t.Context(), Create, "", decodeOne(t, route), nil)
	if err != nil {
		t.Fatal(err)
	}
	backends := out.(*gwv1.HTTPRoute).Spec.Rules[0].BackendRefs
	if w := backends[1].Weight; w == nil || *w != 1 {
		t.Errorf("weight %v, want the CRD's default 1", w)
	}
	if g, k := backends[1].Group, backends[1].Kind; g == nil || *g != "" || k == nil || *k != "Service" {
		t.Errorf("group %v kind %v, want the CRD's defaults", g, k)
	}
	if out.GetObjectKind().GroupVersionKind() != HTTPRoute.GroupVersionKind() {
		t.Errorf("admitted as %v", out.GetObjectKind().GroupVersionKind())
	}

	// The Gateway CRD's default status, what get and waypoint status show
	// before a controller has seen the Gateway.
	gw := decodeOne(t, "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint, namespace: default}\n"+
		"spec:\n  gatewayClassName: istio-waypoint\n  listeners: [{name: mesh, port: 15008, protocol: HBONE}]\n")
	out, err = Admit(t.Context(), Create, "", gw, nil)
	if err != nil {
		t.Fatal(err)
	}
	pending := func(typ string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionUnknown, Reason: "Pending", Message: "Waiting for controller", LastTransitionTime: metav1.Unix(0, 0).Rfc3339Copy()}
	}
	if diff := cmp.Diff([]metav1.Condition{pending("Accepted"), pending("Programmed")}, out.(*gwv1.Gateway).Status.Conditions); diff != "" {
		t.Errorf("Gateway status (-want +got):\n%s", diff)
	}

	// A built-in kind: ApplyDefaults's defaults, nothing checked.
	out, err = Admit(t.Context(), Create, "", &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "default"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := out.(*corev1.Service).Spec.Ports[0]; p.TargetPort.IntValue() != 80 || p.Protocol != corev1.ProtocolTCP {
		t.Errorf("service port %+v, want targetPort 80 and TCP", p)
	}
}

// TestDecodeRefusesFieldsTheCRDLacks: Istio's Go types read a spec field in
// its protobuf spelling too; its CRD does not declare it, so an API server
// prunes it and kubectl apply (strict by default) is refused.
func TestDecodeRefusesFieldsTheCRDLacks(t *testing.T) {
	_, err := Decode("se.yaml", strings.NewReader("apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {name: se}\n"+
		"spec:\n  hosts: [a.example.com]\n  export_to: ['.']\n"))
	var e *Error
	if !errors.As(err, &e) || e.Field != "spec.export_to" || !strings.Contains(e.Error(), "the ServiceEntry CRD (Istio v") {
		t.Errorf("got %v, want an unknown field error for spec.export_to", err)
	}
}

// TestManifestsAreValid: every example and every input of the golden tests
// is what an API server with meshway's CRDs accepts, so what the tests and
// the guide show is what a cluster shows. Status-only documents (applied
// with --subresource=status) are left out.
func TestManifestsAreValid(t *testing.T) {
	var files []string
	for _, root := range []string{"../../examples", "../translate/testdata", "../deploy/testdata"} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".out.yaml") {
				files = append(files, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := Decode(f, bytes.NewReader(data))
		if err != nil {
			if strings.Contains(f, "examples/waypoint/") {
				continue // a waypoint configuration file, not a manifest
			}
			t.Error(err)
			continue
		}
		for _, d := range docs {
			var raw map[string]any
			if err := json.Unmarshal(d.Raw, &raw); err != nil {
				t.Fatal(err)
			}
			if _, hasSpec := raw["spec"]; !hasSpec && raw["status"] != nil {
				continue
			}
			obj := d.Object
			if MustKindOf(obj).Namespaced && obj.GetNamespace() == "" {
				obj.SetNamespace("default")
			}
			if _, err := Admit(t.Context(), Create, "", obj, nil); err != nil {
				t.Errorf("%s document %d: %v", f, d.Index, err)
			}
			checked++
		}
	}
	if checked < 50 || !slices.ContainsFunc(files, func(f string) bool { return strings.HasSuffix(f, "bookinfo.yaml") }) {
		t.Errorf("checked %d objects in %v", checked, files)
	}
}
