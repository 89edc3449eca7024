// Package storetest is the contract every store.Store backend meets — the
// memory and directory backends here, the Kubernetes backend in internal/kube —
// written once as tests so the backends cannot drift apart.
package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/google/go-cmp/cmp"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// Option adjusts the suite to a backend.
type Option func()

// IgnoreObjects hides objects the backend holds without any test making them —
// on Kubernetes, the system namespaces and the "kubernetes" Service — from the
// lists and watch events the suite checks.
func IgnoreObjects(ignore func(kind *manifest.Kind, obj manifest.Object) bool) Option {
	return func() { ignored = ignore }
}

// ignored is the IgnoreObjects filter of the running suite.
var ignored = func(*manifest.Kind, manifest.Object) bool { return false }

// Run runs the contract. newStore returns a new store holding the Namespaces
// "default" and "other" and nothing else but what IgnoreObjects hides; each case
// gets its own.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, opts ...Option) {
	for _, o := range opts {
		o()
	}
	defer func() { ignored = func(*manifest.Kind, manifest.Object) bool { return false } }()
	cases := []struct {
		name string
		test func(t *testing.T, s store.Store)
	}{
		{"CreateGetList", testCreateGetList},
		{"ServicePortsAreDefaulted", testServicePortsAreDefaulted},
		{"ApplyMerges", testApplyMerges},
		{"DefaultNamespaceCannotBeDeleted", testDefaultNamespaceCannotBeDeleted},
		{"ListIsSortedAndFiltered", testListIsSortedAndFiltered},
		{"CreateTwiceIsAlreadyExists", testCreateTwiceIsAlreadyExists},
		{"GetMissingIsNotFound", testGetMissingIsNotFound},
		{"CreateInMissingNamespaceIsNotFound", testCreateInMissingNamespace},
		{"InvalidObjectIsRejected", testInvalidObjectIsRejected},
		{"CustomResourceIsValidated", testCustomResourceIsValidated},
		{"CustomResourceDefaults", testCustomResourceDefaults},
		{"ClusterScopedKindIgnoresNamespace", testClusterScopedKind},
		{"UpdateWithCurrentResourceVersion", testUpdateWithCurrentResourceVersion},
		{"UpdateWithStaleResourceVersionConflicts", testUpdateWithStaleResourceVersion},
		{"UpdateWithoutResourceVersionIsUnconditional", testUpdateUnconditional},
		{"UpdateMissingIsNotFound", testUpdateMissingIsNotFound},
		{"UpdateOfAnotherIncarnationConflicts", testUpdateOfAnotherIncarnation},
		{"GenerationBumpsOnSpecChangeOnly", testGenerationBumpsOnSpecChangeOnly},
		{"ServerSetFieldsArePresentAndPreserved", testServerSetFields},
		{"CreateKeepsStatus", testCreateKeepsStatus},
		{"StatusIsKeptApartFromSpec", testStatusIsKeptApartFromSpec},
		{"NamespaceHasNameLabelAndActivePhase", testNamespaceNameLabel},
		{"DeleteNamespaceDeletesContents", testDeleteNamespaceDeletesContents},
		{"DeleteWithStaleResourceVersionConflicts", testDeleteWithStaleResourceVersion},
		{"ReturnedObjectsAreCopies", testReturnedObjectsAreCopies},
		{"WatchInitialThenChanges", testWatchInitialThenChanges},
		{"WatchFilteredByKindAndNamespace", testWatchFiltered},
		{"WatchAllKindsInNamespace", testWatchAllKindsInNamespace},
		{"WatchLabelSelector", testWatchLabelSelector},
		{"WatchClosesOnCancel", testWatchClosesOnCancel},
		{"WatchEventObjectsNeverChange", testWatchEventObjectsNeverChange},
		{"NoLostUpdate", testNoLostUpdate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.test(t, newStore(t)) })
	}
}

