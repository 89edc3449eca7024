package translate

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshway/meshway/internal/model"
)

// endpoints returns the endpoints of service port sp: the pods the Service
// selects (and, for a subset, whose labels match subsetLabels) that have an
// IP and serve the target port, sorted by address.
func (t *translator) endpoints(s *corev1.Service, sp *corev1.ServicePort, subsetLabels map[string]string) []model.Endpoint {
	if len(s.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(s.Spec.Selector)
	var subsetSel labels.Selector
	if len(subsetLabels) > 0 {
		subsetSel = labels.SelectorFromSet(subsetLabels)
	}
	var out []model.Endpoint
	for _, p := range t.podsByNs[s.Namespace] {
		if !sel.Matches(labels.Set(p.Labels)) || subsetSel != nil && !subsetSel.Matches(labels.Set(p.Labels)) {
			continue
		}
		ips := podIPs(p)
		if len(ips) == 0 || terminated(p) {
			continue
		}
		port, ok := targetPort(p, sp)
		if !ok {
			continue
		}
		for _, addr := range ips {
			out = append(out, model.Endpoint{
				Address:   netip.AddrPortFrom(addr, port).String(),
				Identity:  t.identity(p),
				Labels:    p.Labels,
				Workload:  workloadName(p),
				Namespace: p.Namespace,
				Unhealthy: !podReady(p),
			})
		}
	}
	slices.SortFunc(out, func(a, b model.Endpoint) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// targetPort resolves the service port's targetPort for pod p: a number, the
// port itself when unset, or a name looked up in the pod's container ports.
func targetPort(p *corev1.Pod, sp *corev1.ServicePort) (uint16, bool) {
	tp := sp.TargetPort
	if tp.StrVal == "" {
		n := tp.IntVal
		if n == 0 {
			n = sp.Port
		}
		return uint16(n), n > 0 && n <= 65535
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == tp.StrVal && (cp.Protocol == "" || cp.Protocol == sp.Protocol || sp.Protocol == "") {
				return uint16(cp.ContainerPort), cp.ContainerPort > 0 && cp.ContainerPort <= 65535
			}
		}
	}
	return 0, false
}

func podIPs(p *corev1.Pod) []netip.Addr {
	ips := make([]string, 0, max(1, len(p.Status.PodIPs)))
	for _, ip := range p.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = append(ips, p.Status.PodIP)
	}
	// The kubelet writes valid IPs; the embedded store takes what it is
	// given, and an address the proxies cannot parse is no endpoint.
	out := make([]netip.Addr, 0, len(ips))
	for _, s := range ips {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

// addrStrings prints addresses as the model keeps them.
func addrStrings(ips []netip.Addr) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// terminated pods (finished, or being deleted) are no endpoints.
func terminated(p *corev1.Pod) bool {
	return p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// podReady reads the Ready condition; without one (manifests written by
// hand), a running pod whose containers are all ready.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready {
			return false
		}
	}
	return true
}

// identity is the pod's SPIFFE ID.
func (t *translator) identity(p *corev1.Pod) string {
	sa := cmp.Or(p.Spec.ServiceAccountName, "default")
	return "spiffe://" + t.trustDomain + "/ns/" + p.Namespace + "/sa/" + sa
}

// workloadName names the pod's workload for telemetry (see WaypointConfigs).
func workloadName(p *corev1.Pod) string {
	for _, l := range []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"} {
		if v := p.Labels[l]; v != "" {
			return v
		}
	}
	for _, o := range p.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if o.Kind == "ReplicaSet" {
			if h := p.Labels["pod-template-hash"]; h != "" {
				if name, ok := strings.CutSuffix(o.Name, "-"+h); ok {
					return name
				}
			}
		}
		return o.Name
	}
	return p.Name
}

