package translate

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestUpdateEqualsTranslate proves Update against Translate on every golden
// input and on inputs that reach across namespaces: from the full
// translation of the input, each object in turn is deleted, added back,
// and relabelled to use each waypoint (and none, and no label), and
// Update's result must equal a full translation of the changed inputs —
// the configurations and the dependencies later Updates rely on.
func TestUpdateEqualsTranslate(t *testing.T) {
	files, _ := filepath.Glob("testdata/waypointconfig/*.in.yaml")
	more, _ := filepath.Glob("testdata/incremental/*.yaml")
	files = append(files, more...)
	if len(files) < 2 {
		t.Fatal("no inputs")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			in := loadConfigInputs(t, file)
			base := Translate(in)
			var all []any
			forEachInput(in, func(obj any) { all = append(all, obj) })
			partial := 0
			for _, obj := range all {
				name := fmt.Sprintf("%T %s", obj, metaName(obj))

				objs := NewObjects(in)
				objs.Delete(obj)
				deleted, _ := base.Update(objs, []Change{{Old: obj}})
				sameAsFull(t, "delete "+name, deleted, objs)
				partial += count(!deleted.Full)

				objs.Set(obj)
				back, _ := deleted.Update(objs, []Change{{New: obj}})
				sameAsFull(t, "add back "+name, back, objs)

				for _, lbls := range relabellings(base) {
					mod := obj.(runtime.Object).DeepCopyObject()
					mod.(metav1.Object).SetLabels(withLabels(obj.(metav1.Object).GetLabels(), lbls))
					objs := NewObjects(in)
					objs.Set(mod)
					got, _ := base.Update(objs, []Change{{Old: obj, New: mod}})
					sameAsFull(t, fmt.Sprintf("relabel %s %v", name, lbls), got, objs)
				}
			}
			if partial == 0 {
				t.Error("no change was translated partially: the test proves nothing")
			}
		})
	}
}

func count(b bool) int {
	if b {
		return 1
	}
	return 0
}

func metaName(obj any) string {
	m := obj.(metav1.Object)
	return m.GetNamespace() + "/" + m.GetName()
}

// relabellings are label sets that bind an object to each waypoint, to
// none, or to nothing (nil values delete the label).
func relabellings(tr *Translation) []map[string]*string {
	str := func(s string) *string { return &s }
	out := []map[string]*string{
		{LabelUseWaypoint: nil, LabelUseWaypointNamespace: nil},
		{LabelUseWaypoint: str(TrafficNone)},
		{"example.com/unrelated": str("x")},
	}
	for _, w := range tr.Waypoints() {
		out = append(out, map[string]*string{LabelUseWaypoint: str(w.Name), LabelUseWaypointNamespace: str(w.Namespace)})
	}
	return out
}

func withLabels(lbls map[string]string, change map[string]*string) map[string]string {
	out := map[string]string{}
	for k, v := range lbls {
		out[k] = v
	}
	for k, v := range change {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = *v
		}
	}
	return out
}

func sameAsFull(t *testing.T, what string, got *Translation, objs *Objects) {
	t.Helper()
	want := Translate(objs.Inputs())
	if diff := cmp.Diff(want.Waypoints(), got.Waypoints()); diff != "" {
		t.Fatalf("%s: Update differs from Translate (-want +got):\n%s", what, diff)
	}
	if diff := cmp.Diff(want.deps, got.deps); diff != "" {
		t.Fatalf("%s: dependencies differ (-want +got):\n%s", what, diff)
	}
}

// TestUpdateAffectsOnlyItsNamespace: a pod's change in a namespace with its
// own waypoint translates that waypoint alone, from that namespace's
// objects.
func TestUpdateAffectsOnlyItsNamespace(t *testing.T) {
	in := loadConfigInputs(t, "testdata/incremental/cross-namespace.yaml")
	base := Translate(in)
	objs := NewObjects(in)
	var pod any
	forEachInput(in, func(obj any) {
		if metaName(obj) == "apps-d/later-1" {
			pod = obj
		}
	})
	mod := pod.(runtime.Object).DeepCopyObject()
	mod.(metav1.Object).SetLabels(map[string]string{"app": "later", "version": "v2"})
	objs.Set(mod)
	got, changed := base.Update(objs, []Change{{Old: pod, New: mod}})
	if got.Full {
		t.Fatal("translated everything")
	}
	if want := []Ref{{"apps-b", "waypoint"}}; !slices.Equal(changed, want) {
		t.Errorf("translated %v, want %v (the waypoint whose VirtualService routes to apps-d)", changed, want)
	}
	sameAsFull(t, "pod label", got, objs)
}
