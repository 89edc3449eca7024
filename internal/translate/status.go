package translate

import (
	"cmp"
	"slices"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// This file holds the status meshway reports on the objects users wrote, as
// Istio reports it: istio.io/WaypointBound on Services, ServiceEntries and
// WorkloadEntries, route parent status on HTTPRoutes and GRPCRoutes
// (status_routes.go) and WaypointAccepted on AuthorizationPolicies
// (status_policies.go). Conditions carry no lastTransitionTime: when a
// condition changed is for the writer, which knows the stored status, to say.

// ObjectRef names an object that gets status: its kind ("Service",
// "HTTPRoute", ...) and namespace/name.
type ObjectRef struct {
	Kind string
	Ref
}

func (r ObjectRef) String() string { return r.Kind + " " + r.Ref.String() }

// Statuses are the conditions meshway reports, per object. Every condition
// has ObservedGeneration set to the object's generation and no
// LastTransitionTime.
type Statuses struct {
	// WaypointBound holds the istio.io/WaypointBound condition of every
	// Service, ServiceEntry and WorkloadEntry; nil when the object has no
	// waypoint to report (Istio removes the condition then).
	WaypointBound map[ObjectRef]*metav1.Condition
	// WaypointAccepted holds the WaypointAccepted condition of every
	// AuthorizationPolicy; nil for a policy without targetRefs, which
	// waypoints ignore.
	WaypointAccepted map[ObjectRef]*metav1.Condition
	// RouteParents holds, for every HTTPRoute and GRPCRoute, the status of
	// each parentRef meshway answers for — a Service, a ServiceEntry or a
	// Gateway of class istio-waypoint — in parentRefs order, with
	// ControllerName RouteControllerName. Parents of other controllers are
	// not included: their status is not ours to write.
	RouteParents map[ObjectRef][]gwv1.RouteParentStatus
	// AttachedRoutes counts, per waypoint Gateway and listener, the routes
	// that parent on it and are accepted: the listener status's
	// attachedRoutes.
	AttachedRoutes map[Ref]map[gwv1.SectionName]int32
}

// Condition types and reasons of route parent status that the Gateway API
// does not define; the names are Istio's.
const (
	// RouteControllerName is the controllerName of the route parent
	// statuses meshway writes: Istio's gateway controller's, which writes
	// them in Istio.
	RouteControllerName = "istio.io/gateway-controller"

	// ConditionResolvedWaypoints says whether the route's parent has a
	// waypoint that will apply the route.
	ConditionResolvedWaypoints = "ResolvedWaypoints"
	// ReasonResolvedWaypoints: the parent is bound to a waypoint.
	ReasonResolvedWaypoints = "ResolvedWaypoints"
	// ReasonMissingUseWaypointLabel: neither the parent nor its namespace
	// has an istio.io/use-waypoint label.
	ReasonMissingUseWaypointLabel = "MissingUseWaypointLabel"
	// ReasonNoMatchingParent: the parent does not exist.
	ReasonNoMatchingParent = "NoMatchingParent"
	// ReasonConsumerRoute: the route is in another namespace than its
	// Service parent; waypoints apply only the service's own routes.
	ReasonConsumerRoute = "ConsumerRoute"

	// ConditionWaypointAccepted is the AuthorizationPolicy condition saying
	// whether its targetRefs bind it to a waypoint; the Reason* constants
	// after it are its reasons.
	ConditionWaypointAccepted = "WaypointAccepted"

	ReasonPolicyAccepted         = "Accepted"
	ReasonPolicyInvalid          = "Invalid"
	ReasonPolicyPartiallyInvalid = "PartiallyInvalid"
	ReasonPolicyAncestorNotBound = "AncestorNotBound"
	ReasonPolicyTargetNotFound   = "TargetNotFound"
)

// ObjectStatuses computes the status of every Service, ServiceEntry,
// WorkloadEntry, HTTPRoute, GRPCRoute and AuthorizationPolicy in in. It is
// pure and deterministic, like WaypointConfigs, whose binding it shares.
func ObjectStatuses(in ConfigInputs) Statuses {
	t := newStatusTranslator(in)
	s := Statuses{
		WaypointBound:    map[ObjectRef]*metav1.Condition{},
		WaypointAccepted: map[ObjectRef]*metav1.Condition{},
		RouteParents:     map[ObjectRef][]gwv1.RouteParentStatus{},
		AttachedRoutes:   map[Ref]map[gwv1.SectionName]int32{},
	}
	for _, svc := range in.Services {
		if svc != nil {
			s.WaypointBound[ObjectRef{"Service", Ref{svc.Namespace, svc.Name}}] =
				withGeneration(t.binder.ForService(svc).Condition, svc.Generation)
		}
	}
	for _, se := range in.ServiceEntries {
		if se != nil {
			s.WaypointBound[ObjectRef{"ServiceEntry", Ref{se.Namespace, se.Name}}] =
				withGeneration(t.binder.ForServiceEntry(se).Condition, se.Generation)
		}
	}
	for _, we := range in.WorkloadEntries {
		if we != nil {
			s.WaypointBound[ObjectRef{"WorkloadEntry", Ref{we.Namespace, we.Name}}] =
				withGeneration(t.binder.ForWorkloadEntry(we).Condition, we.Generation)
		}
	}
	for _, ap := range in.AuthorizationPolicies {
		if ap != nil {
			s.WaypointAccepted[ObjectRef{"AuthorizationPolicy", Ref{ap.Namespace, ap.Name}}] = t.policyCondition(ap)
		}
	}
	t.routeStatuses(&s)
	return s
}

// statusTranslator indexes the inputs of one ObjectStatuses call.
type statusTranslator struct {
	in            ConfigInputs
	binder        *Binder
	rootNs        string
	clusterDomain string
	services      map[Ref]*corev1.Service
	serviceEnts   map[Ref]*networkingv1.ServiceEntry
	backends      backendIndex
}

func newStatusTranslator(in ConfigInputs) *statusTranslator {
	t := &statusTranslator{
		in:            in,
		binder:        NewBinder(in.BindingInputs),
		rootNs:        cmp.Or(in.RootNamespace, DefaultRootNamespace),
		clusterDomain: cmp.Or(in.ClusterDomain, DefaultClusterDomain),
		services:      map[Ref]*corev1.Service{},
		serviceEnts:   map[Ref]*networkingv1.ServiceEntry{},
	}
	for _, s := range in.Services {
		if s != nil {
			t.services[Ref{s.Namespace, s.Name}] = s
		}
	}
	var sorted []*networkingv1.ServiceEntry
	for _, se := range in.ServiceEntries {
		if se != nil {
			t.serviceEnts[Ref{se.Namespace, se.Name}] = se
			sorted = append(sorted, se)
		}
	}
	slices.SortFunc(sorted, func(a, b *networkingv1.ServiceEntry) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	t.backends = backendIndex{services: t.services, seByRef: t.serviceEnts, sortedSEs: sorted, clusterDomain: t.clusterDomain}
	return t
}

// withGeneration returns a copy of c with ObservedGeneration set; nil stays nil.
func withGeneration(c *metav1.Condition, generation int64) *metav1.Condition {
	if c == nil {
		return nil
	}
	out := *c
	out.ObservedGeneration = generation
	return &out
}
