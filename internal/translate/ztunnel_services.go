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

// serviceIndex settles what two services would share: a VIP, or a hostname
// in one namespace. The first service (Services, then ServiceEntries, each
// by namespace and name) keeps it.
type serviceIndex struct {
	vips  map[netip.Addr]string // VIP → "Kind namespace/name" of its service
	hosts map[string]bool       // "namespace/hostname"
}

// services lists the Services, then the ServiceEntries' hosts, sorted by
// namespace and hostname.
func (z *ztBuild) services() {
	idx := serviceIndex{vips: map[netip.Addr]string{}, hosts: map[string]bool{}}
	for _, s := range z.t.sorted {
		if svc, ok := z.service(s, idx); ok {
			z.out.Services = append(z.out.Services, svc)
		}
	}
	for _, se := range z.t.serviceEntries {
		z.out.Services = append(z.out.Services, z.serviceEntryServices(se, idx)...)
	}
	slices.SortFunc(z.out.Services, func(a, b model.ZtunnelService) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Hostname, b.Hostname))
	})
}

// claimAddresses keeps the addresses no earlier service has, warning about
// the others.
func (z *ztBuild) claimAddresses(idx serviceIndex, kind, ns, name string, addrs []string) []string {
	var out []string
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		if prev, taken := idx.vips[ip]; taken {
			z.t.warnf(kind, ns, name, "address %s is already %s's: ztunnel cannot tell two services with one address apart, so the first keeps it", a, prev)
			continue
		}
		idx.vips[ip] = kind + " " + ns + "/" + name
		out = append(out, ip.String())
	}
	return out
}

// service is a Kubernetes Service with its TCP ports and the pods that
// serve them; false for ExternalName services and services without a TCP
// port, which ztunnel has nothing to do with.
func (z *ztBuild) service(s *corev1.Service, idx serviceIndex) (model.ZtunnelService, bool) {
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		return model.ZtunnelService{}, false
	}
	svc := model.ZtunnelService{Name: s.Name, Namespace: s.Namespace, Hostname: z.t.hostname(s.Namespace, s.Name)}
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
		return svc, false
	}
	slices.SortFunc(svc.Ports, comparePorts)
	idx.hosts[s.Namespace+"/"+svc.Hostname] = true
	svc.Addresses = z.claimAddresses(idx, "Service", s.Namespace, s.Name, serviceAddresses(s))
	if d := z.t.binder.ForService(s); d.Waypoint != nil {
		svc.Waypoint, svc.IngressUseWaypoint = d.Waypoint.String(), d.IngressUseWaypoint
	}
	if len(s.Spec.Selector) > 0 {
		sel := labels.SelectorFromSet(s.Spec.Selector)
		for _, p := range z.t.podsByNs[s.Namespace] {
			uid, ok := z.podUIDs[Ref{p.Namespace, p.Name}]
			if !ok || !sel.Matches(labels.Set(p.Labels)) {
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
	return svc, true
}

// serviceEntryServices are one service per exact host of the entry (see
// ZtunnelConfigs), sharing its ports, endpoints and waypoint.
func (z *ztBuild) serviceEntryServices(se *networkingv1.ServiceEntry, idx serviceIndex) []model.ZtunnelService {
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
	endpoints := z.serviceEntryEndpoints(se, specPorts)
	d := z.t.binder.ForServiceEntry(se)
	addrs := z.serviceEntryAddresses(se)
	var out []model.ZtunnelService
	for _, host := range se.Spec.GetHosts() {
		if host == "" || strings.Contains(host, "*") {
			z.t.warnf("ServiceEntry", se.Namespace, se.Name, "wildcard host %q is not configured in ztunnel: ztunnel matches services by address and exact hostname", host)
			continue
		}
		if idx.hosts[se.Namespace+"/"+host] {
			z.t.warnf("ServiceEntry", se.Namespace, se.Name, "host %s is already a service of namespace %s; ztunnel keeps the first", host, se.Namespace)
			continue
		}
		idx.hosts[se.Namespace+"/"+host] = true
		svc := model.ZtunnelService{
			Name:      se.Name,
			Namespace: se.Namespace,
			Hostname:  host,
			Ports:     slices.Clone(ports),
			Endpoints: slices.Clone(endpoints),
		}
		if len(out) == 0 {
			// As for waypoints, the entry's addresses go to its first
			// host: an address of two services would be ambiguous.
			svc.Addresses = z.claimAddresses(idx, "ServiceEntry", se.Namespace, se.Name, addrs)
		}
		if d.Waypoint != nil {
			svc.Waypoint, svc.IngressUseWaypoint = d.Waypoint.String(), d.IngressUseWaypoint
		}
		out = append(out, svc)
	}
	return out
}

// serviceEntryAddresses are the entry's addresses that are IPs or
// single-address CIDRs; wider CIDRs are skipped with a warning.
func (z *ztBuild) serviceEntryAddresses(se *networkingv1.ServiceEntry) []string {
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
		z.t.warnf("ServiceEntry", se.Namespace, se.Name, "address %q is not a single IP address: ztunnel matches services by address; skipped", a)
	}
	return out
}

// serviceEntryEndpoints are the workloads serving the entry: the pods and
// WorkloadEntries its workloadSelector selects in its namespace, else its
// inline endpoints. A port maps to the endpoint's ports[port name], else
// the port's targetPort, else its number, as for waypoints.
func (z *ztBuild) serviceEntryEndpoints(se *networkingv1.ServiceEntry, ports []*networkingv1alpha3.ServicePort) []model.ZtunnelEndpoint {
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
		for _, p := range z.t.podsByNs[se.Namespace] {
			if uid, ok := z.podUIDs[Ref{p.Namespace, p.Name}]; ok && sel.Matches(labels.Set(p.Labels)) {
				add(uid, nil)
			}
		}
		for _, we := range z.t.in.WorkloadEntries {
			if we == nil || we.Namespace != se.Namespace || !sel.Matches(labels.Set(we.Spec.GetLabels())) {
				continue
			}
			if uid, ok := z.entryUIDs[Ref{we.Namespace, we.Name}]; ok {
				add(uid, we.Spec.GetPorts())
			}
		}
	} else {
		seen := map[string]bool{}
		for _, ep := range se.Spec.GetEndpoints() {
			uid := endpointUID(se, ep.GetAddress())
			if _, ok := z.uids[uid]; ok && !seen[uid] {
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
