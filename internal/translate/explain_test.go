package translate

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenFixture is a small mesh with one of most outcomes: a namespace
// service waypoint, a per-service waypoint, a per-pod waypoint, a pod using
// a service-only waypoint, a waypoint's own pod, a ServiceEntry (outside
// ambient) with a cross-namespace waypoint and a bound inline endpoint, and
// a WorkloadEntry naming a missing waypoint.
func goldenFixture() (*Binder, map[string]func(*Binder) Explanation) {
	reviews := service("default", "reviews",
		kv(LabelUseWaypoint, "reviews-svc-waypoint", LabelIngressUseWaypoint, "false"), kv("app", "reviews"))
	productpage := pod("default", "productpage-v1", kv("app", "productpage", LabelUseWaypoint, "waypoint"))
	waypointPod := pod("default", "waypoint-7f9c", kv(LabelGatewayName, "waypoint"))
	vm := workloadEntry("egress", "vm-1", kv(LabelUseWaypoint, "missing-wp"))
	vm.Spec.Labels = map[string]string{"app": "legacy"}
	site := serviceEntry("egress", "legacy-site", kv(LabelUseWaypoint, "egress-gateway", LabelUseWaypointNamespace, "common-infrastructure"), ".")
	site.Spec.WorkloadSelector = &networkingv1alpha3.WorkloadSelector{Labels: map[string]string{"app": "legacy"}}
	site.Spec.Endpoints = []*networkingv1alpha3.WorkloadEntry{
		{Address: "10.1.1.1", Labels: map[string]string{"app": "inline", LabelUseWaypoint: "egress-local"}},
		{Address: "10.1.1.2"},
	}
	b := NewBinder(BindingInputs{
		Namespaces: []*corev1.Namespace{
			ambientNamespace("default", LabelUseWaypoint, "waypoint"),
			namespace("egress", nil),
			ambientNamespace("common-infrastructure"),
		},
		Gateways: []*gwv1.Gateway{
			waypointGateway("default", "waypoint", waypointFor(TrafficService)),
			waypointGateway("default", "reviews-svc-waypoint", waypointFor(TrafficService)),
			waypointGateway("default", "reviews-v2-pod-waypoint", waypointFor(TrafficWorkload)),
			waypointGateway("common-infrastructure", "egress-gateway", fromNamespaces(gwv1.NamespacesFromAll, nil)),
			waypointGateway("egress", "egress-local", waypointFor(TrafficAll)),
		},
		Services: []*corev1.Service{reviews},
		Pods: []*corev1.Pod{
			pod("default", "reviews-v2", kv("app", "reviews", LabelUseWaypoint, "reviews-v2-pod-waypoint")),
			pod("default", "reviews-v1", kv("app", "reviews")),
			productpage,
			waypointPod,
		},
		ServiceEntries:  []*networkingv1.ServiceEntry{site},
		WorkloadEntries: []*networkingv1.WorkloadEntry{vm},
	})
	return b, map[string]func(*Binder) Explanation{
		"service-reviews":          func(b *Binder) Explanation { return b.ExplainService(reviews) },
		"pod-productpage":          func(b *Binder) Explanation { return b.ExplainPod(productpage) },
		"pod-waypoint-instance":    func(b *Binder) Explanation { return b.ExplainPod(waypointPod) },
		"serviceentry-legacy-site": func(b *Binder) Explanation { return b.ExplainServiceEntry(site) },
		"workloadentry-vm":         func(b *Binder) Explanation { return b.ExplainWorkloadEntry(vm) },
	}
}

// TestExplainGolden pins the JSON contract of Explanation. Regenerate with
// go test ./internal/translate -run TestExplainGolden -update.
func TestExplainGolden(t *testing.T) {
	b, targets := goldenFixture()
	for name, explain := range targets {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(explain(b), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "explain", name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
			}
		})
	}
}

