package manifest

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ApplyDefaults sets the defaults the Kubernetes API server sets on write for the
// fields meshway reads of the built-in kinds, so an object looks the same whichever
// store holds it — and so a Service port's targetPort is never printed or
// translated as 0. Custom resources get their CRD's defaults from Admit.
func ApplyDefaults(obj Object) {
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
