package controlplane

import (
	"fmt"
	"testing"
	"time"

	istiometav1alpha1 "istio.io/api/meta/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/deploy"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/translate"
)

var statusWriterCases = []backendCase{
	{"StatusWriterGuide", testStatusWriterGuide},
	{"StatusWriterKeepsOtherControllersParents", testStatusWriterKeepsOtherParents},
	{"StatusWriterSkipsConflicts", testStatusWriterSkipsConflicts},
}

func syncStatus(t *testing.T, w *StatusWriter, st store.Store) {
	t.Helper()
	if err := w.Sync(t.Context(), listAll(t, st)); err != nil {
		t.Fatalf("StatusWriter.Sync: %v", err)
	}
}

// bookinfoService is a Bookinfo service on port 9080.
func bookinfoService(name string, labels map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 9080}},
		},
	}
}

// guideRoute is the guide's reviews HTTPRoute: parentRef Service reviews
// port 9080, 90/10 to reviews-v1 and reviews-v2.
func guideRoute() *gwv1.HTTPRoute {
	port := gwv1.PortNumber(9080)
	backend := func(name string, weight int32) gwv1.HTTPBackendRef {
		return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: &port},
			Weight:                 &weight,
		}}
	}
	return &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "reviews"},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{
				Group: new(gwv1.Group("")), Kind: new(gwv1.Kind("Service")), Name: "reviews", Port: &port,
			}}},
			Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{backend("reviews-v1", 90), backend("reviews-v2", 10)}}},
		},
	}
}

// authorizationPolicy allows GET, bound by targetRefs to one target.
func authorizationPolicy(name, group, kind, target string) *securityv1.AuthorizationPolicy {
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	ap.Spec.TargetRefs = []*typev1beta1.PolicyTargetReference{{Group: group, Kind: kind, Name: target}}
	ap.Spec.Rules = []*securityv1beta1.Rule{{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Methods: []string{"GET"}}}}}}
	return ap
}

// wantIstioCondition is wantCondition for an Istio status.
func wantIstioCondition(t *testing.T, what string, obj manifest.Object, typ, status, reason, msg string) {
	t.Helper()
	var conds []metav1.Condition
	switch o := obj.(type) {
	case *networkingv1.ServiceEntry:
		conds = fromIstio(o.Status.Conditions)
	case *networkingv1.WorkloadEntry:
		conds = fromIstio(o.Status.Conditions)
	case *securityv1.AuthorizationPolicy:
		conds = fromIstio(o.Status.Conditions)
	}
	wantCondition(t, what, conds, typ, metav1.ConditionStatus(status), reason, msg)
}

// fromIstio converts Istio conditions for wantCondition.
func fromIstio(conds []*istiometav1alpha1.IstioCondition) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range conds {
		out = append(out, metav1.Condition{Type: c.Type, Status: metav1.ConditionStatus(c.Status), Reason: c.Reason, Message: c.Message,
			ObservedGeneration: c.ObservedGeneration, LastTransitionTime: metav1.NewTime(c.GetLastTransitionTime().AsTime())})
	}
	return out
}

