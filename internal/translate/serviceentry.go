package translate

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshway/meshway/internal/model"
)

// indexServiceEntries sorts the ServiceEntries and records the waypoint each
// is bound to (Binder.ForServiceEntry), as for Services.
func (t *translator) indexServiceEntries() {
	for _, se := range t.in.ServiceEntries {
		if se != nil {
			t.serviceEntries = append(t.serviceEntries, se)
			t.seByRef[Ref{se.Namespace, se.Name}] = se
		}
	}
	slices.SortFunc(t.serviceEntries, func(a, b *networkingv1.ServiceEntry) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	for _, se := range t.serviceEntries {
		if d := t.binder.ForServiceEntry(se); d.Waypoint != nil {
			t.seBound[Ref{se.Namespace, se.Name}] = *d.Waypoint
			t.seBoundTo[*d.Waypoint] = append(t.seBoundTo[*d.Waypoint], se)
		}
	}
}

// serviceEntries adds the ServiceEntries bound to the waypoint, after the
// Services, as Istio treats them for waypoints: one captured service per
// host, named after the entry, with the entry's ports (protocol from
// port.protocol: HTTP, HTTP2 and GRPC are routed, anything else, TLS and
// HTTPS included, is TCP) and a cluster outbound|<port>||<host> per port.
//
// Choices:
//   - spec.addresses that are IPs (or single-IP CIDRs) are the service's
//     addresses; wider CIDRs are skipped with a warning. With several hosts
//     the addresses go to the first host only: the others are reached by
//     hostname (an address captured twice would be ambiguous).
//   - Wildcard hosts are not captured (a warning), and neither is a
//     hostname:port or address:port another service of the waypoint already
//     captures.
func (b *wpBuild) serviceEntries() {
	captured := map[string]bool{}
	for _, s := range b.out.Services {
		for _, p := range s.Ports {
			for _, k := range captureKeys(s.Hostname, s.Addresses, p.Port) {
				captured[k] = true
			}
		}
	}
	for _, se := range b.t.seBoundTo[b.w.Ref] {
		ref := Ref{se.Namespace, se.Name}
		b.deps[se.Namespace] = true // its endpoints are pods and WorkloadEntries there
		addrs := b.t.seAddresses(se)
		first := true
		for _, host := range se.Spec.GetHosts() {
			if host == "" || strings.Contains(host, "*") {
				b.t.warnf("ServiceEntry", se.Namespace, se.Name, "wildcard host %q is not captured by waypoint %s: meshway waypoints capture exact hosts only", host, b.w.Ref)
				continue
			}
			svc := model.Service{Name: se.Name, Namespace: se.Namespace, Hostname: host}
			if first {
				svc.Addresses = addrs
			} else if len(addrs) > 0 {
				b.t.warnf("ServiceEntry", se.Namespace, se.Name, "addresses apply to its first host only; host %s is captured by name", host)
			}
			first = false
			for _, sp := range se.Spec.GetPorts() {
				if sp.GetNumber() == 0 || sp.GetNumber() > 65535 {
					continue
				}
				port := uint16(sp.GetNumber())
				if k := slices.IndexFunc(captureKeys(host, svc.Addresses, port), func(k string) bool { return captured[k] }); k >= 0 {
					b.t.warnf("ServiceEntry", se.Namespace, se.Name, "%s is already captured by another service of waypoint %s; port %d of host %s is not captured", captureKeys(host, svc.Addresses, port)[k], b.w.Ref, port, host)
					continue
				}
				for _, k := range captureKeys(host, svc.Addresses, port) {
					captured[k] = true
				}
				svc.Ports = append(svc.Ports, model.ServicePort{
					Name:     sp.GetName(),
					Port:     port,
					Protocol: protocolOf(sp.GetProtocol()),
					Cluster:  b.seCluster(se, host, sp),
				})
			}
			slices.SortFunc(svc.Ports, func(x, y model.ServicePort) int { return cmp.Compare(x.Port, y.Port) })
			if len(svc.Ports) == 0 {
				b.t.warnf("ServiceEntry", se.Namespace, se.Name, "has no port waypoint %s can capture for host %s", b.w.Ref, host)
				continue
			}
			b.seServices[ref] = append(b.seServices[ref], len(b.out.Services))
			b.out.Services = append(b.out.Services, svc)
			b.targets = append(b.targets, routeTarget{"ServiceEntry", se.Namespace, se.Name, host})
		}
	}
}

// captureKeys are the hostname:port and address:port a service port is
// captured by (model.Waypoint.Validate refuses one captured twice).
func captureKeys(host string, addrs []string, port uint16) []string {
	var out []string
	if host != "" {
		out = append(out, fmt.Sprintf("%s:%d", host, port))
	}
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil {
			out = append(out, netip.AddrPortFrom(ip, port).String())
		}
	}
	return out
}

// seAddresses returns the entry's addresses that are IPs; CIDRs wider than
// one address and anything else are skipped with a warning.
func (t *translator) seAddresses(se *networkingv1.ServiceEntry) []string {
	var out []string
	for _, a := range se.Spec.GetAddresses() {
		if ip, err := netip.ParseAddr(a); err == nil {
			out = append(out, ip.String())
			continue
		}
		if p, err := netip.ParsePrefix(a); err == nil {
			if p.IsSingleIP() {
				out = append(out, p.Addr().String())
				continue
			}
			t.warnf("ServiceEntry", se.Namespace, se.Name, "address %s is a CIDR: meshway waypoints capture single addresses only; skipped", a)
			continue
		}
		t.warnf("ServiceEntry", se.Namespace, se.Name, "address %q is not an IP address; skipped", a)
	}
	return out
}

