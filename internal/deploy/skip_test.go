package deploy

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func waypoint(mutate func(*gwv1.Gateway)) *gwv1.Gateway {
	gw := &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "waypoint"},
		Spec: gwv1.GatewaySpec{
			GatewayClassName: ClassName,
			Listeners:        []gwv1.Listener{{Name: "mesh", Port: HBONEPort, Protocol: "HBONE"}},
		},
	}
	if mutate != nil {
		mutate(gw)
	}
	return gw
}

func TestSkip(t *testing.T) {
	hostname, ip := gwv1.HostnameAddressType, gwv1.IPAddressType
	version := func(v string) func(*gwv1.Gateway) {
		return func(gw *gwv1.Gateway) { gw.Annotations = map[string]string{AnnotationControllerVersion: v} }
	}
	for _, tc := range []struct {
		name   string
		mutate func(*gwv1.Gateway)
		skip   bool
		why    string
	}{
		{name: "waypoint", skip: false},
		{name: "other class", mutate: func(gw *gwv1.Gateway) { gw.Spec.GatewayClassName = "istio" }, skip: true, why: `gatewayClassName is "istio"`},
		{name: "one IP address", mutate: func(gw *gwv1.Gateway) {
			gw.Spec.Addresses = []gwv1.GatewaySpecAddress{{Type: &ip, Value: "10.0.0.1"}}
		}},
		{name: "one untyped address", mutate: func(gw *gwv1.Gateway) {
			gw.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "10.0.0.1"}}
		}},
		{name: "two addresses", mutate: func(gw *gwv1.Gateway) {
			gw.Spec.Addresses = []gwv1.GatewaySpecAddress{{Value: "10.0.0.1"}, {Value: "10.0.0.2"}}
		}, skip: true, why: "spec.addresses has 2 entries"},
		{name: "hostname address", mutate: func(gw *gwv1.Gateway) {
			gw.Spec.Addresses = []gwv1.GatewaySpecAddress{{Type: &hostname, Value: "wp.default.svc.cluster.local"}}
		}, skip: true, why: "is a Hostname"},
		{name: "controller version 5", mutate: version("5")},
		{name: "controller version 1", mutate: version("1")},
		{name: "controller version 6", mutate: version("6"), skip: true, why: "newer controller"},
		{name: "controller version not a number", mutate: version("v5"), skip: true, why: "not a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skip, why := Skip(waypoint(tc.mutate))
			if skip != tc.skip || !strings.Contains(why, tc.why) || (!skip && why != "") {
				t.Errorf("Skip = %v, %q; want %v, containing %q", skip, why, tc.skip, tc.why)
			}
		})
	}
}

func TestGatewayClass(t *testing.T) {
	gc := GatewayClass()
	if gc.Name != "istio-waypoint" || gc.Spec.ControllerName != "istio.io/mesh-controller" ||
		gc.Spec.Description == nil || *gc.Spec.Description != "The default Istio waypoint GatewayClass" {
		t.Errorf("GatewayClass = %+v", gc)
	}
	if gc.APIVersion != "gateway.networking.k8s.io/v1" || gc.Kind != "GatewayClass" {
		t.Errorf("TypeMeta = %+v", gc.TypeMeta)
	}
}