// testStatusWriterGuide walks the guide: a waypoint deployed and ready, the
// reviews service labelled to use it, its route and policies; then the
// label is removed.
func testStatusWriterGuide(t *testing.T, st store.Store) {
	d := NewDeployer(st, deploy.Options{}, testLogf(t))
	w := NewStatusWriter(st, testLogf(t))
	create(t, st, guideWaypoint("waypoint"))
	syncDeployer(t, d, st)
	readyPod(t, st, "waypoint-5d8f9c7b6-x2x9z", get[*appsv1.Deployment](t, st, manifest.Deployment, "default", "waypoint"))
	syncDeployer(t, d, st) // the waypoint is now Programmed, with addresses

	create(t, st, bookinfoService("reviews", map[string]string{translate.LabelUseWaypoint: "waypoint"}))
	create(t, st, bookinfoService("reviews-v1", nil))
	create(t, st, bookinfoService("reviews-v2", nil))
	create(t, st, bookinfoService("ratings", map[string]string{translate.LabelUseWaypoint: "missing"}))
	create(t, st, bookinfoService("productpage", nil))
	create(t, st, guideRoute())
	create(t, st, authorizationPolicy("view-only", gwv1.GroupName, "Gateway", "waypoint"))
	create(t, st, authorizationPolicy("reviews-get-only", "", "Service", "reviews"))
	create(t, st, authorizationPolicy("productpage-get-only", "", "Service", "productpage"))
	se := &networkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "istio-site",
		Labels: map[string]string{translate.LabelUseWaypoint: "waypoint"}}}
	se.Spec.Hosts = []string{"istio.io"}
	se.Spec.Ports = []*networkingv1alpha3.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}}
	se.Spec.Resolution = networkingv1alpha3.ServiceEntry_DNS
	create(t, st, se)
	we := &networkingv1.WorkloadEntry{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "vm-reviews",
		Labels: map[string]string{translate.LabelUseWaypoint: "waypoint"}}}
	we.Spec.Address = "10.9.0.1"
	create(t, st, we)
	reviewsBefore := get[*corev1.Service](t, st, manifest.Service, "default", "reviews")

	syncStatus(t, w, st)
	reviews := get[*corev1.Service](t, st, manifest.Service, "default", "reviews")
	wantCondition(t, "Service reviews", reviews.Status.Conditions, translate.ConditionWaypointBound, metav1.ConditionTrue,
		"WaypointAccepted", "Successfully attached to waypoint default/waypoint")
	if !sameJSON(reviews.Spec, reviewsBefore.Spec) || !sameJSON(reviews.Labels, reviewsBefore.Labels) {
		t.Errorf("writing status changed the Service's spec or labels")
	}
	ratings := get[*corev1.Service](t, st, manifest.Service, "default", "ratings")
	wantCondition(t, "Service ratings", ratings.Status.Conditions, translate.ConditionWaypointBound, metav1.ConditionFalse,
		"WaypointIsNotReady", `waypoint "default/missing" is not ready`)
	for _, name := range []string{"productpage", "waypoint"} {
		svc := get[*corev1.Service](t, st, manifest.Service, "default", name)
		if c := findCondition(svc.Status.Conditions, translate.ConditionWaypointBound); c != nil {
			t.Errorf("Service %s has %+v; it has no waypoint to report", name, c)
		}
	}
	route := get[*gwv1.HTTPRoute](t, st, manifest.HTTPRoute, "default", "reviews")
	if len(route.Status.Parents) != 1 {
		t.Fatalf("HTTPRoute reviews parents %+v, want one", route.Status.Parents)
	}
	wantCondition(t, "HTTPRoute reviews", route.Status.Parents[0].Conditions, "Accepted", metav1.ConditionTrue, "Accepted", "Route was valid")
	wantCondition(t, "HTTPRoute reviews", route.Status.Parents[0].Conditions, "ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", "All references resolved")
	wantCondition(t, "HTTPRoute reviews", route.Status.Parents[0].Conditions, "ResolvedWaypoints", metav1.ConditionTrue, "ResolvedWaypoints", "All waypoints resolved")
	wantIstioCondition(t, "AuthorizationPolicy view-only", get[*securityv1.AuthorizationPolicy](t, st, manifest.AuthorizationPolicy, "default", "view-only"),
		"WaypointAccepted", "True", "Accepted", "bound to default/waypoint")
	wantIstioCondition(t, "AuthorizationPolicy reviews-get-only", get[*securityv1.AuthorizationPolicy](t, st, manifest.AuthorizationPolicy, "default", "reviews-get-only"),
		"WaypointAccepted", "True", "Accepted", "bound to default/waypoint")
	wantIstioCondition(t, "AuthorizationPolicy productpage-get-only", get[*securityv1.AuthorizationPolicy](t, st, manifest.AuthorizationPolicy, "default", "productpage-get-only"),
		"WaypointAccepted", "False", "AncestorNotBound", "Service default/productpage is not bound to a waypoint")
	wantIstioCondition(t, "ServiceEntry istio-site", get[*networkingv1.ServiceEntry](t, st, manifest.ServiceEntry, "default", "istio-site"),
		translate.ConditionWaypointBound, "True", "WaypointAccepted", "Successfully attached to waypoint default/waypoint")
	wantIstioCondition(t, "WorkloadEntry vm-reviews", get[*networkingv1.WorkloadEntry](t, st, manifest.WorkloadEntry, "default", "vm-reviews"),
		translate.ConditionWaypointBound, "False", "UnsupportedTrafficType", `traffic type "workload"`)

	before := resourceVersions(t, st)
	syncStatus(t, w, st)
	syncDeployer(t, d, st)
	if after := resourceVersions(t, st); !mapsEqual(before, after) {
		t.Errorf("a Sync with nothing changed wrote: %s", diffVersions(before, after))
	}

	// A later clock: conditions whose status stays keep their time.
	w.now = func() time.Time { return time.Now().Add(time.Hour) }
	delete(reviews.Labels, translate.LabelUseWaypoint)
	if _, err := st.Update(t.Context(), reviews); err != nil {
		t.Fatal(err)
	}
	syncStatus(t, w, st)
	reviews = get[*corev1.Service](t, st, manifest.Service, "default", "reviews")
	if c := findCondition(reviews.Status.Conditions, translate.ConditionWaypointBound); c != nil {
		t.Errorf("Service reviews without its label still has %+v", c)
	}
	route = get[*gwv1.HTTPRoute](t, st, manifest.HTTPRoute, "default", "reviews")
	wantCondition(t, "HTTPRoute reviews", route.Status.Parents[0].Conditions, "ResolvedWaypoints", metav1.ConditionFalse, "MissingUseWaypointLabel",
		"istio.io/use-waypoint label missing from parent and parent namespace")
	c := wantCondition(t, "HTTPRoute reviews", route.Status.Parents[0].Conditions, "Accepted", metav1.ConditionTrue, "Accepted", "Route was valid")
	if c != nil && !c.LastTransitionTime.Time.Before(time.Now().Add(30*time.Minute)) {
		t.Errorf("Accepted lastTransitionTime moved to %v though its status stayed True", c.LastTransitionTime)
	}
	wantIstioCondition(t, "AuthorizationPolicy reviews-get-only", get[*securityv1.AuthorizationPolicy](t, st, manifest.AuthorizationPolicy, "default", "reviews-get-only"),
		"WaypointAccepted", "False", "AncestorNotBound", "Service default/reviews is not bound to a waypoint")
}

