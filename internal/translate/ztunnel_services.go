package translate

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshway/meshway/internal/model"
)

// draftZtunnelServices drafts ns's services: its Services, by name, then
// one per exact host of its ServiceEntries, by entry name. A hostname two
// of them share stays with the first; their VIPs are claimed mesh-wide
// (see ztNamespace). cands are the UIDs of ns's workload candidates.
func (t *translator) draftZtunnelServices(ns string, entries []*networkingv1.ServiceEntry, cands map[string]bool) []serviceDraft {
	hosts := map[string]bool{}
	var out []serviceDraft
	for _, s := range t.servicesByNs[ns] {
		if d, ok := t.draftService(s, hosts, cands); ok {
			out = append(out, d)
		}
	}
	for _, se := range entries {
		out = append(out, t.draftServiceEntry(se, hosts, cands)...)
	}
	return out
}

// draftService is a Kubernetes Service with its TCP ports and the pods that
// serve them; false for ExternalName services and services without a TCP
// port, which ztunnel has nothing to do with.
func (t *translator) draftService(s *corev1.Service, hosts map[string]bool, cands map[string]bool) (serviceDraft, bool) {
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		return serviceDraft{}, false
	}
	svc := model.ZtunnelService{Name: s.Name, Namespace: s.Namespace, Hostname: t.hostname(s.Namespace, s.Name)}
	var ports []*corev1.ServicePort
	for i := range s.Spec.Ports {
		sp := &s.Spec.Ports[i]
		if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP || sp.Port <= 0 || sp.Port > 65535 ||
			slices.ContainsFunc(svc.Ports, func(p model.PortMapping) bool { return p.Port == uint16(sp.Port) }) {
			continue
		}
		pm := model.PortMapping{Port: uint16(sp.Port)}
		if tp := sp.TargetPort; tp.StrVal == "" {
			n := cmp.Or(tp.IntVal, sp.Port)
			if n > 0 && n <= 65535 {
				pm.TargetPort = uint16(n)
			}
		}
		svc.Ports = append(svc.Ports, pm)
		ports = append(ports, sp)
	}
	if len(svc.Ports) == 0 {
		return serviceDraft{}, false
	}
	slices.SortFunc(svc.Ports, comparePorts)
	hosts[svc.Hostname] = true
	if d := t.binder.ForService(s); d.Waypoint != nil {
		svc.Waypoint, svc.IngressUseWaypoint = d.Waypoint.String(), d.IngressUseWaypoint
	}
	if len(s.Spec.Selector) > 0 {
		sel := labels.SelectorFromSet(s.Spec.Selector)
		for _, p := range t.podsByNs[s.Namespace] {
			uid := podUID(p)
			if !cands[uid] || !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			ep := model.ZtunnelEndpoint{Workload: uid}
			for _, sp := range ports {
				if target, ok := targetPort(p, sp); ok {
					ep.Ports = append(ep.Ports, model.PortMapping{Port: uint16(sp.Port), TargetPort: target})
				}
			}
			if len(ep.Ports) > 0 {
				slices.SortFunc(ep.Ports, comparePorts)
				svc.Endpoints = append(svc.Endpoints, ep)
			}
		}
	}
	sortEndpoints(svc.Endpoints)
	key := serviceKey{ns: s.Namespace, name: s.Name, kind: "Service"}
	return serviceDraft{svc: svc, key: key, addrs: serviceAddresses(s)}, true
}

