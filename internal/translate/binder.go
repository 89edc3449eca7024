package translate

import (
	"slices"
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// BindingInputs are the objects waypoint binding reads.
type BindingInputs struct {
	Namespaces      []*corev1.Namespace
	Services        []*corev1.Service
	Pods            []*corev1.Pod
	ServiceEntries  []*networkingv1.ServiceEntry
	WorkloadEntries []*networkingv1.WorkloadEntry
	Gateways        []*gwv1.Gateway
	GatewayClasses  []*gwv1.GatewayClass
	// ServiceEntryNamespaceVisible: mesh default for ServiceEntries without exportTo:
	// when true such entries are NAMESPACE-visible (like meshConfig defaultServiceExportTo ["."]).
	ServiceEntryNamespaceVisible bool
}

// Binder answers binding questions over one snapshot of inputs. It indexes
// the inputs once in NewBinder; every method is read-only afterwards, so a
// Binder is safe for concurrent use. Build a new Binder when inputs change.
type Binder struct {
	namespaces      map[string]*corev1.Namespace
	gateways        map[Ref]*gwv1.Gateway
	classes         map[string]*gwv1.GatewayClass
	waypoints       map[Ref]Waypoint
	sortedWaypoints []Waypoint
	podsByNs        map[string][]*corev1.Pod
	entriesByNs     map[string][]*networkingv1.WorkloadEntry
	seNamespaceVis  bool
}

// NewBinder indexes in. Nil entries in the input slices are skipped.
func NewBinder(in BindingInputs) *Binder {
	b := &Binder{
		namespaces:     map[string]*corev1.Namespace{},
		gateways:       map[Ref]*gwv1.Gateway{},
		classes:        map[string]*gwv1.GatewayClass{},
		waypoints:      map[Ref]Waypoint{},
		podsByNs:       map[string][]*corev1.Pod{},
		entriesByNs:    map[string][]*networkingv1.WorkloadEntry{},
		seNamespaceVis: in.ServiceEntryNamespaceVisible,
	}
	for _, ns := range in.Namespaces {
		if ns != nil {
			b.namespaces[ns.Name] = ns
		}
	}
	for _, c := range in.GatewayClasses {
		if c != nil {
			b.classes[c.Name] = c
		}
	}
	for _, p := range in.Pods {
		if p != nil {
			b.podsByNs[p.Namespace] = append(b.podsByNs[p.Namespace], p)
		}
	}
	for _, ns := range b.podsByNs {
		slices.SortFunc(ns, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	}
	for _, we := range in.WorkloadEntries {
		if we != nil {
			b.entriesByNs[we.Namespace] = append(b.entriesByNs[we.Namespace], we)
		}
	}
	for _, ns := range b.entriesByNs {
		slices.SortFunc(ns, func(a, b *networkingv1.WorkloadEntry) int { return strings.Compare(a.Name, b.Name) })
	}
	for _, gw := range in.Gateways {
		if gw == nil {
			continue
		}
		ref := Ref{gw.Namespace, gw.Name}
		b.gateways[ref] = gw
		// status.addresses is set once the waypoint's Service has ready
		// endpoints; before that the Gateway cannot take traffic.
		if len(gw.Status.Addresses) == 0 {
			continue
		}
		class := b.classes[string(gw.Spec.GatewayClassName)]
		b.waypoints[ref] = Waypoint{
			Ref:             ref,
			Gateway:         gw,
			TrafficType:     TrafficTypeFor(gw, class),
			AllowedRoutes:   AllowedRoutesFor(gw, class),
			Address:         gatewayAddress(gw),
			ServiceAccounts: b.instanceServiceAccounts(gw),
		}
	}
	for _, w := range b.waypoints {
		b.sortedWaypoints = append(b.sortedWaypoints, w)
	}
	slices.SortFunc(b.sortedWaypoints, func(x, y Waypoint) int { return strings.Compare(x.Ref.String(), y.Ref.String()) })
	return b
}

func (b *Binder) instanceServiceAccounts(gw *gwv1.Gateway) []string {
	var sas []string
	for _, p := range b.podsByNs[gw.Namespace] {
		if p.Labels[LabelGatewayName] == gw.Name {
			sas = append(sas, p.Spec.ServiceAccountName)
		}
	}
	slices.Sort(sas)
	return slices.Compact(sas)
}

// Waypoints returns every Gateway that can take traffic, sorted by ns/name.
func (b *Binder) Waypoints() []Waypoint {
	return slices.Clone(b.sortedWaypoints)
}

// Waypoint returns the waypoint named ref; false when the Gateway does not
// exist or is not ready (no status.addresses).
func (b *Binder) Waypoint(ref Ref) (Waypoint, bool) {
	w, ok := b.waypoints[ref]
	return w, ok
}

// GatewayExists returns the Gateway named ref whether or not it is ready, so
// callers can tell "missing" from "not ready yet".
func (b *Binder) GatewayExists(ref Ref) (*gwv1.Gateway, bool) {
	gw, ok := b.gateways[ref]
	return gw, ok
}

// namespaceLabels returns the labels of namespace ns; nil when unknown.
func (b *Binder) namespaceLabels(ns string) map[string]string {
	if n := b.namespaces[ns]; n != nil {
		return n.Labels
	}
	return nil
}

// instanceOf returns the waypoint an object in namespace ns with labels lbls
// is an instance of (it runs that waypoint), or nil. Only ready waypoints
// count, as in Istio.
func (b *Binder) instanceOf(ns string, lbls map[string]string) *Waypoint {
	name := lbls[LabelGatewayName]
	if name == "" {
		return nil
	}
	if w, ok := b.waypoints[Ref{ns, name}]; ok {
		return &w
	}
	return nil
}

// resolution is the outcome of reading the use-waypoint labels, before the
// traffic-type rules of the target kind apply.
type resolution struct {
	origin    LabelOrigin
	optedOut  bool
	requested *Ref
	waypoint  *Waypoint // set when the requested waypoint is ready and allows us
	reason    string
	message   string
}

// useWaypointLabel parses the use-waypoint labels of one object (or
// namespace). found is false without a use-waypoint label; the namespace
// label alone is ignored, as in Istio.
func useWaypointLabel(lbls map[string]string, defaultNs string) (ref Ref, optedOut, found bool) {
	name, ok := lbls[LabelUseWaypoint]
	if !ok {
		return Ref{}, false, false
	}
	// "none" is reserved: a waypoint named none can never be used.
	if name == TrafficNone {
		return Ref{}, true, true
	}
	ns := defaultNs
	if override, ok := lbls[LabelUseWaypointNamespace]; ok {
		ns = override
	}
	return Ref{ns, name}, false, true
}

// resolve applies §1.2 steps 1-2: the object's own label decides if present
// (with no fallback to the namespace label even when its waypoint is
// unusable), else the namespace's label.
func (b *Binder) resolve(ns string, objLabels map[string]string) resolution {
	nsLabels := b.namespaceLabels(ns)
	if ref, none, ok := useWaypointLabel(objLabels, ns); ok {
		return b.bindTo(ref, none, LabelOriginObject, ns, nsLabels)
	}
	if ref, none, ok := useWaypointLabel(nsLabels, ns); ok {
		return b.bindTo(ref, none, LabelOriginNamespace, ns, nsLabels)
	}
	return resolution{}
}

// bindTo checks that the waypoint named by a label is ready and admits the
// client namespace (allowedRoutes), recording why not otherwise.
func (b *Binder) bindTo(ref Ref, optedOut bool, origin LabelOrigin, clientNs string, clientNsLabels map[string]string) resolution {
	r := resolution{origin: origin, optedOut: optedOut}
	if optedOut {
		return r
	}
	r.requested = &ref
	w, ok := b.waypoints[ref]
	switch {
	case !ok:
		r.reason, r.message = ReasonWaypointIsNotReady, msgNotReady(ref)
	case !w.AllowedRoutes.allows(ref.Namespace, clientNs, clientNsLabels):
		r.reason, r.message = ReasonAttachmentDenied, msgAttachmentDenied(ref)
	default:
		r.waypoint = &w
	}
	return r
}
