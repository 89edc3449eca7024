package translate

import (
	"cmp"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ratelimitv1alpha1 "github.com/meshway/meshway/api/ratelimit/v1alpha1"
	"github.com/meshway/meshway/internal/model"
)

// Defaults of ConfigInputs, as in Istio.
const (
	DefaultRootNamespace = "istio-system"
	DefaultTrustDomain   = "cluster.local"
	DefaultClusterDomain = "cluster.local"
)

// ConfigInputs are the objects waypoint configuration reads: the binding
// inputs plus routes, traffic policies, authorization, telemetry and rate
// limits. Nil entries in the slices are skipped.
type ConfigInputs struct {
	BindingInputs
	HTTPRoutes             []*gwv1.HTTPRoute
	GRPCRoutes             []*gwv1.GRPCRoute
	VirtualServices        []*networkingv1.VirtualService
	DestinationRules       []*networkingv1.DestinationRule
	AuthorizationPolicies  []*securityv1.AuthorizationPolicy
	Telemetries            []*telemetryv1.Telemetry
	LocalRateLimitPolicies []*ratelimitv1alpha1.LocalRateLimitPolicy
	// MeshConfigMaps are the ConfigMaps named istio (MeshConfigMapName):
	// the root namespace's holds Istio's MeshConfig under key mesh, whose
	// extensionProviders and defaultProviders say where Telemetry tracing
	// sends spans. Those of other namespaces are not read.
	MeshConfigMaps []*corev1.ConfigMap
	// RootNamespace holds mesh-wide policies; empty means "istio-system".
	RootNamespace string
	// TrustDomain of workload identities; empty means "cluster.local".
	TrustDomain string
	// ClusterDomain of service hostnames; empty means "cluster.local".
	ClusterDomain string
}

// Add files obj in the slice of its type and reports whether the type is one
// ConfigInputs reads (other objects, such as ServiceAccounts, are ignored).
func (in *ConfigInputs) Add(obj any) bool {
	switch o := obj.(type) {
	case *corev1.Namespace:
		in.Namespaces = append(in.Namespaces, o)
	case *corev1.Service:
		in.Services = append(in.Services, o)
	case *corev1.Pod:
		in.Pods = append(in.Pods, o)
	case *networkingv1.ServiceEntry:
		in.ServiceEntries = append(in.ServiceEntries, o)
	case *networkingv1.WorkloadEntry:
		in.WorkloadEntries = append(in.WorkloadEntries, o)
	case *gwv1.Gateway:
		in.Gateways = append(in.Gateways, o)
	case *gwv1.GatewayClass:
		in.GatewayClasses = append(in.GatewayClasses, o)
	case *gwv1.HTTPRoute:
		in.HTTPRoutes = append(in.HTTPRoutes, o)
	case *gwv1.GRPCRoute:
		in.GRPCRoutes = append(in.GRPCRoutes, o)
	case *networkingv1.VirtualService:
		in.VirtualServices = append(in.VirtualServices, o)
	case *networkingv1.DestinationRule:
		in.DestinationRules = append(in.DestinationRules, o)
	case *securityv1.AuthorizationPolicy:
		in.AuthorizationPolicies = append(in.AuthorizationPolicies, o)
	case *telemetryv1.Telemetry:
		in.Telemetries = append(in.Telemetries, o)
	case *ratelimitv1alpha1.LocalRateLimitPolicy:
		in.LocalRateLimitPolicies = append(in.LocalRateLimitPolicies, o)
	case *corev1.ConfigMap:
		// Only the mesh configuration's name: the other ConfigMaps of a
		// cluster (many, often changing) would make translations that
		// read nothing of them.
		if o.Name != MeshConfigMapName {
			return false
		}
		in.MeshConfigMaps = append(in.MeshConfigMaps, o)
	default:
		return false
	}
	return true
}

