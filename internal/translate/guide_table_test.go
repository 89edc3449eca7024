package translate

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestGuideLabelTable checks every row of the user guide's table
// "istio.io/waypoint-for value | istio.io/use-waypoint added to | Result"
// (spec/configure-waypoint-proxies.txt, "Waypoint label usage"). The guide's
// single "none | namespace, service, or pod" row is split into three cases.
//
// Fixture: namespace default (ambient), a ready waypoint "waypoint", Service
// reviews selecting Pod reviews-v1, and the unlabelled Service ratings
// selecting Pod ratings-v1. The label goes on the row's target.
func TestGuideLabelTable(t *testing.T) {
	// reach says whether traffic addressed to each destination goes through
	// the waypoint.
	type reach struct{ reviewsSvc, reviewsPod, ratingsSvc, ratingsPod bool }
	tests := []struct {
		waypointFor string
		target      string // namespace, service, pod
		result      string // the guide's Result column
		want        reach
	}{
		{TrafficNone, "namespace", "Traffic is not routed through the waypoint.", reach{}},
		{TrafficNone, "service", "Traffic is not routed through the waypoint.", reach{}},
		{TrafficNone, "pod", "Traffic is not routed through the waypoint.", reach{}},
		{TrafficService, "namespace", "The waypoint is used for all services in the namespace. The waypoint is bypassed if traffic is sent to a workload.",
			reach{reviewsSvc: true, ratingsSvc: true}},
		{TrafficService, "service", "The waypoint is used only for the labeled service. The waypoint is bypassed if traffic is sent to a different, unlabeled service or workload.",
			reach{reviewsSvc: true}},
		{TrafficService, "pod", "The waypoint is not used.", reach{}},
		{TrafficWorkload, "namespace", "The waypoint is used for all workloads in the namespace. The waypoint is bypassed if traffic is sent to a service.",
			reach{reviewsPod: true, ratingsPod: true}},
		{TrafficWorkload, "service", "The waypoint is not used.", reach{}},
		{TrafficWorkload, "pod", "The waypoint is used for the labeled pod. The waypoint is bypassed if traffic is sent to a different, unlabeld workload or service.",
			reach{reviewsPod: true}},
		{TrafficAll, "namespace", "The waypoint is used for all services and workloads in the namespace.",
			reach{reviewsSvc: true, reviewsPod: true, ratingsSvc: true, ratingsPod: true}},
		{TrafficAll, "service", "The waypoint is used for the labeled service only. The waypoint is bypassed if traffic is sent to a different, unlabeled service or workload.",
			reach{reviewsSvc: true}},
		{TrafficAll, "pod", "The waypoint is used for the labeled workload only. The waypoint is bypassed if traffic is sent to a different, unlabeld workload or service.",
			reach{reviewsPod: true}},
	}
	for _, tt := range tests {
		t.Run(tt.waypointFor+"_on_"+tt.target, func(t *testing.T) {
			use := map[string]string{LabelUseWaypoint: "waypoint"}
			nsLabels := map[string]string{LabelDataplaneMode: DataplaneModeAmbient}
			reviews := service("default", "reviews", nil, kv("app", "reviews"))
			reviewsV1 := pod("default", "reviews-v1", kv("app", "reviews"))
			switch tt.target {
			case "namespace":
				nsLabels[LabelUseWaypoint] = "waypoint"
			case "service":
				reviews.Labels = use
			case "pod":
				reviewsV1.Labels[LabelUseWaypoint] = "waypoint"
			}
			ratings := service("default", "ratings", nil, kv("app", "ratings"))
			ratingsV1 := pod("default", "ratings-v1", kv("app", "ratings"))
			b := NewBinder(BindingInputs{
				Namespaces: []*corev1.Namespace{namespace("default", nsLabels)},
				Gateways:   []*gwv1.Gateway{waypointGateway("default", "waypoint", waypointFor(tt.waypointFor))},
				Services:   []*corev1.Service{reviews, ratings},
				Pods:       []*corev1.Pod{reviewsV1, ratingsV1},
			})

			check := func(what string, got *string, want bool) {
				t.Helper()
				switch {
				case want && (got == nil || *got != "default/waypoint"):
					t.Errorf("%s: waypoint = %v, want default/waypoint (guide: %s)", what, deref(got), tt.result)
				case !want && got != nil:
					t.Errorf("%s: waypoint = %s, want bypass (guide: %s)", what, *got, tt.result)
				}
			}
			for _, dest := range []struct {
				svc              *corev1.Service
				pod              *corev1.Pod
				wantSvc, wantPod bool
			}{
				{reviews, reviewsV1, tt.want.reviewsSvc, tt.want.reviewsPod},
				{ratings, ratingsV1, tt.want.ratingsSvc, tt.want.ratingsPod},
			} {
				e := b.ExplainService(dest.svc)
				check("traffic to Service "+dest.svc.Name, e.Service.Waypoint, dest.wantSvc)
				if len(e.Workloads) != 1 || e.Workloads[0].Name != "Pod/default/"+dest.pod.Name {
					t.Fatalf("Service %s workloads = %+v, want exactly Pod/default/%s", dest.svc.Name, e.Workloads, dest.pod.Name)
				}
				check("traffic to Pod "+dest.pod.Name+" (via Service explain)", e.Workloads[0].Waypoint, dest.wantPod)
				check("traffic to Pod "+dest.pod.Name, b.ExplainPod(dest.pod).Workloads[0].Waypoint, dest.wantPod)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
