package deploy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// StatusInputs are what a waypoint Gateway's status depends on besides the
// Gateway itself: the objects rendered for it as they are stored.
type StatusInputs struct {
	// Service is the waypoint's Service (named ServiceName) as stored; nil
	// while it does not exist.
	Service *corev1.Service
	// Deployment is the waypoint's Deployment as stored; its selector
	// chooses the pods. nil while it does not exist: then the selector
	// Render gives it does.
	Deployment *appsv1.Deployment
	// Pods may hold any pods: those of the Gateway's namespace that the
	// selector matches are the waypoint's.
	Pods []*corev1.Pod
	// AttachedRoutes counts the routes attached to each listener.
	AttachedRoutes map[gwv1.SectionName]int32
	// RenderError is Render's error for this Gateway, if any: the Gateway is
	// then not Accepted.
	RenderError error
}

// Messages and reasons of Gateway and listener conditions, as Istio's.
const (
	msgGatewayAccepted    = "Resource accepted"
	msgRefsResolved       = "All references resolved"
	msgNoErrors           = "No errors found"
	msgClassAccepted      = "Handled by Istio controller"
	msgUnexpectedListener = `Expected a single listener on port 15008 with protocol "HBONE"`
	// protocolHBONE is the protocol of the listener a waypoint accepts.
	protocolHBONE = "HBONE"
)

// ServiceName is the name of the waypoint's Deployment and Service: the
// Gateway's, unless the gateway.istio.io/name-override annotation says
// otherwise.
func ServiceName(gw *gwv1.Gateway) string {
	return cmp.Or(gw.Annotations[AnnotationNameOverride], gw.Name)
}

// ServiceHostname is the DNS name of the waypoint's Service.
func ServiceHostname(gw *gwv1.Gateway, o Options) string {
	o = o.withDefaults()
	return ServiceName(gw) + "." + gw.Namespace + ".svc." + o.ClusterDomain
}

// IsWaypointListener reports whether l is a listener a waypoint accepts:
// port 15008, protocol HBONE.
func IsWaypointListener(l gwv1.Listener) bool {
	return l.Port == HBONEPort && l.Protocol == protocolHBONE
}

// GatewayStatus is the status Istio reports for a waypoint Gateway:
//
//   - Accepted True ("Resource accepted"), or False with reason
//     InvalidParameters and Render's error when the Gateway cannot be
//     rendered (a missing parametersRef ConfigMap, a bad overlay);
//   - Programmed True once the waypoint's Service exists and at least one of
//     its pods is Ready ("Resource programmed, assigned to service(s)
//     <host>:15008"); until then False with reason AddressNotUsable (no
//     Service: "hostname ... not found") or AddressNotAssigned (no ready
//     pod: "no instances found for hostname ...");
//   - ResolvedRefs True;
//   - addresses: once programmed, the Service's cluster IPs (IPAddress) and
//     its hostname (Hostname); never removed afterwards, so the addresses of
//     gw.Status are kept while it is not programmed;
//   - per listener: Accepted, Conflicted (False), Programmed and ResolvedRefs,
//     with the supported route kinds and attached routes; a listener other
//     than port 15008 / HBONE is not Accepted (UnsupportedProtocol), while
//     the Gateway stays Accepted.
//
// Conditions have ObservedGeneration set to gw's generation and no
// LastTransitionTime: the writer keeps the stored one for a condition whose
// status did not change. Conditions of gw.Status that GatewayStatus does not
// compute are not included.
func GatewayStatus(gw *gwv1.Gateway, in StatusInputs, o Options) gwv1.GatewayStatus {
	o = o.withDefaults()
	gen := gw.Generation
	accepted := metav1.Condition{
		Type: string(gwv1.GatewayConditionAccepted), Status: metav1.ConditionTrue,
		Reason: string(gwv1.GatewayReasonAccepted), Message: msgGatewayAccepted, ObservedGeneration: gen,
	}
	if in.RenderError != nil {
		accepted.Status, accepted.Reason, accepted.Message = metav1.ConditionFalse, string(gwv1.GatewayReasonInvalidParameters), in.RenderError.Error()
	}
	programmed, addresses := programmedStatus(gw, in, o)
	if len(addresses) == 0 {
		addresses = slices.Clone(gw.Status.Addresses)
	}
	st := gwv1.GatewayStatus{
		Addresses: addresses,
		Conditions: []metav1.Condition{
			accepted,
			programmed,
			{
				Type: string(gwv1.GatewayConditionResolvedRefs), Status: metav1.ConditionTrue,
				Reason: string(gwv1.GatewayReasonResolvedRefs), Message: msgRefsResolved, ObservedGeneration: gen,
			},
		},
	}
	for _, l := range gw.Spec.Listeners {
		st.Listeners = append(st.Listeners, listenerStatus(l, in.AttachedRoutes[l.Name], gen))
	}
	return st
}

