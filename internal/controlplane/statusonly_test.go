package controlplane

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestStatusOnly(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "reviews", ResourceVersion: "1", Labels: map[string]string{"app": "reviews"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}}}
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "waypoint", ResourceVersion: "1"},
		Spec: gwv1.GatewaySpec{GatewayClassName: "istio-waypoint"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "reviews-1", ResourceVersion: "1"}}
	for _, tc := range []struct {
		name     string
		old, new any
		want     bool
	}{
		{"service: status and resourceVersion", svc, with(svc, func(s *corev1.Service) {
			s.ResourceVersion = "2"
			s.Status.Conditions = []metav1.Condition{{Type: "istio.io/WaypointBound", Status: metav1.ConditionTrue}}
			s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "meshd"}}
		}), true},
		{"service: a label", svc, with(svc, func(s *corev1.Service) { s.Labels = map[string]string{"app": "reviews", "istio.io/use-waypoint": "w"} }), false},
		{"service: the spec", svc, with(svc, func(s *corev1.Service) { s.Spec.Ports[0].Port = 8080 }), false},
		{"gateway: conditions", gw, with(gw, func(g *gwv1.Gateway) {
			g.Status.Conditions = []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue}}
		}), true},
		{"gateway: addresses", gw, with(gw, func(g *gwv1.Gateway) {
			g.Status.Addresses = []gwv1.GatewayStatusAddress{{Value: "10.96.0.9"}}
		}), false},
		{"pod: status is read (readiness, IPs)", pod, with(pod, func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.1" }), false},
		{"added", nil, svc, false},
	} {
		if got := statusOnly(tc.old, tc.new); got != tc.want {
			t.Errorf("%s: statusOnly = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// with returns a deep copy of obj changed by f.
func with[T interface{ DeepCopy() T }](obj T, f func(T)) T {
	c := obj.DeepCopy()
	f(c)
	return c
}
