package translate

import (
	"testing"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Tests in this file mirror the conformance checklist of the reference
// (istio-waypoint-internals.md §1.5); each function is named after the Istio
// test it mirrors. Canary, multi-network, application_tunnel output and the
// auto-allow policy are out of scope.

// TestAmbientIndex_WaypointForWorkloadTraffic: label a pod and its service
// with the same waypoint; the waypoint's traffic type decides which binds.
func TestAmbientIndex_WaypointForWorkloadTraffic(t *testing.T) {
	for _, tt := range []struct {
		trafficType          string
		wantService, wantPod bool
	}{
		{TrafficService, true, false},
		{TrafficAll, true, true},
		{TrafficWorkload, false, true},
		{TrafficNone, false, false},
	} {
		t.Run("waypoint-for="+tt.trafficType, func(t *testing.T) {
			svc := service("ns1", "svc1", kv(LabelUseWaypoint, "wp"), kv("app", "a"))
			p := pod("ns1", "pod1", kv("app", "a", LabelUseWaypoint, "wp"))
			b := NewBinder(BindingInputs{
				Namespaces: []*corev1.Namespace{ambientNamespace("ns1")},
				Gateways:   []*gwv1.Gateway{waypointGateway("ns1", "wp", waypointFor(tt.trafficType))},
				Services:   []*corev1.Service{svc},
				Pods:       []*corev1.Pod{p},
			})
			if got := b.ForService(svc).Waypoint != nil; got != tt.wantService {
				t.Errorf("service bound = %v, want %v", got, tt.wantService)
			}
			if got := b.ForPod(p).Waypoint != nil; got != tt.wantPod {
				t.Errorf("pod bound = %v, want %v", got, tt.wantPod)
			}
		})
	}
}

// TestAmbientIndex_ServiceAttachedWaypoints: a service label binds the
// service to the waypoint (Istio checks Service.waypoint.hostname).
func TestAmbientIndex_ServiceAttachedWaypoints(t *testing.T) {
	svc := service("ns1", "svc1", kv(LabelUseWaypoint, "test-wp"), kv("app", "a"))
	b := NewBinder(BindingInputs{
		Namespaces: []*corev1.Namespace{ambientNamespace("ns1")},
		Gateways:   []*gwv1.Gateway{waypointGateway("ns1", "test-wp")},
	})
	checkDecision(t, b.ForService(svc), Decision{
		Waypoint:  ref("ns1", "test-wp"),
		Requested: ref("ns1", "test-wp"),
		Origin:    LabelOriginObject,
		Message:   "Successfully attached to waypoint ns1/test-wp",
		Condition: boundCondition("Successfully attached to waypoint ns1/test-wp"),
	})
	w, _ := b.Waypoint(Ref{"ns1", "test-wp"})
	if w.Address != "test-wp.ns1.svc.cluster.local" {
		t.Errorf("waypoint address = %q, want test-wp.ns1.svc.cluster.local", w.Address)
	}
}

// TestAmbientIndex_WaypointConfiguredOnlyWhenReady: a Gateway without
// status.addresses is ignored; once ready, the labelled pod binds.
func TestAmbientIndex_WaypointConfiguredOnlyWhenReady(t *testing.T) {
	p := pod("ns1", "pod1", kv(LabelUseWaypoint, "wp"))
	inputs := func(gw *gwv1.Gateway) BindingInputs {
		return BindingInputs{
			Namespaces: []*corev1.Namespace{ambientNamespace("ns1")},
			Gateways:   []*gwv1.Gateway{gw},
			Pods:       []*corev1.Pod{p},
		}
	}
	t.Run("not ready", func(t *testing.T) {
		b := NewBinder(inputs(waypointGateway("ns1", "wp", waypointFor(TrafficWorkload), notReady)))
		checkDecision(t, b.ForPod(p), Decision{
			Requested: ref("ns1", "wp"), Origin: LabelOriginObject,
			Reason: ReasonWaypointIsNotReady, Message: `waypoint "ns1/wp" is not ready`,
		})
		if len(b.Waypoints()) != 0 {
			t.Errorf("Waypoints() = %v, want none", b.Waypoints())
		}
	})
	t.Run("becomes ready", func(t *testing.T) {
		b := NewBinder(inputs(waypointGateway("ns1", "wp", waypointFor(TrafficWorkload))))
		checkDecision(t, b.ForPod(p), Decision{
			Waypoint: ref("ns1", "wp"), Requested: ref("ns1", "wp"), Origin: LabelOriginObject,
			Message: "Successfully attached to waypoint ns1/wp",
		})
	})
}

// TestAmbientIndex_WaypointAddressAddedToWorkloads: a namespace label binds
// pods, a pod label overrides it, the waypoint's own pods and Service get
// none, and deleting the Gateway unbinds.
func TestAmbientIndex_WaypointAddressAddedToWorkloads(t *testing.T) {
	app := pod("ns1", "app", nil)
	override := pod("ns1", "override", kv(LabelUseWaypoint, "wp-pod"))
	instance := pod("ns1", "wp-ns-instance", kv(LabelGatewayName, "wp-ns"))
	wpService := service("ns1", "wp-ns", kv(LabelManaged, ManagedByMeshController, LabelGatewayName, "wp-ns"), kv(LabelGatewayName, "wp-ns"))
	inputs := BindingInputs{
		Namespaces: []*corev1.Namespace{ambientNamespace("ns1", LabelUseWaypoint, "wp-ns")},
		Gateways: []*gwv1.Gateway{
			waypointGateway("ns1", "wp-ns", waypointFor(TrafficAll)),
			waypointGateway("ns1", "wp-pod", waypointFor(TrafficWorkload)),
		},
		Pods:     []*corev1.Pod{app, override, instance},
		Services: []*corev1.Service{wpService},
	}
	b := NewBinder(inputs)
	t.Run("namespace label binds pod", func(t *testing.T) {
		checkDecision(t, b.ForPod(app), Decision{
			Waypoint: ref("ns1", "wp-ns"), Requested: ref("ns1", "wp-ns"), Origin: LabelOriginNamespace,
			Message: "Successfully attached to waypoint ns1/wp-ns",
		})
	})
	t.Run("pod label overrides namespace label", func(t *testing.T) {
		checkDecision(t, b.ForPod(override), Decision{
			Waypoint: ref("ns1", "wp-pod"), Requested: ref("ns1", "wp-pod"), Origin: LabelOriginObject,
			Message: "Successfully attached to waypoint ns1/wp-pod",
		})
	})
	t.Run("waypoint pod gets no waypoint", func(t *testing.T) {
		checkDecision(t, b.ForPod(instance), Decision{})
	})
	t.Run("waypoint service gets no waypoint", func(t *testing.T) {
		checkDecision(t, b.ForService(wpService), Decision{})
	})
	t.Run("deleting the Gateway unbinds", func(t *testing.T) {
		deleted := inputs
		deleted.Gateways = deleted.Gateways[1:]
		checkDecision(t, NewBinder(deleted).ForPod(app), Decision{
			Requested: ref("ns1", "wp-ns"), Origin: LabelOriginNamespace,
			Reason: ReasonWaypointIsNotReady, Message: `waypoint "ns1/wp-ns" is not ready`,
		})
	})
}

// TestUpdateWaypointForWorkload replays Istio's label sequence as successive
// binder states; each step states the pod's waypoint afterwards.
func TestUpdateWaypointForWorkload(t *testing.T) {
	gateways := []*gwv1.Gateway{
		waypointGateway("ns1", "waypoint-ns", waypointFor(TrafficAll)),
		waypointGateway("ns1", "waypoint-pod", waypointFor(TrafficAll)),
	}
	steps := []struct {
		name        string
		nsLabels    []string
		podLabels   []string
		wantWaypt   *Ref
		wantReason  string
		wantOrigin  LabelOrigin
		wantOptOut  bool
		wantRequest *Ref
	}{
		{name: "no labels", wantOrigin: LabelOriginNone},
		{name: "namespace label", nsLabels: []string{LabelUseWaypoint, "waypoint-ns"},
			wantWaypt: ref("ns1", "waypoint-ns"), wantOrigin: LabelOriginNamespace, wantRequest: ref("ns1", "waypoint-ns")},
		{name: "pod label overrides namespace", nsLabels: []string{LabelUseWaypoint, "waypoint-ns"}, podLabels: []string{LabelUseWaypoint, "waypoint-pod"},
			wantWaypt: ref("ns1", "waypoint-pod"), wantOrigin: LabelOriginObject, wantRequest: ref("ns1", "waypoint-pod")},
		{name: "remove pod label falls back to namespace", nsLabels: []string{LabelUseWaypoint, "waypoint-ns"},
			wantWaypt: ref("ns1", "waypoint-ns"), wantOrigin: LabelOriginNamespace, wantRequest: ref("ns1", "waypoint-ns")},
		{name: "remove namespace label", wantOrigin: LabelOriginNone},
		{name: "pod label then namespace label keeps pod waypoint", nsLabels: []string{LabelUseWaypoint, "waypoint-ns"}, podLabels: []string{LabelUseWaypoint, "waypoint-pod"},
			wantWaypt: ref("ns1", "waypoint-pod"), wantOrigin: LabelOriginObject, wantRequest: ref("ns1", "waypoint-pod")},
		{name: "none opts out", nsLabels: []string{LabelUseWaypoint, "waypoint-ns"}, podLabels: []string{LabelUseWaypoint, "none"},
			wantOrigin: LabelOriginObject, wantOptOut: true},
		{name: "nonexistent waypoint gives none without fallback", nsLabels: []string{LabelUseWaypoint, "waypoint-ns"}, podLabels: []string{LabelUseWaypoint, "~"},
			wantOrigin: LabelOriginObject, wantRequest: ref("ns1", "~"), wantReason: ReasonWaypointIsNotReady},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			p := pod("ns1", "pod1", kv(s.podLabels...))
			b := NewBinder(BindingInputs{
				Namespaces: []*corev1.Namespace{ambientNamespace("ns1", s.nsLabels...)},
				Gateways:   gateways,
				Pods:       []*corev1.Pod{p},
			})
			d := b.ForPod(p)
			d.Message = "" // messages are covered by the condition tests
			checkDecision(t, d, Decision{Waypoint: s.wantWaypt, Requested: s.wantRequest, Origin: s.wantOrigin, OptedOut: s.wantOptOut, Reason: s.wantReason})
		})
	}
}