// testStatusWriterKeepsOtherParents: a route parented on an ingress Gateway
// and a Service keeps the ingress controller's parent status.
func testStatusWriterKeepsOtherParents(t *testing.T, st store.Store) {
	create(t, st, bookinfoService("reviews", nil))
	create(t, st, bookinfoService("reviews-v1", nil))
	create(t, st, bookinfoService("reviews-v2", nil))
	r := guideRoute()
	r.Spec.ParentRefs = append(r.Spec.ParentRefs, gwv1.ParentReference{Name: "ingress"})
	r = create(t, st, r).(*gwv1.HTTPRoute)
	other := gwv1.RouteParentStatus{
		ParentRef:      gwv1.ParentReference{Group: new(gwv1.Group(gwv1.GroupName)), Kind: new(gwv1.Kind("Gateway")), Name: "ingress"},
		ControllerName: "example.com/ingress-controller",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", Message: "fine",
			LastTransitionTime: metav1.NewTime(time.Unix(1700000000, 0))}},
	}
	r.Status.Parents = []gwv1.RouteParentStatus{other}
	if _, err := st.UpdateStatus(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	syncStatus(t, NewStatusWriter(st, testLogf(t)), st)
	got := get[*gwv1.HTTPRoute](t, st, manifest.HTTPRoute, "default", "reviews")
	var controllers []string
	for _, p := range got.Status.Parents {
		controllers = append(controllers, fmt.Sprintf("%s %s", p.ControllerName, p.ParentRef.Name))
	}
	want := []string{"example.com/ingress-controller ingress", "istio.io/gateway-controller reviews"}
	if fmt.Sprint(controllers) != fmt.Sprint(want) {
		t.Errorf("parents %q, want %q", controllers, want)
	}
	wantCondition(t, "HTTPRoute reviews", got.Status.Parents[1].Conditions, "ResolvedWaypoints", metav1.ConditionFalse, "MissingUseWaypointLabel", "label missing")
}

