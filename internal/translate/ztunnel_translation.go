package translate

import (
	"cmp"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/model"
)

// ZtunnelTranslation is the ztunnels' shared configuration (what
// ZtunnelMesh returns, see Mesh) kept by namespace, with the mesh-wide
// claims on addresses, so that Update translates again only the
// namespaces a change concerns: a pod's change costs what its namespace's
// objects do, not what the mesh's 50,000 pods do. Update changes it in
// place; it is not safe for concurrent use.
type ZtunnelTranslation struct {
	rootNs string
	nss    map[string]*ztNamespace
	addrs  *claims[workloadKey]
	vips   *claims[serviceKey]
	// Warnings are those of the last full translation (TranslateZtunnels,
	// or an Update that had to translate everything); Update does not
	// compute warnings, as Translation.Update does not.
	Warnings []Warning
	// Full says whether the last translation was a full one.
	Full bool
}

// TranslateZtunnels translates in fully for the ztunnels.
func TranslateZtunnels(in ConfigInputs) *ZtunnelTranslation {
	t := newTranslator(in)
	zt := &ZtunnelTranslation{
		rootNs: t.rootNs, nss: map[string]*ztNamespace{}, Full: true,
		addrs: newClaims(compareWorkloadKeys), vips: newClaims(compareServiceKeys),
	}
	for _, ns := range t.ztunnelNamespaces() {
		zt.nss[ns] = t.draftZtunnelNamespace(ns)
	}
	for ns, d := range zt.nss {
		zt.claim(ns, d)
	}
	root := zt.rootSelections()
	for _, d := range zt.nss {
		d.finalize(zt.addrs, zt.vips, root, zt.rootNs, t.warnf)
	}
	zt.Warnings = t.sortedWarnings()
	return zt
}

// ztunnelNamespaces lists the namespaces that hold objects ztunnel
// translation reads (their Namespace object may not exist).
func (t *translator) ztunnelNamespaces() []string {
	t.indexZtunnelInputs()
	set := map[string]bool{}
	for ns := range t.podsByNs {
		set[ns] = true
	}
	for ns := range t.binder.entriesByNs {
		set[ns] = true
	}
	for ns := range t.servicesByNs {
		set[ns] = true
	}
	for _, se := range t.serviceEntries {
		set[se.Namespace] = true
	}
	for ns := range t.policiesByNs {
		set[ns] = true
	}
	for ns := range t.waypointsByNs {
		set[ns] = true
	}
	return sortedKeys(set)
}

// indexZtunnelInputs groups the L4 policies' candidates and the ready
// waypoints by namespace, once.
func (t *translator) indexZtunnelInputs() {
	if t.policiesByNs != nil {
		return
	}
	t.policiesByNs = map[string][]*securityv1.AuthorizationPolicy{}
	for _, ap := range t.in.AuthorizationPolicies {
		if ap != nil {
			t.policiesByNs[ap.Namespace] = append(t.policiesByNs[ap.Namespace], ap)
		}
	}
	t.waypointsByNs = map[string][]Waypoint{}
	for _, w := range t.binder.sortedWaypoints {
		t.waypointsByNs[w.Ref.Namespace] = append(t.waypointsByNs[w.Ref.Namespace], w)
	}
}

// claim records the addresses d's pieces claim; unclaim removes them.
func (zt *ZtunnelTranslation) claim(ns string, d *ztNamespace) {
	for _, c := range d.cands {
		zt.addrs.add(workloadKey{c.wl.UID, ns}, c.wl.Addresses)
	}
	for _, s := range d.services {
		zt.vips.add(s.key, s.addrs)
	}
}

func (zt *ZtunnelTranslation) unclaim(ns string, d *ztNamespace) {
	for _, c := range d.cands {
		zt.addrs.remove(workloadKey{c.wl.UID, ns}, c.wl.Addresses)
	}
	for _, s := range d.services {
		zt.vips.remove(s.key, s.addrs)
	}
}

func (zt *ZtunnelTranslation) rootSelections() []ztunnelPolicySelection {
	if d := zt.nss[zt.rootNs]; d != nil {
		return d.selections
	}
	return nil
}

// Pieces counts the workloads, services, waypoints and policies of the
// whole mesh, as Mesh would list them, without assembling it (a copy of
// every workload: 50 MB at 50,000 pods).
func (zt *ZtunnelTranslation) Pieces() int {
	n := 0
	for _, d := range zt.nss {
		n += len(d.workloads) + len(d.finalServices) + len(d.finalWaypoints) + len(d.policies)
	}
	return n
}

