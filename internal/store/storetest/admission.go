package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// This file holds the contract of what an API server does to a custom
// resource on write: validation against the CRD's schema and CEL rules, and
// its defaults. On Kubernetes the API server does it; the embedded backends
// must do the same, with the same messages.

// HTTPRoute is a route from a Service to two versions of it, 90/10.
func HTTPRoute(namespace, name string) *gwv1.HTTPRoute {
	port := gwv1.PortNumber(9080)
	w90, w10 := int32(90), int32(10)
	group, kind := gwv1.Group(""), gwv1.Kind("Service")
	backend := func(name string, weight *int32) gwv1.HTTPBackendRef {
		return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: &port},
			Weight:                 weight,
		}}
	}
	return &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Group: &group, Kind: &kind, Name: "reviews", Port: &port}}},
			Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{
				backend("reviews-v1", &w90), backend("reviews-v2", &w10),
			}}},
		},
	}
}

// causes lists the fields an Invalid error names, sorted.
func causes(t *testing.T, err error) []string {
	t.Helper()
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil {
		t.Fatalf("got %v, want an Invalid error", err)
	}
	var out []string
	for _, c := range status.Status().Details.Causes {
		out = append(out, c.Field)
	}
	slices.Sort(out)
	return out
}

func testCustomResourceIsValidated(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Out of range, not in the enum, not matching the pattern: every field is named.
	bad := HTTPRoute("default", "reviews")
	neg, big := int32(-5), gwv1.PortNumber(99999)
	bad.Spec.Rules[0].BackendRefs[0].Weight = &neg
	bad.Spec.Rules[0].BackendRefs[1].Port = &big
	pathType, value := gwv1.PathMatchType("Foo"), "/x"
	bad.Spec.Rules[0].Matches = []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &pathType, Value: &value}}}
	abc := gwv1.Duration("abc")
	bad.Spec.Rules[0].Timeouts = &gwv1.HTTPRouteTimeouts{Request: &abc}
	_, err := s.Create(ctx, bad)
	want := []string{
		"<nil>", // "some validation rules were not checked because the object was invalid"
		"spec.rules[0].backendRefs[0].weight",
		"spec.rules[0].backendRefs[1].port",
		"spec.rules[0].matches[0].path.type",
		"spec.rules[0].timeouts.request",
	}
	if diff := cmp.Diff(want, causes(t, err)); diff != "" {
		t.Errorf("Create of an invalid HTTPRoute: fields (-want +got):\n%s\n%v", diff, err)
	}
	for _, msg := range []string{
		`HTTPRoute.gateway.networking.k8s.io "reviews" is invalid`,
		"spec.rules[0].backendRefs[0].weight: Invalid value: -5: spec.rules[0].backendRefs[0].weight in body should be greater than or equal to 0",
		"spec.rules[0].backendRefs[1].port: Invalid value: 99999: spec.rules[0].backendRefs[1].port in body should be less than or equal to 65535",
		`spec.rules[0].matches[0].path.type: Unsupported value: "Foo": supported values: "Exact", "PathPrefix", "RegularExpression"`,
		`spec.rules[0].timeouts.request: Invalid value: "abc": spec.rules[0].timeouts.request in body should match`,
	} {
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("the error does not say %q:\n%v", msg, err)
		}
	}
	if _, err := s.Get(ctx, manifest.HTTPRoute, "default", "reviews"); !apierrors.IsNotFound(err) {
		t.Errorf("after a refused Create, Get: %v, want NotFound", err)
	}

	// A CEL rule of the CRD (x-kubernetes-validations), with its message. (A
	// redirect has no backends: another rule says so.)
	both := HTTPRoute("default", "both")
	both.Spec.Rules[0].BackendRefs = nil
	both.Spec.Rules[0].Filters = []gwv1.HTTPRouteFilter{
		{Type: gwv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gwv1.HTTPRequestRedirectFilter{Hostname: ptr(gwv1.PreciseHostname("example.com"))}},
		{Type: gwv1.HTTPRouteFilterURLRewrite, URLRewrite: &gwv1.HTTPURLRewriteFilter{Hostname: ptr(gwv1.PreciseHostname("example.com"))}},
	}
	_, err = s.Create(ctx, both)
	if diff := cmp.Diff([]string{"spec.rules[0].filters"}, causes(t, err)); diff != "" || !strings.Contains(err.Error(), "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both") {
		t.Errorf("RequestRedirect with URLRewrite: %v", err)
	}

	// An update is validated too, and a refused one changes nothing.
	created := MustCreate(t, s, HTTPRoute("default", "reviews")).(*gwv1.HTTPRoute)
	edit := created.DeepCopy()
	edit.Spec.Rules[0].BackendRefs[0].Weight = &neg
	_, err = s.Update(ctx, edit)
	if diff := cmp.Diff([]string{"spec.rules[0].backendRefs[0].weight"}, causes(t, err)); diff != "" {
		t.Errorf("Update to an invalid weight (-want +got fields):\n%s", diff)
	}
	got := MustGet(t, s, manifest.HTTPRoute, "default", "reviews")
	if got.GetResourceVersion() != created.GetResourceVersion() {
		t.Errorf("a refused Update changed the object: resourceVersion %s, was %s", got.GetResourceVersion(), created.GetResourceVersion())
	}

	// And a status: a condition's reason must match the schema's pattern.
	st := created.DeepCopy()
	st.Status.Parents = []gwv1.RouteParentStatus{{
		ParentRef:      created.Spec.ParentRefs[0],
		ControllerName: "istio.io/gateway-controller",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "not a reason!",
			LastTransitionTime: metav1.Unix(1, 0), Message: "accepted"}},
	}}
	_, err = s.UpdateStatus(ctx, st)
	if diff := cmp.Diff([]string{"status.parents[0].conditions[0].reason"}, causes(t, err)); diff != "" {
		t.Errorf("UpdateStatus with an invalid reason (-want +got fields):\n%s\n%v", diff, err)
	}
}

