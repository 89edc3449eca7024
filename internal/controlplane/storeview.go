package controlplane

import (
	"cmp"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	istiometav1alpha1 "istio.io/api/meta/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/translate"
)

// This file holds what the Deployer and the StatusWriter share: an index of
// the objects a Sync is given, the comparisons that let a Sync skip writes
// that would change nothing, and condition merging with Kubernetes'
// lastTransitionTime rules.

// storedKey identifies a stored object; namespace is empty for cluster-scoped kinds.
type storedKey struct {
	kind            *manifest.Kind
	namespace, name string
}

func storedKeyOf(obj manifest.Object) (storedKey, bool) {
	kind, err := manifest.KindOf(obj)
	if err != nil {
		return storedKey{}, false
	}
	ns := obj.GetNamespace()
	if !kind.Namespaced {
		ns = ""
	}
	return storedKey{kind, ns, obj.GetName()}, true
}

func (k storedKey) String() string {
	if k.namespace == "" {
		return k.kind.Kind + " " + k.name
	}
	return k.kind.Kind + " " + k.namespace + "/" + k.name
}

// storedObjects is the objects of one Sync by key, updated with what the Sync
// writes so later steps see it.
type storedObjects struct {
	objs map[storedKey]manifest.Object
	// statuses is translate.ObjectStatuses of objs, computed once for the
	// writers that read it (the Deployer's attached routes, the
	// StatusWriter) and dropped when objs change.
	statuses *translate.Statuses
}

// objectStatuses is translate.ObjectStatuses of the objects.
func (x *storedObjects) objectStatuses() translate.Statuses {
	if x.statuses == nil {
		var in translate.ConfigInputs
		for _, obj := range x.objs {
			in.Add(obj)
		}
		s := translate.ObjectStatuses(in)
		x.statuses = &s
	}
	return *x.statuses
}

func newStoredObjects(objs []manifest.Object) *storedObjects {
	x := &storedObjects{objs: make(map[storedKey]manifest.Object, len(objs))}
	for _, obj := range objs {
		x.put(obj)
	}
	return x
}

func (x *storedObjects) put(obj manifest.Object) {
	if k, ok := storedKeyOf(obj); ok {
		x.objs[k] = obj
		x.statuses = nil
	}
}

func (x *storedObjects) remove(k storedKey) {
	delete(x.objs, k)
	x.statuses = nil
}

func (x *storedObjects) get(kind *manifest.Kind, namespace, name string) manifest.Object {
	if !kind.Namespaced {
		namespace = ""
	}
	return x.objs[storedKey{kind, namespace, name}]
}

// storedOfKind returns the objects of a kind sorted by namespace and name, so a
// Sync writes in a stable order.
func storedOfKind[T manifest.Object](x *storedObjects, kind *manifest.Kind) []T {
	var out []T
	for k, obj := range x.objs {
		if k.kind != kind {
			continue
		}
		if t, ok := obj.(T); ok {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b T) int {
		return cmp.Or(strings.Compare(a.GetNamespace(), b.GetNamespace()), strings.Compare(a.GetName(), b.GetName()))
	})
	return out
}

// jsonTree is v as generic JSON (maps, slices, strings, float64s, bools).
func jsonTree(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var tree any
	err = json.Unmarshal(data, &tree)
	return tree, err
}

// pruneEmpty drops nulls, empty lists and empty objects from a JSON tree, so
// that a nil and an empty list — which the Go types, the API server and the
// embedded store do not always keep apart — compare equal.
func pruneEmpty(tree any) any {
	switch v := tree.(type) {
	case map[string]any:
		for k, e := range v {
			if e = pruneEmpty(e); e == nil {
				delete(v, k)
			} else {
				v[k] = e
			}
		}
		if len(v) == 0 {
			return nil
		}
	case []any:
		for i, e := range v {
			v[i] = pruneEmpty(e)
		}
		if len(v) == 0 {
			return nil
		}
	}
	return tree
}

