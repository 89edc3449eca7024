package translate

import (
	"fmt"
	"slices"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// istioNetworkingGroup is the API group of Istio's ServiceEntry and of
// Istio's Hostname backendRef kind.
const istioNetworkingGroup = "networking.istio.io"

// backendIndex is what resolving a route's backendRef reads. Translation
// and route status share it, so a backend the waypoint cannot send to is
// the one ResolvedRefs reports.
type backendIndex struct {
	services      map[Ref]*corev1.Service
	seByRef       map[Ref]*networkingv1.ServiceEntry
	sortedSEs     []*networkingv1.ServiceEntry // by namespace/name
	clusterDomain string
}

// backendTarget is a resolved backendRef: a Service port, or a
// ServiceEntry host and port.
type backendTarget struct {
	svc    *corev1.Service
	se     *networkingv1.ServiceEntry
	sePort *networkingv1alpha3.ServicePort
	host   string
	port   int32
}

// resolve finds the backend a backendRef of a route in namespace routeNs
// names, as Istio does: a Service (the default kind); Istio's ServiceEntry
// (an entry of the route's namespace with exactly one host) or Hostname (a
// Service's name.namespace.svc.<domain>, else the host of a ServiceEntry).
// A port is required. Every backend is in the route's namespace: others
// need a ReferenceGrant, which meshway does not read, and so a route's
// configuration depends on its own namespace only (see Translation.Update).
// The failure carries the route status reason and a message (Istio's
// wording where Istio has one).
func (x backendIndex) resolve(routeNs string, ref gwv1.BackendObjectReference) (backendTarget, *reasonMessage) {
	group, kind := "", "Service"
	if ref.Group != nil {
		group = string(*ref.Group)
	}
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	ns := routeNs
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	isService := (group == "" || group == "core") && kind == "Service"
	isIstio := group == istioNetworkingGroup && (kind == "ServiceEntry" || kind == "Hostname")
	switch {
	case !isService && !isIstio:
		return backendTarget{}, &reasonMessage{string(gwv1.RouteReasonInvalidKind), fmt.Sprintf(
			"referencing unsupported backendRef: group %q kind %q (use a Service, or a ServiceEntry or Hostname of group %s)", group, kind, istioNetworkingGroup)}
	case ns != routeNs:
		return backendTarget{}, &reasonMessage{string(gwv1.RouteReasonRefNotPermitted), fmt.Sprintf(
			"backendRef %s/%s is in another namespace than the route: that needs a ReferenceGrant, which meshway does not read yet", ns, ref.Name)}
	case ref.Port == nil:
		return backendTarget{}, &reasonMessage{"InvalidDestination", "port is required in backendRef"}
	}
	port := *ref.Port
	name := string(ref.Name)
	switch kind {
	case "Service":
		return x.servicePort(x.services[Ref{ns, name}], name+"."+ns+".svc."+x.clusterDomain, port)
	case "Hostname":
		if svcName, svcNs, ok := splitServiceHost(name, x.clusterDomain); ok {
			if svcNs != routeNs {
				return backendTarget{}, &reasonMessage{string(gwv1.RouteReasonRefNotPermitted), fmt.Sprintf(
					"backendRef host %s is a Service in another namespace than the route: that needs a ReferenceGrant, which meshway does not read yet", name)}
			}
			return x.servicePort(x.services[Ref{svcNs, svcName}], name, port)
		}
		return x.entryPort(x.serviceEntryByHost(name, ns), name, port)
	}
	se := x.seByRef[Ref{ns, name}]
	if se != nil && len(se.Spec.GetHosts()) != 1 {
		return backendTarget{}, &reasonMessage{"InvalidDestination", fmt.Sprintf(
			"ServiceEntry %s/%s has %d hosts; a backendRef ServiceEntry must have exactly one (or use kind Hostname)", ns, name, len(se.Spec.GetHosts()))}
	}
	host := "ServiceEntry " + ns + "/" + name
	if se != nil {
		host = se.Spec.GetHosts()[0]
	}
	return x.entryPort(se, host, port)
}

func (x backendIndex) servicePort(s *corev1.Service, host string, port int32) (backendTarget, *reasonMessage) {
	switch {
	case s == nil:
		return backendTarget{}, &reasonMessage{string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("backend(%s) not found", host)}
	case !hasPort(s, port):
		return backendTarget{}, &reasonMessage{string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("backend(%s) has no port %d", host, port)}
	}
	return backendTarget{svc: s, host: host, port: port}, nil
}

func (x backendIndex) entryPort(se *networkingv1.ServiceEntry, host string, port int32) (backendTarget, *reasonMessage) {
	if se == nil {
		return backendTarget{}, &reasonMessage{string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("backend(%s) not found", host)}
	}
	for _, sp := range se.Spec.GetPorts() {
		if int32(sp.GetNumber()) == port {
			return backendTarget{se: se, sePort: sp, host: host, port: port}, nil
		}
	}
	return backendTarget{}, &reasonMessage{string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("backend(%s) has no port %d", host, port)}
}

// splitServiceHost splits a Service's name.namespace.svc.<domain> host.
func splitServiceHost(host, clusterDomain string) (name, ns string, ok bool) {
	rest, ok := strings.CutSuffix(host, ".svc."+clusterDomain)
	if !ok {
		return "", "", false
	}
	name, ns, ok = strings.Cut(rest, ".")
	if !ok || strings.Contains(ns, ".") {
		return "", "", false
	}
	return name, ns, true
}

// serviceEntryByHost is the first entry of namespace ns (by name) with the
// host; nil if none. Entries of other namespaces are not looked at, so that
// what a route or VirtualService resolves to depends on its own namespace.
func (x backendIndex) serviceEntryByHost(host, ns string) *networkingv1.ServiceEntry {
	for _, se := range x.sortedSEs {
		if se.Namespace == ns && slices.Contains(se.Spec.GetHosts(), host) {
			return se
		}
	}
	return nil
}

func hasPort(s *corev1.Service, port int32) bool {
	for _, p := range s.Spec.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}
