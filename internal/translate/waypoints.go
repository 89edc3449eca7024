package translate

import (
	"net/netip"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Ref names a namespaced object.
type Ref struct{ Namespace, Name string }

// String returns "ns/name", the form Istio uses in condition messages.
func (r Ref) String() string { return r.Namespace + "/" + r.Name }

// AllowedRoutes says which client namespaces may bind to a waypoint, taken
// from the waypoint's listener allowedRoutes.namespaces.
type AllowedRoutes struct {
	From gwv1.FromNamespaces
	// Selector matches client namespace labels; nil unless From is Selector.
	Selector labels.Selector
}

// allows reports whether a client in namespace clientNs (with labels
// clientNsLabels) may bind to a waypoint in namespace waypointNs.
func (a AllowedRoutes) allows(waypointNs, clientNs string, clientNsLabels map[string]string) bool {
	switch a.From {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSelector:
		return a.Selector != nil && a.Selector.Matches(labels.Set(clientNsLabels))
	default:
		// Same, and (as in Istio) any other value including None: a
		// waypoint always serves its own namespace.
		return waypointNs == clientNs
	}
}

// Waypoint is a Gateway that can take traffic: any Gateway (of any class)
// with a non-empty status.addresses. The class is deliberately not checked,
// so a Gateway of another class can be a waypoint ("sandwich").
type Waypoint struct {
	Ref           Ref
	Gateway       *gwv1.Gateway
	TrafficType   string
	AllowedRoutes AllowedRoutes
	// Address is the first Hostname status address, else the first valid
	// IPAddress one; empty when none parses.
	Address string
	// ServiceAccounts are the sorted, de-duplicated spec.serviceAccountName
	// of the pods labelled as instances of the Gateway.
	ServiceAccounts []string
}

// servesService reports whether the waypoint accepts traffic addressed to a
// service. Unknown traffic types accept nothing, as in Istio.
func (w Waypoint) servesService() bool {
	return w.TrafficType == TrafficService || w.TrafficType == TrafficAll
}

// servesWorkload reports whether the waypoint accepts traffic addressed to a
// workload (pod or VM IP).
func (w Waypoint) servesWorkload() bool {
	return w.TrafficType == TrafficWorkload || w.TrafficType == TrafficAll
}

// TrafficTypeFor returns the gateway's istio.io/waypoint-for value: the
// Gateway label if present, else the GatewayClass label, else "service".
// The value is returned as written; binding treats unknown values like none.
func TrafficTypeFor(gw *gwv1.Gateway, class *gwv1.GatewayClass) string {
	if gw != nil {
		if tt, ok := gw.Labels[LabelWaypointFor]; ok {
			return tt
		}
	}
	if class != nil {
		if tt, ok := class.Labels[LabelWaypointFor]; ok {
			return tt
		}
	}
	return TrafficService
}

// inboundBinding is the parsed ambient.istio.io/waypoint-inbound-binding
// annotation; port 0 means "no port given".
type inboundBinding struct {
	protocol string
	port     int32
}

// inboundBindingFor parses the annotation from the Gateway, else from the
// class. A Gateway annotation hides the class one even when malformed, and a
// malformed value means "no binding", as in Istio.
func inboundBindingFor(gw *gwv1.Gateway, class *gwv1.GatewayClass) *inboundBinding {
	value, ok := "", false
	if gw != nil {
		value, ok = gw.Annotations[AnnotationWaypointInboundBinding]
	}
	if !ok && class != nil {
		value, ok = class.Annotations[AnnotationWaypointInboundBinding]
	}
	if !ok {
		return nil
	}
	parts := strings.Split(value, "/")
	if len(parts) > 2 {
		return nil
	}
	if parts[0] != inboundBindingNone && parts[0] != inboundBindingProxy {
		return nil
	}
	b := &inboundBinding{protocol: parts[0]}
	if len(parts) == 2 {
		// Istio keeps the binding with port 0 when the port does not parse.
		if p, err := strconv.ParseUint(parts[1], 10, 16); err == nil {
			b.port = int32(p)
		}
	}
	return b
}

// AllowedRoutesFor returns who may bind to the gateway. The deciding listener
// is the one the inbound-binding annotation selects (by port, or for "PROXY"
// without a port the first istio.io/PROXY listener), else the HBONE listener
// on 15008; without such a listener, or without allowedRoutes.namespaces on
// it, only the gateway's own namespace may bind.
func AllowedRoutesFor(gw *gwv1.Gateway, class *gwv1.GatewayClass) AllowedRoutes {
	same := AllowedRoutes{From: gwv1.NamespacesFromSame}
	if gw == nil {
		return same
	}
	if l, ok := boundListener(gw, inboundBindingFor(gw, class)); ok {
		return allowedRoutesOf(l)
	}
	for _, l := range gw.Spec.Listeners {
		if l.Protocol == protocolHBONE && l.Port == portHBONE {
			return allowedRoutesOf(l)
		}
	}
	return same
}

func boundListener(gw *gwv1.Gateway, b *inboundBinding) (gwv1.Listener, bool) {
	if b == nil {
		return gwv1.Listener{}, false
	}
	var match func(gwv1.Listener) bool
	switch {
	case b.port != 0:
		match = func(l gwv1.Listener) bool { return l.Port == b.port }
	case b.protocol == inboundBindingProxy:
		match = func(l gwv1.Listener) bool { return l.Protocol == protocolProxy }
	default:
		return gwv1.Listener{}, false
	}
	for _, l := range gw.Spec.Listeners {
		if match(l) {
			return l, true
		}
	}
	return gwv1.Listener{}, false
}

func allowedRoutesOf(l gwv1.Listener) AllowedRoutes {
	if l.AllowedRoutes == nil || l.AllowedRoutes.Namespaces == nil {
		return AllowedRoutes{From: gwv1.NamespacesFromSame}
	}
	ns := l.AllowedRoutes.Namespaces
	from := gwv1.NamespacesFromSame
	if ns.From != nil {
		from = *ns.From
	}
	if from != gwv1.NamespacesFromSelector {
		return AllowedRoutes{From: from}
	}
	// A missing or invalid selector matches nothing: failing closed keeps a
	// typo from opening the waypoint to every namespace.
	sel, err := metav1.LabelSelectorAsSelector(ns.Selector)
	if err != nil || ns.Selector == nil {
		sel = labels.Nothing()
	}
	return AllowedRoutes{From: from, Selector: sel}
}

// gatewayAddress returns the first Hostname status address, else the first
// status address that is a valid IP (type IPAddress or unset).
func gatewayAddress(gw *gwv1.Gateway) string {
	for _, a := range gw.Status.Addresses {
		if a.Type != nil && *a.Type == gwv1.HostnameAddressType {
			return a.Value
		}
	}
	for _, a := range gw.Status.Addresses {
		if a.Type != nil && *a.Type != gwv1.IPAddressType {
			continue
		}
		if ip, err := netip.ParseAddr(a.Value); err == nil {
			return ip.String()
		}
	}
	return ""
}
