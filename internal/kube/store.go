package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// Store is the config store on a Kubernetes cluster: every call goes to the API
// server through the typed clientsets, so errors, resource versions, the status
// subresource and server-side apply are the cluster's own.
type Store struct {
	describe  string
	resources map[*manifest.Kind]*resource
}

var _ store.Store = (*Store)(nil)

// New builds a Store on a cluster. describe is what Describe returns, e.g.
// "cluster https://… (context kind-dev)".
func New(cfg *rest.Config, describe string) (*Store, error) {
	rs, err := resources(cfg)
	if err != nil {
		return nil, err
	}
	return &Store{describe: describe, resources: rs}, nil
}

// Describe implements store.Store.
func (s *Store) Describe() string { return s.describe }

func (s *Store) resource(kind *manifest.Kind) (*resource, error) {
	if kind == nil {
		return nil, apierrors.NewBadRequest("no kind given")
	}
	r, ok := s.resources[kind]
	if !ok {
		return nil, apierrors.NewBadRequest("meshway has no client for kind " + kind.Kind)
	}
	return r, nil
}

// resourceOf returns the client for an object being written, after the checks
// the embedded store makes too.
func (s *Store) resourceOf(obj manifest.Object) (*resource, error) {
	kind, err := manifest.KindOf(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if err := checkNamespace(kind, obj); err != nil {
		return nil, err
	}
	return s.resource(kind)
}

// checkName refuses names no object can have before client-go does (with an
// error of its own kind): as on the embedded store, such an object is not found.
func checkName(kind *manifest.Kind, name string) error {
	if name == "" || len(content.IsPathSegmentName(name)) > 0 {
		return store.NotFound(kind, name)
	}
	return nil
}

// checkNamespace refuses a namespaced object without a namespace, which would
// otherwise address the kind's cluster-wide collection.
func checkNamespace(kind *manifest.Kind, obj manifest.Object) error {
	if kind.Namespaced && obj.GetNamespace() == "" {
		return apierrors.NewBadRequest(fmt.Sprintf("%s %q has no metadata.namespace; set it (callers default it, as kubectl does)", kind.Kind, obj.GetName()))
	}
	return nil
}

func namespaceFor(kind *manifest.Kind, ns string) string {
	if !kind.Namespaced {
		return ""
	}
	return ns
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, kind *manifest.Kind, namespace, name string) (manifest.Object, error) {
	r, err := s.resource(kind)
	if err != nil {
		return nil, err
	}
	if err := checkName(kind, name); err != nil {
		return nil, err
	}
	return r.get(ctx, namespaceFor(kind, namespace), name)
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, kind *manifest.Kind, opts store.ListOptions) ([]manifest.Object, error) {
	r, err := s.resource(kind)
	if err != nil {
		return nil, err
	}
	items, _, err := r.list(ctx, namespaceFor(kind, opts.Namespace), listOptions(opts))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(items, func(a, b manifest.Object) int {
		if c := strings.Compare(a.GetNamespace(), b.GetNamespace()); c != 0 {
			return c
		}
		return strings.Compare(a.GetName(), b.GetName())
	})
	return items, nil
}

func listOptions(opts store.ListOptions) metav1.ListOptions {
	var lo metav1.ListOptions
	if opts.Labels != nil {
		lo.LabelSelector = opts.Labels.String()
	}
	return lo
}

// Create implements store.Store. Status given with the object is written after
// the create through the status subresource, which a create ignores.
func (s *Store) Create(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
	r, err := s.resourceOf(obj)
	if err != nil {
		return nil, err
	}
	in := forWire(obj)
	in.SetResourceVersion("") // the API server refuses a create that carries one
	in.SetUID("")
	in.SetGeneration(0)
	in.SetCreationTimestamp(metav1.Time{})
	created, err := r.create(ctx, in)
	if err != nil || !r.hasStatus || !hasStatus(obj) {
		return created, err
	}
	withStatus, err := copyStatus(r.kind, obj, created)
	if err != nil {
		return nil, err
	}
	return r.updateStatus(ctx, forWire(withStatus))
}

// hasStatus reports whether obj carries a status with any value in it (a typed
// empty status encodes as fields holding null or {}).
func hasStatus(obj manifest.Object) bool {
	m, err := manifest.ToMap(obj)
	if err != nil {
		return false
	}
	return !emptyJSON(m["status"])
}

func emptyJSON(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, x := range v {
			if !emptyJSON(x) {
				return false
			}
		}
		return true
	case []any:
		return len(v) == 0
	case string:
		return v == ""
	}
	return false
}

