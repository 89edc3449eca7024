package translate

import (
	"reflect"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// AffectsZtunnels reports whether a change can alter what ZtunnelMesh
// builds (its warnings apart), so that a caller translating the whole
// mesh for the ztunnels can skip the changes that cannot: routes,
// DestinationRules, VirtualServices, Telemetry, rate limits and the
// MeshConfig (the waypoints' concerns), AuthorizationPolicies with
// targetRefs (never sent to ztunnel), objects translation does not read,
// and a change of only the status of an object whose status ztunnel
// translation does not read (the conditions meshd writes on Services,
// ServiceEntries, WorkloadEntries and AuthorizationPolicies).
// TestAffectsZtunnels checks the first part against ZtunnelMesh.
func AffectsZtunnels(ch Change) bool {
	if !ztunnelInput(ch.Old) && !ztunnelInput(ch.New) {
		return false
	}
	if ch.Old == nil || ch.New == nil {
		return true
	}
	oldMeta, oldSpec, ok1 := statusBlind(ch.Old)
	newMeta, newSpec, ok2 := statusBlind(ch.New)
	if !ok1 || !ok2 {
		return true // a pod's or Gateway's status is read, or the kind changed
	}
	return !reflect.DeepEqual(oldMeta.Labels, newMeta.Labels) || !reflect.DeepEqual(oldMeta.Annotations, newMeta.Annotations) ||
		!specEqual(oldSpec, newSpec)
}

// specEqual compares two specs: Istio's are protobuf messages, which
// reflect.DeepEqual may find different when they are not (their internal
// state); Kubernetes' are plain structs.
func specEqual(a, b any) bool {
	if pa, ok := a.(proto.Message); ok {
		pb, ok := b.(proto.Message)
		return ok && proto.Equal(pa, pb)
	}
	return reflect.DeepEqual(a, b)
}

// ztunnelInput reports whether ZtunnelMesh reads obj: the binding inputs
// and the AuthorizationPolicies without targetRefs.
func ztunnelInput(obj any) bool {
	switch o := obj.(type) {
	case *corev1.Namespace, *corev1.Service, *corev1.Pod, *networkingv1.ServiceEntry, *networkingv1.WorkloadEntry,
		*gwv1.Gateway, *gwv1.GatewayClass:
		return true
	case *securityv1.AuthorizationPolicy:
		return len(istioTargets(o.Spec.GetTargetRef(), o.Spec.GetTargetRefs())) == 0
	}
	return false
}

// statusBlind returns the metadata and spec of an object of a kind whose
// status ztunnel translation does not read; false for the other kinds.
func statusBlind(obj any) (*metav1.ObjectMeta, any, bool) {
	switch o := obj.(type) {
	case *corev1.Namespace:
		return &o.ObjectMeta, &o.Spec, true
	case *corev1.Service:
		return &o.ObjectMeta, &o.Spec, true
	case *networkingv1.ServiceEntry:
		return &o.ObjectMeta, &o.Spec, true
	case *networkingv1.WorkloadEntry:
		return &o.ObjectMeta, &o.Spec, true
	case *securityv1.AuthorizationPolicy:
		return &o.ObjectMeta, &o.Spec, true
	}
	return nil, nil, false
}