// programmedStatus is Istio's Programmed condition with the addresses to
// report (none until programmed). Istio checks that the Service has
// endpoints on each listener port; meshway, whose embedded store has no
// endpoints controller, looks for a Ready pod that the Deployment selects.
func programmedStatus(gw *gwv1.Gateway, in StatusInputs, o Options) (metav1.Condition, []gwv1.GatewayStatusAddress) {
	host := ServiceHostname(gw, o)
	c := metav1.Condition{Type: string(gwv1.GatewayConditionProgrammed), ObservedGeneration: gw.Generation}
	notProgrammed := func(reason gwv1.GatewayConditionReason, msg string) (metav1.Condition, []gwv1.GatewayStatusAddress) {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, string(reason), msg
		return c, nil
	}
	if in.Service == nil {
		return notProgrammed(gwv1.GatewayReasonAddressNotUsable,
			fmt.Sprintf("Failed to assign to any requested addresses: hostname %q not found", host))
	}
	if readyPods(gw, in) == 0 {
		return notProgrammed(gwv1.GatewayReasonAddressNotAssigned,
			fmt.Sprintf("Failed to assign to any requested addresses: no instances found for hostname %q", host))
	}
	var assigned, warnings []string
	for _, port := range listenerPorts(gw) {
		if slices.ContainsFunc(in.Service.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port }) {
			assigned = append(assigned, host+":"+strconv.Itoa(int(port)))
		} else {
			warnings = append(warnings, fmt.Sprintf("port %d not found for hostname %q", port, host))
		}
	}
	slices.Sort(assigned)
	switch {
	case len(assigned) == 0:
		return notProgrammed(gwv1.GatewayReasonAddressNotUsable,
			"Failed to assign to any requested addresses: "+strings.Join(warnings, "; "))
	case len(warnings) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, string(gwv1.GatewayReasonAddressNotUsable)
		c.Message = fmt.Sprintf("Assigned to service(s) %s, but failed to assign to all requested addresses: %s",
			humanReadableJoin(assigned), strings.Join(warnings, "; "))
	default:
		c.Status, c.Reason = metav1.ConditionTrue, string(gwv1.GatewayReasonProgrammed)
		c.Message = "Resource programmed, assigned to service(s) " + humanReadableJoin(assigned)
	}
	return c, serviceAddresses(in.Service, host)
}

// listenerPorts are the Gateway's distinct listener ports, in order.
func listenerPorts(gw *gwv1.Gateway) []int32 {
	var ports []int32
	for _, l := range gw.Spec.Listeners {
		if !slices.Contains(ports, l.Port) {
			ports = append(ports, l.Port)
		}
	}
	return ports
}

// readyPods counts the waypoint's pods that are Ready and not terminating:
// those an endpoints controller would list as ready endpoints.
func readyPods(gw *gwv1.Gateway, in StatusInputs) int {
	sel := labels.SelectorFromSet(labels.Set{LabelGatewayName: gw.Name})
	if d := in.Deployment; d != nil && d.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			return 0 // an API server refuses such a Deployment; select nothing
		}
		sel = s
	}
	n := 0
	for _, p := range in.Pods {
		if p == nil || p.Namespace != gw.Namespace || p.DeletionTimestamp != nil || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
				break
			}
		}
	}
	return n
}

// serviceAddresses are the Service's cluster IPs, sorted, then its hostname,
// as Istio reports them for the istio-waypoint class (both kinds). The
// embedded store assigns no cluster IPs: there only the hostname is listed.
func serviceAddresses(svc *corev1.Service, host string) []gwv1.GatewayStatusAddress {
	ips := slices.Clone(svc.Spec.ClusterIPs)
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	ips = slices.DeleteFunc(ips, func(ip string) bool { _, err := netip.ParseAddr(ip); return err != nil })
	slices.Sort(ips)
	var out []gwv1.GatewayStatusAddress
	for _, ip := range slices.Compact(ips) {
		out = append(out, gwv1.GatewayStatusAddress{Type: new(gwv1.IPAddressType), Value: ip})
	}
	return append(out, gwv1.GatewayStatusAddress{Type: new(gwv1.HostnameAddressType), Value: host})
}

