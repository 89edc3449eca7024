package store

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshway/meshway/internal/manifest"
)

// OwnedMetadata returns the label and annotation keys that manager set on
// obj by its last server-side apply, as metadata.managedFields records them
// (the API server's entries, and the embedded backends' — see
// applyByMerge). A writer that compares what it would apply with what is
// stored needs them: a key it applied before and no longer renders is
// stale, and only an apply removes it.
func OwnedMetadata(obj manifest.Object, manager string) (labels, annotations []string) {
	for _, e := range obj.GetManagedFields() {
		if e.Manager != manager || e.Operation != metav1.ManagedFieldsOperationApply || e.FieldsV1 == nil {
			continue
		}
		var fields struct {
			Metadata struct {
				Labels      map[string]json.RawMessage `json:"f:labels"`
				Annotations map[string]json.RawMessage `json:"f:annotations"`
			} `json:"f:metadata"`
		}
		if json.Unmarshal(e.FieldsV1.GetRawBytes(), &fields) != nil {
			continue
		}
		labels = append(labels, fieldKeys(fields.Metadata.Labels)...)
		annotations = append(annotations, fieldKeys(fields.Metadata.Annotations)...)
	}
	return labels, annotations
}

// fieldKeys returns the map keys of a fieldsV1 set ("f:<key>").
func fieldKeys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		if key, ok := strings.CutPrefix(k, "f:"); ok {
			out = append(out, key)
		}
	}
	sort.Strings(out)
	return out
}

// appliedFields returns entries with manager's Apply entry replaced by one
// for applied: its label and annotation keys, owner references and
// top-level fields (coarser than the API server's, which lists every leaf;
// the embedded backends need no more).
func appliedFields(entries []metav1.ManagedFieldsEntry, applied manifest.Object, manager string) []metav1.ManagedFieldsEntry {
	if manager == "" {
		return entries
	}
	set := func(keys []string) map[string]any {
		m := map[string]any{}
		for _, k := range keys {
			m["f:"+k] = map[string]any{}
		}
		return m
	}
	meta := map[string]any{}
	if l := applied.GetLabels(); len(l) > 0 {
		meta["f:labels"] = set(slices.Sorted(maps.Keys(l)))
	}
	if a := applied.GetAnnotations(); len(a) > 0 {
		meta["f:annotations"] = set(slices.Sorted(maps.Keys(a)))
	}
	if len(applied.GetOwnerReferences()) > 0 {
		meta["f:ownerReferences"] = map[string]any{}
	}
	fields := map[string]any{}
	if len(meta) > 0 {
		fields["f:metadata"] = meta
	}
	if m, err := manifest.ToMap(applied); err == nil {
		for k := range m {
			if k != "apiVersion" && k != "kind" && k != "metadata" && k != "status" {
				fields["f:"+k] = map[string]any{}
			}
		}
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return entries
	}
	out := slices.DeleteFunc(slices.Clone(entries), func(e metav1.ManagedFieldsEntry) bool {
		return e.Manager == manager && e.Operation == metav1.ManagedFieldsOperationApply
	})
	now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	return append(out, metav1.ManagedFieldsEntry{
		Manager: manager, Operation: metav1.ManagedFieldsOperationApply,
		APIVersion: applied.GetObjectKind().GroupVersionKind().GroupVersion().String(),
		Time:       &now, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(string(raw)),
	})
}