// Warning is something in the inputs that translation ignored or changed:
// an unsupported field, a route on a TCP port, a policy that cannot apply to
// a waypoint. Object is "Kind namespace/name".
type Warning struct {
	Object  string `json:"object"`
	Message string `json:"message"`
}

func (w Warning) String() string { return w.Object + ": " + w.Message }

// BlackHoleCluster is the empty cluster invalid backends (a missing Service,
// an unknown port) are sent to, so that their share of the traffic fails as
// the Gateway API asks, instead of going to the other backends. The name is
// Istio's.
const BlackHoleCluster = "BlackHoleCluster"

// WaypointConfigs builds the configuration of every waypoint the Binder of
// in.BindingInputs knows (ready Gateways), sorted by namespace/name, and the
// warnings about inputs it could not honour, sorted. It is pure and
// deterministic. Every returned Waypoint passes Validate: what would not
// (an invalid policy, a bad regular expression) is dropped with a warning.
//
// Choices where Istio's behaviour has no equivalent in the model:
//   - A port's protocol comes from appProtocol, else the port name's prefix
//     (http, http2, grpc, ...), as in Istio. Istio sniffs ports whose protocol
//     is unknown (unnamed ports); meshway has no sniffing and treats them as
//     TCP, which always works but applies no routes: routes on such ports are
//     dropped with a warning saying to name the port. UDP and SCTP ports are
//     not captured.
//   - Endpoints are the pods the Service selects that have an IP and are not
//     terminated; pods that are not ready are kept with Unhealthy set.
//     Endpoint.Workload is the pod's service.istio.io/canonical-name,
//     app.kubernetes.io/name or app label, else its owner's name (a
//     ReplicaSet's without the template hash, i.e. the Deployment's), else
//     the pod's name.
//   - Telemetry tracing providers are looked up in the extensionProviders
//     of Istio's MeshConfig (the root namespace's ConfigMap istio, key mesh;
//     see meshconfig.go), defaultProviders.tracing when no Telemetry names
//     one. Only opentelemetry providers can be honoured (the waypoint
//     exports OTLP); another type, an unknown name or an unreadable
//     MeshConfig leaves TracingEndpoint empty (traces are continued, no
//     spans exported) with a warning.
//   - ServiceEntries bound to the waypoint are captured as one service per
//     host (see serviceEntries in serviceentry.go); their endpoints are the
//     inline endpoints with an IP address, or the pods and WorkloadEntries
//     their workloadSelector selects. meshway resolves no DNS names, so
//     entries with resolution DNS (or endpoints written as hostnames) have
//     no endpoints it can reach, and get a warning.
func WaypointConfigs(in ConfigInputs) ([]*model.Waypoint, []Warning) {
	tr := Translate(in)
	return tr.Waypoints(), tr.Warnings
}

// translator holds the indexed inputs of one WaypointConfigs call. The
// indexes spare each waypoint scans of every input: with hundreds of
// waypoints, per-waypoint scans of all services, routes and policies made
// translation quadratic in the size of the mesh.
type translator struct {
	in            ConfigInputs
	binder        *Binder
	rootNs        string
	trustDomain   string
	clusterDomain string
	services      map[Ref]*corev1.Service
	// sorted are the services by namespace/name; servicesByNs the same,
	// per namespace; boundTo the same, per waypoint they are bound to.
	sorted       []*corev1.Service
	servicesByNs map[string][]*corev1.Service
	boundTo      map[Ref][]*corev1.Service
	podsByNs     map[string][]*corev1.Pod
	// bound maps each Service to the waypoint its traffic goes through.
	bound map[Ref]Ref
	// policiesByNs and waypointsByNs group the AuthorizationPolicies and
	// the ready waypoints by namespace for the ztunnels' translation
	// (indexZtunnelInputs); nil until it runs.
	policiesByNs  map[string][]*securityv1.AuthorizationPolicy
	waypointsByNs map[string][]Waypoint
	// serviceEntries are the ServiceEntries sorted by namespace/name,
	// seByRef indexes them, seBound maps each to its waypoint and
	// seBoundTo lists, per waypoint, those bound to it (sorted).
	serviceEntries []*networkingv1.ServiceEntry
	seByRef        map[Ref]*networkingv1.ServiceEntry
	seBound        map[Ref]Ref
	seBoundTo      map[Ref][]*networkingv1.ServiceEntry
	// podsBoundTo lists, per waypoint, the pods whose workload traffic it
	// takes (by namespace, name); made on first use, as only waypoints for
	// workloads need it.
	podsBoundTo map[Ref][]*corev1.Pod
	idx         inputIndex
	// mesh is the root namespace's MeshConfig, read once per translator.
	mesh     meshConfig
	warnings map[Warning]bool
	// attached records route parents (route key, parent index) that applied
	// to some waypoint, to warn about the others.
	attached map[string]bool
}

