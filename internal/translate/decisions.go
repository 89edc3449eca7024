package translate

import (
	"fmt"
	"strconv"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LabelOrigin says which istio.io/use-waypoint label decided a binding.
type LabelOrigin string

const (
	// LabelOriginNone: neither the object nor its namespace has the label.
	LabelOriginNone LabelOrigin = ""
	// LabelOriginObject: the object's own label decided.
	LabelOriginObject LabelOrigin = "object"
	// LabelOriginNamespace: the object has no label; its namespace's decided.
	LabelOriginNamespace LabelOrigin = "namespace"
)

// Decision is the outcome of binding one service or workload.
type Decision struct {
	// Waypoint is the waypoint traffic goes through; nil when none.
	Waypoint *Ref
	// Requested is the waypoint named by the label that applied, even when
	// unusable; nil when no label applies or it is "none".
	Requested *Ref
	// Origin says which label decided.
	Origin LabelOrigin
	// OptedOut: the deciding label was "none".
	OptedOut bool
	// Reason is one of the Reason* constants, or "" when no waypoint was
	// requested or binding is silently skipped.
	Reason string
	// Message is Istio's condition message.
	Message string
	// Condition is istio.io/WaypointBound as Istio reports it (no timestamps
	// or generation); nil when Istio removes or omits it, and always nil for
	// Pods, which get no status.
	Condition *metav1.Condition
	// IngressUseWaypoint: ingress gateways send to the waypoint. Services and
	// ServiceEntries only, and only when bound.
	IngressUseWaypoint bool
}

func msgBound(ref Ref) string { return "Successfully attached to waypoint " + ref.String() }
func msgNotReady(ref Ref) string {
	return fmt.Sprintf("waypoint %q is not ready", ref.String())
}

func msgAttachmentDenied(ref Ref) string {
	return fmt.Sprintf("we are not permitted to attach to waypoint %q (missing allowedRoutes?)", ref.String())
}

func msgUnsupportedTrafficType(ref Ref, trafficType string) string {
	return fmt.Sprintf("attempting to bind to traffic type %q which the waypoint %q does not support", trafficType, ref.String())
}

func msgCrossNamespaceForbidden(ref Ref) string {
	return fmt.Sprintf("waypoint %q is in another namespace, but service entry is only visible in its own namespace (exportTo \".\")", ref.String())
}

const (
	msgIngressUsesWaypoint   = ". Ingress traffic will traverse the waypoint"
	msgIngressBypassWaypoint = ". Ingress traffic is not using the waypoint, set the istio.io/ingress-use-waypoint label to true if desired."
)

// decision turns a resolution into a Decision (without condition).
func (r resolution) decision() Decision {
	d := Decision{
		Requested: r.requested,
		Origin:    r.origin,
		OptedOut:  r.optedOut,
		Reason:    r.reason,
		Message:   r.message,
	}
	if r.waypoint != nil {
		ref := r.waypoint.Ref
		d.Waypoint = &ref
		d.Message = msgBound(ref)
	}
	return d
}

// unsupported turns a bound decision into UnsupportedTrafficType.
func (d *Decision) unsupported(trafficType string) {
	d.Reason = ReasonUnsupportedTrafficType
	d.Message = msgUnsupportedTrafficType(*d.Waypoint, trafficType)
	d.Waypoint = nil
}

// withCondition fills Condition from Waypoint/Reason/Message: True when
// bound, False with the reason when a waypoint was requested but unusable,
// nil otherwise (Istio removes the condition).
func (d Decision) withCondition() Decision {
	switch {
	case d.Waypoint != nil:
		d.Condition = &metav1.Condition{
			Type:    ConditionWaypointBound,
			Status:  metav1.ConditionTrue,
			Reason:  ReasonWaypointAccepted,
			Message: d.Message,
		}
	case d.Reason != "":
		d.Condition = &metav1.Condition{
			Type:    ConditionWaypointBound,
			Status:  metav1.ConditionFalse,
			Reason:  d.Reason,
			Message: d.Message,
		}
	}
	return d
}

// isGatewayService reports whether a Service or ServiceEntry belongs to a
// gateway (a waypoint's own Service, or an east-west gateway's).
func isGatewayService(lbls map[string]string) bool {
	v := lbls[LabelManaged]
	return v == ManagedByMeshController || v == ManagedByEastWestController
}

// forService applies the service rules (§1.2 step 3) shared by Services and
// ServiceEntries.
func (b *Binder) forService(ns string, lbls map[string]string) Decision {
	if isGatewayService(lbls) {
		return Decision{}
	}
	r := b.resolve(ns, lbls)
	d := r.decision()
	if r.waypoint != nil && !r.waypoint.servesService() {
		d.unsupported(TrafficService)
	}
	return d
}

// ForService decides the waypoint for traffic addressed to svc.
func (b *Binder) ForService(svc *corev1.Service) Decision {
	if svc == nil {
		return Decision{}
	}
	d := b.forService(svc.Namespace, svc.Labels)
	if d.Waypoint != nil {
		present, enabled := IngressUseWaypoint(svc.Labels, b.namespaceLabels(svc.Namespace))
		d.IngressUseWaypoint = enabled
		switch {
		case enabled:
			d.Message += msgIngressUsesWaypoint
		case present:
			d.Message += msgIngressBypassWaypoint
		}
	}
	return d.withCondition()
}

// ForServiceEntry decides the waypoint for traffic addressed to se's hosts.
// A namespace-visible entry cannot use a waypoint in another namespace: that
// waypoint could not see the entry.
func (b *Binder) ForServiceEntry(se *networkingv1.ServiceEntry) Decision {
	if se == nil {
		return Decision{}
	}
	d := b.forService(se.Namespace, se.Labels)
	if d.Waypoint != nil && d.Waypoint.Namespace != se.Namespace && b.serviceEntryNamespaceVisible(se) {
		d.Reason = ReasonCrossNamespaceWaypointForbidden
		d.Message = msgCrossNamespaceForbidden(*d.Waypoint)
		d.Waypoint = nil
	}
	if d.Waypoint != nil {
		_, d.IngressUseWaypoint = IngressUseWaypoint(se.Labels, b.namespaceLabels(se.Namespace))
	}
	return d.withCondition()
}

// serviceEntryNamespaceVisible reports whether se resolves to NAMESPACE
// visibility: exportTo lists only "." or its own namespace, or is empty and
// the mesh default says so.
func (b *Binder) serviceEntryNamespaceVisible(se *networkingv1.ServiceEntry) bool {
	exportTo := se.Spec.GetExportTo()
	if len(exportTo) == 0 {
		return b.seNamespaceVis
	}
	for _, e := range exportTo {
		if e != "." && e != se.Namespace {
			return false
		}
	}
	return true
}

// forWorkload applies the workload rules (§1.2 step 4) shared by Pods,
// WorkloadEntries and inline ServiceEntry endpoints.
func (b *Binder) forWorkload(ns string, lbls map[string]string) Decision {
	// A waypoint's own instances never go through a waypoint.
	if b.instanceOf(ns, lbls) != nil {
		return Decision{}
	}
	r := b.resolve(ns, lbls)
	d := r.decision()
	if r.waypoint == nil || r.waypoint.servesWorkload() {
		return d
	}
	if r.waypoint.TrafficType == TrafficService && r.origin == LabelOriginNamespace {
		// A namespace waypoint for services is the common case; its
		// workloads simply keep direct traffic. Not an error.
		d.Waypoint, d.Message = nil, ""
		return d
	}
	d.unsupported(TrafficWorkload)
	return d
}

// ForPod decides the waypoint for traffic addressed to pod's IPs. Pods get
// no status, so Condition is always nil.
func (b *Binder) ForPod(pod *corev1.Pod) Decision {
	if pod == nil {
		return Decision{}
	}
	return b.forWorkload(pod.Namespace, pod.Labels)
}

// ForWorkloadEntry decides the waypoint for traffic addressed to we's address.
func (b *Binder) ForWorkloadEntry(we *networkingv1.WorkloadEntry) Decision {
	if we == nil {
		return Decision{}
	}
	return b.forWorkload(we.Namespace, we.Labels).withCondition()
}

// IngressUseWaypoint reads istio.io/ingress-use-waypoint from the object,
// else its namespace. present says the label exists at either level;
// enabled is its strconv.ParseBool value (false when malformed).
func IngressUseWaypoint(objLabels, nsLabels map[string]string) (present, enabled bool) {
	v, ok := objLabels[LabelIngressUseWaypoint]
	if !ok {
		v, ok = nsLabels[LabelIngressUseWaypoint]
	}
	if !ok {
		return false, false
	}
	enabled, err := strconv.ParseBool(v)
	return true, err == nil && enabled
}
