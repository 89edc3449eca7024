package translate

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestMakeAllowedRoutes mirrors Istio's TestMakeAllowedRoutes
// (amb/waypoints_test.go), with the reference's reading of the last row: a
// "PROXY" binding without a port picks the first istio.io/PROXY listener.
func TestMakeAllowedRoutes(t *testing.T) {
	all, same, selector := gwv1.NamespacesFromAll, gwv1.NamespacesFromSame, gwv1.NamespacesFromSelector
	routes := func(from gwv1.FromNamespaces, sel *metav1.LabelSelector) *gwv1.AllowedRoutes {
		return &gwv1.AllowedRoutes{Namespaces: &gwv1.RouteNamespaces{From: &from, Selector: sel}}
	}
	waypointClass := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: WaypointClassName}}
	sandwichClass := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "sandwiched-waypoint"}}
	annotatedClass := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{
		Name:        "annotated",
		Annotations: map[string]string{AnnotationWaypointInboundBinding: "PROXY/15088"},
	}}
	gateway := func(binding string, listeners ...gwv1.Listener) *gwv1.Gateway {
		gw := &gwv1.Gateway{Spec: gwv1.GatewaySpec{Listeners: listeners}}
		if binding != "" {
			gw.Annotations = map[string]string{AnnotationWaypointInboundBinding: binding}
		}
		return gw
	}
	tests := []struct {
		name     string
		gateway  *gwv1.Gateway
		class    *gwv1.GatewayClass
		wantFrom gwv1.FromNamespaces
		wantSel  string // Selector.String(); "" means nil
	}{
		{"istio-waypoint defaults to same namespace", gateway(""), waypointClass, same, ""},
		{"istio-waypoint matching listener with no allowed routes",
			gateway("", gwv1.Listener{Protocol: protocolHBONE, Port: portHBONE}), waypointClass, same, ""},
		{"istio-waypoint matching listener with allowed routes",
			gateway("", gwv1.Listener{Protocol: protocolHBONE, Port: portHBONE, AllowedRoutes: routes(all, nil)}), waypointClass, all, ""},
		{"istio-waypoint matching listener with selector",
			gateway("", gwv1.Listener{Protocol: protocolHBONE, Port: portHBONE, AllowedRoutes: routes(selector,
				&metav1.LabelSelector{MatchLabels: map[string]string{"app": "test"}})}), waypointClass, selector, "app=test"},
		{"HBONE listener on another port is not the waypoint listener",
			gateway("", gwv1.Listener{Protocol: protocolHBONE, Port: 15009, AllowedRoutes: routes(all, nil)}), waypointClass, same, ""},
		{"sandwiched waypoint defaults to same namespace",
			gateway("PROXY/15088", gwv1.Listener{Protocol: "PROXY", Port: 15088}), sandwichClass, same, ""},
		{"sandwiched waypoint with listener with allowed routes",
			gateway("PROXY/15088",
				gwv1.Listener{Name: "should-be-ignored", Protocol: protocolProxy, Port: 15089, AllowedRoutes: routes(same, nil)},
				gwv1.Listener{Name: "ignored-hbone", Protocol: protocolHBONE, Port: portHBONE, AllowedRoutes: routes(same, nil)},
				gwv1.Listener{Name: "should-be-used", Protocol: protocolProxy, Port: 15088, AllowedRoutes: routes(all, nil)},
			), sandwichClass, all, ""},
		{"sandwiched waypoint with PROXY binding and no port uses first istio.io/PROXY listener",
			gateway("PROXY",
				gwv1.Listener{Name: "should-be-ignored", Protocol: protocolHBONE, Port: portHBONE},
				gwv1.Listener{Name: "should-be-used", Protocol: protocolProxy, Port: 15015, AllowedRoutes: routes(all, nil)},
				gwv1.Listener{Name: "second-proxy", Protocol: protocolProxy, Port: 15016},
			), sandwichClass, all, ""},
		{"binding on the GatewayClass applies when the Gateway has none",
			gateway("",
				gwv1.Listener{Protocol: protocolHBONE, Port: portHBONE},
				gwv1.Listener{Protocol: protocolProxy, Port: 15088, AllowedRoutes: routes(all, nil)},
			), annotatedClass, all, ""},
		{"Gateway binding hides the GatewayClass binding",
			gateway("PROXY/15099",
				gwv1.Listener{Protocol: protocolHBONE, Port: portHBONE},
				gwv1.Listener{Protocol: protocolProxy, Port: 15088, AllowedRoutes: routes(all, nil)},
			), annotatedClass, same, ""},
		{"malformed binding falls back to the HBONE listener",
			gateway("TCP/15088",
				gwv1.Listener{Protocol: protocolHBONE, Port: portHBONE, AllowedRoutes: routes(all, nil)},
				gwv1.Listener{Protocol: protocolProxy, Port: 15088},
			), sandwichClass, all, ""},
		{"selector without a selector matches nothing",
			gateway("", gwv1.Listener{Protocol: protocolHBONE, Port: portHBONE, AllowedRoutes: routes(selector, nil)}), waypointClass, selector, "<none>"},
		{"nil gateway", nil, nil, same, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AllowedRoutesFor(tt.gateway, tt.class)
			gotSel := ""
			if got.Selector != nil {
				gotSel = got.Selector.String()
				if gotSel == "" {
					gotSel = "<none>" // labels.Nothing() renders as ""
				}
			}
			if got.From != tt.wantFrom || gotSel != tt.wantSel {
				t.Errorf("AllowedRoutesFor = {From: %s, Selector: %q}, want {From: %s, Selector: %q}", got.From, gotSel, tt.wantFrom, tt.wantSel)
			}
		})
	}
}