// TestServiceServices mirrors amb/services_test.go: cross-namespace
// waypoints gated by allowedRoutes and the ingress-use-waypoint field.
func TestServiceServices(t *testing.T) {
	crossNs := waypointGateway("infra", "wp", fromNamespaces(gwv1.NamespacesFromSelector, kv("kubernetes.io/metadata.name", "ns1")))
	crossLabels := []string{LabelUseWaypoint, "wp", LabelUseWaypointNamespace, "infra"}
	tests := []struct {
		name        string
		nsName      string
		svcLabels   []string
		wantWaypt   *Ref
		wantReason  string
		wantIngress bool
	}{
		{name: "cross-namespace waypoint allowed by Selector", nsName: "ns1", svcLabels: crossLabels, wantWaypt: ref("infra", "wp")},
		{name: "cross-namespace waypoint Selector mismatch", nsName: "ns2", svcLabels: crossLabels, wantReason: ReasonAttachmentDenied},
		{name: "ingress-use-waypoint true sets the field", nsName: "ns1",
			svcLabels: append([]string{LabelIngressUseWaypoint, "true"}, crossLabels...), wantWaypt: ref("infra", "wp"), wantIngress: true},
		{name: "ingress-use-waypoint false leaves it unset", nsName: "ns1",
			svcLabels: append([]string{LabelIngressUseWaypoint, "false"}, crossLabels...), wantWaypt: ref("infra", "wp")},
		{name: "ingress-use-waypoint ignored when not bound", nsName: "ns2",
			svcLabels: append([]string{LabelIngressUseWaypoint, "true"}, crossLabels...), wantReason: ReasonAttachmentDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := service(tt.nsName, "svc", kv(tt.svcLabels...), nil)
			b := NewBinder(BindingInputs{
				Namespaces: []*corev1.Namespace{ambientNamespace("ns1"), ambientNamespace("ns2"), ambientNamespace("infra")},
				Gateways:   []*gwv1.Gateway{crossNs},
			})
			d := b.ForService(svc)
			if diffRef(d.Waypoint, tt.wantWaypt) || d.Reason != tt.wantReason || d.IngressUseWaypoint != tt.wantIngress {
				t.Errorf("ForService = {Waypoint: %v, Reason: %q, Ingress: %v}, want {%v, %q, %v}",
					d.Waypoint, d.Reason, d.IngressUseWaypoint, tt.wantWaypt, tt.wantReason, tt.wantIngress)
			}
		})
	}
}