// copyStatus returns target with from's status.
func copyStatus(kind *manifest.Kind, from, target manifest.Object) (manifest.Object, error) {
	f, err := manifest.ToMap(from)
	if err != nil {
		return nil, err
	}
	t, err := manifest.ToMap(target)
	if err != nil {
		return nil, err
	}
	t["status"] = f["status"]
	return manifest.FromMap(kind, t)
}

// Update implements store.Store. Without a resourceVersion it updates
// unconditionally: it reads the current version and retries on conflict, since
// custom resources refuse unconditional updates.
func (s *Store) Update(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
	r, err := s.resourceOf(obj)
	if err != nil {
		return nil, err
	}
	return s.write(ctx, r, obj, r.update)
}

// UpdateStatus implements store.Store.
func (s *Store) UpdateStatus(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
	r, err := s.resourceOf(obj)
	if err != nil {
		return nil, err
	}
	if !r.hasStatus {
		return nil, apierrors.NewMethodNotSupported(r.kind.GroupResource(), "update status")
	}
	return s.write(ctx, r, obj, r.updateStatus)
}

func (s *Store) write(ctx context.Context, r *resource, obj manifest.Object, fn func(context.Context, manifest.Object) (manifest.Object, error)) (manifest.Object, error) {
	obj = forWire(obj)
	if obj.GetResourceVersion() != "" {
		return fn(ctx, obj)
	}
	for range 10 {
		current, err := r.get(ctx, namespaceFor(r.kind, obj.GetNamespace()), obj.GetName())
		if err != nil {
			return nil, err
		}
		if uid := obj.GetUID(); uid != "" && uid != current.GetUID() {
			return nil, store.Conflict(r.kind, obj.GetName()) // written for an object since deleted and re-created
		}
		in := obj.DeepCopyObject().(manifest.Object)
		in.SetResourceVersion(current.GetResourceVersion())
		out, err := fn(ctx, in)
		if !apierrors.IsConflict(err) {
			return out, err
		}
	}
	return nil, store.Conflict(r.kind, obj.GetName())
}

// Apply implements store.Store with server-side apply.
func (s *Store) Apply(ctx context.Context, obj manifest.Object, opts store.ApplyOptions) (manifest.Object, error) {
	r, err := s.resourceOf(obj)
	if err != nil {
		return nil, err
	}
	if opts.FieldManager == "" {
		return nil, apierrors.NewBadRequest("server-side apply needs a field manager")
	}
	m, err := manifest.ToMap(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		for _, f := range []string{"resourceVersion", "uid", "generation", "creationTimestamp", "managedFields"} {
			delete(md, f)
		}
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %s %s for apply: %w", r.kind.Kind, obj.GetName(), err)
	}
	force := opts.Force
	return r.patch(ctx, namespaceFor(r.kind, obj.GetNamespace()), obj.GetName(), types.ApplyPatchType, data,
		metav1.PatchOptions{FieldManager: opts.FieldManager, Force: &force})
}

// Delete implements store.Store. Deleting a Namespace starts its deletion; the
// cluster's namespace controller removes its contents, then the namespace.
func (s *Store) Delete(ctx context.Context, kind *manifest.Kind, namespace, name string, opts store.DeleteOptions) error {
	r, err := s.resource(kind)
	if err != nil {
		return err
	}
	if err := checkName(kind, name); err != nil {
		return err
	}
	var do metav1.DeleteOptions
	if opts.ResourceVersion != "" {
		rv := opts.ResourceVersion
		do.Preconditions = &metav1.Preconditions{ResourceVersion: &rv}
	}
	return r.delete(ctx, namespaceFor(kind, namespace), name, do)
}

// forWire returns a copy of obj fit to send. The Gateway API route types encode
// an empty status as "parents": null, which their CRD schema rejects even on a
// create, where the status is then dropped; an empty list passes.
func forWire(obj manifest.Object) manifest.Object {
	out := obj.DeepCopyObject().(manifest.Object)
	switch o := out.(type) {
	case *gwv1.HTTPRoute:
		if o.Status.Parents == nil {
			o.Status.Parents = []gwv1.RouteParentStatus{}
		}
	case *gwv1.GRPCRoute:
		if o.Status.Parents == nil {
			o.Status.Parents = []gwv1.RouteParentStatus{}
		}
	}
	return out
}
