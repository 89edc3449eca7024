package translate

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestAffectsZtunnels: ZtunnelMesh of only the objects AffectsZtunnels
// counts as inputs equals ZtunnelMesh of everything, on every golden
// input; so a change of any other object cannot alter it.
func TestAffectsZtunnels(t *testing.T) {
	files, err := filepath.Glob("testdata/*config/*.in.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(filepath.Dir(file))+"/"+filepath.Base(file), func(t *testing.T) {
			in := loadConfigInputs(t, file)
			only := ConfigInputs{RootNamespace: in.RootNamespace, TrustDomain: in.TrustDomain, ClusterDomain: in.ClusterDomain}
			only.ServiceEntryNamespaceVisible = in.ServiceEntryNamespaceVisible
			left := 0
			forEachInput(in, func(obj any) {
				if AffectsZtunnels(Change{New: obj}) {
					only.Add(obj)
				} else {
					left++
				}
			})
			want, _, _ := ZtunnelMesh(in)
			got, _, _ := ZtunnelMesh(only)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("without the %d objects AffectsZtunnels leaves out, ZtunnelMesh differs (-all +only):\n%s", left, diff)
			}
		})
	}

	svc := func(label, cond string) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns", Labels: map[string]string{"x": label}}}
		if cond != "" {
			s.Status.Conditions = []metav1.Condition{{Type: cond}}
		}
		return s
	}
	pod := func(ip string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Status: corev1.PodStatus{PodIP: ip}}
	}
	ap := func(targeted bool, action string) *securityv1.AuthorizationPolicy {
		p := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "ap", Namespace: "ns"}}
		if targeted {
			p.Spec.TargetRefs = []*typev1beta1.PolicyTargetReference{{Kind: "Service", Name: "a"}}
		}
		if action == "DENY" {
			p.Spec.Action = 1
		}
		return p
	}
	for _, tc := range []struct {
		name string
		ch   Change
		want bool
	}{
		{"a Service's status only", Change{Old: svc("1", ""), New: svc("1", "istio.io/WaypointBound")}, false},
		{"a Service's label", Change{Old: svc("1", ""), New: svc("2", "")}, true},
		{"a Service created", Change{New: svc("1", "")}, true},
		{"a Service deleted", Change{Old: svc("1", "")}, true},
		{"a pod's status (its IP)", Change{Old: pod("10.0.0.1"), New: pod("10.0.0.2")}, true},
		{"an HTTPRoute", Change{Old: &gwv1.HTTPRoute{}, New: &gwv1.HTTPRoute{}}, false},
		{"a ServiceAccount (not an input)", Change{New: &corev1.ServiceAccount{}}, false},
		{"a targetRefs policy", Change{Old: ap(true, ""), New: ap(true, "DENY")}, false},
		{"a workload policy", Change{Old: ap(false, ""), New: ap(false, "DENY")}, true},
		{"a policy losing its targetRefs", Change{Old: ap(true, ""), New: ap(false, "")}, true},
		{"a workload policy's status only", Change{Old: ap(false, ""), New: ap(false, "")}, false},
	} {
		if got := AffectsZtunnels(tc.ch); got != tc.want {
			t.Errorf("%s: AffectsZtunnels = %v, want %v", tc.name, got, tc.want)
		}
	}
}
