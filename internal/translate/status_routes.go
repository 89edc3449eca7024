package translate

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Route parent status, as Istio's gateway controller reports it for routes
// in the mesh: per parentRef, Accepted (does the parent exist and take the
// route), ResolvedRefs (do the backendRefs resolve) and ResolvedWaypoints
// (is there a waypoint that applies the route). Where Istio reports
// ResolvedWaypoints True even though no waypoint applies the route (no
// use-waypoint label, a waypoint that is missing or not ready), meshway
// reports False with Istio's message or the binding's reason: a route that
// looks healthy but is silently ignored is the trap users fall into.

// Messages of route parent conditions; the first three are Istio's.
const (
	msgRouteAccepted           = "Route was valid"
	msgRefsResolved            = "All references resolved"
	msgWaypointsResolved       = "All waypoints resolved"
	msgMissingUseWaypointLabel = "istio.io/use-waypoint label missing from parent and parent namespace; in ambient mode, route will not be respected"
	msgParentNotFound          = "parent not found"
)

// routeInfo is what route status reads of an HTTPRoute or GRPCRoute.
type routeInfo struct {
	ref        ObjectRef
	generation int64
	parents    []gwv1.ParentReference
	// backends are the backendRefs of every rule, in order.
	backends []gwv1.BackendObjectReference
	// rules counts the route's rules; dropped says why translation
	// dropped some ("rules[1].matches[0]...: ..."), as invalid.
	rules   int
	dropped []string
}

func newHTTPRouteInfo(r *gwv1.HTTPRoute) routeInfo {
	info := routeInfo{ref: ObjectRef{"HTTPRoute", Ref{r.Namespace, r.Name}}, generation: r.Generation, parents: r.Spec.ParentRefs}
	for _, rule := range r.Spec.Rules {
		for _, br := range rule.BackendRefs {
			info.backends = append(info.backends, br.BackendObjectReference)
		}
	}
	return info
}

func newGRPCRouteInfo(r *gwv1.GRPCRoute) routeInfo {
	info := routeInfo{ref: ObjectRef{"GRPCRoute", Ref{r.Namespace, r.Name}}, generation: r.Generation, parents: r.Spec.ParentRefs, rules: len(r.Spec.Rules)}
	for i, rule := range r.Spec.Rules {
		for _, br := range rule.BackendRefs {
			info.backends = append(info.backends, br.BackendObjectReference)
		}
		if problem := grpcRuleProblem(i, rule); problem != "" {
			info.dropped = append(info.dropped, problem)
		}
	}
	return info
}

// reasonMessage is a condition's reason and message.
type reasonMessage struct{ reason, message string }

// parentResult is the outcome for one parentRef.
type parentResult struct {
	// denied, when set, makes Accepted False.
	denied *reasonMessage
	// waypoint is ResolvedWaypoints: True when waypointOK.
	waypoint   reasonMessage
	waypointOK bool
	// gateway and listeners: for an accepted waypoint Gateway parent, the
	// listeners the route attaches to.
	gateway   Ref
	listeners []gwv1.SectionName
}

func (t *statusTranslator) routeStatuses(s *Statuses) {
	for _, r := range t.in.HTTPRoutes {
		if r != nil {
			t.routeStatus(s, newHTTPRouteInfo(r))
		}
	}
	for _, r := range t.in.GRPCRoutes {
		if r != nil {
			t.routeStatus(s, newGRPCRouteInfo(r))
		}
	}
}

// routeStatus records the parent statuses of one route and counts it on the
// waypoint listeners it attaches to.
func (t *statusTranslator) routeStatus(s *Statuses, r routeInfo) {
	refs := t.backendRefsResult(r)
	var parents []gwv1.RouteParentStatus
	seen := map[string]bool{}
	attached := map[Ref][]gwv1.SectionName{}
	for _, pr := range r.parents {
		key := ParentRefKey(pr, r.ref.Namespace)
		if seen[key] {
			continue // a repeated parentRef has one status
		}
		seen[key] = true
		res, ours := t.parentResult(r, pr)
		if !ours {
			continue
		}
		if res.denied == nil && len(r.dropped) > 0 && len(r.dropped) == r.rules {
			res.denied = &reasonMessage{string(gwv1.RouteReasonUnsupportedValue), "All rules are invalid: " + strings.Join(r.dropped, "; ")}
		}
		conditions := []metav1.Condition{
			condition(string(gwv1.RouteConditionAccepted), r.generation, res.denied, string(gwv1.RouteReasonAccepted), msgRouteAccepted),
			condition(string(gwv1.RouteConditionResolvedRefs), r.generation, refs, string(gwv1.RouteReasonResolvedRefs), msgRefsResolved),
			waypointCondition(res, r.generation),
		}
		if res.denied == nil && len(r.dropped) > 0 {
			// The Gateway API's wording: the message starts "Dropped Rule".
			conditions = append(conditions, metav1.Condition{
				Type: string(gwv1.RouteConditionPartiallyInvalid), Status: metav1.ConditionTrue,
				Reason: string(gwv1.RouteReasonUnsupportedValue), Message: "Dropped Rule(s): " + strings.Join(r.dropped, "; "),
				ObservedGeneration: r.generation,
			})
		}
		parents = append(parents, gwv1.RouteParentStatus{ParentRef: pr, ControllerName: RouteControllerName, Conditions: conditions})
		if res.denied == nil && len(res.listeners) > 0 {
			for _, l := range res.listeners {
				if !slices.Contains(attached[res.gateway], l) {
					attached[res.gateway] = append(attached[res.gateway], l)
				}
			}
		}
	}
	if s.RouteParents != nil {
		s.RouteParents[r.ref] = parents
	}
	for gw, listeners := range attached {
		if s.AttachedRoutes[gw] == nil {
			s.AttachedRoutes[gw] = map[gwv1.SectionName]int32{}
		}
		for _, l := range listeners {
			s.AttachedRoutes[gw][l]++
		}
	}
}