func testCreateGetList(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, obj := range []manifest.Object{Service("default", "web", nil), Gateway("default", "waypoint"), ServiceEntry("other", "api")} {
		kind := manifest.MustKindOf(obj)
		created := MustCreate(t, s, obj)
		got, err := s.Get(ctx, kind, obj.GetNamespace(), obj.GetName())
		if err != nil {
			t.Fatalf("Get %s: %v", kind, err)
		}
		if diff := cmp.Diff(ToMap(t, created), ToMap(t, got)); diff != "" {
			t.Errorf("Get %s differs from what Create returned (-create +get):\n%s", kind, diff)
		}
		// Every field given is stored as given; an API server may add defaults
		// (a Service's clusterIP, sessionAffinity…).
		given := obj.DeepCopyObject().(manifest.Object)
		manifest.ApplyDefaults(given)
		if path, ok := contains(Spec(t, got), Spec(t, given), "spec"); !ok {
			t.Errorf("%s spec not stored as given: %s differs\ngiven  %v\nstored %v", kind, path, Spec(t, given), Spec(t, got))
		}
		list, err := s.List(ctx, kind, store.ListOptions{})
		if err != nil {
			t.Fatalf("List %s: %v", kind, err)
		}
		list = visible(list)
		if len(list) != 1 || list[0].GetName() != obj.GetName() {
			t.Fatalf("List %s = %v, want just %s", kind, names(list), obj.GetName())
		}
		if diff := cmp.Diff(ToMap(t, got), ToMap(t, list[0])); diff != "" {
			t.Errorf("List %s item differs from Get (-get +list):\n%s", kind, diff)
		}
	}
}

func testListIsSortedAndFiltered(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, o := range []struct{ ns, name, app string }{{"other", "c", "web"}, {"default", "b", "db"}, {"other", "a", "db"}, {"default", "a", "web"}} {
		MustCreate(t, s, Service(o.ns, o.name, map[string]string{"app": o.app}))
	}
	for _, c := range []struct {
		opts store.ListOptions
		want []string
	}{
		{store.ListOptions{}, []string{"default/a", "default/b", "other/a", "other/c"}},
		{store.ListOptions{Namespace: "other"}, []string{"other/a", "other/c"}},
		{store.ListOptions{Labels: labels.SelectorFromSet(labels.Set{"app": "web"})}, []string{"default/a", "other/c"}},
		{store.ListOptions{Namespace: "default", Labels: labels.SelectorFromSet(labels.Set{"app": "db"})}, []string{"default/b"}},
		{store.ListOptions{Namespace: "nonexistent"}, nil},
	} {
		list, err := s.List(ctx, manifest.Service, c.opts)
		if err != nil {
			t.Fatalf("List(%+v): %v", c.opts, err)
		}
		if diff := cmp.Diff(c.want, names(list)); diff != "" {
			t.Errorf("List(namespace %q, labels %v) (-want +got):\n%s", c.opts.Namespace, c.opts.Labels, diff)
		}
	}
	namespaces, err := s.List(ctx, manifest.Namespace, store.ListOptions{Namespace: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"default", "other"}, names(namespaces)); diff != "" {
		t.Errorf("List namespaces (a namespace filter does not apply to them) (-want +got):\n%s", diff)
	}
}

func testCreateTwiceIsAlreadyExists(t *testing.T, s store.Store) {
	MustCreate(t, s, Service("default", "web", nil))
	_, err := s.Create(t.Context(), Service("default", "web", nil))
	if !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second Create: got %v, want AlreadyExists", err)
	}
	if want := `services "web" already exists`; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
	// The same name in another namespace is another object.
	MustCreate(t, s, Service("other", "web", nil))
}

