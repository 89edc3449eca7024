package translate

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshway/meshway/internal/model"
)

// ClusterID names the cluster in workload UIDs: Istio's default cluster ID,
// so UIDs read as istioctl shows them.
const ClusterID = "Kubernetes"

// Annotation and label values that decide whether a pod is captured.
const (
	// annotationSidecarStatus marks a pod that has an Istio sidecar, which
	// ambient mode never captures.
	annotationSidecarStatus = "sidecar.istio.io/status"
	labelCanonicalName      = "service.istio.io/canonical-name"
	labelCanonicalRevision  = "service.istio.io/canonical-revision"
)

// ZtunnelConfigs builds the configuration of the ztunnel of every node a
// Pod's spec.nodeName names, sorted by node, and the warnings about inputs
// it could not honour, sorted. It is pure and deterministic, and every
// returned Ztunnel passes Validate: what would not is left out with a
// warning. Pods without a node are still workloads of the mesh (others may
// address them) but make no ztunnel: there is no node "".
//
// The configurations differ only in Node: each holds every workload,
// service, waypoint and policy of the mesh (see model.Ztunnel), and they
// share those slices, which callers must not modify.
//
// Binding (which waypoint a service or workload uses, and the ingress
// flag) is the Binder's, as for WaypointConfigs. Choices where Istio's
// behaviour has no equivalent in the model:
//   - Workloads are the pods that have an IP, are not finished or being
//     deleted and do not use the host's network (their IP is the node's),
//     the WorkloadEntries whose address is an IP, and the inline endpoints
//     (with an IP) of ServiceEntries without a workloadSelector. An address
//     two workloads claim stays with the first by UID (pods before
//     WorkloadEntries before ServiceEntry endpoints); the other loses it,
//     with a warning.
//   - A pod is captured when it or, without its own label, its namespace
//     has istio.io/dataplane-mode=ambient, unless it has a sidecar, is a
//     waypoint's instance or is on no node yet. Istio reads the redirection annotation its CNI
//     agent writes once capture is set up; meshway's node agent applies the
//     same label rule. A waypoint's pods are reached over HBONE, which they
//     serve themselves. WorkloadEntries and ServiceEntry endpoints are
//     reached over HBONE when they name a serviceAccount, as the waypoint's
//     endpoints are, else over TCP.
//   - Services are the Kubernetes Services with a TCP port (not
//     ExternalName) and one per exact host of each ServiceEntry, with the
//     entry's addresses on its first host only, as for waypoints. A VIP two
//     services claim stays with the first (Services, then ServiceEntries,
//     by namespace and name). Service endpoints are the workloads above
//     that a Service's selector or a ServiceEntry's workloadSelector (pods
//     and WorkloadEntries) selects, or its inline endpoints.
//   - L4 AuthorizationPolicies are those without targetRefs, converted as
//     Istio converts them for ztunnel (see ztunnelPolicy); each captured
//     workload lists the ones that apply to it.
func ZtunnelConfigs(in ConfigInputs) ([]*model.Ztunnel, []Warning) {
	mesh, nodes, warnings := ZtunnelMesh(in)
	out := make([]*model.Ztunnel, 0, len(nodes))
	for _, n := range nodes {
		z := *mesh
		z.Node = n
		out = append(out, &z)
	}
	return out, warnings
}

// ZtunnelMesh builds what every node's ztunnel configuration shares, once:
// a model.Ztunnel with every workload, service, waypoint and L4 policy of
// the mesh and no Node (it does not Validate until one is set), the nodes
// a Pod's spec.nodeName names, sorted, and the warnings, sorted. The
// control plane pushes these pieces to every ztunnel as shared resources
// (internal/push/wire.ZtunnelResources), and each ztunnel adds its own
// Node: computing one configuration per node would build the same
// megabytes once per node. ZtunnelConfigs, for a given node, is this with
// Node set; see it for the choices translation makes.
func ZtunnelMesh(in ConfigInputs) (mesh *model.Ztunnel, nodes []string, warnings []Warning) {
	t := newTranslator(in)
	z := newZtBuild(t).build()
	for _, p := range in.Pods {
		if p != nil && p.Spec.NodeName != "" {
			nodes = append(nodes, p.Spec.NodeName)
		}
	}
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	return &z, nodes, t.sortedWarnings()
}

// ztBuild is the mesh-wide part of the ztunnel configuration under
// construction.
type ztBuild struct {
	t   *translator
	out model.Ztunnel
	// uids indexes out.Workloads by UID; podUIDs and entryUIDs map the
	// pods and WorkloadEntries that became workloads to their UIDs.
	uids      map[string]int
	podUIDs   map[Ref]string
	entryUIDs map[Ref]string
	// podLabels are the labels of the captured pods, for policy selectors.
	podLabels map[string]map[string]string
}

func newZtBuild(t *translator) *ztBuild {
	return &ztBuild{
		t:         t,
		uids:      map[string]int{},
		podUIDs:   map[Ref]string{},
		entryUIDs: map[Ref]string{},
		podLabels: map[string]map[string]string{},
	}
}