// draftServiceEntry is one service per exact host of the entry (see
// ZtunnelConfigs), sharing its ports, endpoints and waypoint; the first
// claims the entry's addresses.
func (t *translator) draftServiceEntry(se *networkingv1.ServiceEntry, hosts map[string]bool, cands map[string]bool) []serviceDraft {
	var ports []model.PortMapping
	var specPorts []*networkingv1alpha3.ServicePort
	for _, sp := range se.Spec.GetPorts() {
		n := sp.GetNumber()
		if n == 0 || n > 65535 || slices.ContainsFunc(ports, func(p model.PortMapping) bool { return uint32(p.Port) == n }) {
			continue
		}
		pm := model.PortMapping{Port: uint16(n)}
		if target := cmp.Or(sp.GetTargetPort(), n); target <= 65535 {
			pm.TargetPort = uint16(target)
		}
		ports = append(ports, pm)
		specPorts = append(specPorts, sp)
	}
	if len(ports) == 0 {
		return nil
	}
	slices.SortFunc(ports, comparePorts)
	endpoints := t.serviceEntryEndpoints(se, specPorts, cands)
	d := t.binder.ForServiceEntry(se)
	addrs := t.serviceEntryAddresses(se)
	key := serviceKey{entry: true, ns: se.Namespace, name: se.Name, kind: "ServiceEntry"}
	var out []serviceDraft
	for _, host := range se.Spec.GetHosts() {
		if host == "" || strings.Contains(host, "*") {
			t.warnf("ServiceEntry", se.Namespace, se.Name, "wildcard host %q is not configured in ztunnel: ztunnel matches services by address and exact hostname", host)
			continue
		}
		if hosts[host] {
			t.warnf("ServiceEntry", se.Namespace, se.Name, "host %s is already a service of namespace %s; ztunnel keeps the first", host, se.Namespace)
			continue
		}
		hosts[host] = true
		svc := model.ZtunnelService{
			Name:      se.Name,
			Namespace: se.Namespace,
			Hostname:  host,
			Ports:     slices.Clone(ports),
			Endpoints: slices.Clone(endpoints),
		}
		sd := serviceDraft{key: key}
		if len(out) == 0 {
			// As for waypoints, the entry's addresses go to its first
			// host: an address of two services would be ambiguous.
			sd.addrs = addrs
		}
		if d.Waypoint != nil {
			svc.Waypoint, svc.IngressUseWaypoint = d.Waypoint.String(), d.IngressUseWaypoint
		}
		sd.svc = svc
		out = append(out, sd)
	}
	return out
}

// serviceEntryAddresses are the entry's addresses that are IPs or
// single-address CIDRs; wider CIDRs are skipped with a warning.
func (t *translator) serviceEntryAddresses(se *networkingv1.ServiceEntry) []string {
	var out []string
	for _, a := range se.Spec.GetAddresses() {
		if ip, err := netip.ParseAddr(a); err == nil {
			out = append(out, ip.String())
			continue
		}
		if p, err := netip.ParsePrefix(a); err == nil && p.IsSingleIP() {
			out = append(out, p.Addr().String())
			continue
		}
		t.warnf("ServiceEntry", se.Namespace, se.Name, "address %q is not a single IP address: ztunnel matches services by address; skipped", a)
	}
	return out
}

// serviceEntryEndpoints are the workload candidates (cands) serving the
// entry: the pods and WorkloadEntries its workloadSelector selects in its
// namespace, else its inline endpoints. A port maps to the endpoint's
// ports[port name], else the port's targetPort, else its number, as for
// waypoints.
func (t *translator) serviceEntryEndpoints(se *networkingv1.ServiceEntry, ports []*networkingv1alpha3.ServicePort, cands map[string]bool) []model.ZtunnelEndpoint {
	mapping := func(named map[string]uint32) []model.PortMapping {
		var out []model.PortMapping
		for _, sp := range ports {
			target := cmp.Or(sp.GetTargetPort(), sp.GetNumber())
			if p, ok := named[sp.GetName()]; ok && sp.GetName() != "" && p > 0 {
				target = p
			}
			if target <= 65535 {
				out = append(out, model.PortMapping{Port: uint16(sp.GetNumber()), TargetPort: uint16(target)})
			}
		}
		return out
	}
	var out []model.ZtunnelEndpoint
	add := func(uid string, named map[string]uint32) {
		if ps := mapping(named); len(ps) > 0 {
			slices.SortFunc(ps, comparePorts)
			out = append(out, model.ZtunnelEndpoint{Workload: uid, Ports: ps})
		}
	}
	if ws := se.Spec.GetWorkloadSelector(); ws != nil {
		sel := labels.SelectorFromSet(ws.GetLabels())
		for _, p := range t.podsByNs[se.Namespace] {
			if uid := podUID(p); cands[uid] && sel.Matches(labels.Set(p.Labels)) {
				add(uid, nil)
			}
		}
		for _, we := range t.binder.entriesByNs[se.Namespace] {
			if !sel.Matches(labels.Set(we.Spec.GetLabels())) {
				continue
			}
			if uid := entryUID(we); cands[uid] {
				add(uid, we.Spec.GetPorts())
			}
		}
	} else {
		seen := map[string]bool{}
		for _, ep := range se.Spec.GetEndpoints() {
			uid := endpointUID(se, ep.GetAddress())
			if cands[uid] && !seen[uid] {
				seen[uid] = true
				add(uid, ep.GetPorts())
			}
		}
	}
	sortEndpoints(out)
	return out
}

func sortEndpoints(eps []model.ZtunnelEndpoint) {
	slices.SortFunc(eps, func(a, b model.ZtunnelEndpoint) int { return strings.Compare(a.Workload, b.Workload) })
}

func comparePorts(a, b model.PortMapping) int { return cmp.Compare(a.Port, b.Port) }