func testGetMissingIsNotFound(t *testing.T, s store.Store) {
	for _, c := range []struct {
		kind *manifest.Kind
		want string
	}{
		{manifest.Service, `services "x" not found`},
		{manifest.Gateway, `gateways.gateway.networking.k8s.io "x" not found`},
		{manifest.ServiceEntry, `serviceentries.networking.istio.io "x" not found`},
		{manifest.Namespace, `namespaces "x" not found`},
	} {
		_, err := s.Get(t.Context(), c.kind, "default", "x")
		if !apierrors.IsNotFound(err) {
			t.Fatalf("Get missing %s: got %v, want NotFound", c.kind, err)
		}
		if err.Error() != c.want {
			t.Errorf("Get missing %s: message %q, want kubectl's %q", c.kind, err.Error(), c.want)
		}
	}
	if err := s.Delete(t.Context(), manifest.Service, "default", "x", store.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Delete missing: got %v, want NotFound", err)
	}
}

func testCreateInMissingNamespace(t *testing.T, s store.Store) {
	_, err := s.Create(t.Context(), Service("nope", "web", nil))
	if !apierrors.IsNotFound(err) {
		t.Fatalf("Create in a missing namespace: got %v, want NotFound", err)
	}
	if want := `namespaces "nope" not found`; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
	if _, err := s.Get(t.Context(), manifest.Service, "nope", "web"); !apierrors.IsNotFound(err) {
		t.Errorf("the refused object was stored: Get = %v", err)
	}
}

func testInvalidObjectIsRejected(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.Create(ctx, Service("default", "Bad_Name", nil)); !apierrors.IsInvalid(err) {
		t.Errorf("Create with an invalid name: got %v, want Invalid", err)
	}
	if _, err := s.Create(ctx, Service("default", "web", map[string]string{"bad key!": "x"})); !apierrors.IsInvalid(err) {
		t.Errorf("Create with an invalid label: got %v, want Invalid", err)
	}
	if _, err := s.Create(ctx, Service("", "web", nil)); !apierrors.IsBadRequest(err) {
		t.Errorf("Create of a namespaced object without namespace: got %v, want BadRequest", err)
	}
	if _, err := s.Get(ctx, manifest.Service, "default", "../../etc/passwd"); !apierrors.IsNotFound(err) {
		t.Errorf("Get with a name no object can have: got %v, want NotFound", err)
	}
}

func testClusterScopedKind(t *testing.T, s store.Store) {
	gc := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "istio-waypoint", Namespace: "default"},
		Spec: gwv1.GatewayClassSpec{ControllerName: "istio.io/waypoint-controller"}}
	created := MustCreate(t, s, gc)
	if created.GetNamespace() != "" {
		t.Errorf("cluster-scoped object stored with namespace %q", created.GetNamespace())
	}
	got, err := s.Get(t.Context(), manifest.GatewayClass, "whatever", "istio-waypoint")
	if err != nil {
		t.Fatalf("Get cluster-scoped with a namespace (ignored): %v", err)
	}
	if got.GetName() != "istio-waypoint" {
		t.Errorf("Get returned %s", got.GetName())
	}
}

func testUpdateWithCurrentResourceVersion(t *testing.T, s store.Store) {
	created := MustCreate(t, s, Service("default", "web", nil)).(*corev1.Service)
	created.Spec.Ports[0].Port = 8080
	updated, err := s.Update(t.Context(), created)
	if err != nil {
		t.Fatalf("Update with the current resourceVersion: %v", err)
	}
	if updated.GetResourceVersion() == created.GetResourceVersion() {
		t.Errorf("resourceVersion unchanged by an update (%s)", updated.GetResourceVersion())
	}
	got := MustGet(t, s, manifest.Service, "default", "web").(*corev1.Service)
	if got.Spec.Ports[0].Port != 8080 || got.GetResourceVersion() != updated.GetResourceVersion() {
		t.Errorf("after Update, Get = port %d rv %s; want 8080 rv %s", got.Spec.Ports[0].Port, got.GetResourceVersion(), updated.GetResourceVersion())
	}
}