// testStatusWriterSkipsConflicts: a Sync given an object older than the
// stored one skips its status write (no error); the next Sync writes it.
func testStatusWriterSkipsConflicts(t *testing.T, st store.Store) {
	create(t, st, bookinfoService("ratings", map[string]string{translate.LabelUseWaypoint: "missing"}))
	stale := listAll(t, st)
	svc := get[*corev1.Service](t, st, manifest.Service, "default", "ratings")
	svc.Labels["team"] = "ratings"
	if _, err := st.Update(t.Context(), svc); err != nil {
		t.Fatal(err)
	}
	w := NewStatusWriter(st, testLogf(t))
	if err := w.Sync(t.Context(), stale); err != nil {
		t.Fatalf("Sync with a stale object: %v, want the write skipped", err)
	}
	if got := get[*corev1.Service](t, st, manifest.Service, "default", "ratings"); len(got.Status.Conditions) != 0 {
		t.Errorf("status written from a stale object: %+v", got.Status.Conditions)
	}
	syncStatus(t, w, st)
	got := get[*corev1.Service](t, st, manifest.Service, "default", "ratings")
	wantCondition(t, "Service ratings", got.Status.Conditions, translate.ConditionWaypointBound, metav1.ConditionFalse, "WaypointIsNotReady", "not ready")
	if got.Labels["team"] != "ratings" {
		t.Errorf("the status write lost the label written meanwhile")
	}
}

// TestMergeRouteParentsPartiallyInvalid: PartiallyInvalid, which the
// Gateway API sets only while True, goes when the route's rules are valid
// again; the other conditions keep their time.
func TestMergeRouteParentsPartiallyInvalid(t *testing.T) {
	t0, t1 := time.Unix(1700000000, 0), time.Unix(1700003600, 0)
	kind := gwv1.Kind("Service")
	parent := gwv1.ParentReference{Kind: &kind, Name: "ratings"}
	accepted := metav1.Condition{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", Message: "Route was valid"}
	partly := metav1.Condition{Type: "PartiallyInvalid", Status: metav1.ConditionTrue, Reason: "UnsupportedValue", Message: "Dropped Rule(s): rules[1]: ..."}
	status := func(conds ...metav1.Condition) []gwv1.RouteParentStatus {
		return []gwv1.RouteParentStatus{{ParentRef: parent, ControllerName: translate.RouteControllerName, Conditions: conds}}
	}
	got := mergeRouteParents(nil, status(accepted, partly), "default", t0)
	if c := findCondition(got[0].Conditions, "PartiallyInvalid"); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("a rule dropped: conditions %+v, want PartiallyInvalid True", got[0].Conditions)
	}
	got = mergeRouteParents(got, status(accepted), "default", t1)
	if c := findCondition(got[0].Conditions, "PartiallyInvalid"); c != nil {
		t.Errorf("every rule valid again: PartiallyInvalid stays, %+v", c)
	}
	if c := findCondition(got[0].Conditions, "Accepted"); c == nil || !c.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("Accepted %+v; want it kept from %v", c, t0)
	}
}

// TestMergeConditions: lastTransitionTime moves only when the status does;
// conditions of other types stay where they are.
func TestMergeConditions(t *testing.T) {
	t0, t1 := time.Unix(1700000000, 0), time.Unix(1700003600, 0)
	cond := func(typ string, status metav1.ConditionStatus, reason string, at time.Time) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason, LastTransitionTime: metav1.NewTime(at)}
	}
	current := []metav1.Condition{cond("Theirs", "True", "X", t0), cond("A", "True", "Old", t0), cond("B", "True", "Y", t0)}
	got := mergeConditions(current, []metav1.Condition{
		cond("A", "True", "New", time.Time{}), // same status, new reason: keeps t0
		cond("B", "False", "Y", time.Time{}),  // status changed: t1
		cond("C", "False", "Z", time.Time{}),  // new: t1, appended
	}, t1)
	want := []metav1.Condition{cond("Theirs", "True", "X", t0), cond("A", "True", "New", t0), cond("B", "False", "Y", t1), cond("C", "False", "Z", t1)}
	if !sameJSON(got, want) {
		t.Errorf("mergeConditions:\n got %+v\nwant %+v", got, want)
	}

	istio := mergeIstioCondition(nil, "WaypointAccepted", &metav1.Condition{Status: "True", Reason: "Accepted"}, t0)
	istio = mergeIstioCondition(istio, "WaypointAccepted", &metav1.Condition{Status: "True", Reason: "Accepted", Message: "bound"}, t1)
	if len(istio) != 1 || !istio[0].GetLastTransitionTime().AsTime().Equal(t0) || istio[0].Message != "bound" {
		t.Errorf("mergeIstioCondition kept %+v, want one condition from t0 with the new message", istio)
	}
	if istio = mergeIstioCondition(istio, "WaypointAccepted", nil, t1); len(istio) != 0 {
		t.Errorf("mergeIstioCondition(nil) left %+v, want the condition removed", istio)
	}
}