// Mesh assembles the configuration every ztunnel shares, as ZtunnelMesh
// returns it: every workload, service, waypoint and L4 policy, sorted.
func (zt *ZtunnelTranslation) Mesh() *model.Ztunnel {
	z := &model.Ztunnel{}
	for _, ns := range sortedKeys(zt.nss) {
		d := zt.nss[ns]
		z.Workloads = append(z.Workloads, d.workloads...)
		z.Services = append(z.Services, d.finalServices...)
		z.Waypoints = append(z.Waypoints, d.finalWaypoints...)
		z.Policies = append(z.Policies, d.policies...)
	}
	// UIDs do not sort by namespace: a pod's ("Kubernetes//Pod/...")
	// before a WorkloadEntry's ("Kubernetes/networking.istio.io/...").
	slices.SortFunc(z.Workloads, func(a, b model.ZtunnelWorkload) int { return strings.Compare(a.UID, b.UID) })
	slices.SortFunc(z.Services, func(a, b model.ZtunnelService) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Hostname, b.Hostname))
	})
	return z
}

// ZtunnelDelta is what an Update changed: per kind of piece, those added
// or changed (Set) and those removed (Removed, as they were).
type ZtunnelDelta struct {
	Workloads PieceDelta[model.ZtunnelWorkload]
	Services  PieceDelta[model.ZtunnelService]
	Waypoints PieceDelta[model.ZtunnelWaypoint]
	Policies  PieceDelta[model.AuthorizationPolicy]
}

// PieceDelta is one kind of piece's changes. The pieces are the
// translations' own, shared and never to be modified: a first push sets
// every piece of the mesh, and copies of them all were 64 MB at meshd's peak.
type PieceDelta[T any] struct {
	Set, Removed []*T
}

// Empty says whether nothing changed.
func (d *ZtunnelDelta) Empty() bool {
	return len(d.Workloads.Set)+len(d.Workloads.Removed)+len(d.Services.Set)+len(d.Services.Removed)+
		len(d.Waypoints.Set)+len(d.Waypoints.Removed)+len(d.Policies.Set)+len(d.Policies.Removed) == 0
}

// Update brings zt to objs, which is its inputs with changes applied, and
// returns what changed. It drafts again the namespaces of the changed
// objects that ztunnel translation reads (AffectsZtunnels), settles the
// claims they make, and finalizes them and the namespaces whose claims
// changed hands; the result equals TranslateZtunnels(objs.Inputs()) but
// for Warnings (TestZtunnelUpdateEqualsTranslate). Changes that reach
// across namespaces translate everything: Namespaces and GatewayClasses
// (capture and binding), Gateways (waypoints) and the root namespace's L4
// policies (mesh-wide).
func (zt *ZtunnelTranslation) Update(objs *Objects, changes []Change) ZtunnelDelta {
	dirty, full := zt.affected(changes)
	if full {
		next := TranslateZtunnels(objs.Inputs())
		delta := zt.Diff(next)
		*zt = *next
		return delta
	}
	zt.Full = false
	if len(dirty) == 0 {
		return ZtunnelDelta{}
	}
	t := newTranslator(objs.ztunnelInputsFor(dirty))
	t.indexZtunnelInputs()
	old := make(map[string]*ztNamespace, len(dirty))
	touched := map[string]bool{} // namespaces to finalize again
	for ns := range dirty {
		old[ns] = zt.nss[ns]
		owners := zt.owners(zt.nss[ns])
		if d := zt.nss[ns]; d != nil {
			zt.unclaim(ns, d)
		}
		d := t.draftZtunnelNamespace(ns)
		zt.claim(ns, d)
		zt.nss[ns] = d
		touched[ns] = true
		// Whoever held an address this namespace claims (or claimed) may
		// have lost or won it.
		for k := range owners {
			touched[k] = true
		}
		for k := range zt.owners(d) {
			touched[k] = true
		}
	}
	root := zt.rootSelections()
	for ns := range touched {
		d := zt.nss[ns]
		if d == nil {
			continue
		}
		if _, ok := old[ns]; !ok {
			// Only its claims changed: keep its last final pieces to
			// compare with (finalize replaces the slices).
			prev := *d
			old[ns] = &prev
		}
		d.finalize(zt.addrs, zt.vips, root, zt.rootNs, nil)
	}
	var delta ZtunnelDelta
	for ns := range touched {
		diffNamespace(&delta, old[ns], zt.nss[ns])
	}
	for ns, d := range zt.nss {
		if len(d.cands)+len(d.services)+len(d.waypoints)+len(d.policies) == 0 {
			delete(zt.nss, ns) // its objects are gone
		}
	}
	return delta
}