func diffRef(a, b *Ref) bool {
	if a == nil || b == nil {
		return a != b
	}
	return *a != *b
}

// TestServiceConditions: the WaypointBound condition messages for a bound
// service, with the ingress suffixes.
func TestServiceConditions(t *testing.T) {
	tests := []struct {
		name   string
		labels []string
		want   string
	}{
		{"bound", nil, "Successfully attached to waypoint ns1/wp"},
		{"bound with ingress", []string{LabelIngressUseWaypoint, "true"},
			"Successfully attached to waypoint ns1/wp. Ingress traffic will traverse the waypoint"},
		{"bound with malformed ingress label", []string{LabelIngressUseWaypoint, "yes please"},
			"Successfully attached to waypoint ns1/wp. Ingress traffic is not using the waypoint, set the istio.io/ingress-use-waypoint label to true if desired."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := service("ns1", "svc", kv(append([]string{LabelUseWaypoint, "wp"}, tt.labels...)...), nil)
			b := NewBinder(BindingInputs{
				Namespaces: []*corev1.Namespace{ambientNamespace("ns1")},
				Gateways:   []*gwv1.Gateway{waypointGateway("ns1", "wp")},
			})
			d := b.ForService(svc)
			checkDecision(t, d, Decision{
				Waypoint: ref("ns1", "wp"), Requested: ref("ns1", "wp"), Origin: LabelOriginObject,
				Message: tt.want, Condition: boundCondition(tt.want),
				IngressUseWaypoint: tt.name == "bound with ingress",
			})
		})
	}
}