func (z *ztBuild) build() model.Ztunnel {
	z.workloads()
	z.waypoints()
	z.services()
	z.policies()
	return z.out
}

// workloadSource is what a workload was made from, for warnings.
type workloadSource struct{ kind, namespace, name string }

// candidate is a workload before address conflicts are settled.
type candidate struct {
	wl  model.ZtunnelWorkload
	src workloadSource
	pod *corev1.Pod
	we  *networkingv1.WorkloadEntry
}

// workloads collects every workload, sorted by UID, settling addresses two
// workloads claim in favour of the first.
func (z *ztBuild) workloads() {
	var cands []candidate
	for _, ns := range sortedKeys(z.t.podsByNs) {
		for _, p := range z.t.podsByNs[ns] {
			if c, ok := z.podWorkload(p); ok {
				cands = append(cands, c)
			}
		}
	}
	for _, we := range z.t.in.WorkloadEntries {
		if c, ok := z.entryWorkload(we); ok {
			cands = append(cands, c)
		}
	}
	for _, se := range z.t.serviceEntries {
		cands = append(cands, z.endpointWorkloads(se)...)
	}
	slices.SortFunc(cands, func(a, b candidate) int { return strings.Compare(a.wl.UID, b.wl.UID) })
	owner := map[netip.Addr]string{}
	for _, c := range cands {
		if _, dup := z.uids[c.wl.UID]; dup {
			continue // the same endpoint written twice in one ServiceEntry
		}
		var kept, lost []string
		for _, a := range c.wl.Addresses {
			ip, _ := netip.ParseAddr(a) // candidates hold parsed IPs only
			if prev, taken := owner[ip]; taken {
				lost = append(lost, a+" (already workload "+prev+"'s)")
				continue
			}
			owner[ip] = c.wl.UID
			kept = append(kept, a)
		}
		if len(lost) > 0 {
			what := "it keeps only " + strings.Join(kept, ", ")
			if len(kept) == 0 {
				what = "it is not a workload ztunnel can reach"
			}
			z.t.warnf(c.src.kind, c.src.namespace, c.src.name, "address %s: ztunnel cannot tell two workloads with one address apart, so the first keeps it; %s", strings.Join(lost, ", "), what)
		}
		if len(kept) == 0 {
			continue
		}
		c.wl.Addresses = kept
		z.uids[c.wl.UID] = len(z.out.Workloads)
		switch {
		case c.pod != nil:
			z.podUIDs[Ref{c.pod.Namespace, c.pod.Name}] = c.wl.UID
			if c.wl.Captured {
				z.podLabels[c.wl.UID] = c.pod.Labels
			}
		case c.we != nil:
			z.entryUIDs[Ref{c.we.Namespace, c.we.Name}] = c.wl.UID
		}
		z.out.Workloads = append(z.out.Workloads, c.wl)
	}
}

func (z *ztBuild) podWorkload(p *corev1.Pod) (candidate, bool) {
	if terminated(p) || p.Spec.HostNetwork {
		return candidate{}, false
	}
	addrs := addrStrings(podIPs(p))
	if len(addrs) == 0 {
		return candidate{}, false
	}
	instance := z.t.binder.instanceOf(p.Namespace, p.Labels) != nil
	wl := model.ZtunnelWorkload{
		UID:               ClusterID + "//Pod/" + p.Namespace + "/" + p.Name,
		Name:              p.Name,
		Namespace:         p.Namespace,
		Addresses:         addrs,
		Node:              p.Spec.NodeName,
		ServiceAccount:    cmp.Or(p.Spec.ServiceAccountName, "default"),
		Identity:          z.t.identity(p),
		Protocol:          model.TunnelTCP,
		Captured:          !instance && z.t.captured(p),
		CanonicalName:     workloadName(p),
		CanonicalRevision: canonicalRevision(p.Labels),
		Unhealthy:         !podReady(p),
	}
	if wl.Captured && wl.Node == "" {
		// Capture is set up by the node's agent; a pod that is on no node
		// yet is not captured yet.
		wl.Captured = false
	}
	if wl.Captured || instance {
		wl.Protocol = model.TunnelHBONE
	}
	if d := z.t.binder.ForPod(p); d.Waypoint != nil {
		wl.Waypoint = d.Waypoint.String()
	}
	return candidate{wl: wl, src: workloadSource{"Pod", p.Namespace, p.Name}, pod: p}, true
}

// captured reports whether the pod is enrolled in ambient mode (see
// ZtunnelConfigs).
func (t *translator) captured(p *corev1.Pod) bool {
	if _, sidecar := p.Annotations[annotationSidecarStatus]; sidecar {
		return false
	}
	if mode, ok := p.Labels[LabelDataplaneMode]; ok {
		return mode == DataplaneModeAmbient
	}
	return t.binder.namespaceLabels(p.Namespace)[LabelDataplaneMode] == DataplaneModeAmbient
}