func seHasPort(se *networkingv1.ServiceEntry, port int32) bool {
	return slices.ContainsFunc(se.Spec.GetPorts(), func(p *networkingv1alpha3.ServicePort) bool { return int32(p.GetNumber()) == port })
}

// seCluster returns the name of the cluster of (host, port) of the entry,
// creating it with its endpoints and DestinationRule traffic policy (no
// subsets) on first use.
func (b *wpBuild) seCluster(se *networkingv1.ServiceEntry, host string, sp *networkingv1alpha3.ServicePort) string {
	port := int32(sp.GetNumber())
	name := clusterName(port, "", host)
	if _, ok := b.clusters[name]; ok {
		return name
	}
	c := &model.Cluster{Name: name, Protocol: protocolOf(sp.GetProtocol())}
	b.clusters[name] = c
	if dr := b.t.destinationRule(host, se.Namespace); dr != nil {
		b.t.applyTrafficPolicy(c, dr.Spec.GetTrafficPolicy(), port, dr)
	} else {
		b.t.upgradeToH2(c, nil)
	}
	c.Endpoints = b.t.seEndpoints(se, sp)
	if len(c.Endpoints) == 0 {
		why := "no endpoints"
		switch se.Spec.GetResolution() {
		case networkingv1alpha3.ServiceEntry_DNS, networkingv1alpha3.ServiceEntry_DNS_ROUND_ROBIN, networkingv1alpha3.ServiceEntry_DYNAMIC_DNS:
			why = "resolution " + se.Spec.GetResolution().String() + ": meshway does no DNS resolution for endpoints"
		case networkingv1alpha3.ServiceEntry_NONE:
			why = "resolution NONE: meshway does not forward to the original destination"
		}
		b.t.warnf("ServiceEntry", se.Namespace, se.Name, "has no endpoints meshway can reach (%s); traffic to host %s through waypoint %s fails", why, host, b.w.Ref)
	}
	return name
}

// seEndpoints returns the endpoints of port sp of the entry, sorted by
// address: the pods and WorkloadEntries of its namespace its
// workloadSelector selects, else its inline endpoints that are IP
// addresses. The port is the endpoint's ports[port name], else the port's
// targetPort, else its number. Inline endpoints and WorkloadEntries have an
// identity (HBONE) only when they name a serviceAccount, else they are
// reached over plain TCP.
func (t *translator) seEndpoints(se *networkingv1.ServiceEntry, sp *networkingv1alpha3.ServicePort) []model.Endpoint {
	defPort := cmp.Or(sp.GetTargetPort(), sp.GetNumber())
	portOf := func(ports map[string]uint32) uint32 {
		if p, ok := ports[sp.GetName()]; ok && sp.GetName() != "" && p > 0 {
			return p
		}
		return defPort
	}
	var out []model.Endpoint
	add := func(kind, name, address string, port uint32, sa string, lbls map[string]string, weight uint32) {
		ip, err := netip.ParseAddr(address)
		if err != nil {
			t.warnf(kind, se.Namespace, name, "endpoint address %q is not an IP address: meshway does no DNS resolution for endpoints; skipped", address)
			return
		}
		if port == 0 || port > 65535 {
			return
		}
		e := model.Endpoint{Address: netip.AddrPortFrom(ip, uint16(port)).String(), Labels: lbls, Workload: name, Namespace: se.Namespace, Weight: weight}
		if sa != "" {
			e.Identity = t.saIdentity(se.Namespace, sa)
		}
		out = append(out, e)
	}
	if ws := se.Spec.GetWorkloadSelector(); ws != nil {
		sel := labels.SelectorFromSet(ws.GetLabels())
		for _, p := range t.podsByNs[se.Namespace] {
			if !sel.Matches(labels.Set(p.Labels)) || terminated(p) || defPort > 65535 {
				continue
			}
			for _, ip := range podIPs(p) {
				out = append(out, model.Endpoint{
					Address: netip.AddrPortFrom(ip, uint16(defPort)).String(), Identity: t.identity(p), Labels: p.Labels,
					Workload: workloadName(p), Namespace: p.Namespace, Unhealthy: !podReady(p),
				})
			}
		}
		for _, we := range t.idx.workloadEntries[se.Namespace] {
			if !sel.Matches(labels.Set(we.Spec.GetLabels())) {
				continue
			}
			add("WorkloadEntry", we.Name, we.Spec.GetAddress(), portOf(we.Spec.GetPorts()), we.Spec.GetServiceAccount(), we.Spec.GetLabels(), we.Spec.GetWeight())
		}
	} else {
		for _, ep := range se.Spec.GetEndpoints() {
			add("ServiceEntry", se.Name, ep.GetAddress(), portOf(ep.GetPorts()), ep.GetServiceAccount(), ep.GetLabels(), ep.GetWeight())
		}
	}
	slices.SortFunc(out, func(a, b model.Endpoint) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// saIdentity is the SPIFFE ID of service account sa in namespace ns.
func (t *translator) saIdentity(ns, sa string) string {
	return "spiffe://" + t.trustDomain + "/ns/" + ns + "/sa/" + sa
}