func newTranslator(in ConfigInputs) *translator {
	t := &translator{
		in:            in,
		binder:        NewBinder(in.BindingInputs),
		rootNs:        cmp.Or(in.RootNamespace, DefaultRootNamespace),
		trustDomain:   cmp.Or(in.TrustDomain, DefaultTrustDomain),
		clusterDomain: cmp.Or(in.ClusterDomain, DefaultClusterDomain),
		services:      map[Ref]*corev1.Service{},
		servicesByNs:  map[string][]*corev1.Service{},
		boundTo:       map[Ref][]*corev1.Service{},
		bound:         map[Ref]Ref{},
		seByRef:       map[Ref]*networkingv1.ServiceEntry{},
		seBound:       map[Ref]Ref{},
		seBoundTo:     map[Ref][]*networkingv1.ServiceEntry{},
		warnings:      map[Warning]bool{},
		attached:      map[string]bool{},
	}
	for _, s := range in.Services {
		if s != nil {
			t.services[Ref{s.Namespace, s.Name}] = s
		}
	}
	// The Binder has grouped and sorted the pods already.
	t.podsByNs = t.binder.podsByNs
	t.sorted = make([]*corev1.Service, 0, len(t.services))
	for _, s := range t.services {
		t.sorted = append(t.sorted, s)
	}
	slices.SortFunc(t.sorted, func(a, b *corev1.Service) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	for _, s := range t.sorted {
		t.servicesByNs[s.Namespace] = append(t.servicesByNs[s.Namespace], s)
		if s.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		if d := t.binder.ForService(s); d.Waypoint != nil {
			t.bound[Ref{s.Namespace, s.Name}] = *d.Waypoint
			t.boundTo[*d.Waypoint] = append(t.boundTo[*d.Waypoint], s)
		}
	}
	t.indexServiceEntries()
	t.idx = newInputIndex(t)
	t.readMeshConfig()
	return t
}

func (t *translator) warnf(kind, ns, name, format string, args ...any) {
	obj := kind + " " + name
	if ns != "" {
		obj = kind + " " + ns + "/" + name
	}
	t.warnings[Warning{Object: obj, Message: fmt.Sprintf(format, args...)}] = true
}

func (t *translator) sortedWarnings() []Warning {
	out := make([]Warning, 0, len(t.warnings))
	for w := range t.warnings {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Warning) int {
		return cmp.Or(strings.Compare(a.Object, b.Object), strings.Compare(a.Message, b.Message))
	})
	return out
}

// hostname is a Service's DNS name.
func (t *translator) hostname(ns, name string) string {
	return name + "." + ns + ".svc." + t.clusterDomain
}

// fqdn resolves a host written in namespace ns: a short name (no dot) is a
// Service of that namespace, as Istio resolves it; anything else is as is.
func (t *translator) fqdn(host, ns string) string {
	if host == "" || strings.Contains(host, ".") || host == "*" {
		return host
	}
	return t.hostname(ns, host)
}

// backendIndex resolves backendRefs against the translator's indexes.
func (t *translator) backendIndex() backendIndex {
	return backendIndex{services: t.services, seByRef: t.seByRef, sortedSEs: t.serviceEntries, clusterDomain: t.clusterDomain}
}

