package translate

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshway/meshway/internal/model"
)

// The ztunnels' configuration is built namespace by namespace: what a
// namespace contributes (its workloads, services, waypoints and L4
// policies) depends on its own objects and on mesh-wide ones — the
// Namespaces, Gateways and GatewayClasses (binding, capture), the root
// namespace's L4 policies — except for one thing: an address two
// workloads (or a VIP two services) claim stays with the first, across
// namespaces. So a namespace's contribution is drafted with every address
// its pieces claim (ztNamespace), the claims of every namespace are
// settled mesh-wide (claims), and the draft is then finalized against
// them. ZtunnelTranslation.Update drafts again only the namespaces a
// change concerns, and finalizes those and the namespaces whose claims
// the change settled otherwise.

// ztNamespace is what one namespace contributes to the ztunnels'
// configuration: drafted from its objects, then finalized.
type ztNamespace struct {
	// The draft.
	cands      []candidate // its workloads, sorted by UID, one per UID
	services   []serviceDraft
	waypoints  []waypointDraft
	policies   []model.AuthorizationPolicy // sorted by name
	selections []ztunnelPolicySelection    // of those policies, in the same order
	// The final pieces, once the claims are settled.
	workloads      []model.ZtunnelWorkload // sorted by UID
	finalServices  []model.ZtunnelService  // Services by name, then ServiceEntry hosts
	finalWaypoints []model.ZtunnelWaypoint // by name
}

// serviceDraft is a service with every endpoint a workload of its
// namespace would give it, and the VIPs it claims.
type serviceDraft struct {
	svc   model.ZtunnelService // without Addresses
	key   serviceKey
	addrs []string // as written; those that are not IPs are skipped
}

// waypointDraft is a waypoint with every pod of its namespace that runs it
// and is a workload candidate, in pod order.
type waypointDraft struct {
	wp        model.ZtunnelWaypoint // without Instances and Identities
	instances []string
}

// workloadKey and serviceKey order the claimants of an address: the first
// keeps it. Workloads by UID; services Kubernetes Services first, then
// ServiceEntries, each by namespace and name.
type workloadKey struct{ uid, ns string }

type serviceKey struct {
	entry    bool // a ServiceEntry, after every Service
	ns, name string
	kind     string // "Service" or "ServiceEntry", for warnings
}

func compareWorkloadKeys(a, b workloadKey) int { return strings.Compare(a.uid, b.uid) }

func compareServiceKeys(a, b serviceKey) int {
	if a.entry != b.entry {
		if a.entry {
			return 1
		}
		return -1
	}
	return cmp.Or(strings.Compare(a.ns, b.ns), strings.Compare(a.name, b.name))
}

func (k serviceKey) String() string { return k.kind + " " + k.ns + "/" + k.name }

// draftZtunnelNamespace drafts what namespace ns contributes, from t's
// objects of ns (t must hold all of them, and every Gateway, Namespace and
// GatewayClass of the mesh). Warnings about its objects go to t.
func (t *translator) draftZtunnelNamespace(ns string) *ztNamespace {
	t.indexZtunnelInputs()
	d := &ztNamespace{}
	for _, p := range t.podsByNs[ns] {
		if c, ok := t.podWorkload(p); ok {
			d.cands = append(d.cands, c)
		}
	}
	for _, we := range t.binder.entriesByNs[ns] {
		if c, ok := t.entryWorkload(we); ok {
			d.cands = append(d.cands, c)
		}
	}
	entries := t.serviceEntriesOf(ns)
	for _, se := range entries {
		d.cands = append(d.cands, t.endpointWorkloads(se)...)
	}
	// Stable: of two endpoints of one ServiceEntry with one address (one
	// UID), the first written is the workload.
	slices.SortStableFunc(d.cands, func(a, b candidate) int { return strings.Compare(a.wl.UID, b.wl.UID) })
	d.cands = slices.CompactFunc(d.cands, func(a, b candidate) bool { return a.wl.UID == b.wl.UID })
	cands := make(map[string]bool, len(d.cands))
	for _, c := range d.cands {
		cands[c.wl.UID] = true
	}
	d.waypoints = t.draftZtunnelWaypoints(ns, cands)
	d.services = t.draftZtunnelServices(ns, entries, cands)
	d.policies, d.selections = t.draftZtunnelPolicies(ns)
	return d
}