func TestTrafficTypeFor(t *testing.T) {
	class := func(lbls map[string]string) *gwv1.GatewayClass {
		return &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "c", Labels: lbls}}
	}
	gw := func(lbls map[string]string) *gwv1.Gateway {
		return &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "g", Labels: lbls}}
	}
	tests := []struct {
		name  string
		gw    *gwv1.Gateway
		class *gwv1.GatewayClass
		want  string
	}{
		{"default is service", gw(nil), nil, TrafficService},
		{"unlabelled class keeps default", gw(nil), class(nil), TrafficService},
		{"GatewayClass label overrides default", gw(nil), class(kv(LabelWaypointFor, TrafficAll)), TrafficAll},
		{"Gateway label overrides GatewayClass label", gw(kv(LabelWaypointFor, TrafficWorkload)), class(kv(LabelWaypointFor, TrafficAll)), TrafficWorkload},
		{"Gateway label overrides default", gw(kv(LabelWaypointFor, TrafficNone)), nil, TrafficNone},
		{"unknown value is returned raw", gw(kv(LabelWaypointFor, "everything")), nil, "everything"},
		{"nil gateway and class", nil, nil, TrafficService},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TrafficTypeFor(tt.gw, tt.class); got != tt.want {
				t.Errorf("TrafficTypeFor = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWaypoints checks which Gateways are waypoints and what is derived
// from them (amb/waypoints.go makeWaypoint).
func TestWaypoints(t *testing.T) {
	ip := gwv1.IPAddressType
	otherClass := waypointGateway("infra", "sandwich", func(gw *gwv1.Gateway) {
		gw.Spec.GatewayClassName = "istio"
		gw.Status.Addresses = []gwv1.GatewayStatusAddress{{Type: &ip, Value: "not-an-ip"}, {Value: "10.0.0.7"}}
	})
	hostnameAfterIP := waypointGateway("infra", "mixed", func(gw *gwv1.Gateway) {
		gw.Status.Addresses = append([]gwv1.GatewayStatusAddress{{Type: &ip, Value: "10.0.0.8"}}, gw.Status.Addresses...)
	})
	b := NewBinder(BindingInputs{
		GatewayClasses: []*gwv1.GatewayClass{{ObjectMeta: metav1.ObjectMeta{Name: WaypointClassName, Labels: kv(LabelWaypointFor, TrafficAll)}}},
		Gateways: []*gwv1.Gateway{
			waypointGateway("infra", "pending", notReady),
			hostnameAfterIP,
			otherClass,
			nil,
		},
		Pods: []*corev1.Pod{
			podWithSA("infra", "mixed-b", "mixed", "sa-b"),
			podWithSA("infra", "mixed-a", "mixed", "sa-a"),
			podWithSA("infra", "mixed-c", "mixed", "sa-a"),
			podWithSA("other", "mixed-x", "mixed", "sa-other-ns"),
		},
	})
	got := b.Waypoints()
	type summary struct {
		Ref             Ref
		TrafficType     string
		Address         string
		ServiceAccounts []string
	}
	var sums []summary
	for _, w := range got {
		sums = append(sums, summary{w.Ref, w.TrafficType, w.Address, w.ServiceAccounts})
	}
	want := []summary{
		{Ref{"infra", "mixed"}, TrafficAll, "mixed.infra.svc.cluster.local", []string{"sa-a", "sa-b"}},
		{Ref{"infra", "sandwich"}, TrafficService, "10.0.0.7", nil},
	}
	if diff := cmp.Diff(want, sums); diff != "" {
		t.Errorf("Waypoints() mismatch (-want +got):\n%s", diff)
	}
	if _, ok := b.Waypoint(Ref{"infra", "pending"}); ok {
		t.Errorf("Waypoint(infra/pending) found; a Gateway without status.addresses is not a waypoint")
	}
	if _, ok := b.GatewayExists(Ref{"infra", "pending"}); !ok {
		t.Errorf("GatewayExists(infra/pending) = false, want true")
	}
	if _, ok := b.GatewayExists(Ref{"infra", "missing"}); ok {
		t.Errorf("GatewayExists(infra/missing) = true, want false")
	}
}