// serviceByHost finds the Service a fully qualified hostname names. ns is
// the namespace looked in, "" when the host names no Service.
func (t *translator) serviceByHost(host string) (s *corev1.Service, ns string, ok bool) {
	name, ns, ok := splitServiceHost(host, t.clusterDomain)
	if !ok {
		return nil, "", false
	}
	s, ok = t.services[Ref{ns, name}]
	return s, ns, ok
}

// clusterName is Istio's name for the cluster of a service port (subset "").
func clusterName(port int32, subset, host string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port, subset, host)
}

// wpBuild is the configuration of one waypoint under construction.
type wpBuild struct {
	t        *translator
	w        Waypoint
	out      *model.Waypoint
	clusters map[string]*model.Cluster
	// services indexes out.Services built from Services by Ref, and
	// seServices those built from ServiceEntries (one per host).
	services   map[Ref]int
	seServices map[Ref][]int
	// targets[i] is what out.Services[i] was built from.
	targets []routeTarget
	// deps are the namespaces whose objects the configuration was built
	// from or looked up (see Translation.Update).
	deps map[string]bool
}

// waypoint builds w's configuration; deps are the namespaces it was built
// from, sorted.
func (t *translator) waypoint(w Waypoint) (_ *model.Waypoint, deps []string) {
	b := &wpBuild{
		t:          t,
		w:          w,
		out:        &model.Waypoint{Name: w.Ref.Name, Namespace: w.Ref.Namespace},
		clusters:   map[string]*model.Cluster{},
		services:   map[Ref]int{},
		seServices: map[Ref][]int{},
		deps:       map[string]bool{w.Ref.Namespace: true},
	}
	for _, s := range t.boundTo[w.Ref] {
		ref := Ref{s.Namespace, s.Name}
		if svc, ok := b.service(s); ok {
			b.services[ref] = len(b.out.Services)
			b.out.Services = append(b.out.Services, svc)
			b.targets = append(b.targets, routeTarget{"Service", s.Namespace, s.Name, svc.Hostname})
		}
	}
	b.serviceEntries()
	b.workloads()
	b.routes()
	b.defaultRetries()
	b.policies()
	b.rateLimits()
	b.out.Telemetry = t.telemetry(w)
	b.out.DefaultRetry = IstioDefaultRetry()
	for _, c := range b.clusters {
		b.out.Clusters = append(b.out.Clusters, *c)
	}
	slices.SortFunc(b.out.Clusters, func(x, y model.Cluster) int { return strings.Compare(x.Name, y.Name) })
	for ns := range b.deps {
		deps = append(deps, ns)
	}
	slices.Sort(deps)
	return b.out, deps
}

