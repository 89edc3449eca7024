package translate

import (
	"fmt"
	"strings"

	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GatewayClassControllerName is the controllerName of the istio-waypoint
// GatewayClass: a policy targeting a GatewayClass applies to waypoints only
// when the class has it.
const GatewayClassControllerName = "istio.io/mesh-controller"

// policyBinding is the outcome for one targetRef of an AuthorizationPolicy.
type policyBinding struct {
	// ancestor names the target as Istio does: Kind.group:ns/name, with
	// group "core" for the core group.
	ancestor        string
	bound           bool
	reason, message string
}

// policyCondition is the WaypointAccepted condition of ap, as Istio's
// WaypointPolicyStatusCollection computes it: one binding per targetRef,
// flattened into one condition. nil for a policy without targetRefs, which
// binds to no waypoint and gets no condition.
func (t *statusTranslator) policyCondition(ap *securityv1.AuthorizationPolicy) *metav1.Condition {
	var bindings []policyBinding
	for _, ref := range istioTargetRefs(ap) {
		bindings = append(bindings, t.policyTarget(ref))
	}
	if len(bindings) == 0 {
		return nil
	}
	c := flattenPolicyBindings(bindings)
	c.ObservedGeneration = ap.Generation
	return c
}

// policyTargetRef is one targetRef with its namespace (the policy's unless set).
type policyTargetRef struct{ group, kind, namespace, name string }

func istioTargetRefs(ap *securityv1.AuthorizationPolicy) []policyTargetRef {
	var out []policyTargetRef
	// As Istio's GetTargetRefs: targetRefs, else the deprecated targetRef.
	refs := ap.Spec.GetTargetRefs()
	if single := ap.Spec.GetTargetRef(); len(refs) == 0 && single != nil {
		refs = []*typev1beta1.PolicyTargetReference{single}
	}
	for _, r := range refs {
		if r == nil {
			continue
		}
		ns := r.GetNamespace()
		if ns == "" {
			ns = ap.Namespace
		}
		out = append(out, policyTargetRef{r.GetGroup(), r.GetKind(), ns, r.GetName()})
	}
	return out
}

// policyTarget binds one targetRef: a GatewayClass (from the root namespace,
// with the mesh controller), a ready waypoint Gateway, or a Service or
// ServiceEntry bound to a waypoint. As in Istio the kind alone decides (not
// the group), and any other kind is not bound, with reason "unknown".
func (t *statusTranslator) policyTarget(ref policyTargetRef) policyBinding {
	key := Ref{ref.namespace, ref.name}
	group := ref.group
	if group == "" {
		group = "core"
	}
	b := policyBinding{ancestor: ref.kind + "." + group + ":" + key.String(), reason: "unknown", message: "not bound"}
	switch ref.kind {
	case "GatewayClass":
		class, ok := t.binder.classes[ref.name]
		switch {
		case ref.namespace != t.rootNs:
			b.reason = ReasonPolicyInvalid
			b.message = fmt.Sprintf("AuthorizationPolicy must be in the root namespace `%s` when referencing a GatewayClass", t.rootNs)
		case !ok:
			b.reason = ReasonPolicyTargetNotFound
		case class.Spec.ControllerName != GatewayClassControllerName:
			b.reason = ReasonPolicyInvalid
			b.message = fmt.Sprintf("GatewayClass must use controller name `%s` for waypoints", GatewayClassControllerName)
		default:
			b.bound, b.reason, b.message = true, ReasonPolicyAccepted, "bound to "+class.Name
		}
	case "Gateway":
		if w, ok := t.binder.Waypoint(key); ok {
			b.bound, b.reason, b.message = true, ReasonPolicyAccepted, "bound to "+w.Ref.String()
		} else {
			b.reason = ReasonPolicyTargetNotFound
		}
	case "Service":
		svc, ok := t.services[key]
		switch {
		case !ok:
			b.reason, b.message = ReasonPolicyTargetNotFound, fmt.Sprintf("Service %s was not found", key)
		default:
			if d := t.binder.ForService(svc); d.Waypoint != nil {
				b.bound, b.reason, b.message = true, ReasonPolicyAccepted, "bound to "+d.Waypoint.String()
			} else {
				b.reason, b.message = ReasonPolicyAncestorNotBound, fmt.Sprintf("Service %s is not bound to a waypoint", key)
			}
		}
	case "ServiceEntry":
		se, ok := t.serviceEnts[key]
		switch {
		case !ok:
			b.reason, b.message = ReasonPolicyTargetNotFound, fmt.Sprintf("ServiceEntry %s was not found", key)
		default:
			if d := t.binder.ForServiceEntry(se); d.Waypoint != nil {
				b.bound, b.reason, b.message = true, ReasonPolicyAccepted, "bound to "+d.Waypoint.String()
			} else {
				b.reason, b.message = ReasonPolicyAncestorNotBound, fmt.Sprintf("ServiceEntry %s is not bound to a waypoint", key)
			}
		}
	}
	return b
}

// flattenPolicyBindings is Istio's flattenConditions: one binding is
// reported as it is; several are True when any is bound, with reason
// Accepted (all bound), PartiallyInvalid (some) or Invalid (none), and a
// message listing the unbound targets.
func flattenPolicyBindings(bindings []policyBinding) *metav1.Condition {
	c := &metav1.Condition{Type: ConditionWaypointAccepted, Status: metav1.ConditionFalse}
	if len(bindings) == 1 {
		b := bindings[0]
		if b.bound {
			c.Status = metav1.ConditionTrue
		}
		c.Reason, c.Message = b.reason, b.message
		return c
	}
	var unbound []string
	anyBound := false
	for _, b := range bindings {
		if b.bound {
			anyBound = true
		} else {
			unbound = append(unbound, b.ancestor)
		}
	}
	c.Reason = ReasonPolicyInvalid
	switch {
	case anyBound && len(unbound) > 0:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonPolicyPartiallyInvalid
	case anyBound:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonPolicyAccepted
	}
	if len(unbound) > 0 {
		c.Message = "Invalid targetRefs: " + strings.Join(unbound, ", ")
	}
	return c
}