// Global reports whether changes reach across namespaces, so that Update
// would translate everything (which a caller may rather do in the
// background: it costs what the whole mesh does).
func (zt *ZtunnelTranslation) Global(changes []Change) bool {
	_, full := zt.affected(changes)
	return full
}

// affected returns the namespaces changes concern; full when only a full
// translation will do.
func (zt *ZtunnelTranslation) affected(changes []Change) (dirty map[string]bool, full bool) {
	dirty = map[string]bool{}
	for _, ch := range changes {
		if !AffectsZtunnels(ch) {
			continue
		}
		for _, obj := range []any{ch.Old, ch.New} {
			if obj == nil {
				continue
			}
			switch obj.(type) {
			case *corev1.Namespace, *gwv1.GatewayClass, *gwv1.Gateway:
				return nil, true
			}
			ns := obj.(metav1.Object).GetNamespace()
			if _, policy := obj.(*securityv1.AuthorizationPolicy); policy && ns == zt.rootNs {
				return nil, true
			}
			dirty[ns] = true
		}
	}
	return dirty, false
}

// owners lists the namespaces of the first claimants of every address d's
// pieces claim.
func (zt *ZtunnelTranslation) owners(d *ztNamespace) map[string]bool {
	out := map[string]bool{}
	if d == nil {
		return out
	}
	for _, c := range d.cands {
		for _, k := range zt.addrs.claimants(c.wl.Addresses) {
			out[k.ns] = true
		}
	}
	for _, s := range d.services {
		for _, k := range zt.vips.claimants(s.addrs) {
			out[k.ns] = true
		}
	}
	return out
}

// Diff lists what differs from zt to next (a later translation): with zt
// nil, every piece of next.
func (zt *ZtunnelTranslation) Diff(next *ZtunnelTranslation) ZtunnelDelta {
	var delta ZtunnelDelta
	var nss map[string]*ztNamespace
	if zt != nil {
		nss = zt.nss
	}
	all := map[string]bool{}
	for ns := range nss {
		all[ns] = true
	}
	for ns := range next.nss {
		all[ns] = true
	}
	for ns := range all {
		diffNamespace(&delta, nss[ns], next.nss[ns])
	}
	return delta
}

// diffNamespace adds to delta what differs between a namespace's final
// pieces before and after (either may be nil).
func diffNamespace(delta *ZtunnelDelta, before, after *ztNamespace) {
	if before == nil {
		before = &ztNamespace{}
	}
	if after == nil {
		after = &ztNamespace{}
	}
	diffPieces(&delta.Workloads, before.workloads, after.workloads, func(w *model.ZtunnelWorkload) string { return w.UID })
	diffPieces(&delta.Services, before.finalServices, after.finalServices, func(s *model.ZtunnelService) string { return s.Hostname })
	diffPieces(&delta.Waypoints, before.finalWaypoints, after.finalWaypoints, func(w *model.ZtunnelWaypoint) string { return w.Name })
	diffPieces(&delta.Policies, before.policies, after.policies, func(p *model.AuthorizationPolicy) string { return p.Name })
}

func diffPieces[T any](d *PieceDelta[T], before, after []T, key func(*T) string) {
	prev := make(map[string]*T, len(before))
	for i := range before {
		prev[key(&before[i])] = &before[i]
	}
	for i := range after {
		p := &after[i]
		k := key(p)
		if old, ok := prev[k]; !ok || !reflect.DeepEqual(old, p) {
			d.Set = append(d.Set, p)
		}
		delete(prev, k)
	}
	for _, k := range slices.Sorted(maps.Keys(prev)) {
		d.Removed = append(d.Removed, prev[k])
	}
}

// claimants lists everyone who claims any of addrs.
func (c *claims[K]) claimants(addrs []string) []K {
	var out []K
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		out = append(out, c.by[ip]...)
	}
	return out
}