// destinationRule returns the DestinationRule for host, seen from a Service
// in namespace svcNs: one in the Service's namespace first, then the root
// namespace, then any other; an exact host before a wildcard; older first.
// Istio merges several; meshway takes the first and ignores exportTo.
func (t *translator) destinationRule(host, svcNs string) *networkingv1.DestinationRule {
	q := drQuery{host, svcNs}
	if dr, ok := t.idx.drMemo[q]; ok {
		return dr
	}
	var best *networkingv1.DestinationRule
	bestRank := [3]int{}
	for _, i := range t.idx.destinationRuleCandidates(host) {
		dr, h := t.idx.drs[i].dr, t.idx.drs[i].host
		exact := h == host
		if !exact && !wildcardMatch(h, host) {
			continue
		}
		rank := [3]int{2, 1, 0}
		switch dr.Namespace {
		case svcNs:
			rank[0] = 0
		case t.rootNs:
			rank[0] = 1
		}
		if exact {
			rank[1] = 0
		}
		if best == nil || slices.Compare(rank[:], bestRank[:]) < 0 ||
			slices.Compare(rank[:], bestRank[:]) == 0 && olderFirst(dr.CreationTimestamp.Time, dr.Namespace+"/"+dr.Name, best.CreationTimestamp.Time, best.Namespace+"/"+best.Name) < 0 {
			best, bestRank = dr, rank
		}
	}
	t.idx.drMemo[q] = best
	return best
}

// olderFirst orders objects by creation time, then key.
func olderFirst(a time.Time, aKey string, b time.Time, bKey string) int {
	return cmp.Or(a.Compare(b), strings.Compare(aKey, bKey))
}

// wildcardMatch reports whether pattern "*.suffix" (or "*") matches host.
func wildcardMatch(pattern, host string) bool {
	if pattern == "*" {
		return true
	}
	suffix, ok := strings.CutPrefix(pattern, "*")
	return ok && strings.HasSuffix(host, suffix)
}

// mergeTrafficPolicy lays a subset's policy over the DestinationRule's, field
// by field, as Istio does.
func mergeTrafficPolicy(base, over *networkingv1alpha3.TrafficPolicy) *networkingv1alpha3.TrafficPolicy {
	if over == nil {
		return base
	}
	if base == nil {
		return over
	}
	m := &networkingv1alpha3.TrafficPolicy{
		LoadBalancer:      base.GetLoadBalancer(),
		ConnectionPool:    base.GetConnectionPool(),
		OutlierDetection:  base.GetOutlierDetection(),
		PortLevelSettings: base.GetPortLevelSettings(),
	}
	if over.GetLoadBalancer() != nil {
		m.LoadBalancer = over.GetLoadBalancer()
	}
	if over.GetConnectionPool() != nil {
		m.ConnectionPool = over.GetConnectionPool()
	}
	if over.GetOutlierDetection() != nil {
		m.OutlierDetection = over.GetOutlierDetection()
	}
	if len(over.GetPortLevelSettings()) > 0 {
		m.PortLevelSettings = over.GetPortLevelSettings()
	}
	return m
}

// applyTrafficPolicy sets the cluster's load balancer, connection pool and
// outlier detection from policy and its settings for port.
// upgradeToH2 makes a cluster of an HTTP port HTTP/2 cleartext when the
// DestinationRule's connectionPool.http.h2UpgradePolicy says UPGRADE, or
// says DEFAULT (or nothing) and the MeshConfig's h2UpgradePolicy says
// UPGRADE — Istio's rule; DO_NOT_UPGRADE keeps it HTTP/1.1.
func (t *translator) upgradeToH2(c *model.Cluster, pool *networkingv1alpha3.ConnectionPoolSettings) {
	if c.Protocol != model.ProtocolHTTP {
		return
	}
	upgrade := t.mesh.mc.GetH2UpgradePolicy() == meshv1alpha1.MeshConfig_UPGRADE
	switch pool.GetHttp().GetH2UpgradePolicy() {
	case networkingv1alpha3.ConnectionPoolSettings_HTTPSettings_UPGRADE:
		upgrade = true
	case networkingv1alpha3.ConnectionPoolSettings_HTTPSettings_DO_NOT_UPGRADE:
		upgrade = false
	}
	if upgrade {
		c.Protocol = model.ProtocolHTTP2
	}
}

