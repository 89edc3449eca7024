package translate

import (
	"slices"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ratelimitv1alpha1 "github.com/meshway/meshway/api/ratelimit/v1alpha1"
)

// inputIndex groups the inputs a waypoint looks up by what they can apply
// to, so that building one waypoint reads only the inputs that can apply to
// it instead of every input. Each lookup returns its inputs in the order a
// scan of every input would meet them, so results (including which of two
// equal candidates wins) are those of the scan.
type inputIndex struct {
	// DestinationRules without a workloadSelector, with their host
	// resolved: by that host, and the wildcard ones apart. Indexes are
	// into drs, in input order.
	drs        []indexedDR
	drByHost   map[string][]int
	drWildcard []int
	drMemo     map[drQuery]*networkingv1.DestinationRule
	// Routes by the parents they name; indexes into in.HTTPRoutes and
	// in.GRPCRoutes.
	httpRoutes, grpcRoutes map[parentKey][]int
	// VirtualServices by namespace; indexes into in.VirtualServices.
	virtualServices map[string][]int
	// Policies by namespace, each namespace's in the order they are
	// applied (namespace, then name).
	authorizationPolicies map[string][]*securityv1.AuthorizationPolicy
	rateLimits            map[string][]*ratelimitv1alpha1.LocalRateLimitPolicy
	// Telemetries by namespace; indexes into in.Telemetries.
	telemetries map[string][]int
	// WorkloadEntries by namespace, in input order.
	workloadEntries map[string][]*networkingv1.WorkloadEntry
}

type indexedDR struct {
	dr   *networkingv1.DestinationRule
	host string // spec.host, fully qualified
}

type drQuery struct{ host, svcNs string }

// parentKey is a route parent reference that can attach the route to a
// waypoint: a Service, a ServiceEntry or a Gateway, by namespace and name.
type parentKey struct{ kind, ns, name string }

// parentKeyOf normalises a parent reference as parentApplies reads it;
// false for a kind that never attaches a route to a waypoint.
func parentKeyOf(routeNs string, pr gwv1.ParentReference) (parentKey, bool) {
	group, k := gatewayGroup, "Gateway"
	if pr.Group != nil {
		group = string(*pr.Group)
	}
	if pr.Kind != nil {
		k = string(*pr.Kind)
	}
	ns := routeNs
	if pr.Namespace != nil {
		ns = string(*pr.Namespace)
	}
	switch {
	case (group == "" || group == "core") && k == "Service",
		group == istioNetworkingGroup && k == "ServiceEntry",
		group == gatewayGroup && k == "Gateway":
		return parentKey{k, ns, string(pr.Name)}, true
	}
	return parentKey{}, false
}

