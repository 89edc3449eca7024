package translate

import "fmt"

// This file finds the traps behind a binding decision: configurations that
// look like they route through a waypoint but do not, silently. Each warning
// is a complete sentence that says what to do.

// warnings returns every trap that applies to subject s given its decision,
// in a fixed order.
func (b *Binder) warnings(s subject, d Decision) []string {
	var out []string
	add := func(w string) {
		if w != "" {
			out = append(out, w)
		}
	}
	add(strayNamespaceLabel(s.String(), s.labels))
	add(strayNamespaceLabel("namespace "+s.namespace, b.namespaceLabels(s.namespace)))
	add(b.unusableWaypointWarning(s, d))
	add(b.overriddenNamespaceWaypoint(s, d))
	add(b.notCapturedWarning(s, d))
	if !s.workload && d.Waypoint != nil {
		add(b.ingressLabelWarning(s))
	}
	return out
}

// strayNamespaceLabel: use-waypoint-namespace without use-waypoint on the
// same object is ignored; it does not combine with a namespace label.
func strayNamespaceLabel(who string, lbls map[string]string) string {
	ns, ok := lbls[LabelUseWaypointNamespace]
	if !ok {
		return ""
	}
	if _, ok := lbls[LabelUseWaypoint]; ok {
		return ""
	}
	return fmt.Sprintf("%s has %s=%s but no %s, so the label is ignored; add %s=<waypoint name> to the same object, or remove %s.",
		who, LabelUseWaypointNamespace, ns, LabelUseWaypoint, LabelUseWaypoint, LabelUseWaypointNamespace)
}

// unusableWaypointWarning covers a requested waypoint that does not carry
// the traffic, except the expected case of a namespace service waypoint that
// workloads skip.
func (b *Binder) unusableWaypointWarning(s subject, d Decision) string {
	if d.Requested == nil || d.Waypoint != nil || d.Reason == "" {
		return ""
	}
	ref := *d.Requested
	who := s.decider(d.Origin)
	label := useWaypointText(b.deciderLabels(s, d.Origin))
	target := s.String()
	if d.Origin == LabelOriginNamespace && d.Reason != ReasonCrossNamespaceWaypointForbidden {
		// The namespace's label fails the same way for every object in it: one
		// warning naming them all (see explainer.finish), not one per pod.
		target = subjectsPlaceholder
	}
	notRedirected := "traffic to " + target + " is NOT redirected"
	if d.Origin == LabelOriginObject {
		notRedirected += " and there is no fallback to the namespace label"
	}
	switch d.Reason {
	case ReasonWaypointIsNotReady:
		if _, exists := b.gateways[ref]; exists {
			return fmt.Sprintf("%s has %s, but waypoint Gateway %s is not ready (it has no status.addresses); %s. Check that the waypoint's pods are running and its Service has endpoints.",
				who, label, ref, notRedirected)
		}
		return fmt.Sprintf("%s has %s, but waypoint Gateway %s does not exist; %s. Create the waypoint or fix the label.",
			who, label, ref, notRedirected)
	case ReasonAttachmentDenied:
		w := b.waypoints[ref]
		return fmt.Sprintf("%s has %s, but waypoint %s does not allow attachment from namespace %s (allowedRoutes.namespaces.from=%s); %s. Allow the namespace in the waypoint's HBONE listener allowedRoutes.namespaces.",
			who, label, ref, s.namespace, w.AllowedRoutes.From, notRedirected)
	case ReasonCrossNamespaceWaypointForbidden:
		return fmt.Sprintf("%s has %s, but waypoint %s is in another namespace and %s is only visible in its own namespace (exportTo \".\"); %s. Export the ServiceEntry beyond its namespace or use a waypoint in namespace %s.",
			who, label, ref, s, notRedirected, s.namespace)
	case ReasonUnsupportedTrafficType:
		w := b.waypoints[ref]
		fix := fmt.Sprintf("label the waypoint %s=%s (or all)", LabelWaypointFor, s.trafficNoun())
		if s.workload {
			fix += ", or put the label on the workload's Service so service traffic uses the waypoint"
		}
		return fmt.Sprintf("%s has %s, but waypoint %s %s (%s), so traffic addressed to %s bypasses the waypoint; %s.",
			who, label, ref, servesOnly(w.TrafficType), b.trafficTypeText(w), target, fix)
	}
	return ""
}

// overriddenNamespaceWaypoint: an object label naming another waypoint
// replaces the namespace waypoint entirely, which is easy to miss when the
// namespace waypoint carries the policies.
func (b *Binder) overriddenNamespaceWaypoint(s subject, d Decision) string {
	if d.Origin != LabelOriginObject || d.OptedOut || d.Requested == nil {
		return ""
	}
	nsRef, none, ok := useWaypointLabel(b.namespaceLabels(s.namespace), s.namespace)
	if !ok || none || nsRef == *d.Requested {
		return ""
	}
	return fmt.Sprintf("namespace %s has %s=%s, but %s overrides it with %s; policies and routes on namespace waypoint %s do not apply to its traffic. Remove the label from %s if the namespace waypoint was intended.",
		s.namespace, LabelUseWaypoint, b.namespaceLabels(s.namespace)[LabelUseWaypoint], s, useWaypointText(s.labels), nsRef, s)
}

// notCapturedWarning: a bound waypoint is only reached through ztunnel, and
// ztunnel only captures ambient workloads.
func (b *Binder) notCapturedWarning(s subject, d Decision) string {
	if d.Waypoint == nil {
		return ""
	}
	if s.workload && s.labels[LabelDataplaneMode] == DataplaneModeNone {
		return fmt.Sprintf("%s has %s=%s and is out of the mesh, so ztunnel does not capture this traffic and waypoint %s is never reached; remove the label to enroll it.",
			s, LabelDataplaneMode, DataplaneModeNone, *d.Waypoint)
	}
	if b.namespaceLabels(s.namespace)[LabelDataplaneMode] == DataplaneModeAmbient {
		return ""
	}
	if s.workload && s.labels[LabelDataplaneMode] == DataplaneModeAmbient {
		return ""
	}
	return fmt.Sprintf("namespace %s is not in ambient mode (%s is not %s), so ztunnel does not capture traffic for %s and waypoint %s is never reached; label the namespace %s=%s.",
		s.namespace, LabelDataplaneMode, DataplaneModeAmbient, s, *d.Waypoint, LabelDataplaneMode, DataplaneModeAmbient)
}

// ingressLabelWarning: an ingress-use-waypoint label that is present but not
// true leaves ingress traffic bypassing the waypoint.
func (b *Binder) ingressLabelWarning(s subject) string {
	nsLabels := b.namespaceLabels(s.namespace)
	if present, enabled := IngressUseWaypoint(s.labels, nsLabels); !present || enabled {
		return ""
	}
	who, v := s.String(), s.labels[LabelIngressUseWaypoint]
	if _, own := s.labels[LabelIngressUseWaypoint]; !own {
		who, v = "namespace "+s.namespace, nsLabels[LabelIngressUseWaypoint]
	}
	return fmt.Sprintf("%s has %s=%q, which is not true, so ingress gateways send traffic for %s straight to its endpoints, bypassing the waypoint; set it to true if ingress traffic should traverse the waypoint.",
		who, LabelIngressUseWaypoint, v, s)
}