// TestIngressUseWaypointFromLabels mirrors the Istio rows: the object label
// wins over the namespace label; values parse with strconv.ParseBool.
func TestIngressUseWaypointFromLabels(t *testing.T) {
	tests := []struct {
		name                 string
		obj, ns              map[string]string
		wantPresent, wantEnd bool
	}{
		{"no labels", nil, nil, false, false},
		{"service true", kv(LabelIngressUseWaypoint, "true"), nil, true, true},
		{"service True", kv(LabelIngressUseWaypoint, "True"), nil, true, true},
		{"service empty value", kv(LabelIngressUseWaypoint, ""), nil, true, false},
		{"namespace fallback", nil, kv(LabelIngressUseWaypoint, "true"), true, true},
		{"service false overrides namespace true", kv(LabelIngressUseWaypoint, "false"), kv(LabelIngressUseWaypoint, "true"), true, false},
		{"namespace empty value", nil, kv(LabelIngressUseWaypoint, ""), true, false},
		{"malformed value", kv(LabelIngressUseWaypoint, "yes"), nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			present, enabled := IngressUseWaypoint(tt.obj, tt.ns)
			if present != tt.wantPresent || enabled != tt.wantEnd {
				t.Errorf("IngressUseWaypoint = (%v, %v), want (%v, %v)", present, enabled, tt.wantPresent, tt.wantEnd)
			}
		})
	}
}