// TestExplainReasons pins the reason sentence of each binding outcome.
func TestExplainReasons(t *testing.T) {
	tests := []struct {
		name     string
		nsLabels []string
		kind     string // service, pod, serviceentry
		labels   []string
		want     string
	}{
		{"service bound by own label", nil, "service", []string{LabelUseWaypoint, "reviews-svc-waypoint"},
			"Service default/x has istio.io/use-waypoint=reviews-svc-waypoint; waypoint default/reviews-svc-waypoint serves service traffic (istio.io/waypoint-for=service)"},
		{"pod skips namespace service waypoint", []string{LabelUseWaypoint, "waypoint"}, "pod", nil,
			"namespace default has istio.io/use-waypoint=waypoint; waypoint default/waypoint serves only service traffic (istio.io/waypoint-for=service), so traffic addressed to the workload bypasses it"},
		{"no label", nil, "service", nil, "no istio.io/use-waypoint label on Service default/x or namespace default"},
		{"pod opts out", []string{LabelUseWaypoint, "waypoint"}, "pod", []string{LabelUseWaypoint, "none"},
			"Pod default/x opts out with istio.io/use-waypoint=none"},
		{"pod is a waypoint instance", nil, "pod", []string{LabelGatewayName, "waypoint"},
			"Pod default/x is an instance of waypoint default/waypoint; a waypoint's own pods are never bound"},
		{"waypoint's own service", []string{LabelUseWaypoint, "waypoint"}, "service", []string{LabelManaged, ManagedByMeshController},
			"Service default/x is a gateway's own Service (gateway.istio.io/managed=istio.io-mesh-controller); it never gets a waypoint"},
		{"missing waypoint", nil, "pod", []string{LabelUseWaypoint, "gone"},
			"Pod default/x has istio.io/use-waypoint=gone; waypoint default/gone does not exist, so traffic is not redirected (there is no fallback to the namespace label)"},
		{"not ready waypoint from namespace", []string{LabelUseWaypoint, "pending"}, "service", nil,
			"namespace default has istio.io/use-waypoint=pending; waypoint default/pending exists but is not ready (no status.addresses yet), so traffic is not redirected"},
		{"attachment denied", nil, "service", []string{LabelUseWaypoint, "private", LabelUseWaypointNamespace, "infra"},
			"Service default/x has istio.io/use-waypoint=private and istio.io/use-waypoint-namespace=infra; waypoint infra/private does not allow attachment from namespace default (allowedRoutes.namespaces.from=Same), so traffic is not redirected"},
		{"service on workload waypoint", nil, "service", []string{LabelUseWaypoint, "pod-wp"},
			"Service default/x has istio.io/use-waypoint=pod-wp; waypoint default/pod-wp serves only workload traffic (istio.io/waypoint-for=workload), so traffic addressed to the service bypasses it"},
		{"pod on workload waypoint", nil, "pod", []string{LabelUseWaypoint, "pod-wp"},
			"Pod default/x has istio.io/use-waypoint=pod-wp; waypoint default/pod-wp serves workload traffic (istio.io/waypoint-for=workload)"},
		{"unknown traffic type", nil, "pod", []string{LabelUseWaypoint, "odd"},
			`Pod default/x has istio.io/use-waypoint=odd; waypoint default/odd serves no traffic ("everything" is not a known traffic type) (istio.io/waypoint-for=everything), so traffic addressed to the workload bypasses it`},
		{"default traffic type", nil, "service", []string{LabelUseWaypoint, "plain"},
			"Service default/x has istio.io/use-waypoint=plain; waypoint default/plain serves service traffic (no istio.io/waypoint-for label, so the default service)"},
		{"cross-namespace forbidden", nil, "serviceentry", []string{LabelUseWaypoint, "shared", LabelUseWaypointNamespace, "infra"},
			`ServiceEntry default/x has istio.io/use-waypoint=shared and istio.io/use-waypoint-namespace=infra; waypoint infra/shared is in another namespace, but ServiceEntry default/x is only visible in its own namespace (exportTo "."), so traffic is not redirected`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := reasonFixture(tt.nsLabels)
			var got string
			switch tt.kind {
			case "service":
				got = b.ExplainService(service("default", "x", kv(tt.labels...), nil)).Service.Reason
			case "serviceentry":
				got = b.ExplainServiceEntry(serviceEntry("default", "x", kv(tt.labels...), ".")).Service.Reason
			default:
				got = b.ExplainPod(pod("default", "x", kv(tt.labels...))).Workloads[0].Reason
			}
			if got != tt.want {
				t.Errorf("reason:\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func reasonFixture(nsLabels []string) *Binder {
	return NewBinder(BindingInputs{
		Namespaces: []*corev1.Namespace{ambientNamespace("default", nsLabels...), ambientNamespace("infra")},
		Gateways: []*gwv1.Gateway{
			waypointGateway("default", "waypoint", waypointFor(TrafficService)),
			waypointGateway("default", "reviews-svc-waypoint", waypointFor(TrafficService)),
			waypointGateway("default", "pod-wp", waypointFor(TrafficWorkload)),
			waypointGateway("default", "odd", waypointFor("everything")),
			waypointGateway("default", "plain"),
			waypointGateway("default", "pending", notReady),
			waypointGateway("infra", "private", waypointFor(TrafficAll)),
			waypointGateway("infra", "shared", waypointFor(TrafficAll), fromNamespaces(gwv1.NamespacesFromAll, nil)),
		},
	})
}

// TestExplainWarnings checks each trap produces its warning, and that clean
// configurations produce none.
func TestExplainWarnings(t *testing.T) {
	tests := []struct {
		name     string
		nsLabels []string // nil: ambient namespace without use-waypoint
		nsPlain  bool     // namespace not in ambient mode
		kind     string   // service, pod, workloadentry, serviceentry
		labels   []string
		want     []string // substrings, one per expected warning, in order
	}{
		{name: "clean bound service", kind: "service", labels: []string{LabelUseWaypoint, "svc-wp"}},
		{name: "clean namespace service waypoint seen from a pod", nsLabels: []string{LabelUseWaypoint, "svc-wp"}, kind: "pod"},
		{name: "pod label on service-only waypoint", kind: "pod", labels: []string{LabelUseWaypoint, "svc-wp"},
			want: []string{"Pod default/x has istio.io/use-waypoint=svc-wp, but waypoint default/svc-wp serves only service traffic (istio.io/waypoint-for=service), so traffic addressed to Pod default/x bypasses the waypoint; label the waypoint istio.io/waypoint-for=workload (or all)"}},
		{name: "workload entry label on service-only waypoint", kind: "workloadentry", labels: []string{LabelUseWaypoint, "svc-wp"},
			want: []string{"WorkloadEntry default/x has istio.io/use-waypoint=svc-wp, but waypoint default/svc-wp serves only service traffic"}},
		{name: "use-waypoint-namespace without use-waypoint on object", kind: "service", labels: []string{LabelUseWaypointNamespace, "infra"},
			want: []string{"Service default/x has istio.io/use-waypoint-namespace=infra but no istio.io/use-waypoint, so the label is ignored"}},
		{name: "use-waypoint-namespace without use-waypoint on namespace", nsLabels: []string{LabelUseWaypointNamespace, "infra"}, kind: "pod",
			want: []string{"namespace default has istio.io/use-waypoint-namespace=infra but no istio.io/use-waypoint, so the label is ignored"}},
		{name: "waypoint does not exist", kind: "pod", labels: []string{LabelUseWaypoint, "gone"},
			want: []string{"waypoint Gateway default/gone does not exist; traffic to Pod default/x is NOT redirected and there is no fallback to the namespace label. Create the waypoint or fix the label."}},
		{name: "waypoint not ready", kind: "service", labels: []string{LabelUseWaypoint, "pending"},
			want: []string{"waypoint Gateway default/pending is not ready (it has no status.addresses); traffic to Service default/x is NOT redirected and there is no fallback to the namespace label."}},
		{name: "namespace not in ambient mode", nsPlain: true, kind: "service", labels: []string{LabelUseWaypoint, "svc-wp"},
			want: []string{"namespace default is not in ambient mode (istio.io/dataplane-mode is not ambient), so ztunnel does not capture traffic for Service default/x and waypoint default/svc-wp is never reached; label the namespace istio.io/dataplane-mode=ambient."}},
		{name: "pod enrolled by its own label is captured", nsPlain: true, kind: "pod", labels: []string{LabelUseWaypoint, "all-wp", LabelDataplaneMode, DataplaneModeAmbient}},
		{name: "pod opted out of the mesh", kind: "pod", labels: []string{LabelUseWaypoint, "all-wp", LabelDataplaneMode, DataplaneModeNone},
			want: []string{"Pod default/x has istio.io/dataplane-mode=none and is out of the mesh, so ztunnel does not capture this traffic and waypoint default/all-wp is never reached"}},
		{name: "object label overrides namespace waypoint", nsLabels: []string{LabelUseWaypoint, "all-wp"}, kind: "service", labels: []string{LabelUseWaypoint, "svc-wp"},
			want: []string{"namespace default has istio.io/use-waypoint=all-wp, but Service default/x overrides it with istio.io/use-waypoint=svc-wp"}},
		{name: "object label naming the namespace waypoint is not an override", nsLabels: []string{LabelUseWaypoint, "all-wp"}, kind: "service", labels: []string{LabelUseWaypoint, "all-wp"}},
		{name: "service on waypoint without service traffic", kind: "service", labels: []string{LabelUseWaypoint, "wl-wp"},
			want: []string{"Service default/x has istio.io/use-waypoint=wl-wp, but waypoint default/wl-wp serves only workload traffic (istio.io/waypoint-for=workload), so traffic addressed to Service default/x bypasses the waypoint; label the waypoint istio.io/waypoint-for=service (or all)."}},
		{name: "ingress label present but not true", kind: "service", labels: []string{LabelUseWaypoint, "svc-wp", LabelIngressUseWaypoint, "yes"},
			want: []string{`Service default/x has istio.io/ingress-use-waypoint="yes", which is not true, so ingress gateways send traffic for Service default/x straight to its endpoints`}},
		{name: "ingress label on namespace present but not true", nsLabels: []string{LabelIngressUseWaypoint, "false"}, kind: "service", labels: []string{LabelUseWaypoint, "svc-wp"},
			want: []string{`namespace default has istio.io/ingress-use-waypoint="false", which is not true`}},
		{name: "attachment denied", kind: "pod", labels: []string{LabelUseWaypoint, "private", LabelUseWaypointNamespace, "infra"},
			want: []string{"waypoint infra/private does not allow attachment from namespace default (allowedRoutes.namespaces.from=Same); traffic to Pod default/x is NOT redirected"}},
		{name: "cross-namespace waypoint for namespace-visible service entry", kind: "serviceentry", labels: []string{LabelUseWaypoint, "shared", LabelUseWaypointNamespace, "infra"},
			want: []string{`waypoint infra/shared is in another namespace and ServiceEntry default/x is only visible in its own namespace (exportTo "."); traffic to ServiceEntry default/x is NOT redirected`}},
		{name: "several traps at once", nsLabels: []string{LabelUseWaypoint, "all-wp"}, kind: "pod",
			labels: []string{LabelUseWaypoint, "gone", LabelUseWaypointNamespace, "default"},
			want:   []string{"waypoint Gateway default/gone does not exist", "namespace default has istio.io/use-waypoint=all-wp, but Pod default/x overrides it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := ambientNamespace("default", tt.nsLabels...)
			if tt.nsPlain {
				ns = namespace("default", kv(tt.nsLabels...))
			}
			b := NewBinder(BindingInputs{
				Namespaces: []*corev1.Namespace{ns, ambientNamespace("infra")},
				Gateways: []*gwv1.Gateway{
					waypointGateway("default", "svc-wp", waypointFor(TrafficService)),
					waypointGateway("default", "wl-wp", waypointFor(TrafficWorkload)),
					waypointGateway("default", "all-wp", waypointFor(TrafficAll)),
					waypointGateway("default", "pending", notReady),
					waypointGateway("infra", "private", waypointFor(TrafficAll)),
					waypointGateway("infra", "shared", waypointFor(TrafficAll), fromNamespaces(gwv1.NamespacesFromAll, nil)),
				},
			})
			var e Explanation
			switch tt.kind {
			case "service":
				e = b.ExplainService(service("default", "x", kv(tt.labels...), nil))
			case "serviceentry":
				e = b.ExplainServiceEntry(serviceEntry("default", "x", kv(tt.labels...), "."))
			case "workloadentry":
				e = b.ExplainWorkloadEntry(workloadEntry("default", "x", kv(tt.labels...)))
			default:
				e = b.ExplainPod(pod("default", "x", kv(tt.labels...)))
			}
			if len(e.Warnings) != len(tt.want) {
				t.Fatalf("got %d warnings, want %d:\n%s", len(e.Warnings), len(tt.want), strings.Join(e.Warnings, "\n"))
			}
			for i, w := range tt.want {
				if !strings.Contains(e.Warnings[i], w) {
					t.Errorf("warning %d:\n got: %s\nwant substring: %s", i, e.Warnings[i], w)
				}
				if !strings.HasSuffix(e.Warnings[i], ".") {
					t.Errorf("warning %d is not a complete sentence: %s", i, e.Warnings[i])
				}
			}
		})
	}
}

// TestExplainServiceWorkloadWarnings: a Service explanation includes its
// selected workloads' warnings once each, after its own.
func TestExplainServiceWorkloadWarnings(t *testing.T) {
	svc := service("default", "reviews", kv(LabelUseWaypoint, "wl-wp"), kv("app", "reviews"))
	b := NewBinder(BindingInputs{
		Namespaces: []*corev1.Namespace{ambientNamespace("default")},
		Gateways: []*gwv1.Gateway{
			waypointGateway("default", "wl-wp", waypointFor(TrafficWorkload)),
			waypointGateway("default", "svc-wp", waypointFor(TrafficService)),
		},
		Pods: []*corev1.Pod{
			pod("default", "reviews-v1", kv("app", "reviews", LabelUseWaypoint, "svc-wp")),
			pod("default", "reviews-v2", kv("app", "reviews", LabelUseWaypoint, "svc-wp", LabelUseWaypointNamespace, "default")),
			pod("default", "other", kv("app", "other", LabelUseWaypoint, "svc-wp")),
		},
	})
	e := b.ExplainService(svc)
	var names []string
	for _, w := range e.Workloads {
		names = append(names, w.Name)
	}
	if diff := cmp.Diff([]string{"Pod/default/reviews-v1", "Pod/default/reviews-v2"}, names); diff != "" {
		t.Errorf("selected workloads (-want +got):\n%s", diff)
	}
	wantPrefixes := []string{
		"Service default/reviews has istio.io/use-waypoint=wl-wp, but waypoint default/wl-wp serves only workload traffic",
		"Pod default/reviews-v1 has istio.io/use-waypoint=svc-wp, but waypoint default/svc-wp serves only service traffic",
		"Pod default/reviews-v2 has istio.io/use-waypoint=svc-wp and istio.io/use-waypoint-namespace=default, but waypoint default/svc-wp serves only service traffic",
	}
	if len(e.Warnings) != len(wantPrefixes) {
		t.Fatalf("got %d warnings, want %d:\n%s", len(e.Warnings), len(wantPrefixes), strings.Join(e.Warnings, "\n"))
	}
	for i, p := range wantPrefixes {
		if !strings.HasPrefix(e.Warnings[i], p) {
			t.Errorf("warning %d:\n got: %s\nwant prefix: %s", i, e.Warnings[i], p)
		}
	}
}

// TestExplainDeduplicatesWarnings: the namespace-level trap shared by a
// Service and its pods is reported once.
func TestExplainDeduplicatesWarnings(t *testing.T) {
	b := NewBinder(BindingInputs{
		Namespaces: []*corev1.Namespace{ambientNamespace("default", LabelUseWaypointNamespace, "infra")},
		Pods:       []*corev1.Pod{pod("default", "a", kv("app", "x")), pod("default", "b", kv("app", "x"))},
	})
	e := b.ExplainService(service("default", "x", nil, kv("app", "x")))
	if len(e.Warnings) != 1 {
		t.Errorf("got %d warnings, want the namespace warning once:\n%s", len(e.Warnings), strings.Join(e.Warnings, "\n"))
	}
}

// TestExplainGroupsNamespaceWarnings: a namespace label that sends traffic
// nowhere yields one warning naming every object it fails for, not one per pod.
func TestExplainGroupsNamespaceWarnings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		gateway []*gwv1.Gateway
		want    string
	}{
		{"not ready", []*gwv1.Gateway{waypointGateway("default", "waypoint", waypointFor(TrafficAll), notReady)}, "is not ready"},
		{"missing", nil, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBinder(BindingInputs{
				Namespaces: []*corev1.Namespace{ambientNamespace("default", LabelUseWaypoint, "waypoint")},
				Gateways:   tc.gateway,
				Pods:       []*corev1.Pod{pod("default", "a", kv("app", "x")), pod("default", "b", kv("app", "x"))},
			})
			e := b.ExplainService(service("default", "x", nil, kv("app", "x")))
			if len(e.Warnings) != 1 {
				t.Fatalf("got %d warnings, want one:\n%s", len(e.Warnings), strings.Join(e.Warnings, "\n"))
			}
			w := e.Warnings[0]
			for _, part := range []string{tc.want, "traffic to Service default/x, Pod default/a and Pod default/b is NOT redirected"} {
				if !strings.Contains(w, part) {
					t.Errorf("warning lacks %q:\n%s", part, w)
				}
			}
			if strings.Contains(w, subjectsPlaceholder) {
				t.Errorf("placeholder left in %q", w)
			}
		})
	}
}
