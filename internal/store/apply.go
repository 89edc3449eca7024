package store

import (
	"context"
	"maps"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/meshway/meshway/internal/manifest"
)

// ApplyOptions name who applies. On Kubernetes they are server-side apply's
// field manager and force flag.
type ApplyOptions struct {
	// FieldManager names the writer, e.g. "meshctl" or "meshd"; required.
	FieldManager string
	// Force takes over fields another manager owns instead of failing with a conflict.
	Force bool
}

// applyByMerge is Apply for the embedded backends: it creates obj, or merges
// it into the stored object — obj's labels and annotations are set, those
// the same field manager applied before and obj no longer has are removed,
// and others kept; every top-level field obj has besides metadata and status
// replaces the stored one. That is server-side apply for a single writer of
// each field, the way meshway's components use it. Like the API server it
// records, in metadata.managedFields, what the manager applied (here only
// the label and annotation keys and the top-level fields), which is how it
// knows what to remove next time. It never touches status.
func applyByMerge(ctx context.Context, s Store, obj manifest.Object, opts ApplyOptions) (manifest.Object, error) {
	kind, err := manifest.KindOf(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	for range 10 {
		current, err := s.Get(ctx, kind, obj.GetNamespace(), obj.GetName())
		if apierrors.IsNotFound(err) {
			fresh, err := withoutStatus(kind, obj)
			if err != nil {
				return nil, err
			}
			fresh.SetManagedFields(appliedFields(nil, obj, opts.FieldManager))
			out, err := s.Create(ctx, fresh)
			if apierrors.IsAlreadyExists(err) {
				continue // created meanwhile: merge into it
			}
			return out, err
		}
		if err != nil {
			return nil, err
		}
		merged, err := mergeApplied(kind, current, obj, opts.FieldManager)
		if err != nil {
			return nil, err
		}
		out, err := s.Update(ctx, merged)
		if apierrors.IsConflict(err) {
			continue
		}
		return out, err
	}
	return nil, Conflict(kind, obj.GetName())
}

func withoutStatus(kind *manifest.Kind, obj manifest.Object) (manifest.Object, error) {
	m, err := manifest.ToMap(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	return manifest.FromMap(kind, m)
}

func mergeApplied(kind *manifest.Kind, current, applied manifest.Object, manager string) (manifest.Object, error) {
	cur, err := manifest.ToMap(current)
	if err != nil {
		return nil, err
	}
	app, err := manifest.ToMap(applied)
	if err != nil {
		return nil, err
	}
	for key, v := range app {
		if key != "metadata" && key != "status" {
			cur[key] = v
		}
	}
	out, err := manifest.FromMap(kind, cur)
	if err != nil {
		return nil, err
	}
	ownedLabels, ownedAnnotations := OwnedMetadata(current, manager)
	out.SetLabels(mergeMaps(current.GetLabels(), applied.GetLabels(), ownedLabels))
	out.SetAnnotations(mergeMaps(current.GetAnnotations(), applied.GetAnnotations(), ownedAnnotations))
	if refs := applied.GetOwnerReferences(); len(refs) > 0 {
		out.SetOwnerReferences(refs)
	}
	out.SetManagedFields(appliedFields(current.GetManagedFields(), applied, manager))
	return out, nil
}

// mergeMaps sets over's entries on base, less the keys of owned (what the
// applier set before) that over no longer has.
func mergeMaps(base, over map[string]string, owned []string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	for _, k := range owned {
		if _, ok := over[k]; !ok {
			delete(out, k)
		}
	}
	maps.Copy(out, over)
	if len(out) == 0 {
		return nil
	}
	return out
}

// Apply implements Store.
func (d *Dir) Apply(ctx context.Context, obj manifest.Object, opts ApplyOptions) (manifest.Object, error) {
	return applyByMerge(ctx, d, obj, opts)
}

// Apply implements Store.
func (m *Memory) Apply(ctx context.Context, obj manifest.Object, opts ApplyOptions) (manifest.Object, error) {
	return applyByMerge(ctx, m, obj, opts)
}