// condition is a True condition with okReason and okMessage, or False with
// failed's reason and message when failed is set.
func condition(typ string, generation int64, failed *reasonMessage, okReason, okMessage string) metav1.Condition {
	c := metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: okReason, Message: okMessage, ObservedGeneration: generation}
	if failed != nil {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, failed.reason, failed.message
	}
	return c
}

func waypointCondition(res parentResult, generation int64) metav1.Condition {
	c := metav1.Condition{
		Type: ConditionResolvedWaypoints, Status: metav1.ConditionFalse,
		Reason: res.waypoint.reason, Message: res.waypoint.message, ObservedGeneration: generation,
	}
	if res.waypointOK {
		c.Status = metav1.ConditionTrue
	}
	return c
}

// ParentRefKey identifies a parentRef: its group, kind, namespace, name,
// section and port, with the defaults applied.
func ParentRefKey(pr gwv1.ParentReference, routeNs string) string {
	group, kind := parentGroupKind(pr)
	ns := routeNs
	if pr.Namespace != nil {
		ns = string(*pr.Namespace)
	}
	port := int32(0)
	if pr.Port != nil {
		port = *pr.Port
	}
	return fmt.Sprintf("%s/%s/%s/%s/%s/%d", group, kind, ns, pr.Name, sectionName(pr.SectionName), port)
}

// parentGroupKind returns the parentRef's group and kind, defaulting to
// Gateway as the Gateway API does.
func parentGroupKind(pr gwv1.ParentReference) (group, kind string) {
	group, kind = gatewayGroup, "Gateway"
	if pr.Group != nil {
		group = string(*pr.Group)
	}
	if pr.Kind != nil {
		kind = string(*pr.Kind)
	}
	if group == "core" {
		group = ""
	}
	return group, kind
}

// parentResult decides one parentRef of route r; ours is false for parents
// meshway does not answer for (Gateways of other classes, or that do not
// exist: their controller, if any, reports them).
func (t *statusTranslator) parentResult(r routeInfo, pr gwv1.ParentReference) (res parentResult, ours bool) {
	group, kind := parentGroupKind(pr)
	ns := r.ref.Namespace
	if pr.Namespace != nil {
		ns = string(*pr.Namespace)
	}
	ref := Ref{ns, string(pr.Name)}
	switch {
	case group == "" && kind == "Service":
		svc, ok := t.services[ref]
		if !ok {
			return notFoundParent(fmt.Sprintf("parent service: %q not found", pr.Name)), true
		}
		res.denied = portDenied(pr, func(port int32) bool { return hasPort(svc, port) }, func(name string) bool {
			return slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == name })
		})
		resolveParentWaypoint(&res, t.binder.ForService(svc), r.ref.Namespace, "Service", ref)
		return res, true
	case group == istioNetworkingGroup && kind == "ServiceEntry":
		se, ok := t.serviceEnts[ref]
		if !ok {
			return notFoundParent(fmt.Sprintf("parent service entry: %q not found", pr.Name)), true
		}
		res.denied = portDenied(pr, func(port int32) bool { return seHasPort(se, port) }, func(name string) bool {
			for _, p := range se.Spec.GetPorts() {
				if p.GetName() == name {
					return true
				}
			}
			return false
		})
		resolveParentWaypoint(&res, t.binder.ForServiceEntry(se), r.ref.Namespace, "ServiceEntry", ref)
		return res, true
	case group == gatewayGroup && kind == "Gateway":
		gw, ok := t.binder.GatewayExists(ref)
		if !ok || string(gw.Spec.GatewayClassName) != WaypointClassName {
			return res, false
		}
		return t.gatewayParent(r, pr, gw), true
	}
	return res, false
}

func notFoundParent(message string) parentResult {
	return parentResult{
		denied:   &reasonMessage{ReasonNoMatchingParent, message},
		waypoint: reasonMessage{ReasonNoMatchingParent, msgParentNotFound},
	}
}