// IstioDefaultRetry is the retry policy Istio gives a route that names none
// (pilot's retry.DefaultPolicy): two more attempts, on a failed or refused
// connection, on a 503 and on a gRPC answer of UNAVAILABLE or CANCELLED,
// each to another endpoint when there is one.
func IstioDefaultRetry() *model.Retry {
	return &model.Retry{Attempts: 2, On: []string{"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}, Codes: []int{http.StatusServiceUnavailable}}
}

// defaultRetries gives every rule without a retry policy Istio's default,
// as Istio does; a VirtualService's retries.attempts 0 still turns it off.
func (b *wpBuild) defaultRetries() {
	for i := range b.out.Services {
		for j := range b.out.Services[i].Ports {
			for k := range b.out.Services[i].Ports[j].Routes {
				rules := b.out.Services[i].Ports[j].Routes[k].Rules
				for l := range rules {
					if rules[l].Retry == nil {
						rules[l].Retry = IstioDefaultRetry()
					}
				}
			}
		}
	}
}

// service builds a captured service with its ports and their clusters;
// false when it has no port the waypoint can capture.
func (b *wpBuild) service(s *corev1.Service) (model.Service, bool) {
	b.deps[s.Namespace] = true
	host := b.t.hostname(s.Namespace, s.Name)
	svc := model.Service{Name: s.Name, Namespace: s.Namespace, Hostname: host}
	for _, a := range serviceAddresses(s) {
		// The API server validates cluster IPs; the embedded store does not.
		if ip, err := netip.ParseAddr(a); err != nil {
			b.t.warnf("Service", s.Namespace, s.Name, "clusterIP %q is not an IP address; waypoint %s captures the service by hostname only", a, b.w.Ref)
		} else {
			svc.Addresses = append(svc.Addresses, ip.String())
		}
	}
	for _, p := range s.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if p.Port <= 0 || p.Port > 65535 {
			continue
		}
		svc.Ports = append(svc.Ports, model.ServicePort{
			Name:     p.Name,
			Port:     uint16(p.Port),
			Protocol: portProtocol(p.AppProtocol, p.Name),
			Cluster:  b.cluster(s, p.Port, ""),
		})
	}
	slices.SortFunc(svc.Ports, func(x, y model.ServicePort) int { return cmp.Compare(x.Port, y.Port) })
	if len(svc.Ports) == 0 {
		b.t.warnf("Service", s.Namespace, s.Name, "has no TCP port; waypoint %s does not capture it", b.w.Ref)
		return svc, false
	}
	return svc, true
}

// serviceAddresses returns the Service's cluster IPs (none when headless).
func serviceAddresses(s *corev1.Service) []string {
	ips := s.Spec.ClusterIPs
	if len(ips) == 0 && s.Spec.ClusterIP != "" {
		ips = []string{s.Spec.ClusterIP}
	}
	var out []string
	for _, ip := range ips {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, ip)
		}
	}
	return out
}

// portProtocol is Istio's protocol selection for a Service port: the
// appProtocol if set, else the port name up to the first '-'. Unknown
// protocols are TCP (see WaypointConfigs).
func portProtocol(appProtocol *string, name string) model.Protocol {
	if appProtocol != nil && *appProtocol != "" {
		return protocolOf(*appProtocol)
	}
	prefix, _, _ := strings.Cut(name, "-")
	return protocolOf(prefix)
}

func protocolOf(s string) model.Protocol {
	switch strings.ToLower(s) {
	case "http", "grpc-web", "kubernetes.io/ws", "kubernetes.io/wss":
		return model.ProtocolHTTP
	case "http2", "kubernetes.io/h2c":
		return model.ProtocolHTTP2
	case "grpc":
		return model.ProtocolGRPC
	}
	// tcp, tls, https, mongo, redis, mysql and anything unknown.
	return model.ProtocolTCP
}

// cluster returns the name of the cluster of (s, port, subset), creating it
// with its endpoints and DestinationRule traffic policy on first use.
func (b *wpBuild) cluster(s *corev1.Service, port int32, subset string) string {
	b.deps[s.Namespace] = true // its endpoints are pods of that namespace
	host := b.t.hostname(s.Namespace, s.Name)
	name := clusterName(port, subset, host)
	if _, ok := b.clusters[name]; ok {
		return name
	}
	var sp *corev1.ServicePort
	for i := range s.Spec.Ports {
		if s.Spec.Ports[i].Port == port {
			sp = &s.Spec.Ports[i]
		}
	}
	c := &model.Cluster{Name: name}
	b.clusters[name] = c
	if sp == nil {
		return name
	}
	c.Protocol = portProtocol(sp.AppProtocol, sp.Name)
	dr := b.t.destinationRule(host, s.Namespace)
	var subsetLabels map[string]string
	if dr != nil {
		policy := dr.Spec.GetTrafficPolicy()
		if subset != "" {
			found := false
			for _, ss := range dr.Spec.GetSubsets() {
				if ss.GetName() == subset {
					found = true
					subsetLabels = ss.GetLabels()
					policy = mergeTrafficPolicy(policy, ss.GetTrafficPolicy())
				}
			}
			if !found {
				b.t.warnf("DestinationRule", dr.Namespace, dr.Name, "has no subset %q for host %s; cluster %s has no endpoints", subset, host, name)
				return name
			}
		}
		b.t.applyTrafficPolicy(c, policy, port, dr)
	} else {
		b.t.upgradeToH2(c, nil)
	}
	if dr == nil && subset != "" {
		b.t.warnf("Service", s.Namespace, s.Name, "no DestinationRule defines subset %q for host %s; cluster %s has no endpoints", subset, host, name)
		return name
	}
	c.Endpoints = b.t.endpoints(s, sp, subsetLabels)
	return name
}

