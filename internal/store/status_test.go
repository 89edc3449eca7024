package store

import (
	"testing"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestSetStatusJSON: the status is set on the typed object for each family
// of kinds (Kubernetes, Gateway API, Istio's protobuf-backed status), nil
// clears it, a kind without a status takes none, and a status that does
// not fit leaves the object without one.
func TestSetStatusJSON(t *testing.T) {
	pod := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, PodIP: "10.0.0.9"}}
	if err := setStatusJSON(pod, []byte(`{"phase":"Running","podIPs":[{"ip":"10.0.0.1"}]}`)); err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP != "" || len(pod.Status.PodIPs) != 1 {
		t.Errorf("pod status %+v; want only the new one", pod.Status)
	}
	if err := setStatusJSON(pod, nil); err != nil || pod.Status.Phase != "" {
		t.Errorf("clearing: %v, %+v", err, pod.Status)
	}

	gw := &gwv1.Gateway{}
	if err := setStatusJSON(gw, []byte(`{"addresses":[{"type":"IPAddress","value":"10.96.0.10"}]}`)); err != nil || len(gw.Status.Addresses) != 1 {
		t.Errorf("gateway: %v, %+v", err, gw.Status)
	}

	ap := &securityv1.AuthorizationPolicy{}
	if err := setStatusJSON(ap, []byte(`{"conditions":[{"type":"WaypointAccepted","status":"True","reason":"ResolvedWaypoint"}]}`)); err != nil {
		t.Fatal(err)
	}
	if c := ap.Status.GetConditions(); len(c) != 1 || c[0].GetReason() != "ResolvedWaypoint" {
		t.Errorf("authorization policy conditions %v", c)
	}

	cm := &corev1.ConfigMap{}
	if err := setStatusJSON(cm, nil); err != nil {
		t.Errorf("a ConfigMap without status: %v", err)
	}
	if err := setStatusJSON(cm, []byte(`{"x":1}`)); err == nil {
		t.Error("a status for a ConfigMap was taken")
	}

	pod.Status.Phase = corev1.PodRunning
	if err := setStatusJSON(pod, []byte(`{"phase":5}`)); err == nil || pod.Status.Phase != "" {
		t.Errorf("a status that does not fit: %v, left %+v", err, pod.Status)
	}
}

// TestWithStatusOf: the result is a copy of the first object with a copy of
// the second's status; neither input is changed or shared.
func TestWithStatusOf(t *testing.T) {
	spec := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "a"}}, Status: corev1.PodStatus{Phase: corev1.PodPending}}
	status := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}}}}
	got, ok := withStatusOf(spec, status)
	if !ok {
		t.Fatal("not of one type")
	}
	out := got.(*corev1.Pod)
	if out.Name != "p" || out.Status.Phase != corev1.PodRunning || out.Status.PodIPs[0].IP != "10.0.0.1" {
		t.Fatalf("got %+v", out)
	}
	out.Labels["app"] = "changed"
	out.Status.PodIPs[0].IP = "changed"
	if spec.Labels["app"] != "a" || status.Status.PodIPs[0].IP != "10.0.0.1" || spec.Status.Phase != corev1.PodPending {
		t.Error("the result shares memory with its inputs, or they changed")
	}
	if _, ok := withStatusOf(spec, &corev1.Service{}); ok {
		t.Error("objects of two types joined")
	}
	ap, ok := withStatusOf(&securityv1.AuthorizationPolicy{}, &securityv1.AuthorizationPolicy{})
	if !ok || ap == nil {
		t.Error("an Istio object could not be joined")
	}
}