// portDenied checks a Service or ServiceEntry parentRef's port and
// sectionName (a port name) against the parent's ports.
func portDenied(pr gwv1.ParentReference, hasPort func(int32) bool, hasPortName func(string) bool) *reasonMessage {
	if pr.Port != nil && !hasPort(*pr.Port) {
		return &reasonMessage{ReasonNoMatchingParent, fmt.Sprintf("port %d not found", *pr.Port)}
	}
	if pr.SectionName != nil && !hasPortName(string(*pr.SectionName)) {
		return &reasonMessage{ReasonNoMatchingParent, fmt.Sprintf("sectionName %q not found", *pr.SectionName)}
	}
	return nil
}

// resolveParentWaypoint fills ResolvedWaypoints for a Service or ServiceEntry parent
// from its binding decision.
func resolveParentWaypoint(res *parentResult, d Decision, routeNs, parentKind string, parent Ref) {
	switch {
	case d.Waypoint != nil && routeNs != parent.Namespace:
		res.waypoint = reasonMessage{ReasonConsumerRoute, fmt.Sprintf(
			"the route is in namespace %s, not in that of its parent %s %s: waypoint %s applies only routes in the service's own namespace, so it ignores this one",
			routeNs, parentKind, parent, d.Waypoint)}
	case d.Waypoint != nil:
		res.waypoint, res.waypointOK = reasonMessage{ReasonResolvedWaypoints, msgWaypointsResolved}, true
	case d.Reason != "":
		res.waypoint = reasonMessage{d.Reason, d.Message}
	default:
		res.waypoint = reasonMessage{ReasonMissingUseWaypointLabel, msgMissingUseWaypointLabel}
	}
}

// gatewayParent decides a parentRef naming a waypoint Gateway: its port and
// sectionName must name a listener (checked first, as Istio does), the
// listener's allowedRoutes must admit the route's namespace, and the route
// attaches to the matching listeners that are valid waypoint listeners.
func (t *statusTranslator) gatewayParent(r routeInfo, pr gwv1.ParentReference, gw *gwv1.Gateway) parentResult {
	ref := Ref{gw.Namespace, gw.Name}
	res := parentResult{gateway: ref}
	if _, ok := t.binder.Waypoint(ref); ok {
		res.waypoint, res.waypointOK = reasonMessage{ReasonResolvedWaypoints, msgWaypointsResolved}, true
	} else {
		res.waypoint = reasonMessage{ReasonWaypointIsNotReady, msgNotReady(ref)}
	}
	listeners := gw.Spec.Listeners
	if pr.Port != nil {
		listeners = slices.DeleteFunc(slices.Clone(listeners), func(l gwv1.Listener) bool { return l.Port != *pr.Port })
		if len(listeners) == 0 {
			res.denied = &reasonMessage{ReasonNoMatchingParent, fmt.Sprintf("port %d not found", *pr.Port)}
			return res
		}
	}
	if pr.SectionName != nil {
		listeners = slices.DeleteFunc(slices.Clone(listeners), func(l gwv1.Listener) bool { return l.Name != *pr.SectionName })
		if len(listeners) == 0 {
			res.denied = &reasonMessage{ReasonNoMatchingParent, fmt.Sprintf("sectionName %q not found", *pr.SectionName)}
			return res
		}
	}
	class := t.binder.classes[string(gw.Spec.GatewayClassName)]
	routeNs := r.ref.Namespace
	if !AllowedRoutesFor(gw, class).allows(gw.Namespace, routeNs, t.binder.namespaceLabels(routeNs)) {
		res.denied = &reasonMessage{string(gwv1.RouteReasonNotAllowedByListeners),
			fmt.Sprintf("namespace %q is not allowed by the allowedRoutes of waypoint %s", routeNs, ref)}
		return res
	}
	for _, l := range listeners {
		if waypointListener(l) {
			res.listeners = append(res.listeners, l.Name)
		}
	}
	if len(res.listeners) == 0 {
		res.denied = &reasonMessage{string(gwv1.RouteReasonNotAllowedByListeners),
			fmt.Sprintf("no listener of waypoint %s accepts the route: a waypoint takes routes only on its listener on port %d with protocol %q", ref, portHBONE, protocolHBONE)}
	}
	return res
}

// waypointListener reports whether l is the listener a waypoint accepts:
// port 15008, protocol HBONE. Istio rejects any other listener of an
// istio-waypoint Gateway (see deploy.IsWaypointListener).
func waypointListener(l gwv1.Listener) bool {
	return l.Port == portHBONE && l.Protocol == protocolHBONE
}

// backendRefsResult is ResolvedRefs for a route: nil when every backendRef
// resolves, else the first failure. Translation resolves with the same code
// (backendIndex.resolve), so a backend the waypoint sends nowhere is the one
// reported here.
func (t *statusTranslator) backendRefsResult(r routeInfo) *reasonMessage {
	for _, br := range r.backends {
		if _, problem := t.backends.resolve(r.ref.Namespace, br); problem != nil {
			return problem
		}
	}
	return nil
}