func newInputIndex(t *translator) inputIndex {
	in := t.in
	x := inputIndex{
		drByHost:              map[string][]int{},
		drMemo:                map[drQuery]*networkingv1.DestinationRule{},
		httpRoutes:            map[parentKey][]int{},
		grpcRoutes:            map[parentKey][]int{},
		virtualServices:       map[string][]int{},
		authorizationPolicies: map[string][]*securityv1.AuthorizationPolicy{},
		rateLimits:            map[string][]*ratelimitv1alpha1.LocalRateLimitPolicy{},
		telemetries:           map[string][]int{},
		workloadEntries:       map[string][]*networkingv1.WorkloadEntry{},
	}
	for _, dr := range in.DestinationRules {
		if dr == nil || dr.Spec.GetWorkloadSelector() != nil {
			continue
		}
		h := t.fqdn(dr.Spec.GetHost(), dr.Namespace)
		i := len(x.drs)
		x.drs = append(x.drs, indexedDR{dr, h})
		x.drByHost[h] = append(x.drByHost[h], i)
		if h == "*" || len(h) > 0 && h[0] == '*' {
			x.drWildcard = append(x.drWildcard, i)
		}
	}
	indexRoutes := func(into map[parentKey][]int, i int, ns string, parents []gwv1.ParentReference) {
		for _, pr := range parents {
			if k, ok := parentKeyOf(ns, pr); ok {
				// A route naming one parent twice is listed once.
				if l := into[k]; len(l) == 0 || l[len(l)-1] != i {
					into[k] = append(l, i)
				}
			}
		}
	}
	for i, r := range in.HTTPRoutes {
		if r != nil {
			indexRoutes(x.httpRoutes, i, r.Namespace, r.Spec.ParentRefs)
		}
	}
	for i, r := range in.GRPCRoutes {
		if r != nil {
			indexRoutes(x.grpcRoutes, i, r.Namespace, r.Spec.ParentRefs)
		}
	}
	for i, vs := range in.VirtualServices {
		if vs != nil {
			x.virtualServices[vs.Namespace] = append(x.virtualServices[vs.Namespace], i)
		}
	}
	aps := slices.DeleteFunc(slices.Clone(in.AuthorizationPolicies), func(p *securityv1.AuthorizationPolicy) bool { return p == nil })
	slices.SortFunc(aps, func(x, y *securityv1.AuthorizationPolicy) int { return byRef(x.ObjectMeta, y.ObjectMeta) })
	for _, ap := range aps {
		x.authorizationPolicies[ap.Namespace] = append(x.authorizationPolicies[ap.Namespace], ap)
	}
	rls := slices.DeleteFunc(slices.Clone(in.LocalRateLimitPolicies), func(p *ratelimitv1alpha1.LocalRateLimitPolicy) bool { return p == nil })
	slices.SortFunc(rls, func(x, y *ratelimitv1alpha1.LocalRateLimitPolicy) int { return byRef(x.ObjectMeta, y.ObjectMeta) })
	for _, rl := range rls {
		x.rateLimits[rl.Namespace] = append(x.rateLimits[rl.Namespace], rl)
	}
	for i, tel := range in.Telemetries {
		if tel != nil {
			x.telemetries[tel.Namespace] = append(x.telemetries[tel.Namespace], i)
		}
	}
	for _, we := range in.WorkloadEntries {
		if we != nil {
			x.workloadEntries[we.Namespace] = append(x.workloadEntries[we.Namespace], we)
		}
	}
	return x
}

// union merges index lists, each ascending, into one ascending list
// without duplicates.
func union(lists ...[]int) []int {
	var out []int
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// routeCandidates are the routes (indexes into the route list) that name
// tg or waypoint w's Gateway as a parent: the only ones parentApplies can
// accept for tg on w.
func routeCandidates(byParent map[parentKey][]int, tg routeTarget, w Waypoint) []int {
	return union(byParent[parentKey{tg.kind, tg.ns, tg.name}], byParent[parentKey{"Gateway", w.Ref.Namespace, w.Ref.Name}])
}

// policyNamespaces are the namespaces whose policies can attach to the
// waypoint under construction, sorted: its own (targetRefs Gateway), the
// root namespace (GatewayClass), and those of its services (Service and
// ServiceEntry targets resolve in the policy's namespace).
func (b *wpBuild) policyNamespaces() []string {
	nss := []string{b.w.Ref.Namespace, b.t.rootNs}
	for ref := range b.services {
		nss = append(nss, ref.Namespace)
	}
	for ref := range b.seServices {
		nss = append(nss, ref.Namespace)
	}
	slices.Sort(nss)
	return slices.Compact(nss)
}

// telemetryCandidates are the Telemetries (indexes into in.Telemetries)
// that can apply to waypoint w: the root namespace's and w's namespace's.
func (x *inputIndex) telemetryCandidates(rootNs string, w Waypoint) []int {
	if rootNs == w.Ref.Namespace {
		return x.telemetries[rootNs]
	}
	return union(x.telemetries[rootNs], x.telemetries[w.Ref.Namespace])
}

// destinationRuleCandidates are the DestinationRules (indexes into drs)
// whose host is host or a wildcard matching it.
func (x *inputIndex) destinationRuleCandidates(host string) []int {
	var wild []int
	for _, i := range x.drWildcard {
		if wildcardMatch(x.drs[i].host, host) {
			wild = append(wild, i)
		}
	}
	if len(wild) == 0 {
		return x.drByHost[host]
	}
	return union(x.drByHost[host], wild)
}

// virtualServiceCandidates are the VirtualServices (indexes into
// in.VirtualServices) in namespace ns or wns.
func (x *inputIndex) virtualServiceCandidates(ns, wns string) []int {
	if ns == wns {
		return x.virtualServices[ns]
	}
	return union(x.virtualServices[ns], x.virtualServices[wns])
}