// TestServiceEntryServices: NAMESPACE-visible entries refuse cross-namespace
// waypoints; PUBLIC ones keep them; the ingress label applies to entries.
func TestServiceEntryServices(t *testing.T) {
	cross := []string{LabelUseWaypoint, "egress", LabelUseWaypointNamespace, "infra"}
	same := []string{LabelUseWaypoint, "local"}
	crossMsg := `waypoint "infra/egress" is in another namespace, but service entry is only visible in its own namespace (exportTo ".")`
	tests := []struct {
		name           string
		labels         []string
		exportTo       []string
		meshNamespace  bool
		wantWaypt      *Ref
		wantReason     string
		wantIngress    bool
		wantCondReason string
	}{
		{name: "NAMESPACE visibility refuses cross-namespace waypoint", labels: cross, exportTo: []string{"."},
			wantReason: ReasonCrossNamespaceWaypointForbidden},
		{name: "NAMESPACE visibility by own namespace name refuses cross-namespace waypoint", labels: cross, exportTo: []string{"ns1"},
			wantReason: ReasonCrossNamespaceWaypointForbidden},
		{name: "NAMESPACE visibility keeps same-namespace waypoint", labels: same, exportTo: []string{"."}, wantWaypt: ref("ns1", "local")},
		{name: "PUBLIC visibility keeps cross-namespace waypoint", labels: cross, exportTo: []string{"*"}, wantWaypt: ref("infra", "egress")},
		{name: "no exportTo is PUBLIC by mesh default", labels: cross, wantWaypt: ref("infra", "egress")},
		{name: "no exportTo with namespace-visible mesh default refuses cross-namespace waypoint", labels: cross, meshNamespace: true,
			wantReason: ReasonCrossNamespaceWaypointForbidden},
		{name: "ingress label on service entry", labels: append([]string{LabelIngressUseWaypoint, "true"}, same...),
			wantWaypt: ref("ns1", "local"), wantIngress: true},
		{name: "eastwest gateway service entry never gets a waypoint", labels: append([]string{LabelManaged, ManagedByEastWestController}, same...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			se := serviceEntry("ns1", "site", kv(tt.labels...), tt.exportTo...)
			b := NewBinder(BindingInputs{
				Namespaces: []*corev1.Namespace{ambientNamespace("ns1"), ambientNamespace("infra")},
				Gateways: []*gwv1.Gateway{
					waypointGateway("infra", "egress", fromNamespaces(gwv1.NamespacesFromAll, nil)),
					waypointGateway("ns1", "local"),
				},
				ServiceEntries:               []*networkingv1.ServiceEntry{se},
				ServiceEntryNamespaceVisible: tt.meshNamespace,
			})
			d := b.ForServiceEntry(se)
			if diffRef(d.Waypoint, tt.wantWaypt) || d.Reason != tt.wantReason || d.IngressUseWaypoint != tt.wantIngress {
				t.Errorf("ForServiceEntry = {Waypoint: %v, Reason: %q, Ingress: %v}, want {%v, %q, %v}",
					d.Waypoint, d.Reason, d.IngressUseWaypoint, tt.wantWaypt, tt.wantReason, tt.wantIngress)
			}
			if tt.wantReason == ReasonCrossNamespaceWaypointForbidden {
				checkDecision(t, d, Decision{
					Requested: ref("infra", "egress"), Origin: LabelOriginObject,
					Reason: tt.wantReason, Message: crossMsg, Condition: failedCondition(tt.wantReason, crossMsg),
				})
			}
		})
	}
}

// TestPodWorkloads mirrors amb/workloads_test.go: a labelled pod gets its
// waypoint; a pod that is a waypoint instance gets none, and no condition.
func TestPodWorkloads(t *testing.T) {
	b := NewBinder(BindingInputs{
		Namespaces: []*corev1.Namespace{ambientNamespace("ns", LabelUseWaypoint, "wp")},
		Gateways:   []*gwv1.Gateway{waypointGateway("ns", "wp", waypointFor(TrafficWorkload))},
	})
	t.Run("pod with waypoint", func(t *testing.T) {
		checkDecision(t, b.ForPod(pod("ns", "app", kv(LabelUseWaypoint, "wp"))), Decision{
			Waypoint: ref("ns", "wp"), Requested: ref("ns", "wp"), Origin: LabelOriginObject,
			Message: "Successfully attached to waypoint ns/wp",
		})
	})
	t.Run("pod that is a waypoint", func(t *testing.T) {
		checkDecision(t, b.ForPod(pod("ns", "wp-abc", kv(LabelGatewayName, "wp"))), Decision{})
	})
	t.Run("pod labelled for a gateway in another namespace is not an instance", func(t *testing.T) {
		b := NewBinder(BindingInputs{
			Namespaces: []*corev1.Namespace{ambientNamespace("other", LabelUseWaypoint, "local")},
			Gateways: []*gwv1.Gateway{
				waypointGateway("ns", "wp", waypointFor(TrafficWorkload)),
				waypointGateway("other", "local", waypointFor(TrafficWorkload)),
			},
		})
		if d := b.ForPod(pod("other", "x", kv(LabelGatewayName, "wp"))); d.Waypoint == nil || *d.Waypoint != (Ref{"other", "local"}) {
			t.Errorf("ForPod waypoint = %v, want other/local", d.Waypoint)
		}
	})
}