// serviceEntriesOf lists ns's ServiceEntries, sorted by name.
func (t *translator) serviceEntriesOf(ns string) []*networkingv1.ServiceEntry {
	// t.serviceEntries is sorted by namespace and name.
	i, _ := slices.BinarySearchFunc(t.serviceEntries, ns, func(se *networkingv1.ServiceEntry, ns string) int {
		return strings.Compare(se.Namespace, ns)
	})
	j := i
	for j < len(t.serviceEntries) && t.serviceEntries[j].Namespace == ns {
		j++
	}
	return t.serviceEntries[i:j]
}

// draftZtunnelWaypoints drafts the ready waypoints of ns with the
// candidate pods that run them.
func (t *translator) draftZtunnelWaypoints(ns string, cands map[string]bool) []waypointDraft {
	var out []waypointDraft
	for _, w := range t.waypointsByNs[ns] {
		d := waypointDraft{wp: model.ZtunnelWaypoint{Name: w.Ref.Name, Namespace: ns, Address: w.Address, HBONEPort: model.HBONEPort}}
		if d.wp.Address == "" {
			d.wp.Address = t.hostname(ns, w.Ref.Name)
			t.warnf("Gateway", ns, w.Ref.Name, "status.addresses has no hostname and no valid IP address; ztunnel uses %s", d.wp.Address)
		}
		for _, p := range t.podsByNs[ns] {
			uid := podUID(p)
			if cands[uid] && p.Labels[LabelGatewayName] == w.Ref.Name {
				d.instances = append(d.instances, uid)
			}
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b waypointDraft) int { return strings.Compare(a.wp.Name, b.wp.Name) })
	return out
}

// draftZtunnelPolicies converts ns's L4 AuthorizationPolicies (those
// without targetRefs), sorted by name, with where each applies.
func (t *translator) draftZtunnelPolicies(ns string) ([]model.AuthorizationPolicy, []ztunnelPolicySelection) {
	var aps []*securityv1.AuthorizationPolicy
	for _, ap := range t.policiesByNs[ns] {
		if len(istioTargets(ap.Spec.GetTargetRef(), ap.Spec.GetTargetRefs())) == 0 {
			aps = append(aps, ap)
		}
	}
	slices.SortStableFunc(aps, func(x, y *securityv1.AuthorizationPolicy) int { return strings.Compare(x.Name, y.Name) })
	aps = slices.CompactFunc(aps, func(x, y *securityv1.AuthorizationPolicy) bool { return x.Name == y.Name })
	var policies []model.AuthorizationPolicy
	var selections []ztunnelPolicySelection
	for _, ap := range aps {
		p, ok := t.ztunnelPolicy(ap)
		if !ok {
			continue
		}
		policies = append(policies, p)
		selections = append(selections, newPolicySelection(ap))
	}
	return policies, selections
}

// podUID is a pod's workload UID.
func podUID(p *corev1.Pod) string { return ClusterID + "//Pod/" + p.Namespace + "/" + p.Name }

// finalize settles the draft against the mesh's claims: each workload
// keeps the addresses it is the first to claim (none: it is no workload),
// the captured ones get the policies that select them (root, the root
// namespace's selections), services keep the VIPs they are first to
// claim and the endpoints that are workloads, waypoints the instances
// that are. warn, if set, receives the warnings about lost addresses.
func (d *ztNamespace) finalize(addrs *claims[workloadKey], vips *claims[serviceKey], root []ztunnelPolicySelection, rootNs string, warn func(kind, ns, name, format string, args ...any)) {
	d.finalizeWorkloads(addrs, root, rootNs, warn)
	d.finalizeServices(vips, warn)
}

