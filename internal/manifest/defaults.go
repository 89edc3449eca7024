package manifest

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// ApplyDefaults sets the defaults the Kubernetes API server sets on write for the
// fields meshway reads, so an object looks the same whichever store holds it —
// and so a Service port's targetPort is never printed or translated as 0.
func ApplyDefaults(obj Object) {
	switch o := obj.(type) {
	case *gwv1.Gateway:
		// The Gateway CRD's default status: what `waypoint status` and `get gtw`
		// show before a controller has seen the Gateway.
		if len(o.Status.Conditions) == 0 && len(o.Status.Addresses) == 0 && len(o.Status.Listeners) == 0 {
			o.Status.Conditions = pendingConditions(string(gwv1.GatewayConditionAccepted), string(gwv1.GatewayConditionProgrammed))
		}
	case *gwv1.GatewayClass:
		if len(o.Status.Conditions) == 0 {
			o.Status.Conditions = pendingConditions(string(gwv1.GatewayClassConditionStatusAccepted))
		}
	}
	if svc, ok := obj.(*corev1.Service); ok {
		if svc.Spec.Type == "" {
			svc.Spec.Type = corev1.ServiceTypeClusterIP
		}
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			if p.Protocol == "" {
				p.Protocol = corev1.ProtocolTCP
			}
			if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 && p.TargetPort.StrVal == "" {
				p.TargetPort = intstr.FromInt32(p.Port)
			}
		}
	}
}

// pendingConditions are the Gateway API CRDs' default conditions: Unknown,
// reason Pending, at the Unix epoch.
func pendingConditions(types ...string) []metav1.Condition {
	out := make([]metav1.Condition, len(types))
	for i, t := range types {
		out[i] = metav1.Condition{Type: t, Status: metav1.ConditionUnknown, Reason: "Pending",
			Message: "Waiting for controller", LastTransitionTime: metav1.Unix(0, 0).Rfc3339Copy()}
	}
	return out
}