// sameJSON reports whether a and b encode to the same JSON, up to empty
// values (see pruneEmpty). An encoding error counts as different, so the
// caller writes and the store reports the problem.
func sameJSON(a, b any) bool {
	// Equal Go values are equal JSON: the common case (nothing changed)
	// costs no encoding. Only values that differ in Go are compared as
	// JSON, where nil and empty, or times of other precisions, are alike.
	if reflect.DeepEqual(a, b) {
		return true
	}
	ta, err := jsonTree(a)
	if err != nil {
		return false
	}
	tb, err := jsonTree(b)
	if err != nil {
		return false
	}
	return reflect.DeepEqual(pruneEmpty(ta), pruneEmpty(tb))
}

// containsJSON reports whether every field set in want has the same value
// in have: maps are compared key by key (have may hold more, such as the
// defaults an API server adds), lists element by element and must be as
// long; a null in want matches anything.
func containsJSON(have, want any) bool {
	switch w := want.(type) {
	case nil:
		return true
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return len(w) == 0 && have == nil
		}
		for k, wv := range w {
			if !containsJSON(h[k], wv) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return len(w) == 0 && have == nil
		}
		for i := range w {
			if !containsJSON(h[i], w[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(have, want)
	}
}

// storedMatches reports whether the stored object already has every field
// of desired (metadata and spec; status is not the writer's) and no label
// or annotation that manager applied before and desired no longer has, so
// applying desired would change nothing.
func storedMatches(stored, desired manifest.Object, manager string) bool {
	labels, annotations := store.OwnedMetadata(stored, manager)
	for _, k := range labels {
		if _, ok := desired.GetLabels()[k]; !ok {
			return false
		}
	}
	for _, k := range annotations {
		if _, ok := desired.GetAnnotations()[k]; !ok {
			return false
		}
	}
	have, err := manifest.ToMap(stored)
	if err != nil {
		return false
	}
	want, err := manifest.ToMap(desired)
	if err != nil {
		return false
	}
	delete(have, "status")
	delete(want, "status")
	return containsJSON(have, want)
}

// mergeConditions returns current with each desired condition set by type,
// as the Kubernetes API conventions ask: a condition whose status did not
// change keeps its lastTransitionTime; a new or changed one gets now.
// Conditions of other types are kept in place; new types are appended.
func mergeConditions(current, desired []metav1.Condition, now time.Time) []metav1.Condition {
	out := slices.Clone(current)
	for _, want := range desired {
		want.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
		i := slices.IndexFunc(out, func(c metav1.Condition) bool { return c.Type == want.Type })
		if i < 0 {
			out = append(out, want)
			continue
		}
		if out[i].Status == want.Status {
			want.LastTransitionTime = out[i].LastTransitionTime
		}
		out[i] = want
	}
	return out
}

// removeCondition returns conds without the condition of type typ.
func removeCondition(conds []metav1.Condition, typ string) []metav1.Condition {
	return slices.DeleteFunc(slices.Clone(conds), func(c metav1.Condition) bool { return c.Type == typ })
}

// mergeIstioCondition sets (or, when want is nil, removes) one condition of
// an Istio status — the status of ServiceEntries, WorkloadEntries and
// AuthorizationPolicies — with the same lastTransitionTime rule as
// mergeConditions.
func mergeIstioCondition(current []*istiometav1alpha1.IstioCondition, typ string, want *metav1.Condition, now time.Time) []*istiometav1alpha1.IstioCondition {
	i := slices.IndexFunc(current, func(c *istiometav1alpha1.IstioCondition) bool { return c != nil && c.Type == typ })
	out := slices.Clone(current)
	if want == nil {
		if i >= 0 {
			out = slices.Delete(out, i, i+1)
		}
		return out
	}
	c := &istiometav1alpha1.IstioCondition{
		Type:               typ,
		Status:             string(want.Status),
		Reason:             want.Reason,
		Message:            want.Message,
		ObservedGeneration: want.ObservedGeneration,
		LastTransitionTime: timestamppb.New(now.Truncate(time.Second)),
	}
	if i < 0 {
		return append(out, c)
	}
	if out[i].Status == c.Status {
		c.LastTransitionTime = out[i].LastTransitionTime
		c.LastProbeTime = out[i].LastProbeTime
	}
	out[i] = c
	return out
}