// blackHole returns BlackHoleCluster, creating it empty on first use.
func (b *wpBuild) blackHole() string {
	if _, ok := b.clusters[BlackHoleCluster]; !ok {
		b.clusters[BlackHoleCluster] = &model.Cluster{Name: BlackHoleCluster}
	}
	return BlackHoleCluster
}

// workloads adds the pods whose workload-addressed traffic goes through the
// waypoint (waypoints for "workload" or "all" traffic).
func (b *wpBuild) workloads() {
	if !b.w.servesWorkload() {
		return
	}
	for _, p := range b.t.workloadPods(b.w.Ref) {
		b.deps[p.Namespace] = true
		ips := podIPs(p)
		if len(ips) == 0 || terminated(p) {
			continue
		}
		wl := model.Workload{Name: p.Name, Namespace: p.Namespace, Addresses: addrStrings(ips), Identity: b.t.identity(p)}
		protocols := b.t.workloadProtocols(p)
		seen := map[int32]bool{}
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Protocol != "" && cp.Protocol != corev1.ProtocolTCP || seen[cp.ContainerPort] || cp.ContainerPort <= 0 || cp.ContainerPort > 65535 {
					continue
				}
				seen[cp.ContainerPort] = true
				proto, ok := protocols[uint16(cp.ContainerPort)]
				if !ok {
					proto = portProtocol(nil, cp.Name)
				}
				wl.Ports = append(wl.Ports, model.WorkloadPort{Port: uint16(cp.ContainerPort), Protocol: proto})
			}
		}
		slices.SortFunc(wl.Ports, func(x, y model.WorkloadPort) int { return cmp.Compare(x.Port, y.Port) })
		b.out.Workloads = append(b.out.Workloads, wl)
	}
}

// workloadPods returns the pods whose workload-addressed traffic goes
// through waypoint ref, by namespace and name. Binding a pod does not
// depend on the waypoint asking, so every pod is bound once, on first use.
func (t *translator) workloadPods(ref Ref) []*corev1.Pod {
	if t.podsBoundTo == nil {
		t.podsBoundTo = map[Ref][]*corev1.Pod{}
		nss := make([]string, 0, len(t.podsByNs))
		for ns := range t.podsByNs {
			nss = append(nss, ns)
		}
		slices.Sort(nss)
		for _, ns := range nss {
			for _, p := range t.podsByNs[ns] {
				if d := t.binder.ForPod(p); d.Waypoint != nil {
					t.podsBoundTo[*d.Waypoint] = append(t.podsBoundTo[*d.Waypoint], p)
				}
			}
		}
	}
	return t.podsBoundTo[ref]
}

// workloadProtocols maps the pod's ports to the protocol of the Service
// ports that target them (the first Service by name wins), as Istio takes a
// workload port's protocol from its Services.
func (t *translator) workloadProtocols(p *corev1.Pod) map[uint16]model.Protocol {
	out := map[uint16]model.Protocol{}
	for _, s := range t.servicesByNs[p.Namespace] {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(p.Labels)) {
			continue
		}
		for i := range s.Spec.Ports {
			sp := &s.Spec.Ports[i]
			if port, ok := targetPort(p, sp); ok {
				if _, seen := out[port]; !seen {
					out[port] = portProtocol(sp.AppProtocol, sp.Name)
				}
			}
		}
	}
	return out
}