func (d *ztNamespace) finalizeWorkloads(addrs *claims[workloadKey], root []ztunnelPolicySelection, rootNs string, warn func(kind, ns, name, format string, args ...any)) {
	d.workloads = nil
	if len(d.cands) > 0 {
		d.workloads = make([]model.ZtunnelWorkload, 0, len(d.cands))
	}
	selections := mergeSelections(d.selections, root, rootNs)
	for _, c := range d.cands {
		var kept, lost []string
		seen := map[netip.Addr]bool{}
		for _, a := range c.wl.Addresses {
			ip, _ := netip.ParseAddr(a) // candidates hold parsed IPs only
			// An address listed twice is lost the second time, to whoever
			// has it.
			if owner := addrs.owner(ip); seen[ip] || owner.uid != c.wl.UID {
				lost = append(lost, a+" (already workload "+owner.uid+"'s)")
			} else {
				kept = append(kept, a)
			}
			seen[ip] = true
		}
		if len(lost) > 0 && warn != nil {
			what := "it keeps only " + strings.Join(kept, ", ")
			if len(kept) == 0 {
				what = "it is not a workload ztunnel can reach"
			}
			warn(c.src.kind, c.src.namespace, c.src.name, "address %s: ztunnel cannot tell two workloads with one address apart, so the first keeps it; %s", strings.Join(lost, ", "), what)
		}
		if len(kept) == 0 {
			continue
		}
		wl := c.wl
		wl.Addresses = kept
		if c.pod != nil && wl.Captured {
			wl.Policies = selectedPolicies(selections, c.pod.Labels)
		}
		d.workloads = append(d.workloads, wl)
	}
	if len(d.workloads) == 0 {
		d.workloads = nil
	}
	// Waypoints: the instances that are workloads, and their identities.
	identity := make(map[string]string, len(d.workloads))
	for _, w := range d.workloads {
		identity[w.UID] = w.Identity
	}
	d.finalWaypoints = nil
	for _, wd := range d.waypoints {
		w := wd.wp
		for _, uid := range wd.instances {
			if id, ok := identity[uid]; ok {
				w.Instances = append(w.Instances, uid)
				w.Identities = append(w.Identities, id)
			}
		}
		slices.Sort(w.Identities)
		w.Identities = slices.Compact(w.Identities)
		d.finalWaypoints = append(d.finalWaypoints, w)
	}
}

func (d *ztNamespace) finalizeServices(vips *claims[serviceKey], warn func(kind, ns, name, format string, args ...any)) {
	workloads := make(map[string]bool, len(d.workloads))
	for _, w := range d.workloads {
		workloads[w.UID] = true
	}
	d.finalServices = nil
	for _, sd := range d.services {
		s := sd.svc
		seen := map[netip.Addr]bool{}
		for _, a := range sd.addrs {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				continue
			}
			// An address listed twice is lost the second time, to whoever
			// has it.
			if owner := vips.owner(ip); seen[ip] || owner != sd.key {
				if warn != nil {
					warn(sd.key.kind, sd.key.ns, sd.key.name, "address %s is already %s's: ztunnel cannot tell two services with one address apart, so the first keeps it", a, owner)
				}
			} else {
				s.Addresses = append(s.Addresses, ip.String())
			}
			seen[ip] = true
		}
		s.Endpoints = nil
		for _, e := range sd.svc.Endpoints {
			if workloads[e.Workload] {
				s.Endpoints = append(s.Endpoints, e)
			}
		}
		d.finalServices = append(d.finalServices, s)
	}
}

// claims records, for each address, who claims it, ordered: the first
// keeps it. It changes in place as namespaces are drafted again.
type claims[K comparable] struct {
	by      map[netip.Addr][]K
	compare func(a, b K) int
}

func newClaims[K comparable](compare func(a, b K) int) *claims[K] {
	return &claims[K]{by: map[netip.Addr][]K{}, compare: compare}
}

// owner is the first claimant of ip (the zero K if none).
func (c *claims[K]) owner(ip netip.Addr) K {
	if ks := c.by[ip]; len(ks) > 0 {
		return ks[0]
	}
	var zero K
	return zero
}

// add records that k claims the addresses (a claimant counts once per
// address); unparseable addresses are skipped.
func (c *claims[K]) add(k K, addrs []string) {
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		ks := c.by[ip]
		i, found := slices.BinarySearchFunc(ks, k, c.compare)
		if found && ks[i] == k {
			continue
		}
		c.by[ip] = slices.Insert(ks, i, k)
	}
}

// remove undoes add.
func (c *claims[K]) remove(k K, addrs []string) {
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		ks := c.by[ip]
		if i := slices.Index(ks, k); i >= 0 {
			ks = slices.Delete(ks, i, i+1)
		}
		if len(ks) == 0 {
			delete(c.by, ip)
		} else {
			c.by[ip] = ks
		}
	}
}
