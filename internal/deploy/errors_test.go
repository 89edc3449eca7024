package deploy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func withParams(kind, name string) func(*gwv1.Gateway) {
	return func(gw *gwv1.Gateway) {
		gw.Spec.Infrastructure = &gwv1.GatewayInfrastructure{
			ParametersRef: &gwv1.LocalParametersReference{Kind: gwv1.Kind(kind), Name: name},
		}
	}
}

func configMap(ns, name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
}

// TestRenderErrors checks that each error names the Gateway, the ConfigMap
// and key when there is one, and says what to do.
func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		gw   *gwv1.Gateway
		cms  []*corev1.ConfigMap
		want []string
	}{
		{
			name: "not a waypoint",
			gw:   waypoint(func(gw *gwv1.Gateway) { gw.Spec.GatewayClassName = "istio" }),
			want: []string{"Gateway default/waypoint", `gatewayClassName is "istio"`, "use gatewayClassName istio-waypoint"},
		},
		{
			name: "missing parameters ConfigMap",
			gw:   waypoint(withParams("ConfigMap", "absent")),
			want: []string{"Gateway default/waypoint", "ConfigMap default/absent", "does not exist; create it or remove the parametersRef"},
		},
		{
			name: "parameters of another kind",
			gw:   waypoint(withParams("Secret", "s")),
			want: []string{"Gateway default/waypoint", `Secret "s"`, "only a ConfigMap"},
		},
		{
			name: "unknown key",
			gw:   waypoint(withParams("ConfigMap", "p")),
			cms:  []*corev1.ConfigMap{configMap("default", "p", map[string]string{"deploymnet": "spec: {}"})},
			want: []string{"ConfigMap default/p", "Gateway default/waypoint", `key "deploymnet" is not one of deployment, service`, "rename or remove it"},
		},
		{
			name: "not a mapping",
			gw:   waypoint(withParams("ConfigMap", "p")),
			cms:  []*corev1.ConfigMap{configMap("default", "p", map[string]string{"deployment": "- 1"})},
			want: []string{"ConfigMap default/p", `key "deployment"`, "must be a YAML mapping"},
		},
		{
			name: "unknown field",
			gw:   waypoint(withParams("ConfigMap", "p")),
			cms:  []*corev1.ConfigMap{configMap("default", "p", map[string]string{"deployment": "spec: {replica: 2}"})},
			want: []string{"ConfigMap default/p", `key "deployment"`, "Gateway default/waypoint", "replica", "check its spelling"},
		},
		{
			name: "removing a rendered label",
			gw:   waypoint(withParams("ConfigMap", "p")),
			cms: []*corev1.ConfigMap{configMap("default", "p", map[string]string{
				"serviceAccount": "metadata: {labels: {gateway.networking.k8s.io/gateway-name: other}}",
			})},
			want: []string{`key "serviceAccount"`, "changes metadata.labels.gateway.networking.k8s.io/gateway-name of ServiceAccount default/waypoint"},
		},
		{
			name: "owner references",
			gw:   waypoint(withParams("ConfigMap", "p")),
			cms: []*corev1.ConfigMap{configMap("default", "p", map[string]string{
				"deployment": "metadata: {ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: x, uid: \"1\"}]}",
			})},
			want: []string{`key "deployment"`, "changes metadata.ownerReferences"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(tc.gw, tc.cms, Options{})
			if err == nil {
				t.Fatal("Render succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRenderDoesNotModifyInputs(t *testing.T) {
	gw := waypoint(withParams("ConfigMap", "p"))
	gw.Labels = map[string]string{"a": "b"}
	cm := configMap("default", "p", map[string]string{"service": "metadata: {labels: {team: mesh}}"})
	before, beforeCM := gw.DeepCopy(), cm.DeepCopy()
	objs, err := Render(gw, []*corev1.ConfigMap{cm}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 {
		t.Fatalf("got %d objects, want ServiceAccount, Deployment, Service", len(objs))
	}
	for _, obj := range objs {
		if obj.GetObjectKind().GroupVersionKind().Kind == "Service" && obj.GetLabels()["team"] != "mesh" {
			t.Errorf("Service labels %v: the overlay's label is missing", obj.GetLabels())
		}
		if obj.GetObjectKind().GroupVersionKind().Kind != "Service" && obj.GetLabels()["team"] != "" {
			t.Errorf("%s got the Service overlay's label", obj.GetObjectKind().GroupVersionKind().Kind)
		}
	}
	if gw.Labels["team"] != "" || len(gw.Labels) != len(before.Labels) || cm.Data["service"] != beforeCM.Data["service"] {
		t.Error("Render modified its inputs")
	}
}