func (t *translator) applyTrafficPolicy(c *model.Cluster, policy *networkingv1alpha3.TrafficPolicy, port int32, dr *networkingv1.DestinationRule) {
	if policy == nil {
		t.upgradeToH2(c, nil)
		return
	}
	lb, pool, od := policy.GetLoadBalancer(), policy.GetConnectionPool(), policy.GetOutlierDetection()
	for _, pl := range policy.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() != uint32(port) {
			continue
		}
		if pl.GetLoadBalancer() != nil {
			lb = pl.GetLoadBalancer()
		}
		if pl.GetConnectionPool() != nil {
			pool = pl.GetConnectionPool()
		}
		if pl.GetOutlierDetection() != nil {
			od = pl.GetOutlierDetection()
		}
	}
	warn := func(format string, args ...any) { t.warnf("DestinationRule", dr.Namespace, dr.Name, format, args...) }
	if lb != nil {
		c.LoadBalancer = loadBalancer(lb, warn)
	}
	t.upgradeToH2(c, pool)
	if pool != nil {
		p := &model.ConnectionPool{
			MaxConnections:           int(pool.GetTcp().GetMaxConnections()),
			HTTP1MaxPendingRequests:  int(pool.GetHttp().GetHttp1MaxPendingRequests()),
			HTTP2MaxRequests:         int(pool.GetHttp().GetHttp2MaxRequests()),
			MaxRetries:               int(pool.GetHttp().GetMaxRetries()),
			MaxRequestsPerConnection: int(pool.GetHttp().GetMaxRequestsPerConnection()),
		}
		if *p != (model.ConnectionPool{}) {
			c.ConnectionPool = p
		}
	}
	if od != nil {
		o := &model.OutlierDetection{
			Consecutive5xxErrors: int(od.GetConsecutive_5XxErrors().GetValue()),
			Interval:             protoDuration(od.GetInterval()),
			BaseEjectionTime:     protoDuration(od.GetBaseEjectionTime()),
			MaxEjectionPercent:   int(od.GetMaxEjectionPercent()),
		}
		// consecutiveErrors is deprecated but still written; Istio reads it
		// as consecutive5xxErrors when that is unset.
		if n := od.GetConsecutiveErrors(); od.GetConsecutive_5XxErrors() == nil && n > 0 { //nolint:staticcheck // deprecated field, still honoured
			o.Consecutive5xxErrors = int(n)
		}
		if g := od.GetConsecutiveGatewayErrors(); g != nil {
			o.ConsecutiveGatewayErrors = int(g.GetValue())
		}
		if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
			warn("outlierDetection.maxEjectionPercent %d is outside 0-100; ignored", o.MaxEjectionPercent)
			o.MaxEjectionPercent = 0
		}
		c.OutlierDetection = o
	}
}

func loadBalancer(lb *networkingv1alpha3.LoadBalancerSettings, warn func(string, ...any)) *model.LoadBalancer {
	if ch := lb.GetConsistentHash(); ch != nil {
		switch {
		case ch.GetHttpHeaderName() != "":
			return &model.LoadBalancer{Policy: model.LBConsistentHash, HashHeader: ch.GetHttpHeaderName()}
		case ch.GetHttpCookie() != nil && ch.GetHttpCookie().GetName() != "":
			return &model.LoadBalancer{Policy: model.LBConsistentHash, HashCookie: ch.GetHttpCookie().GetName()}
		case ch.GetUseSourceIp():
			return &model.LoadBalancer{Policy: model.LBConsistentHash, HashSourceIP: true}
		}
		warn("loadBalancer.consistentHash: only httpHeaderName, httpCookie and useSourceIp are supported; using the default load balancer")
		return nil
	}
	if _, ok := lb.GetLbPolicy().(*networkingv1alpha3.LoadBalancerSettings_Simple); !ok {
		if lb.GetLbPolicy() != nil {
			warn("loadBalancer: only simple and consistentHash are supported; using the default load balancer")
		}
		return nil
	}
	switch lb.GetSimple() {
	case networkingv1alpha3.LoadBalancerSettings_ROUND_ROBIN:
		return &model.LoadBalancer{Policy: model.LBRoundRobin}
	case networkingv1alpha3.LoadBalancerSettings_LEAST_REQUEST, networkingv1alpha3.LoadBalancerSettings_LEAST_CONN: //nolint:staticcheck // LEAST_CONN is Istio's deprecated alias of LEAST_REQUEST
		return &model.LoadBalancer{Policy: model.LBLeastRequest}
	case networkingv1alpha3.LoadBalancerSettings_RANDOM:
		return &model.LoadBalancer{Policy: model.LBRandom}
	case networkingv1alpha3.LoadBalancerSettings_UNSPECIFIED:
		return nil
	}
	warn("loadBalancer.simple %s is not supported; using the default load balancer", lb.GetSimple())
	return nil
}

func protoDuration(d *durationpb.Duration) model.Duration {
	if d == nil || d.AsDuration() < 0 {
		return 0
	}
	return model.Duration(d.AsDuration())
}