func (z *ztBuild) entryWorkload(we *networkingv1.WorkloadEntry) (candidate, bool) {
	if we == nil {
		return candidate{}, false
	}
	ip, err := netip.ParseAddr(we.Spec.GetAddress())
	if err != nil {
		z.t.warnf("WorkloadEntry", we.Namespace, we.Name, "address %q is not an IP address: ztunnel reaches workloads by IP; it is not a workload", we.Spec.GetAddress())
		return candidate{}, false
	}
	lbls := workloadEntrySelectableLabels(we)
	wl := z.externalWorkload(we.Namespace, we.Spec.GetServiceAccount(), ip, lbls, we.Name)
	wl.UID = ClusterID + "/" + istioNetworkingGroup + "/WorkloadEntry/" + we.Namespace + "/" + we.Name
	wl.Name = we.Name
	if d := z.t.binder.ForWorkloadEntry(we); d.Waypoint != nil {
		wl.Waypoint = d.Waypoint.String()
	}
	return candidate{wl: wl, src: workloadSource{"WorkloadEntry", we.Namespace, we.Name}, we: we}, true
}

// endpointWorkloads are the inline endpoints of a ServiceEntry without a
// workloadSelector (with one, its endpoints are the workloads it selects).
func (z *ztBuild) endpointWorkloads(se *networkingv1.ServiceEntry) []candidate {
	if se.Spec.GetWorkloadSelector() != nil {
		return nil
	}
	var out []candidate
	for _, ep := range se.Spec.GetEndpoints() {
		ip, err := netip.ParseAddr(ep.GetAddress())
		if err != nil {
			z.t.warnf("ServiceEntry", se.Namespace, se.Name, "endpoint address %q is not an IP address: meshway does no DNS resolution for endpoints; skipped", ep.GetAddress())
			continue
		}
		wl := z.externalWorkload(se.Namespace, ep.GetServiceAccount(), ip, ep.GetLabels(), se.Name)
		wl.UID = endpointUID(se, ep.GetAddress())
		wl.Name = se.Name
		// Inline endpoints bind like workloads, from their own labels and
		// the entry's namespace.
		if d := z.t.binder.forWorkload(se.Namespace, ep.GetLabels()); d.Waypoint != nil {
			wl.Waypoint = d.Waypoint.String()
		}
		out = append(out, candidate{wl: wl, src: workloadSource{"ServiceEntry", se.Namespace, se.Name}})
	}
	return out
}

func endpointUID(se *networkingv1.ServiceEntry, address string) string {
	return ClusterID + "/" + istioNetworkingGroup + "/ServiceEntry/" + se.Namespace + "/" + se.Name + "/" + address
}

// externalWorkload is a workload outside any node: reached over HBONE
// when it has a service account (an identity), else over TCP.
func (z *ztBuild) externalWorkload(ns, sa string, ip netip.Addr, lbls map[string]string, fallbackName string) model.ZtunnelWorkload {
	wl := model.ZtunnelWorkload{
		Namespace:         ns,
		Addresses:         []string{ip.String()},
		Protocol:          model.TunnelTCP,
		CanonicalName:     canonicalName(lbls, fallbackName),
		CanonicalRevision: canonicalRevision(lbls),
	}
	if sa != "" {
		wl.ServiceAccount, wl.Identity, wl.Protocol = sa, z.t.saIdentity(ns, sa), model.TunnelHBONE
	}
	return wl
}

// canonicalName is Istio's canonical service name of a workload with
// labels lbls: the first of its canonical-name, app.kubernetes.io/name and
// app labels, else fallback.
func canonicalName(lbls map[string]string, fallback string) string {
	for _, l := range []string{labelCanonicalName, "app.kubernetes.io/name", "app"} {
		if v := lbls[l]; v != "" {
			return v
		}
	}
	return fallback
}

// canonicalRevision is Istio's canonical revision: the first of the
// canonical-revision, app.kubernetes.io/version and version labels, else
// "latest".
func canonicalRevision(lbls map[string]string) string {
	for _, l := range []string{labelCanonicalRevision, "app.kubernetes.io/version", "version"} {
		if v := lbls[l]; v != "" {
			return v
		}
	}
	return "latest"
}

// waypoints lists every ready waypoint with the workloads that run it.
func (z *ztBuild) waypoints() {
	for _, w := range z.t.binder.Waypoints() {
		zw := model.ZtunnelWaypoint{
			Name:      w.Ref.Name,
			Namespace: w.Ref.Namespace,
			Address:   w.Address,
			HBONEPort: model.HBONEPort,
		}
		if zw.Address == "" {
			zw.Address = z.t.hostname(w.Ref.Namespace, w.Ref.Name)
			z.t.warnf("Gateway", w.Ref.Namespace, w.Ref.Name, "status.addresses has no hostname and no valid IP address; ztunnel uses %s", zw.Address)
		}
		for _, p := range z.t.podsByNs[w.Ref.Namespace] {
			uid, ok := z.podUIDs[Ref{p.Namespace, p.Name}]
			if !ok || p.Labels[LabelGatewayName] != w.Ref.Name {
				continue
			}
			zw.Instances = append(zw.Instances, uid)
			zw.Identities = append(zw.Identities, z.out.Workloads[z.uids[uid]].Identity)
		}
		slices.Sort(zw.Identities)
		zw.Identities = slices.Compact(zw.Identities)
		z.out.Waypoints = append(z.out.Waypoints, zw)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