func testUpdateWithStaleResourceVersion(t *testing.T, s store.Store) {
	created := MustCreate(t, s, Service("default", "web", nil)).(*corev1.Service)
	first := created.DeepCopy()
	first.Labels = map[string]string{"writer": "first"}
	if _, err := s.Update(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	second := created.DeepCopy()
	second.Labels = map[string]string{"writer": "second"}
	_, err := s.Update(t.Context(), second)
	if !apierrors.IsConflict(err) {
		t.Fatalf("Update with a stale resourceVersion: got %v, want Conflict", err)
	}
	want := `Operation cannot be fulfilled on services "web": the object has been modified; please apply your changes to the latest version and try again`
	if err.Error() != want {
		t.Errorf("message %q, want kubectl's %q", err.Error(), want)
	}
	if got := MustGet(t, s, manifest.Service, "default", "web"); got.GetLabels()["writer"] != "first" {
		t.Errorf("the stale update was applied: labels %v", got.GetLabels())
	}
	if _, err := s.UpdateStatus(t.Context(), second); !apierrors.IsConflict(err) {
		t.Errorf("UpdateStatus with a stale resourceVersion: got %v, want Conflict", err)
	}
}

func testUpdateUnconditional(t *testing.T, s store.Store) {
	created := MustCreate(t, s, Service("default", "web", nil)).(*corev1.Service)
	other := created.DeepCopy()
	other.Labels = map[string]string{"writer": "other"}
	if _, err := s.Update(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	mine := created.DeepCopy()
	mine.ResourceVersion = ""
	mine.Labels = map[string]string{"writer": "mine"}
	if _, err := s.Update(t.Context(), mine); err != nil {
		t.Fatalf("Update without resourceVersion: %v", err)
	}
	if got := MustGet(t, s, manifest.Service, "default", "web"); got.GetLabels()["writer"] != "mine" {
		t.Errorf("labels %v, want writer=mine", got.GetLabels())
	}
}

func testUpdateMissingIsNotFound(t *testing.T, s store.Store) {
	if _, err := s.Update(t.Context(), Service("default", "web", nil)); !apierrors.IsNotFound(err) {
		t.Errorf("Update of a missing object: got %v, want NotFound", err)
	}
	if _, err := s.UpdateStatus(t.Context(), Service("default", "web", nil)); !apierrors.IsNotFound(err) {
		t.Errorf("UpdateStatus of a missing object: got %v, want NotFound", err)
	}
}

func testUpdateOfAnotherIncarnation(t *testing.T, s store.Store) {
	old := MustCreate(t, s, Service("default", "web", nil))
	if err := s.Delete(t.Context(), manifest.Service, "default", "web", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	MustCreate(t, s, Service("default", "web", nil))
	old.SetResourceVersion("")
	old.SetLabels(map[string]string{"stale": "true"})
	if _, err := s.Update(t.Context(), old); !apierrors.IsConflict(err) {
		t.Errorf("Update carrying the uid of a deleted object: got %v, want Conflict", err)
	}
}

func testGenerationBumpsOnSpecChangeOnly(t *testing.T, s store.Store) {
	ctx := t.Context()
	gw := MustCreate(t, s, Gateway("default", "waypoint")).(*gwv1.Gateway)
	if gw.Generation != 1 {
		t.Fatalf("generation after Create = %d, want 1", gw.Generation)
	}
	step := func(what string, change func(*gwv1.Gateway), status bool, want int64) {
		t.Helper()
		change(gw)
		var out manifest.Object
		var err error
		if status {
			out, err = s.UpdateStatus(ctx, gw)
		} else {
			out, err = s.Update(ctx, gw)
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		gw = out.(*gwv1.Gateway)
		if gw.Generation != want {
			t.Errorf("after %s: generation %d, want %d", what, gw.Generation, want)
		}
	}
	step("a label change", func(g *gwv1.Gateway) { g.Labels = map[string]string{"a": "b"} }, false, 1)
	step("an annotation change", func(g *gwv1.Gateway) { g.Annotations = map[string]string{"a": "b"} }, false, 1)
	step("a spec change", func(g *gwv1.Gateway) { g.Spec.Listeners[0].Port = 15009 }, false, 2)
	step("a status change", func(g *gwv1.Gateway) { g.Status.Addresses = addresses("10.0.0.1") }, true, 2)
	step("an update that changes nothing", func(*gwv1.Gateway) {}, false, 2)
	step("another spec change", func(g *gwv1.Gateway) { g.Spec.Listeners[0].Port = 15008 }, false, 3)
}

func testServerSetFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	in := Service("default", "web", nil)
	in.UID = "client-chosen"
	in.ResourceVersion = "12345"
	in.Generation = 7
	created := MustCreate(t, s, in)
	if created.GetUID() == "" || created.GetUID() == "client-chosen" {
		t.Errorf("uid %q, want one set by the store", created.GetUID())
	}
	if ts := created.GetCreationTimestamp(); ts.IsZero() {
		t.Error("no creationTimestamp")
	}
	// Services are not among the kinds whose generation the API server keeps.
	if created.GetGeneration() != 0 {
		t.Errorf("generation %d, want 0 (Services have none)", created.GetGeneration())
	}
	if rv := created.GetResourceVersion(); rv == "" || rv == "12345" {
		t.Errorf("resourceVersion %q, want one set by the store", rv)
	}
	// A client that clears or changes server-set fields does not change them.
	upd := created.(*corev1.Service).DeepCopy()
	upd.UID = ""
	upd.CreationTimestamp = metav1.Time{}
	upd.Generation = 0
	upd.Labels = map[string]string{"x": "y"}
	updated, err := s.Update(ctx, upd)
	if err != nil {
		t.Fatal(err)
	}
	createdAt, updatedAt := created.GetCreationTimestamp(), updated.GetCreationTimestamp()
	if updated.GetUID() != created.GetUID() || !updatedAt.Equal(&createdAt) || updated.GetGeneration() != 0 {
		t.Errorf("after Update: uid %q ts %v generation %d; want %q %v 0", updated.GetUID(), updated.GetCreationTimestamp(),
			updated.GetGeneration(), created.GetUID(), created.GetCreationTimestamp())
	}
	got := MustGet(t, s, manifest.Service, "default", "web")
	if diff := cmp.Diff(ToMap(t, updated), ToMap(t, got)); diff != "" {
		t.Errorf("Get differs from what Update returned (-update +get):\n%s", diff)
	}
}

func testCreateKeepsStatus(t *testing.T, s store.Store) {
	gw := Gateway("default", "waypoint")
	gw.Status.Addresses = addresses("10.0.0.9")
	MustCreate(t, s, gw)
	got := MustGet(t, s, manifest.Gateway, "default", "waypoint").(*gwv1.Gateway)
	if diff := cmp.Diff(gw.Status.Addresses, got.Status.Addresses); diff != "" {
		t.Errorf("status given to Create (-given +stored):\n%s", diff)
	}
}

func testStatusIsKeptApartFromSpec(t *testing.T, s store.Store) {
	ctx := t.Context()
	t.Run("Gateway", func(t *testing.T) {
		gw := MustCreate(t, s, Gateway("default", "waypoint")).(*gwv1.Gateway)
		want := gw.DeepCopy()
		gw.Status.Addresses = addresses("10.0.0.1")
		gw.Spec.Listeners[0].Port = 1           // ignored by UpdateStatus
		gw.Labels = map[string]string{"a": "b"} // ignored too
		out, err := s.UpdateStatus(ctx, gw)
		if err != nil {
			t.Fatal(err)
		}
		got := out.(*gwv1.Gateway)
		if diff := cmp.Diff(Spec(t, want), Spec(t, got)); diff != "" || got.Labels != nil {
			t.Errorf("UpdateStatus changed the spec or labels (%v):\n%s", got.Labels, diff)
		}
		if diff := cmp.Diff(addresses("10.0.0.1"), got.Status.Addresses); diff != "" {
			t.Errorf("status not written:\n%s", diff)
		}
		// A spec update from a client that never saw the status keeps it.
		fresh := Gateway("default", "waypoint")
		fresh.Spec.Listeners[0].Port = 15009
		if _, err := s.Update(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		after := MustGet(t, s, manifest.Gateway, "default", "waypoint").(*gwv1.Gateway)
		if diff := cmp.Diff(addresses("10.0.0.1"), after.Status.Addresses); diff != "" {
			t.Errorf("Update clobbered the status:\n%s", diff)
		}
		if after.Spec.Listeners[0].Port != 15009 {
			t.Errorf("spec update lost: port %d", after.Spec.Listeners[0].Port)
		}
	})
	t.Run("ServiceEntry", func(t *testing.T) {
		se := MustCreate(t, s, ServiceEntry("default", "api")).(*istionetworkingv1.ServiceEntry)
		se.Status.Addresses = []*networkingv1alpha3.ServiceEntryAddress{{Value: "240.240.0.1", Host: "api.example.com"}}
		se.Spec.Hosts = []string{"changed.example.com"} // ignored by UpdateStatus
		if _, err := s.UpdateStatus(ctx, se); err != nil {
			t.Fatal(err)
		}
		got := MustGet(t, s, manifest.ServiceEntry, "default", "api").(*istionetworkingv1.ServiceEntry)
		if len(got.Status.Addresses) != 1 || got.Status.Addresses[0].Value != "240.240.0.1" {
			t.Errorf("status addresses %v, want 240.240.0.1", got.Status.Addresses)
		}
		if diff := cmp.Diff(Spec(t, ServiceEntry("default", "api")), Spec(t, got)); diff != "" {
			t.Errorf("UpdateStatus changed the spec:\n%s", diff)
		}
		got.Spec.Ports[0].Number = 8443
		if _, err := s.Update(ctx, got); err != nil {
			t.Fatal(err)
		}
		after := MustGet(t, s, manifest.ServiceEntry, "default", "api").(*istionetworkingv1.ServiceEntry)
		if len(after.Status.Addresses) != 1 || after.Spec.Ports[0].Number != 8443 || after.Generation != 2 {
			t.Errorf("after a spec update: status %v port %d generation %d", after.Status.Addresses, after.Spec.Ports[0].Number, after.Generation)
		}
	})
}

func testNamespaceNameLabel(t *testing.T, s store.Store) {
	ctx := t.Context()
	def := MustGet(t, s, manifest.Namespace, "", "default")
	if def.GetLabels()[store.NamespaceNameLabel] != "default" {
		t.Errorf("namespace default labels %v, want %s=default", def.GetLabels(), store.NamespaceNameLabel)
	}
	ns := MustCreate(t, s, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team", Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}}}).(*corev1.Namespace)
	want := map[string]string{"istio.io/dataplane-mode": "ambient", store.NamespaceNameLabel: "team"}
	if diff := cmp.Diff(want, ns.Labels); diff != "" {
		t.Errorf("created namespace labels (-want +got):\n%s", diff)
	}
	if ns.Status.Phase != corev1.NamespaceActive {
		t.Errorf("phase %q, want Active", ns.Status.Phase)
	}
	ns.Labels = nil
	out, err := s.Update(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{store.NamespaceNameLabel: "team"}, out.GetLabels()); diff != "" {
		t.Errorf("labels after removing all (-want +got):\n%s", diff)
	}
	if out.GetGeneration() != 0 {
		t.Errorf("generation %d after a label change, want 0 (Namespaces have none)", out.GetGeneration())
	}
}

// testDeleteNamespaceDeletesContents: deleting a namespace removes it and
// everything in it — at once on the embedded store, within seconds on
// Kubernetes, where the namespace controller does it.
func testDeleteNamespaceDeletesContents(t *testing.T, s store.Store) {
	ctx := t.Context()
	MustCreate(t, s, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}})
	MustCreate(t, s, Service("doomed", "web", nil))
	MustCreate(t, s, Gateway("doomed", "waypoint"))
	MustCreate(t, s, ServiceEntry("doomed", "api"))
	MustCreate(t, s, Service("default", "web", nil))
	if err := s.Delete(ctx, manifest.Namespace, "", "doomed", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 60*time.Second, func() error {
		for _, kind := range []*manifest.Kind{manifest.Service, manifest.Gateway, manifest.ServiceEntry} {
			list, err := s.List(ctx, kind, store.ListOptions{})
			if err != nil {
				return err
			}
			var want []string
			if kind == manifest.Service {
				want = []string{"default/web"}
			}
			if diff := cmp.Diff(want, names(list)); diff != "" {
				return fmt.Errorf("%s left after deleting namespace doomed (-want +got):\n%s", kind, diff)
			}
		}
		if _, err := s.Get(ctx, manifest.Namespace, "", "doomed"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("get deleted namespace: got %w, want NotFound", err)
		}
		return nil
	})
	// The name can be used again, and starts empty.
	MustCreate(t, s, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}})
	if list, _ := s.List(ctx, manifest.Service, store.ListOptions{Namespace: "doomed"}); len(list) != 0 {
		t.Errorf("recreated namespace holds %v", names(list))
	}
	if err := s.Delete(ctx, manifest.Namespace, "", "doomed", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Eventually retries check until it returns nil, failing the test with its last
// error after timeout.
func Eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testApplyMerges: apply creates an object, and re-applying changes what the
// applier sets while keeping what others set.
func testApplyMerges(t *testing.T, s store.Store) {
	ctx := t.Context()
	opts := store.ApplyOptions{FieldManager: "storetest", Force: true}
	svc := Service("default", "applied", map[string]string{"app": "web"})
	created, err := s.Apply(ctx, svc, opts)
	if err != nil {
		t.Fatalf("Apply (create): %v", err)
	}
	if created.GetUID() == "" || created.GetLabels()["app"] != "web" {
		t.Fatalf("Apply (create) returned %v", ToMap(t, created))
	}
	// Another writer adds a label.
	other := MustGet(t, s, manifest.Service, "default", "applied")
	other.SetLabels(map[string]string{"app": "web", "team": "books"})
	if _, err := s.Update(ctx, other); err != nil {
		t.Fatal(err)
	}
	again := Service("default", "applied", map[string]string{"app": "web2"})
	again.Spec.Ports[0].Port = 8080
	out, err := s.Apply(ctx, again, opts)
	if err != nil {
		t.Fatalf("Apply (update): %v", err)
	}
	got := out.(*corev1.Service)
	if got.Labels["app"] != "web2" || got.Labels["team"] != "books" {
		t.Errorf("labels after re-apply %v, want app=web2 and the other writer's team=books", got.Labels)
	}
	if got.Spec.Ports[0].Port != 8080 || got.UID != created.GetUID() {
		t.Errorf("re-apply: port %d uid %s, want 8080 and the same object", got.Spec.Ports[0].Port, got.UID)
	}
}

func testDeleteWithStaleResourceVersion(t *testing.T, s store.Store) {
	ctx := t.Context()
	created := MustCreate(t, s, Service("default", "web", nil))
	created.SetLabels(map[string]string{"v": "2"})
	updated, err := s.Update(ctx, created)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Delete(ctx, manifest.Service, "default", "web", store.DeleteOptions{ResourceVersion: created.GetResourceVersion()})
	if !apierrors.IsConflict(err) {
		t.Fatalf("Delete with a stale resourceVersion: got %v, want Conflict", err)
	}
	MustGet(t, s, manifest.Service, "default", "web")
	if err := s.Delete(ctx, manifest.Service, "default", "web", store.DeleteOptions{ResourceVersion: updated.GetResourceVersion()}); err != nil {
		t.Fatalf("Delete with the current resourceVersion: %v", err)
	}
	if _, err := s.Get(ctx, manifest.Service, "default", "web"); !apierrors.IsNotFound(err) {
		t.Errorf("Get after Delete: %v, want NotFound", err)
	}
}

func testReturnedObjectsAreCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	in := Service("default", "web", map[string]string{"app": "web"})
	created := MustCreate(t, s, in)
	if in.UID != "" || in.ResourceVersion != "" {
		t.Errorf("Create modified the object passed in: uid %q rv %q", in.UID, in.ResourceVersion)
	}
	in.Labels["app"] = "changed-input"
	created.GetLabels()["app"] = "changed-create"
	got := MustGet(t, s, manifest.Service, "default", "web")
	got.GetLabels()["app"] = "changed-get"
	got.(*corev1.Service).Spec.Ports[0].Port = 1
	list, err := s.List(ctx, manifest.Service, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list[0].GetLabels()["app"] = "changed-list"
	again := MustGet(t, s, manifest.Service, "default", "web").(*corev1.Service)
	if again.Labels["app"] != "web" || again.Spec.Ports[0].Port != 80 {
		t.Errorf("the store shares memory with its callers: labels %v port %d", again.Labels, again.Spec.Ports[0].Port)
	}
	upd := again.DeepCopy()
	upd.Labels["app"] = "v2"
	out, err := s.Update(ctx, upd)
	if err != nil {
		t.Fatal(err)
	}
	out.GetLabels()["app"] = "changed-update"
	if final := MustGet(t, s, manifest.Service, "default", "web"); final.GetLabels()["app"] != "v2" {
		t.Errorf("mutating Update's result changed the store: %v", final.GetLabels())
	}
}

// testServicePortsAreDefaulted: as on an API server, a Service port without a
// targetPort targets its own port number, over TCP, on a ClusterIP Service.
func testServicePortsAreDefaulted(t *testing.T, s store.Store) {
	svc := Service("default", "defaults", nil)
	svc.Spec.Type = ""
	for i := range svc.Spec.Ports {
		svc.Spec.Ports[i].TargetPort = intstr.IntOrString{}
		svc.Spec.Ports[i].Protocol = ""
	}
	got := MustCreate(t, s, svc).(*corev1.Service)
	if got.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("type = %q, want ClusterIP", got.Spec.Type)
	}
	for _, p := range got.Spec.Ports {
		if p.TargetPort.IntValue() != int(p.Port) || p.Protocol != corev1.ProtocolTCP {
			t.Errorf("port %d: targetPort %s protocol %q, want %d/TCP", p.Port, p.TargetPort.String(), p.Protocol, p.Port)
		}
	}
}

// contains reports whether got holds every field of want with the same value
// (maps: a subset; lists: the same length, element by element), and else the
// path of the first difference.
func contains(got, want any, path string) (string, bool) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path, false
		}
		for k, wv := range w {
			if p, ok := contains(g[k], wv, path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return path, false
		}
		for i := range w {
			if p, ok := contains(g[i], w[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
		return "", true
	default:
		if !cmp.Equal(got, want) {
			return path, false
		}
		return "", true
	}
}

// testDefaultNamespaceCannotBeDeleted: as on Kubernetes, "default" stays.
func testDefaultNamespaceCannotBeDeleted(t *testing.T, s store.Store) {
	err := s.Delete(t.Context(), manifest.Namespace, "", "default", store.DeleteOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "this namespace may not be deleted") {
		t.Fatalf("Delete namespace default: got %v, want Forbidden: this namespace may not be deleted", err)
	}
	MustGet(t, s, manifest.Namespace, "", "default")
}
