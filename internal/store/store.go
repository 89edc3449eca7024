// Package store holds the objects users write — namespaces, services, waypoints,
// routes and policies — behind one interface with the semantics of the Kubernetes
// API: resource versions with conflict detection, a status kept apart from the
// spec, and watches. Backends: a directory of manifests (the embedded default) and
// memory (tests); the Kubernetes backend lives in internal/kube.
package store

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshway/meshway/internal/manifest"
)

// Store is the config store. Errors are Kubernetes API errors (k8s.io/apimachinery/
// pkg/api/errors), so callers test them with apierrors.IsNotFound, IsConflict and
// IsAlreadyExists whichever backend is in use, and messages read as kubectl's do.
//
// Objects passed in are never modified; objects returned are the caller's to keep.
type Store interface {
	// Get returns one object. For cluster-scoped kinds namespace is ignored.
	Get(ctx context.Context, kind *manifest.Kind, namespace, name string) (manifest.Object, error)
	// List returns the objects of a kind, sorted by namespace then name.
	List(ctx context.Context, kind *manifest.Kind, opts ListOptions) ([]manifest.Object, error)
	// Create stores a new object. It sets uid, creationTimestamp, generation 1 and a
	// resourceVersion; the object's status is stored too (as an API server keeps it
	// on create for kinds without a status subresource, and as tests need).
	// A namespaced object needs its namespace to exist (NotFound otherwise).
	Create(ctx context.Context, obj manifest.Object) (manifest.Object, error)
	// Update replaces metadata (labels, annotations, ownerReferences…) and spec of an
	// existing object, keeping its status. If obj has a resourceVersion it must be
	// the current one (Conflict otherwise); empty means "unconditionally".
	// Generation increases when anything outside metadata and status changes.
	Update(ctx context.Context, obj manifest.Object) (manifest.Object, error)
	// UpdateStatus replaces only the status of an existing object, with the same
	// resourceVersion precondition as Update. Spec and metadata are untouched.
	UpdateStatus(ctx context.Context, obj manifest.Object) (manifest.Object, error)
	// Apply creates obj or merges it into the stored object as server-side apply
	// does: the fields obj sets are written, fields it leaves out are kept. Status
	// is never written. On Kubernetes it is server-side apply with opts'
	// field manager; the embedded backends keep no field ownership (see
	// applyByMerge), which suits a store whose every field has one writer.
	Apply(ctx context.Context, obj manifest.Object, opts ApplyOptions) (manifest.Object, error)
	// Delete removes an object. Deleting a Namespace deletes everything in it —
	// on Kubernetes eventually, by the namespace controller.
	Delete(ctx context.Context, kind *manifest.Kind, namespace, name string, opts DeleteOptions) error
	// Watch delivers, for the kind (nil: every kind) and options, one Added event per
	// existing object, then one Synced event, then every change as it happens, until
	// ctx is done; then the channel is closed. A slow reader never blocks writers.
	// Changes close together may arrive as one event with the latest object, as
	// with Kubernetes informers: treat events as "this is now the state".
	Watch(ctx context.Context, kind *manifest.Kind, opts ListOptions) (<-chan Event, error)
	// Describe says where objects are kept, e.g. "directory /home/u/.meshway/store".
	Describe() string
}

// ListOptions narrow List and Watch.
type ListOptions struct {
	// Namespace limits namespaced kinds to one namespace; empty means all.
	Namespace string
	// Labels selects by label; nil means everything.
	Labels labels.Selector
}

// Matches reports whether obj is selected.
func (o ListOptions) Matches(kind *manifest.Kind, obj manifest.Object) bool {
	if kind.Namespaced && o.Namespace != "" && obj.GetNamespace() != o.Namespace {
		return false
	}
	return o.Labels == nil || o.Labels.Matches(labels.Set(obj.GetLabels()))
}

// DeleteOptions are preconditions for Delete.
type DeleteOptions struct {
	// ResourceVersion, when set, must be the current one (Conflict otherwise).
	ResourceVersion string
}

// EventType says what happened to an object.
type EventType string

// Event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
	// Synced follows the Added events of the objects that existed when the watch began.
	Synced EventType = "SYNCED"
)

// Event is one change seen by a watch. Object is nil for Synced; for Deleted it is
// the object as it last was. Object is shared with the store and its other
// watches, as a client-go informer's objects are: read it, and copy it
// (DeepCopyObject) to change it. A watcher that kept its own copy of every
// object would double the memory of a control plane holding a mesh of
// 50,000 pods.
type Event struct {
	Type   EventType
	Kind   *manifest.Kind
	Object manifest.Object
}

// NotFound builds the error Get returns for a missing object.
func NotFound(kind *manifest.Kind, name string) error {
	return apierrors.NewNotFound(kind.GroupResource(), name)
}

// Conflict builds the error returned for a stale resourceVersion.
func Conflict(kind *manifest.Kind, name string) error {
	return apierrors.NewConflict(kind.GroupResource(), name,
		errStale)
}

// AlreadyExists builds the error Create returns for an existing object.
func AlreadyExists(kind *manifest.Kind, name string) error {
	return apierrors.NewAlreadyExists(kind.GroupResource(), name)
}

// NamespaceNotFound builds the error for an object whose namespace does not exist.
func NamespaceNotFound(namespace string) error {
	return apierrors.NewNotFound(manifest.Namespace.GroupResource(), namespace)
}

type staleError struct{}

func (staleError) Error() string {
	return "the object has been modified; please apply your changes to the latest version and try again"
}

var errStale error = staleError{}