// TestWorkloadEntryConditions mirrors Istio's rows for WorkloadEntry
// WaypointBound conditions.
func TestWorkloadEntryConditions(t *testing.T) {
	tests := []struct {
		name       string
		nsLabels   []string
		weLabels   []string
		wantWaypt  *Ref
		wantCond   bool
		wantStatus string
		wantReason string
		wantMsg    string
	}{
		{name: "bound", weLabels: []string{LabelUseWaypoint, "wp-workload"}, wantWaypt: ref("ns1", "wp-workload"),
			wantCond: true, wantStatus: "True", wantReason: ReasonWaypointAccepted, wantMsg: "Successfully attached to waypoint ns1/wp-workload"},
		{name: "missing waypoint", weLabels: []string{LabelUseWaypoint, "missing"},
			wantCond: true, wantStatus: "False", wantReason: ReasonWaypointIsNotReady, wantMsg: `waypoint "ns1/missing" is not ready`},
		{name: "no label", wantCond: false},
		{name: "namespace-inherited service-only waypoint is silently none", nsLabels: []string{LabelUseWaypoint, "wp-service"}, wantCond: false},
		{name: "direct label on service-only waypoint", weLabels: []string{LabelUseWaypoint, "wp-service"},
			wantCond: true, wantStatus: "False", wantReason: ReasonUnsupportedTrafficType,
			wantMsg: `attempting to bind to traffic type "workload" which the waypoint "ns1/wp-service" does not support`},
		{name: "namespace-inherited all waypoint binds", nsLabels: []string{LabelUseWaypoint, "wp-all"}, wantWaypt: ref("ns1", "wp-all"),
			wantCond: true, wantStatus: "True", wantReason: ReasonWaypointAccepted, wantMsg: "Successfully attached to waypoint ns1/wp-all"},
		{name: "namespace-inherited none-type waypoint is unsupported", nsLabels: []string{LabelUseWaypoint, "wp-none"},
			wantCond: true, wantStatus: "False", wantReason: ReasonUnsupportedTrafficType,
			wantMsg: `attempting to bind to traffic type "workload" which the waypoint "ns1/wp-none" does not support`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			we := workloadEntry("ns1", "vm", kv(tt.weLabels...))
			b := NewBinder(BindingInputs{
				Namespaces: []*corev1.Namespace{ambientNamespace("ns1", tt.nsLabels...)},
				Gateways: []*gwv1.Gateway{
					waypointGateway("ns1", "wp-workload", waypointFor(TrafficWorkload)),
					waypointGateway("ns1", "wp-service", waypointFor(TrafficService)),
					waypointGateway("ns1", "wp-all", waypointFor(TrafficAll)),
					waypointGateway("ns1", "wp-none", waypointFor(TrafficNone)),
				},
				WorkloadEntries: []*networkingv1.WorkloadEntry{we},
			})
			d := b.ForWorkloadEntry(we)
			if diffRef(d.Waypoint, tt.wantWaypt) {
				t.Errorf("waypoint = %v, want %v", d.Waypoint, tt.wantWaypt)
			}
			if !tt.wantCond {
				if d.Condition != nil {
					t.Errorf("condition = %+v, want none", d.Condition)
				}
				return
			}
			if d.Condition == nil {
				t.Fatalf("condition = nil, want %s %s", tt.wantStatus, tt.wantReason)
			}
			c := d.Condition
			if c.Type != ConditionWaypointBound || string(c.Status) != tt.wantStatus || c.Reason != tt.wantReason || c.Message != tt.wantMsg {
				t.Errorf("condition = {%s %s %s %q}, want {%s %s %s %q}", c.Type, c.Status, c.Reason, c.Message,
					ConditionWaypointBound, tt.wantStatus, tt.wantReason, tt.wantMsg)
			}
		})
	}
}
