package translate

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/meshway/meshway/internal/model"
)

// TestZtunnelUpdateEqualsTranslate proves ZtunnelTranslation.Update
// against TranslateZtunnels on every golden input, as
// TestUpdateEqualsTranslate does for the waypoints: from the full
// translation, each object in turn is deleted, added back, relabelled
// (to use each waypoint, none, no label, and with another app and
// version), and, for a pod, a Service or a ServiceEntry, given the address
// of another workload or service (a claim settled across namespaces); the
// result must equal a full translation of the changed inputs, and the
// delta what differs between the two full translations.
func TestZtunnelUpdateEqualsTranslate(t *testing.T) {
	files, _ := filepath.Glob("testdata/*config/*.in.yaml")
	more, _ := filepath.Glob("testdata/incremental/*.yaml")
	files = append(files, more...)
	if len(files) < 2 {
		t.Fatal("no inputs")
	}
	for _, file := range files {
		t.Run(filepath.Base(filepath.Dir(file))+"/"+filepath.Base(file), func(t *testing.T) {
			in := loadConfigInputs(t, file)
			base := Translate(in)
			var all []any
			forEachInput(in, func(obj any) { all = append(all, obj) })
			partial := 0
			check := func(what string, objs *Objects, changes ...Change) {
				t.Helper()
				zt := TranslateZtunnels(in)
				before := zt.Mesh()
				delta := zt.Update(objs, changes)
				partial += count(!zt.Full)
				want := TranslateZtunnels(objs.Inputs())
				if diff := cmp.Diff(want.Mesh(), zt.Mesh()); diff != "" {
					t.Fatalf("%s: Update differs from TranslateZtunnels (-want +got):\n%s", what, diff)
				}
				if m := zt.Mesh(); zt.Pieces() != len(m.Workloads)+len(m.Services)+len(m.Waypoints)+len(m.Policies) {
					t.Fatalf("%s: Pieces() = %d, not Mesh()'s count", what, zt.Pieces())
				}
				if diff := cmp.Diff(meshDelta(before, want.Mesh()), describeDelta(delta)); diff != "" {
					t.Fatalf("%s: the delta is not what changed (-want +got):\n%s", what, diff)
				}
			}
			for _, obj := range all {
				name := fmt.Sprintf("%T %s", obj, metaName(obj))
				objs := NewObjects(in)
				objs.Delete(obj)
				check("delete "+name, objs, Change{Old: obj})

				// Added back, to the translation without it.
				zt := TranslateZtunnels(objs.Inputs())
				objs.Set(obj)
				zt.Update(objs, []Change{{New: obj}})
				if diff := cmp.Diff(TranslateZtunnels(objs.Inputs()).Mesh(), zt.Mesh()); diff != "" {
					t.Fatalf("add back %s: Update differs from TranslateZtunnels (-want +got):\n%s", name, diff)
				}

				lbls := relabellings(base)
				str := func(s string) *string { return &s }
				lbls = append(lbls, map[string]*string{"app": str("other"), "version": str("v9")})
				for _, l := range lbls {
					mod := obj.(runtime.Object).DeepCopyObject()
					mod.(metav1.Object).SetLabels(withLabels(obj.(metav1.Object).GetLabels(), l))
					objs := NewObjects(in)
					objs.Set(mod)
					check(fmt.Sprintf("relabel %s %v", name, l), objs, Change{Old: obj, New: mod})
				}
				for _, addr := range otherAddresses(all, obj) {
					mod, ok := withAddress(obj, addr)
					if !ok {
						break
					}
					objs := NewObjects(in)
					objs.Set(mod)
					check(fmt.Sprintf("%s takes address %s", name, addr), objs, Change{Old: obj, New: mod})
				}
			}
			if partial == 0 {
				t.Error("no change was translated partially: the test proves nothing")
			}
		})
	}
}

// otherAddresses are the addresses of the workloads and services of
// other objects than obj.
func otherAddresses(all []any, obj any) []string {
	var out []string
	for _, o := range all {
		if o == obj {
			continue
		}
		switch o := o.(type) {
		case *corev1.Pod:
			out = append(out, o.Status.PodIP)
		case *corev1.Service:
			out = append(out, o.Spec.ClusterIP)
		case *networkingv1.ServiceEntry:
			out = append(out, o.Spec.GetAddresses()...)
		case *networkingv1.WorkloadEntry:
			out = append(out, o.Spec.GetAddress())
		}
	}
	return slices.DeleteFunc(out, func(a string) bool { return a == "" || a == corev1.ClusterIPNone })
}

