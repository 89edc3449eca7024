package controlplane

import (
	"reflect"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// statusOnly reports whether an object changed only where translation
// does not look: its status (but a Gateway's status.addresses, the
// waypoint's address), resourceVersion or managedFields. Such a change
// needs no translation: meshd's own status writes are most of them — the
// Gateways' conditions at start-up, WaypointBound on every Service, each
// route's parents after a route change — and a Gateway's change otherwise
// translates every waypoint. Only the kinds whose status translation never
// reads are listed (a Pod's readiness and addresses are read).
func statusOnly(old, new any) bool {
	if old == nil || new == nil || !sameMeta(old, new) {
		return false
	}
	switch n := new.(type) {
	case *corev1.Service:
		o, ok := old.(*corev1.Service)
		return ok && reflect.DeepEqual(o.Spec, n.Spec)
	case *gwv1.Gateway:
		o, ok := old.(*gwv1.Gateway)
		return ok && reflect.DeepEqual(o.Spec, n.Spec) && reflect.DeepEqual(o.Status.Addresses, n.Status.Addresses)
	case *gwv1.HTTPRoute:
		o, ok := old.(*gwv1.HTTPRoute)
		return ok && reflect.DeepEqual(o.Spec, n.Spec)
	case *gwv1.GRPCRoute:
		o, ok := old.(*gwv1.GRPCRoute)
		return ok && reflect.DeepEqual(o.Spec, n.Spec)
	case *securityv1.AuthorizationPolicy:
		o, ok := old.(*securityv1.AuthorizationPolicy)
		return ok && reflect.DeepEqual(&o.Spec, &n.Spec)
	case *networkingv1.ServiceEntry:
		o, ok := old.(*networkingv1.ServiceEntry)
		return ok && reflect.DeepEqual(&o.Spec, &n.Spec)
	case *networkingv1.WorkloadEntry:
		o, ok := old.(*networkingv1.WorkloadEntry)
		return ok && reflect.DeepEqual(&o.Spec, &n.Spec)
	}
	return false
}

// sameMeta compares the metadata translation may read: all of it but the
// resourceVersion and managedFields, which every write changes.
func sameMeta(a, b any) bool {
	ma, okA := a.(metav1.Object)
	mb, okB := b.(metav1.Object)
	if !okA || !okB {
		return false
	}
	return ma.GetName() == mb.GetName() && ma.GetNamespace() == mb.GetNamespace() && ma.GetUID() == mb.GetUID() &&
		ma.GetGeneration() == mb.GetGeneration() &&
		reflect.DeepEqual(ma.GetLabels(), mb.GetLabels()) && reflect.DeepEqual(ma.GetAnnotations(), mb.GetAnnotations()) &&
		ma.GetCreationTimestamp().Time.Equal(mb.GetCreationTimestamp().Time) &&
		reflect.DeepEqual(ma.GetDeletionTimestamp(), mb.GetDeletionTimestamp()) &&
		reflect.DeepEqual(ma.GetOwnerReferences(), mb.GetOwnerReferences()) &&
		reflect.DeepEqual(ma.GetFinalizers(), mb.GetFinalizers())
}