func testCustomResourceDefaults(t *testing.T, s store.Store) {
	r := HTTPRoute("default", "reviews")
	r.Spec.Rules[0].BackendRefs[1].Weight = nil
	got := MustCreate(t, s, r).(*gwv1.HTTPRoute)
	rule := got.Spec.Rules[0]
	if w := rule.BackendRefs[1].Weight; w == nil || *w != 1 {
		t.Errorf("backendRef weight %v, want the default 1", w)
	}
	if b := rule.BackendRefs[0]; b.Group == nil || *b.Group != "" || b.Kind == nil || *b.Kind != "Service" {
		t.Errorf("backendRef group %v kind %v, want the defaults \"\" and Service", b.Group, b.Kind)
	}
	prefix, slash := gwv1.PathMatchPathPrefix, "/"
	if diff := cmp.Diff([]gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: &slash}}}, rule.Matches); diff != "" {
		t.Errorf("rule matches (-want +got): the default is a PathPrefix / match\n%s", diff)
	}
	// Get returns the same: the defaults are stored.
	if diff := cmp.Diff(Spec(t, got), Spec(t, MustGet(t, s, manifest.HTTPRoute, "default", "reviews"))); diff != "" {
		t.Errorf("Get differs from what Create returned:\n%s", diff)
	}
	gw := MustCreate(t, s, Gateway("default", "waypoint")).(*gwv1.Gateway)
	if ar := gw.Spec.Listeners[0].AllowedRoutes; ar == nil || ar.Namespaces == nil || ar.Namespaces.From == nil || *ar.Namespaces.From != gwv1.NamespacesFromSame {
		t.Errorf("listener allowedRoutes %+v, want the default namespaces.from Same", ar)
	}
}

func ptr[T any](v T) *T { return &v }
