package translate

import (
	"cmp"
	"net/netip"
	"slices"

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
//     two workloads claim stays with the first by UID (pods, then
//     ServiceEntry endpoints, then WorkloadEntries); the other loses it,
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
	zt := TranslateZtunnels(in)
	for _, p := range in.Pods {
		if p != nil && p.Spec.NodeName != "" {
			nodes = append(nodes, p.Spec.NodeName)
		}
	}
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	return zt.Mesh(), nodes, zt.Warnings
}

// workloadSource is what a workload was made from, for warnings.
type workloadSource struct{ kind, namespace, name string }

// candidate is a workload before address conflicts are settled.
type candidate struct {
	wl  model.ZtunnelWorkload
	src workloadSource
	pod *corev1.Pod // for a pod's: its labels select policies
}

// podWorkload is a pod's workload, before address claims are settled;
// false for a pod that is no workload (finished, on the host's network, no
// IP).
func (t *translator) podWorkload(p *corev1.Pod) (candidate, bool) {
	if terminated(p) || p.Spec.HostNetwork {
		return candidate{}, false
	}
	addrs := addrStrings(podIPs(p))
	if len(addrs) == 0 {
		return candidate{}, false
	}
	instance := t.binder.instanceOf(p.Namespace, p.Labels) != nil
	wl := model.ZtunnelWorkload{
		UID:               podUID(p),
		Name:              p.Name,
		Namespace:         p.Namespace,
		Addresses:         addrs,
		Node:              p.Spec.NodeName,
		ServiceAccount:    cmp.Or(p.Spec.ServiceAccountName, "default"),
		Identity:          t.identity(p),
		Protocol:          model.TunnelTCP,
		Captured:          !instance && t.captured(p),
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
	if d := t.binder.ForPod(p); d.Waypoint != nil {
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

// entryUID is a WorkloadEntry's workload UID.
func entryUID(we *networkingv1.WorkloadEntry) string {
	return ClusterID + "/" + istioNetworkingGroup + "/WorkloadEntry/" + we.Namespace + "/" + we.Name
}

func (t *translator) entryWorkload(we *networkingv1.WorkloadEntry) (candidate, bool) {
	if we == nil {
		return candidate{}, false
	}
	ip, err := netip.ParseAddr(we.Spec.GetAddress())
	if err != nil {
		t.warnf("WorkloadEntry", we.Namespace, we.Name, "address %q is not an IP address: ztunnel reaches workloads by IP; it is not a workload", we.Spec.GetAddress())
		return candidate{}, false
	}
	lbls := workloadEntrySelectableLabels(we)
	wl := t.externalWorkload(we.Namespace, we.Spec.GetServiceAccount(), ip, lbls, we.Name)
	wl.UID = entryUID(we)
	wl.Name = we.Name
	if d := t.binder.ForWorkloadEntry(we); d.Waypoint != nil {
		wl.Waypoint = d.Waypoint.String()
	}
	return candidate{wl: wl, src: workloadSource{"WorkloadEntry", we.Namespace, we.Name}}, true
}

// endpointWorkloads are the inline endpoints of a ServiceEntry without a
// workloadSelector (with one, its endpoints are the workloads it selects).
func (t *translator) endpointWorkloads(se *networkingv1.ServiceEntry) []candidate {
	if se.Spec.GetWorkloadSelector() != nil {
		return nil
	}
	var out []candidate
	for _, ep := range se.Spec.GetEndpoints() {
		ip, err := netip.ParseAddr(ep.GetAddress())
		if err != nil {
			t.warnf("ServiceEntry", se.Namespace, se.Name, "endpoint address %q is not an IP address: meshway does no DNS resolution for endpoints; skipped", ep.GetAddress())
			continue
		}
		wl := t.externalWorkload(se.Namespace, ep.GetServiceAccount(), ip, ep.GetLabels(), se.Name)
		wl.UID = endpointUID(se, ep.GetAddress())
		wl.Name = se.Name
		// Inline endpoints bind like workloads, from their own labels and
		// the entry's namespace.
		if d := t.binder.forWorkload(se.Namespace, ep.GetLabels()); d.Waypoint != nil {
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
func (t *translator) externalWorkload(ns, sa string, ip netip.Addr, lbls map[string]string, fallbackName string) model.ZtunnelWorkload {
	wl := model.ZtunnelWorkload{
		Namespace:         ns,
		Addresses:         []string{ip.String()},
		Protocol:          model.TunnelTCP,
		CanonicalName:     canonicalName(lbls, fallbackName),
		CanonicalRevision: canonicalRevision(lbls),
	}
	if sa != "" {
		wl.ServiceAccount, wl.Identity, wl.Protocol = sa, t.saIdentity(ns, sa), model.TunnelHBONE
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
