package translate

import (
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestBindingRules covers the resolution rules of reference §1.2 that the
// Istio-mirroring tests do not isolate.
func TestBindingRules(t *testing.T) {
	gateways := []*gwv1.Gateway{
		waypointGateway("ns1", "svc-wp"),
		waypointGateway("ns1", "wl-wp", waypointFor(TrafficWorkload)),
		waypointGateway("ns1", "odd-wp", waypointFor("everything")),
		waypointGateway("ns1", "pending", notReady),
		waypointGateway("infra", "shared", waypointFor(TrafficAll), fromNamespaces(gwv1.NamespacesFromAll, nil)),
		waypointGateway("infra", "private", waypointFor(TrafficAll)),
	}
	classOverride := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "workload-class", Labels: kv(LabelWaypointFor, TrafficWorkload)}}
	classGateway := waypointGateway("ns1", "class-wp", func(gw *gwv1.Gateway) { gw.Spec.GatewayClassName = "workload-class" })
	classGatewayLabelled := waypointGateway("ns1", "class-wp-svc", waypointFor(TrafficService), func(gw *gwv1.Gateway) { gw.Spec.GatewayClassName = "workload-class" })
	gateways = append(gateways, classGateway, classGatewayLabelled)

	notReadyMsg := func(r string) string { return `waypoint "` + r + `" is not ready` }
	unsupported := func(tt, r string) string {
		return `attempting to bind to traffic type "` + tt + `" which the waypoint "` + r + `" does not support`
	}
	tests := []struct {
		name     string
		nsLabels []string
		kind     string // "service" or "pod"
		labels   []string
		want     Decision
	}{
		{name: "object label naming a missing waypoint does not fall back to namespace label",
			nsLabels: []string{LabelUseWaypoint, "svc-wp"}, kind: "service", labels: []string{LabelUseWaypoint, "missing"},
			want: Decision{Requested: ref("ns1", "missing"), Origin: LabelOriginObject, Reason: ReasonWaypointIsNotReady, Message: notReadyMsg("ns1/missing"),
				Condition: failedCondition(ReasonWaypointIsNotReady, notReadyMsg("ns1/missing"))}},
		{name: "object label naming a not-ready waypoint does not fall back to namespace label",
			nsLabels: []string{LabelUseWaypoint, "svc-wp"}, kind: "service", labels: []string{LabelUseWaypoint, "pending"},
			want: Decision{Requested: ref("ns1", "pending"), Origin: LabelOriginObject, Reason: ReasonWaypointIsNotReady, Message: notReadyMsg("ns1/pending"),
				Condition: failedCondition(ReasonWaypointIsNotReady, notReadyMsg("ns1/pending"))}},
		{name: "object none opts out of namespace waypoint",
			nsLabels: []string{LabelUseWaypoint, "svc-wp"}, kind: "service", labels: []string{LabelUseWaypoint, "none"},
			want: Decision{Origin: LabelOriginObject, OptedOut: true}},
		{name: "namespace none opts out",
			nsLabels: []string{LabelUseWaypoint, "none"}, kind: "service",
			want: Decision{Origin: LabelOriginNamespace, OptedOut: true}},
		{name: "object use-waypoint-namespace alone is ignored",
			nsLabels: []string{LabelUseWaypoint, "svc-wp"}, kind: "service", labels: []string{LabelUseWaypointNamespace, "infra"},
			want: Decision{Waypoint: ref("ns1", "svc-wp"), Requested: ref("ns1", "svc-wp"), Origin: LabelOriginNamespace,
				Message: "Successfully attached to waypoint ns1/svc-wp", Condition: boundCondition("Successfully attached to waypoint ns1/svc-wp")}},
		{name: "namespace use-waypoint-namespace applies with namespace use-waypoint",
			nsLabels: []string{LabelUseWaypoint, "shared", LabelUseWaypointNamespace, "infra"}, kind: "service",
			want: Decision{Waypoint: ref("infra", "shared"), Requested: ref("infra", "shared"), Origin: LabelOriginNamespace,
				Message: "Successfully attached to waypoint infra/shared", Condition: boundCondition("Successfully attached to waypoint infra/shared")}},
		{name: "allowedRoutes Same denies another namespace",
			kind: "pod", labels: []string{LabelUseWaypoint, "private", LabelUseWaypointNamespace, "infra"},
			want: Decision{Requested: ref("infra", "private"), Origin: LabelOriginObject, Reason: ReasonAttachmentDenied,
				Message: `we are not permitted to attach to waypoint "infra/private" (missing allowedRoutes?)`}},
		{name: "service on workload-only waypoint is unsupported",
			kind: "service", labels: []string{LabelUseWaypoint, "wl-wp"},
			want: Decision{Requested: ref("ns1", "wl-wp"), Origin: LabelOriginObject, Reason: ReasonUnsupportedTrafficType,
				Message: unsupported("service", "ns1/wl-wp"), Condition: failedCondition(ReasonUnsupportedTrafficType, unsupported("service", "ns1/wl-wp"))}},
		{name: "namespace workload waypoint reports unsupported on services",
			nsLabels: []string{LabelUseWaypoint, "wl-wp"}, kind: "service",
			want: Decision{Requested: ref("ns1", "wl-wp"), Origin: LabelOriginNamespace, Reason: ReasonUnsupportedTrafficType,
				Message: unsupported("service", "ns1/wl-wp"), Condition: failedCondition(ReasonUnsupportedTrafficType, unsupported("service", "ns1/wl-wp"))}},
		{name: "unknown traffic type behaves like none for services",
			kind: "service", labels: []string{LabelUseWaypoint, "odd-wp"},
			want: Decision{Requested: ref("ns1", "odd-wp"), Origin: LabelOriginObject, Reason: ReasonUnsupportedTrafficType,
				Message: unsupported("service", "ns1/odd-wp"), Condition: failedCondition(ReasonUnsupportedTrafficType, unsupported("service", "ns1/odd-wp"))}},
		{name: "unknown traffic type behaves like none for pods",
			kind: "pod", labels: []string{LabelUseWaypoint, "odd-wp"},
			want: Decision{Requested: ref("ns1", "odd-wp"), Origin: LabelOriginObject, Reason: ReasonUnsupportedTrafficType,
				Message: unsupported("workload", "ns1/odd-wp")}},
		{name: "pod own label on service-only waypoint is unsupported",
			kind: "pod", labels: []string{LabelUseWaypoint, "svc-wp"},
			want: Decision{Requested: ref("ns1", "svc-wp"), Origin: LabelOriginObject, Reason: ReasonUnsupportedTrafficType,
				Message: unsupported("workload", "ns1/svc-wp")}},
		{name: "pod inheriting namespace service-only waypoint is silently none",
			nsLabels: []string{LabelUseWaypoint, "svc-wp"}, kind: "pod",
			want: Decision{Requested: ref("ns1", "svc-wp"), Origin: LabelOriginNamespace}},
		{name: "GatewayClass label overrides the default traffic type",
			kind: "pod", labels: []string{LabelUseWaypoint, "class-wp"},
			want: Decision{Waypoint: ref("ns1", "class-wp"), Requested: ref("ns1", "class-wp"), Origin: LabelOriginObject,
				Message: "Successfully attached to waypoint ns1/class-wp"}},
		{name: "Gateway label overrides the GatewayClass label",
			kind: "pod", labels: []string{LabelUseWaypoint, "class-wp-svc"},
			want: Decision{Requested: ref("ns1", "class-wp-svc"), Origin: LabelOriginObject, Reason: ReasonUnsupportedTrafficType,
				Message: unsupported("workload", "ns1/class-wp-svc")}},
		{name: "waypoint named none cannot be used",
			kind: "service", labels: []string{LabelUseWaypoint, "none", LabelUseWaypointNamespace, "infra"},
			want: Decision{Origin: LabelOriginObject, OptedOut: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBinder(BindingInputs{
				Namespaces:     []*corev1.Namespace{ambientNamespace("ns1", tt.nsLabels...), ambientNamespace("infra")},
				Gateways:       gateways,
				GatewayClasses: []*gwv1.GatewayClass{classOverride},
			})
			var got Decision
			if tt.kind == "service" {
				got = b.ForService(service("ns1", "obj", kv(tt.labels...), nil))
			} else {
				got = b.ForPod(pod("ns1", "obj", kv(tt.labels...)))
			}
			checkDecision(t, got, tt.want)
		})
	}
}

