package deploy

import (
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Names Istio uses for the waypoint class and its controller.
const (
	// ClassName is the GatewayClass of waypoint Gateways.
	ClassName = "istio-waypoint"
	// ControllerName is the istio-waypoint GatewayClass's controllerName.
	ControllerName = "istio.io/mesh-controller"
	// ClassDescription is the description Istio gives the class it creates.
	ClassDescription = "The default Istio waypoint GatewayClass"
	// ManagedValue is the value of LabelManaged on every rendered object:
	// the controller name with "/" replaced by "-".
	ManagedValue = "istio.io-mesh-controller"
	// ControllerVersion is the gateway.istio.io/controller-version Istio's
	// deployment controller writes; Gateways marked with a higher version are
	// left to a newer controller.
	ControllerVersion = 5
)

// Labels and annotations the deployment controller reads or writes.
const (
	LabelGatewayName      = "gateway.networking.k8s.io/gateway-name"
	LabelGatewayClassName = "gateway.networking.k8s.io/gateway-class-name"
	LabelManaged          = "gateway.istio.io/managed"
	LabelNetwork          = "topology.istio.io/network"
	LabelDefaultsForClass = "gateway.istio.io/defaults-for-class"

	AnnotationNameOverride      = "gateway.istio.io/name-override"
	AnnotationServiceAccount    = "gateway.istio.io/service-account"
	AnnotationControllerVersion = "gateway.istio.io/controller-version"
	AnnotationTrafficDistrib    = "networking.istio.io/traffic-distribution"
	AnnotationRevision          = "istio.io/rev"
)

// GatewayClass returns the istio-waypoint GatewayClass meshd creates when it
// is missing (Istio creates it if missing and never updates it).
func GatewayClass() *gwv1.GatewayClass {
	desc := ClassDescription
	return &gwv1.GatewayClass{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "GatewayClass"},
		ObjectMeta: metav1.ObjectMeta{Name: ClassName},
		Spec: gwv1.GatewayClassSpec{
			ControllerName: ControllerName,
			Description:    &desc,
		},
	}
}

// Skip says whether Istio's deployment controller would leave this Gateway
// alone, and why: it is not of class istio-waypoint; it is unmanaged (more
// than one spec.addresses, or a Hostname address, which points at an
// existing Service); or its gateway.istio.io/controller-version annotation is
// newer than ControllerVersion or not a number.
func Skip(gw *gwv1.Gateway) (bool, string) {
	if gw == nil {
		return true, "no Gateway"
	}
	if string(gw.Spec.GatewayClassName) != ClassName {
		return true, fmt.Sprintf("gatewayClassName is %q, not %q", gw.Spec.GatewayClassName, ClassName)
	}
	if n := len(gw.Spec.Addresses); n > 1 {
		return true, fmt.Sprintf("unmanaged: spec.addresses has %d entries; a managed Gateway has at most one IPAddress", n)
	}
	if len(gw.Spec.Addresses) == 1 {
		if t := gw.Spec.Addresses[0].Type; t != nil && *t == gwv1.HostnameAddressType {
			return true, fmt.Sprintf("unmanaged: spec.addresses[0] is a Hostname (%q), naming an existing Service", gw.Spec.Addresses[0].Value)
		}
	}
	if v, ok := gw.Annotations[AnnotationControllerVersion]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return true, fmt.Sprintf("annotation %s is %q, not a number", AnnotationControllerVersion, v)
		}
		if n > ControllerVersion {
			return true, fmt.Sprintf("annotation %s is %d: managed by a newer controller (this one is %d)", AnnotationControllerVersion, n, ControllerVersion)
		}
	}
	return false, ""
}