// withAddress is a copy of a pod, Service or ServiceEntry given address a
// (for a ServiceEntry, its first; also its first endpoint's).
func withAddress(obj any, a string) (any, bool) {
	switch o := obj.(type) {
	case *corev1.Pod:
		p := o.DeepCopy()
		p.Status.PodIP, p.Status.PodIPs = a, []corev1.PodIP{{IP: a}}
		return p, true
	case *corev1.Service:
		s := o.DeepCopy()
		s.Spec.ClusterIP, s.Spec.ClusterIPs = a, []string{a}
		return s, true
	case *networkingv1.ServiceEntry:
		se := o.DeepCopy()
		se.Spec.Addresses = []string{a}
		if len(se.Spec.Endpoints) > 0 {
			se.Spec.Endpoints[0].Address = a
		}
		return se, true
	}
	return nil, false
}

// describeDelta lists a delta's pieces by kind, name and state, sorted.
func describeDelta(d ZtunnelDelta) []string {
	var out []string
	add := func(kind, name string, removed bool) {
		if removed {
			out = append(out, "removed "+kind+" "+name)
		} else {
			out = append(out, "set "+kind+" "+name)
		}
	}
	for _, w := range d.Workloads.Set {
		add("workload", w.UID, false)
	}
	for _, w := range d.Workloads.Removed {
		add("workload", w.UID, true)
	}
	for _, s := range d.Services.Set {
		add("service", s.Namespace+"/"+s.Hostname, false)
	}
	for _, s := range d.Services.Removed {
		add("service", s.Namespace+"/"+s.Hostname, true)
	}
	for _, w := range d.Waypoints.Set {
		add("waypoint", w.Namespace+"/"+w.Name, false)
	}
	for _, w := range d.Waypoints.Removed {
		add("waypoint", w.Namespace+"/"+w.Name, true)
	}
	for _, p := range d.Policies.Set {
		add("policy", p.Namespace+"/"+p.Name, false)
	}
	for _, p := range d.Policies.Removed {
		add("policy", p.Namespace+"/"+p.Name, true)
	}
	slices.Sort(out)
	return out
}

// meshDelta is what describeDelta says of the pieces that differ between
// two meshes.
func meshDelta(before, after *model.Ztunnel) []string {
	var out []string
	diff := func(kind string, b, a map[string]any) {
		for k, v := range a {
			if old, ok := b[k]; !ok || !cmp.Equal(old, v) {
				out = append(out, "set "+kind+" "+k)
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok {
				out = append(out, "removed "+kind+" "+k)
			}
		}
	}
	index := func(z *model.Ztunnel) (w, s, wp, p map[string]any) {
		w, s, wp, p = map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}
		for _, x := range z.Workloads {
			w[x.UID] = x
		}
		for _, x := range z.Services {
			s[x.Namespace+"/"+x.Hostname] = x
		}
		for _, x := range z.Waypoints {
			wp[x.Namespace+"/"+x.Name] = x
		}
		for _, x := range z.Policies {
			p[x.Namespace+"/"+x.Name] = x
		}
		return
	}
	bw, bs, bwp, bp := index(before)
	aw, as, awp, ap := index(after)
	diff("workload", bw, aw)
	diff("service", bs, as)
	diff("waypoint", bwp, awp)
	diff("policy", bp, ap)
	slices.Sort(out)
	return out
}

// TestZtunnelUpdateTouchesOneNamespace: on the bench's kind of mesh, a
// pod's label change is translated from its namespace alone and changes
// its workload only.
func TestZtunnelUpdateTouchesOneNamespace(t *testing.T) {
	in := loadConfigInputs(t, "testdata/incremental/cross-namespace.yaml")
	zt := TranslateZtunnels(in)
	objs := NewObjects(in)
	var pod *corev1.Pod
	forEachInput(in, func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok && metaName(p) == "apps-d/later-1" {
			pod = p
		}
	})
	mod := pod.DeepCopy()
	mod.Labels = map[string]string{"app": "later", "version": "v2"}
	objs.Set(mod)
	delta := zt.Update(objs, []Change{{Old: pod, New: mod}})
	if zt.Full {
		t.Fatal("translated everything")
	}
	got := describeDelta(delta)
	if want := []string{"set workload Kubernetes//Pod/apps-d/later-1"}; !slices.Equal(got, want) {
		t.Errorf("delta %v, want %v", got, want)
	}
	if w := zt.Mesh().Workloads; !slices.ContainsFunc(w, func(w model.ZtunnelWorkload) bool {
		return w.UID == "Kubernetes//Pod/apps-d/later-1" && strings.Contains(w.CanonicalRevision, "v2")
	}) {
		t.Errorf("the pod's workload was not updated")
	}
}