// TestNilInputs: binding tolerates nil objects, nil label maps, unknown
// namespaces and empty inputs without panicking.
func TestNilInputs(t *testing.T) {
	b := NewBinder(BindingInputs{
		Namespaces: []*corev1.Namespace{nil, {ObjectMeta: metav1.ObjectMeta{Name: "bare"}}},
		Gateways:   []*gwv1.Gateway{nil, {ObjectMeta: metav1.ObjectMeta{Namespace: "bare", Name: "gw"}}},
		Pods:       []*corev1.Pod{nil},
	})
	for name, d := range map[string]Decision{
		"nil service":       b.ForService(nil),
		"nil service entry": b.ForServiceEntry(nil),
		"nil pod":           b.ForPod(nil),
		"nil workload":      b.ForWorkloadEntry(nil),
		"bare pod":          b.ForPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "bare", Name: "p"}}),
		"unknown namespace": b.ForService(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "nowhere", Name: "s"}}),
		"bare entry":        b.ForServiceEntry(&networkingv1.ServiceEntry{}),
	} {
		t.Run(name, func(t *testing.T) { checkDecision(t, d, Decision{}) })
	}
	for _, e := range []Explanation{b.ExplainService(nil), b.ExplainPod(nil), b.ExplainServiceEntry(nil), b.ExplainWorkloadEntry(nil),
		b.ExplainService(&corev1.Service{}), b.ExplainServiceEntry(&networkingv1.ServiceEntry{})} {
		if e.Workloads == nil || e.Warnings == nil {
			t.Errorf("Explanation %q has nil Workloads or Warnings", e.Target)
		}
	}
}

// TestBinderConcurrentUse: a Binder is read-only after NewBinder, so
// concurrent callers need no locking (run with -race to check).
func TestBinderConcurrentUse(t *testing.T) {
	p := pod("ns1", "p", kv(LabelUseWaypoint, "wp"))
	svc := service("ns1", "s", kv(LabelUseWaypoint, "wp"), kv("app", "a"))
	b := NewBinder(BindingInputs{
		Namespaces: []*corev1.Namespace{ambientNamespace("ns1")},
		Gateways:   []*gwv1.Gateway{waypointGateway("ns1", "wp", waypointFor(TrafficAll))},
		Pods:       []*corev1.Pod{p},
	})
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 100 {
				b.ForPod(p)
				b.ExplainService(svc)
				b.Waypoints()
			}
		}()
	}
	for range 8 {
		<-done
	}
}
