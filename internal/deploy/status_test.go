package deploy

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// waypointService is the Service Render gives the guide's waypoint, as a
// store holds it: with cluster IPs on Kubernetes, none on the embedded store.
func waypointService(t *testing.T, gw *gwv1.Gateway, clusterIPs ...string) *corev1.Service {
	t.Helper()
	objs, err := Render(gw, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		if svc, ok := obj.(*corev1.Service); ok {
			svc.Spec.ClusterIPs = clusterIPs
			if len(clusterIPs) > 0 {
				svc.Spec.ClusterIP = clusterIPs[0]
			}
			return svc
		}
	}
	t.Fatal("Render gave no Service")
	return nil
}

// waypointPod is a pod of the guide's waypoint, Ready or not.
func waypointPod(name string, ready bool, mutate ...func(*corev1.Pod)) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{LabelGatewayName: "waypoint"}},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func conditionByType(conds []metav1.Condition, typ string) metav1.Condition {
	for _, c := range conds {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

type shortCondition struct{ Status, Reason, Message string }

func short(c metav1.Condition) shortCondition {
	return shortCondition{string(c.Status), c.Reason, c.Message}
}

// TestGatewayStatusGuide checks the whole status of the guide's waypoint,
// `meshctl waypoint apply -n default`, before its Service exists: Istio's
// (pilot/pkg/config/kube/gateway/testdata/waypoint.status.yaml.golden).
func TestGatewayStatusGuide(t *testing.T) {
	gw := waypoint(func(gw *gwv1.Gateway) { gw.Generation = 1 })
	got := GatewayStatus(gw, StatusInputs{}, Options{})
	cond := func(typ, status, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionStatus(status), Reason: reason, Message: msg, ObservedGeneration: 1}
	}
	want := gwv1.GatewayStatus{
		Conditions: []metav1.Condition{
			cond("Accepted", "True", "Accepted", "Resource accepted"),
			cond("Programmed", "False", "AddressNotUsable", `Failed to assign to any requested addresses: hostname "waypoint.default.svc.cluster.local" not found`),
			cond("ResolvedRefs", "True", "ResolvedRefs", "All references resolved"),
		},
		Listeners: []gwv1.ListenerStatus{{
			Name:           "mesh",
			SupportedKinds: []gwv1.RouteGroupKind{},
			Conditions: []metav1.Condition{
				cond("Accepted", "True", "Accepted", "No errors found"),
				cond("Conflicted", "False", "NoConflicts", "No errors found"),
				cond("Programmed", "True", "Programmed", "No errors found"),
				cond("ResolvedRefs", "True", "ResolvedRefs", "No errors found"),
			},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GatewayStatus (-want +got):\n%s", diff)
	}
}

func TestGatewayStatusProgrammed(t *testing.T) {
	gw := waypoint(nil)
	hostname := gwv1.HostnameAddressType
	ip := gwv1.IPAddressType
	host := "waypoint.default.svc.cluster.local"
	assigned := shortCondition{"True", "Programmed", "Resource programmed, assigned to service(s) " + host + ":15008"}
	noInstances := shortCondition{"False", "AddressNotAssigned", `Failed to assign to any requested addresses: no instances found for hostname "` + host + `"`}
	for _, tc := range []struct {
		name          string
		gw            *gwv1.Gateway
		in            StatusInputs
		want          shortCondition
		wantAddresses []gwv1.GatewayStatusAddress
	}{
		{
			name: "Service without pods",
			gw:   gw,
			in:   StatusInputs{Service: waypointService(t, gw, "10.96.0.20")},
			want: noInstances,
		},
		{
			name: "no pod is ready, in the namespace, selected and running",
			gw:   gw,
			in: StatusInputs{Service: waypointService(t, gw, "10.96.0.20"), Pods: []*corev1.Pod{
				waypointPod("not-ready", false),
				waypointPod("elsewhere", true, func(p *corev1.Pod) { p.Namespace = "other" }),
				waypointPod("other-gateway", true, func(p *corev1.Pod) { p.Labels[LabelGatewayName] = "other" }),
				waypointPod("terminating", true, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} }),
			}},
			want: noInstances,
		},
		{
			name:          "a ready pod, on Kubernetes: the cluster IPs and the hostname",
			gw:            gw,
			in:            StatusInputs{Service: waypointService(t, gw, "fd00::20", "10.96.0.20"), Pods: []*corev1.Pod{waypointPod("a", false), waypointPod("b", true)}},
			want:          assigned,
			wantAddresses: []gwv1.GatewayStatusAddress{{Type: &ip, Value: "10.96.0.20"}, {Type: &ip, Value: "fd00::20"}, {Type: &hostname, Value: host}},
		},
		{
			name:          "a ready pod, on the embedded store: the hostname",
			gw:            gw,
			in:            StatusInputs{Service: waypointService(t, gw), Pods: []*corev1.Pod{waypointPod("a", true)}},
			want:          assigned,
			wantAddresses: []gwv1.GatewayStatusAddress{{Type: &hostname, Value: host}},
		},
		{
			name: "addresses are kept once reported",
			gw: waypoint(func(gw *gwv1.Gateway) {
				gw.Status.Addresses = []gwv1.GatewayStatusAddress{{Type: &hostname, Value: host}}
			}),
			in:            StatusInputs{Service: waypointService(t, gw)},
			want:          noInstances,
			wantAddresses: []gwv1.GatewayStatusAddress{{Type: &hostname, Value: host}},
		},
		{
			name: "the stored Deployment's selector chooses the pods",
			gw:   gw,
			in: StatusInputs{
				Service: waypointService(t, gw),
				Deployment: &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "custom"}},
				}},
				Pods: []*corev1.Pod{waypointPod("a", true)},
			},
			want: noInstances,
		},
		{
			name: "name override",
			gw: waypoint(func(gw *gwv1.Gateway) {
				gw.Annotations = map[string]string{AnnotationNameOverride: "wp"}
			}),
			want: shortCondition{"False", "AddressNotUsable", `Failed to assign to any requested addresses: hostname "wp.default.svc.cluster.local" not found`},
		},
		{
			name: "a Service without the listener's port",
			gw:   gw,
			in: StatusInputs{
				Service: &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: StatusPort}}}},
				Pods:    []*corev1.Pod{waypointPod("a", true)},
			},
			want: shortCondition{"False", "AddressNotUsable", `Failed to assign to any requested addresses: port 15008 not found for hostname "` + host + `"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := GatewayStatus(tc.gw, tc.in, Options{})
			if diff := cmp.Diff(tc.want, short(conditionByType(got.Conditions, "Programmed"))); diff != "" {
				t.Errorf("Programmed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantAddresses, got.Addresses); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGatewayStatusListeners: Istio's "invalid" waypoint (a listener on
// 1234/HTTP) is Accepted, its listener is not; attached routes are counted.
func TestGatewayStatusListeners(t *testing.T) {
	gw := waypoint(func(gw *gwv1.Gateway) {
		gw.Spec.Listeners = append(gw.Spec.Listeners, gwv1.Listener{Name: "http", Port: 1234, Protocol: gwv1.HTTPProtocolType})
	})
	got := GatewayStatus(gw, StatusInputs{AttachedRoutes: map[gwv1.SectionName]int32{"mesh": 2}}, Options{})
	if c := short(conditionByType(got.Conditions, "Accepted")); c.Status != "True" {
		t.Errorf("Gateway Accepted = %+v, want True: Istio keeps the Gateway accepted", c)
	}
	if len(got.Listeners) != 2 {
		t.Fatalf("%d listener statuses, want 2", len(got.Listeners))
	}
	mesh, http := got.Listeners[0], got.Listeners[1]
	if mesh.AttachedRoutes != 2 || http.AttachedRoutes != 0 {
		t.Errorf("attachedRoutes mesh %d, http %d; want 2 and 0", mesh.AttachedRoutes, http.AttachedRoutes)
	}
	want := shortCondition{"False", "UnsupportedProtocol", `Expected a single listener on port 15008 with protocol "HBONE"`}
	if diff := cmp.Diff(want, short(conditionByType(http.Conditions, "Accepted"))); diff != "" {
		t.Errorf("listener http Accepted (-want +got):\n%s", diff)
	}
	if c := short(conditionByType(mesh.Conditions, "Accepted")); c.Status != "True" {
		t.Errorf("listener mesh Accepted = %+v, want True", c)
	}
	group := gwv1.Group(gwv1.GroupName)
	wantKinds := []gwv1.RouteGroupKind{{Group: &group, Kind: "HTTPRoute"}, {Group: &group, Kind: "GRPCRoute"}}
	if diff := cmp.Diff(wantKinds, http.SupportedKinds); diff != "" {
		t.Errorf("listener http supportedKinds (-want +got):\n%s", diff)
	}
}

func TestSupportedKinds(t *testing.T) {
	group := gwv1.Group(gwv1.GroupName)
	terminate := gwv1.TLSModeTerminate
	for _, tc := range []struct {
		name      string
		l         gwv1.Listener
		want      []string
		wantValid bool
	}{
		{"HBONE", gwv1.Listener{Protocol: "HBONE"}, nil, true},
		{"HTTP", gwv1.Listener{Protocol: gwv1.HTTPProtocolType}, []string{"HTTPRoute", "GRPCRoute"}, true},
		{"TLS terminate", gwv1.Listener{Protocol: gwv1.TLSProtocolType, TLS: &gwv1.ListenerTLSConfig{Mode: &terminate}}, []string{"TLSRoute", "TCPRoute"}, true},
		{"HTTP narrowed", gwv1.Listener{Protocol: gwv1.HTTPProtocolType, AllowedRoutes: &gwv1.AllowedRoutes{Kinds: []gwv1.RouteGroupKind{{Kind: "GRPCRoute"}}}}, []string{"GRPCRoute"}, true},
		{"HBONE with kinds", gwv1.Listener{Protocol: "HBONE", AllowedRoutes: &gwv1.AllowedRoutes{Kinds: []gwv1.RouteGroupKind{{Group: &group, Kind: "HTTPRoute"}}}}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kinds, valid := supportedKinds(tc.l)
			var got []string
			for _, k := range kinds {
				got = append(got, string(k.Kind))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" || valid != tc.wantValid {
				t.Errorf("kinds (-want +got):\n%s\nvalid %v, want %v", diff, valid, tc.wantValid)
			}
			if kinds == nil {
				t.Error("supportedKinds is nil; it must be an empty list, which the Gateway CRD requires")
			}
		})
	}
}

func TestGatewayStatusRenderError(t *testing.T) {
	gw := waypoint(nil)
	got := GatewayStatus(gw, StatusInputs{RenderError: errors.New("Gateway default/waypoint: spec.infrastructure.parametersRef names ConfigMap default/p, which does not exist")}, Options{})
	want := shortCondition{"False", "InvalidParameters", "Gateway default/waypoint: spec.infrastructure.parametersRef names ConfigMap default/p, which does not exist"}
	if diff := cmp.Diff(want, short(conditionByType(got.Conditions, "Accepted"))); diff != "" {
		t.Errorf("Accepted (-want +got):\n%s", diff)
	}
}

func TestHumanReadableJoin(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "a", "a b": "a and b", "a b c": "a, b, and c"} {
		var ss []string
		for _, r := range in {
			if r != ' ' {
				ss = append(ss, string(r))
			}
		}
		if got := humanReadableJoin(ss); got != want {
			t.Errorf("humanReadableJoin(%q) = %q, want %q", ss, got, want)
		}
	}
}
