package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// eventTimeout is how long a test waits for an event that must come. Backends
// that poll deliver within seconds; the wait only bounds a failing test.
const eventTimeout = 10 * time.Second

// Watcher is an open watch for tests.
type Watcher struct {
	Events <-chan store.Event
	cancel context.CancelFunc
}

// StartWatch opens a watch that is closed (and drained until its channel
// closes, so no goroutine outlives the test) when the test ends.
func StartWatch(t testing.TB, s store.Store, kind *manifest.Kind, opts store.ListOptions) *Watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Watch(ctx, kind, opts)
	if err != nil {
		cancel()
		t.Fatalf("Watch %v: %v", kind, err)
	}
	w := &Watcher{Events: ch, cancel: cancel}
	t.Cleanup(func() {
		cancel()
		deadline := time.After(eventTimeout)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-deadline:
				t.Errorf("watch channel not closed %v after its context was cancelled", eventTimeout)
				return
			}
		}
	})
	return w
}

// Next returns the next event, failing the test if none comes in time.
func (w *Watcher) Next(t testing.TB) store.Event {
	t.Helper()
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				t.Fatal("watch channel closed while an event was expected")
			}
			if ev.Object != nil && ignored(ev.Kind, ev.Object) {
				continue
			}
			return ev
		case <-time.After(eventTimeout):
			t.Fatalf("no watch event within %v", eventTimeout)
		}
		return store.Event{}
	}
}

// Expect reads the next event and checks its type and object ("ns/name" or
// "name"; empty for Synced).
func (w *Watcher) Expect(t testing.TB, typ store.EventType, object string) store.Event {
	t.Helper()
	ev := w.Next(t)
	if got := describeEvent(ev); got != string(typ)+" "+object {
		t.Fatalf("watch event %s, want %s %s", got, typ, object)
	}
	return ev
}

// ExpectInitial reads the Added events up to Synced and checks them in any
// order: a watch of several kinds lists them side by side.
func (w *Watcher) ExpectInitial(t testing.TB, objects ...string) {
	t.Helper()
	var got []string
	for {
		ev := w.Next(t)
		if ev.Type == store.Synced {
			if ev.Object != nil {
				t.Errorf("Synced event carries an object")
			}
			break
		}
		got = append(got, describeEvent(ev))
	}
	var want []string
	for _, o := range objects {
		want = append(want, string(store.Added)+" "+o)
	}
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("initial watch events (-want +got):\n%s", diff)
	}
}

// ExpectQuiet checks that no event comes for a while.
func (w *Watcher) ExpectQuiet(t testing.TB, wait time.Duration) {
	t.Helper()
	select {
	case ev := <-w.Events:
		t.Fatalf("unexpected watch event %s", describeEvent(ev))
	case <-time.After(wait):
	}
}

func describeEvent(ev store.Event) string {
	if ev.Object == nil {
		return string(ev.Type) + " "
	}
	return string(ev.Type) + " " + names([]manifest.Object{ev.Object})[0]
}

func testWatchInitialThenChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	MustCreate(t, s, Service("other", "a", nil))
	MustCreate(t, s, Service("default", "a", nil))
	w := StartWatch(t, s, manifest.Service, store.ListOptions{})
	w.ExpectInitial(t, "default/a", "other/a")

	MustCreate(t, s, Service("default", "b", nil))
	ev := w.Expect(t, store.Added, "default/b")
	if ev.Kind != manifest.Service {
		t.Errorf("event kind %v, want Service", ev.Kind)
	}
	a := MustGet(t, s, manifest.Service, "default", "a").(*corev1.Service)
	a.Spec.Ports[0].Port = 8080
	updated, err := s.Update(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	ev = w.Expect(t, store.Modified, "default/a")
	if rv := ev.Object.GetResourceVersion(); rv != updated.GetResourceVersion() {
		t.Errorf("Modified event resourceVersion %s, want Update's %s", rv, updated.GetResourceVersion())
	}
	if port := ev.Object.(*corev1.Service).Spec.Ports[0].Port; port != 8080 {
		t.Errorf("Modified event carries port %d, want 8080", port)
	}
	b := MustGet(t, s, manifest.Service, "default", "b").(*corev1.Service)
	b.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Test", LastTransitionTime: metav1.Now()}}
	if _, err := s.UpdateStatus(ctx, b); err != nil {
		t.Fatal(err)
	}
	w.Expect(t, store.Modified, "default/b")
	if err := s.Delete(ctx, manifest.Service, "default", "b", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ev = w.Expect(t, store.Deleted, "default/b")
	if conds := ev.Object.(*corev1.Service).Status.Conditions; len(conds) != 1 {
		t.Errorf("Deleted event does not carry the object as it last was: status conditions %v", conds)
	}
	if err := s.Delete(ctx, manifest.Namespace, "", "other", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.Expect(t, store.Deleted, "other/a")
}

func testWatchFiltered(t *testing.T, s store.Store) {
	ctx := t.Context()
	MustCreate(t, s, Service("other", "x", nil))
	MustCreate(t, s, Service("default", "a", nil))
	w := StartWatch(t, s, manifest.Service, store.ListOptions{Namespace: "default"})
	w.ExpectInitial(t, "default/a")
	// Changes outside the filter come first; had they leaked, they would arrive
	// before the events expected below.
	MustCreate(t, s, Service("other", "y", nil))
	MustCreate(t, s, Gateway("default", "waypoint"))
	if err := s.Delete(ctx, manifest.Service, "other", "x", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	MustCreate(t, s, Service("default", "b", nil))
	w.Expect(t, store.Added, "default/b")
	b := MustGet(t, s, manifest.Service, "default", "b")
	b.SetLabels(map[string]string{"v": "2"})
	if _, err := s.Update(ctx, b); err != nil {
		t.Fatal(err)
	}
	w.Expect(t, store.Modified, "default/b")
}

func testWatchAllKindsInNamespace(t *testing.T, s store.Store) {
	MustCreate(t, s, Service("other", "web", nil))
	MustCreate(t, s, Service("default", "web", nil))
	w := StartWatch(t, s, nil, store.ListOptions{Namespace: "other"})
	// Namespaces are cluster-scoped, so a namespace filter does not hide them.
	w.ExpectInitial(t, "default", "other", "other/web")
	MustCreate(t, s, Gateway("other", "waypoint"))
	ev := w.Expect(t, store.Added, "other/waypoint")
	if ev.Kind != manifest.Gateway {
		t.Errorf("event kind %v, want Gateway", ev.Kind)
	}
}

func testWatchLabelSelector(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := StartWatch(t, s, manifest.Service, store.ListOptions{Labels: labels.SelectorFromSet(labels.Set{"app": "web"})})
	w.ExpectInitial(t)
	svc := MustCreate(t, s, Service("default", "svc", map[string]string{"app": "web"}))
	w.Expect(t, store.Added, "default/svc")
	svc.SetLabels(map[string]string{"app": "db"})
	svc, err := s.Update(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	w.Expect(t, store.Deleted, "default/svc") // no longer selected
	svc.SetLabels(map[string]string{"app": "web"})
	if _, err := s.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	w.Expect(t, store.Added, "default/svc") // selected again
}

func testWatchClosesOnCancel(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := s.Watch(ctx, manifest.Service, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Leave the initial events unread: a reader that stops reading must not
	// keep the watch alive.
	MustCreate(t, s, Service("default", "web", nil))
	cancel()
	deadline := time.After(eventTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel still open %v after cancel", eventTimeout)
		}
	}
}

// testWatchEventObjectsNeverChange: an event's object may be the store's
// own (store.Event), so the store must never modify it afterwards — writes
// of spec, status and labels, and a delete, each make a new object.
func testWatchEventObjectsNeverChange(t *testing.T, s store.Store) {
	ctx := t.Context()
	MustCreate(t, s, Service("default", "web", map[string]string{"app": "web"}))
	w := StartWatch(t, s, manifest.Service, store.ListOptions{})
	first := w.Expect(t, store.Added, "default/web").Object
	w.Expect(t, store.Synced, "")
	before := first.DeepCopyObject()

	svc := MustGet(t, s, manifest.Service, "default", "web").(*corev1.Service)
	svc.Labels["app"] = "v2"
	svc.Spec.Ports[0].Port = 8080
	if _, err := s.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	modified := w.Expect(t, store.Modified, "default/web").Object
	afterUpdate := modified.DeepCopyObject()
	svc = MustGet(t, s, manifest.Service, "default", "web").(*corev1.Service)
	svc.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Test", LastTransitionTime: metav1.Now()}}
	if _, err := s.UpdateStatus(ctx, svc); err != nil {
		t.Fatal(err)
	}
	w.Expect(t, store.Modified, "default/web")
	if err := s.Delete(ctx, manifest.Service, "default", "web", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.Expect(t, store.Deleted, "default/web")
	if diff := cmp.Diff(before, first); diff != "" {
		t.Errorf("the initial event's object changed after later writes (-then +now):\n%s", diff)
	}
	if diff := cmp.Diff(afterUpdate, modified); diff != "" {
		t.Errorf("the Modified event's object changed after later writes (-then +now):\n%s", diff)
	}
}