// humanReadableJoin is Istio's: "a", "a and b", "a, b, and c".
func humanReadableJoin(ss []string) string {
	switch len(ss) {
	case 0:
		return ""
	case 1:
		return ss[0]
	case 2:
		return ss[0] + " and " + ss[1]
	default:
		return strings.Join(ss[:len(ss)-1], ", ") + ", and " + ss[len(ss)-1]
	}
}

// listenerStatus is Istio's status of one waypoint listener.
func listenerStatus(l gwv1.Listener, attached int32, gen int64) gwv1.ListenerStatus {
	ok := func(typ gwv1.ListenerConditionType, reason gwv1.ListenerConditionReason) metav1.Condition {
		return metav1.Condition{Type: string(typ), Status: metav1.ConditionTrue, Reason: string(reason), Message: msgNoErrors, ObservedGeneration: gen}
	}
	accepted := ok(gwv1.ListenerConditionAccepted, gwv1.ListenerReasonAccepted)
	if !IsWaypointListener(l) {
		accepted.Status, accepted.Reason, accepted.Message = metav1.ConditionFalse, string(gwv1.ListenerReasonUnsupportedProtocol), msgUnexpectedListener
	}
	conflicted := ok(gwv1.ListenerConditionConflicted, gwv1.ListenerReasonNoConflicts)
	conflicted.Status = metav1.ConditionFalse
	resolved := ok(gwv1.ListenerConditionResolvedRefs, gwv1.ListenerReasonResolvedRefs)
	kinds, valid := supportedKinds(l)
	if !valid {
		resolved.Status, resolved.Reason, resolved.Message = metav1.ConditionFalse, string(gwv1.ListenerReasonInvalidRouteKinds), "Invalid route kinds"
	}
	return gwv1.ListenerStatus{
		Name:           l.Name,
		SupportedKinds: kinds,
		AttachedRoutes: attached,
		Conditions:     []metav1.Condition{accepted, conflicted, ok(gwv1.ListenerConditionProgrammed, gwv1.ListenerReasonProgrammed), resolved},
	}
}

// supportedKinds is Istio's generateSupportedKinds: the route kinds a
// listener's protocol takes (none for HBONE: a waypoint's routes attach
// through their parents), narrowed by allowedRoutes.kinds, and whether every
// kind allowedRoutes lists is supported.
func supportedKinds(l gwv1.Listener) ([]gwv1.RouteGroupKind, bool) {
	kind := func(k string) gwv1.RouteGroupKind {
		return gwv1.RouteGroupKind{Group: new(gwv1.Group(gwv1.GroupName)), Kind: gwv1.Kind(k)}
	}
	supported := []gwv1.RouteGroupKind{}
	switch l.Protocol {
	case gwv1.HTTPProtocolType, gwv1.HTTPSProtocolType:
		supported = []gwv1.RouteGroupKind{kind("HTTPRoute"), kind("GRPCRoute")}
	case gwv1.TCPProtocolType:
		supported = []gwv1.RouteGroupKind{kind("TCPRoute")}
	case gwv1.TLSProtocolType:
		supported = []gwv1.RouteGroupKind{kind("TLSRoute")}
		if l.TLS != nil && l.TLS.Mode != nil && *l.TLS.Mode == gwv1.TLSModeTerminate {
			supported = append(supported, kind("TCPRoute"))
		}
	}
	if l.AllowedRoutes == nil || len(l.AllowedRoutes.Kinds) == 0 {
		return supported, true
	}
	group := func(k gwv1.RouteGroupKind) gwv1.Group {
		if k.Group == nil {
			return gwv1.GroupName
		}
		return *k.Group
	}
	narrowed := []gwv1.RouteGroupKind{}
	for _, s := range supported {
		if slices.ContainsFunc(l.AllowedRoutes.Kinds, func(k gwv1.RouteGroupKind) bool { return k.Kind == s.Kind && group(k) == group(s) }) {
			narrowed = append(narrowed, s)
		}
	}
	return narrowed, len(narrowed) == len(l.AllowedRoutes.Kinds)
}

// GatewayClassConditions are the conditions Istio reports on a GatewayClass
// it handles: Accepted, "Handled by Istio controller".
func GatewayClassConditions(class *gwv1.GatewayClass) []metav1.Condition {
	return []metav1.Condition{{
		Type: string(gwv1.GatewayClassConditionStatusAccepted), Status: metav1.ConditionTrue,
		Reason: string(gwv1.GatewayClassReasonAccepted), Message: msgClassAccepted, ObservedGeneration: class.Generation,
	}}
}
