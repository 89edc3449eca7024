package translate

import "fmt"

// This file writes the one-sentence reasons of an Explanation. Every
// sentence names the label that decided and the rule that applied, so a
// reader can fix the cause without knowing the binding algorithm.

// trafficNoun is what traffic to s is addressed to: "service" or "workload".
func (s subject) trafficNoun() string {
	if s.workload {
		return TrafficWorkload
	}
	return TrafficService
}

// decider names who carries the deciding label: the object or its namespace.
func (s subject) decider(origin LabelOrigin) string {
	if origin == LabelOriginNamespace {
		return "namespace " + s.namespace
	}
	return s.String()
}

// deciderLabels returns the labels of whoever carries the deciding label.
func (b *Binder) deciderLabels(s subject, origin LabelOrigin) map[string]string {
	if origin == LabelOriginNamespace {
		return b.namespaceLabels(s.namespace)
	}
	return s.labels
}

// useWaypointText renders the deciding labels, e.g.
// "istio.io/use-waypoint=wp and istio.io/use-waypoint-namespace=infra".
func useWaypointText(lbls map[string]string) string {
	text := LabelUseWaypoint + "=" + lbls[LabelUseWaypoint]
	if ns, ok := lbls[LabelUseWaypointNamespace]; ok {
		text += " and " + LabelUseWaypointNamespace + "=" + ns
	}
	return text
}

// trafficTypeText says where a waypoint's traffic type comes from.
func (b *Binder) trafficTypeText(w Waypoint) string {
	if v, ok := w.Gateway.Labels[LabelWaypointFor]; ok {
		return LabelWaypointFor + "=" + v
	}
	class := b.classes[string(w.Gateway.Spec.GatewayClassName)]
	if class != nil {
		if v, ok := class.Labels[LabelWaypointFor]; ok {
			return fmt.Sprintf("%s=%s on GatewayClass %s", LabelWaypointFor, v, class.Name)
		}
	}
	return "no " + LabelWaypointFor + " label, so the default service"
}

// servesOnly describes what a waypoint that rejected our traffic does serve.
func servesOnly(trafficType string) string {
	switch trafficType {
	case TrafficService:
		return "serves only service traffic"
	case TrafficWorkload:
		return "serves only workload traffic"
	case TrafficNone:
		return "serves no traffic"
	default:
		return fmt.Sprintf("serves no traffic (%q is not a known traffic type)", trafficType)
	}
}

// reason explains decision d for subject s in one sentence.
func (b *Binder) reason(s subject, d Decision) string {
	if s.workload {
		if w := b.instanceOf(s.namespace, s.labels); w != nil {
			return fmt.Sprintf("%s is an instance of waypoint %s; a waypoint's own %s are never bound", s, w.Ref, instancesNoun(s))
		}
	} else if isGatewayService(s.labels) {
		return fmt.Sprintf("%s is a gateway's own Service (%s=%s); it never gets a waypoint", s, LabelManaged, s.labels[LabelManaged])
	}
	if d.Origin == LabelOriginNone {
		return fmt.Sprintf("no %s label on %s or namespace %s", LabelUseWaypoint, s, s.namespace)
	}
	who := s.decider(d.Origin)
	if d.OptedOut {
		return fmt.Sprintf("%s opts out with %s=none", who, LabelUseWaypoint)
	}
	if d.Requested == nil {
		return ""
	}
	has := who + " has " + useWaypointText(b.deciderLabels(s, d.Origin))
	ref := *d.Requested
	w, ready := b.waypoints[ref]
	switch d.Reason {
	case ReasonWaypointIsNotReady:
		fallback := ""
		if d.Origin == LabelOriginObject {
			fallback = " (there is no fallback to the namespace label)"
		}
		if _, exists := b.gateways[ref]; exists {
			return fmt.Sprintf("%s; waypoint %s exists but is not ready (no status.addresses yet), so traffic is not redirected%s", has, ref, fallback)
		}
		return fmt.Sprintf("%s; waypoint %s does not exist, so traffic is not redirected%s", has, ref, fallback)
	case ReasonAttachmentDenied:
		return fmt.Sprintf("%s; waypoint %s does not allow attachment from namespace %s (allowedRoutes.namespaces.from=%s), so traffic is not redirected",
			has, ref, s.namespace, w.AllowedRoutes.From)
	case ReasonCrossNamespaceWaypointForbidden:
		return fmt.Sprintf("%s; waypoint %s is in another namespace, but %s is only visible in its own namespace (exportTo \".\"), so traffic is not redirected",
			has, ref, s)
	}
	if !ready {
		return has
	}
	if d.Waypoint != nil {
		return fmt.Sprintf("%s; waypoint %s serves %s traffic (%s)", has, ref, s.trafficNoun(), b.trafficTypeText(w))
	}
	// UnsupportedTrafficType, or a namespace service waypoint silently
	// skipped for a workload: the traffic bypasses the waypoint.
	return fmt.Sprintf("%s; waypoint %s %s (%s), so traffic addressed to the %s bypasses it",
		has, ref, servesOnly(w.TrafficType), b.trafficTypeText(w), s.trafficNoun())
}

func instancesNoun(s subject) string {
	if s.kind == "Pod" {
		return "pods"
	}
	return "workloads"
}
