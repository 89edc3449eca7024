package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshway/meshway/internal/manifest"
)

// This file holds what an API server does to an object on write, shared by the
// backends so they agree on uid, timestamps, generation and status handling.

// NamespaceNameLabel is the label every Namespace carries with its own name, as
// Kubernetes sets it, so namespaceSelectors can select a namespace by name.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// Options configure a backend. The zero value is usable.
type Options struct {
	// Now is the clock for creationTimestamp; default time.Now.
	Now func() time.Time
	// NewUID makes the uid of a created object; default a random UUID.
	NewUID func() types.UID
	// InitialNamespaces are created when the store is new (an empty directory,
	// or a new memory store).
	InitialNamespaces []string
	// Warn reports a file that cannot be used; default: print it to stderr.
	Warn func(error)
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewUID == nil {
		o.NewUID = randomUID
	}
	if o.Warn == nil {
		o.Warn = func(err error) { fmt.Fprintf(os.Stderr, "meshway: warning: %v\n", err) }
	}
	return o
}

// randomUID is a version 4 UUID, the form Kubernetes uses for uids.
func randomUID() types.UID {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return formatUUID(b, 4)
}

// formatUUID sets the RFC 4122 version and variant bits and formats b.
func formatUUID(b [16]byte, version byte) types.UID {
	b[6] = b[6]&0x0f | version<<4
	b[8] = b[8]&0x3f | 0x80
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// objectKey identifies an object; namespace is empty for cluster-scoped kinds.
type objectKey struct {
	kind      *manifest.Kind
	namespace string
	name      string
}

func (k objectKey) String() string {
	if k.namespace == "" {
		return k.kind.Kind + " " + k.name
	}
	return k.kind.Kind + " " + k.namespace + "/" + k.name
}

// compareKeys orders keys as List and Watch deliver them: by kind (in
// manifest.All order), then namespace, then name.
func compareKeys(a, b objectKey) int {
	if a.kind != b.kind {
		return slices.Index(manifest.All, a.kind) - slices.Index(manifest.All, b.kind)
	}
	if c := strings.Compare(a.namespace, b.namespace); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// lookupKey checks the arguments of Get and Delete. A name or namespace that no
// object can have is reported as NotFound; that also keeps such strings out of
// file paths in the directory backend.
func lookupKey(kind *manifest.Kind, namespace, name string) (objectKey, error) {
	if kind == nil {
		return objectKey{}, apierrors.NewBadRequest("no kind given")
	}
	if !kind.Namespaced {
		namespace = ""
	} else if namespace == "" {
		return objectKey{}, apierrors.NewBadRequest(fmt.Sprintf("%s %q: no namespace given; %s are namespaced", kind.Kind, name, kind.Resource))
	}
	if len(validation.IsDNS1123Subdomain(name)) > 0 ||
		(namespace != "" && len(validation.IsDNS1123Label(namespace)) > 0) {
		return objectKey{}, NotFound(kind, name)
	}
	return objectKey{kind: kind, namespace: namespace, name: name}, nil
}

// undeletableNamespaces are the namespaces a Kubernetes API server refuses to
// delete (its NamespaceLifecycle admission): the embedded store refuses too.
var undeletableNamespaces = []string{"default", "kube-system", "kube-public"}

// checkDeletable refuses to delete what an API server never deletes.
func checkDeletable(key objectKey) error {
	if key.kind == manifest.Namespace && slices.Contains(undeletableNamespaces, key.name) {
		return apierrors.NewForbidden(manifest.Namespace.GroupResource(), key.name, errors.New("this namespace may not be deleted"))
	}
	return nil
}

// checkListArgs checks the arguments of List.
func checkListArgs(ctx context.Context, kind *manifest.Kind, opts ListOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if kind == nil {
		return apierrors.NewBadRequest("List: no kind given")
	}
	return checkNamespaceArg(opts)
}

// checkNamespaceArg rejects a namespace in ListOptions that no namespace can have.
func checkNamespaceArg(opts ListOptions) error {
	if opts.Namespace != "" && len(validation.IsDNS1123Label(opts.Namespace)) > 0 {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid namespace %q", opts.Namespace))
	}
	return nil
}

// prepareWrite checks an object given to Create, Update or UpdateStatus and
// returns its kind, key and a private copy carrying its GroupVersionKind: the
// kind's stored version, or an older version the caller set, whose schema
// then validates it (see admit).
func prepareWrite(obj manifest.Object) (*manifest.Kind, objectKey, manifest.Object, error) {
	if v := reflect.ValueOf(obj); obj == nil || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return nil, objectKey{}, nil, apierrors.NewBadRequest("no object given")
	}
	kind, err := manifest.KindOf(obj)
	if err != nil {
		return nil, objectKey{}, nil, apierrors.NewBadRequest(err.Error())
	}
	obj = copyObject(obj)
	gvk := kind.GroupVersionKind()
	if written := obj.GetObjectKind().GroupVersionKind(); written.GroupKind() == gvk.GroupKind() && slices.Contains(kind.OtherVersions, written.Version) {
		gvk.Version = written.Version
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	if !kind.Namespaced {
		obj.SetNamespace("")
	} else if obj.GetNamespace() == "" {
		return nil, objectKey{}, nil, apierrors.NewBadRequest(fmt.Sprintf("%s %q has no metadata.namespace; set it (callers default it, as kubectl does)", kind.Kind, obj.GetName()))
	}
	if err := manifest.ValidateMetadata(kind, obj); err != nil {
		return nil, objectKey{}, nil, invalid(kind, obj.GetName(), err)
	}
	return kind, objectKey{kind: kind, namespace: obj.GetNamespace(), name: obj.GetName()}, obj, nil
}

// prepareCreate is prepareWrite for Create: the object is also admitted —
// pruned, defaulted and validated — as an API server admits a new object.
func prepareCreate(ctx context.Context, obj manifest.Object) (*manifest.Kind, objectKey, manifest.Object, error) {
	kind, key, obj, err := prepareWrite(obj)
	if err != nil {
		return nil, objectKey{}, nil, err
	}
	if obj, err = admit(ctx, manifest.Create, obj, nil); err != nil {
		return nil, objectKey{}, nil, err
	}
	return kind, key, obj, nil
}

// admit is what an API server does to every object written, for every
// backend: defaults, and for custom resources pruning and validation against
// the CRD at the version obj's TypeMeta names (its schema; the result carries
// the stored version). old is the stored object on update. It is the one
// place the embedded backends validate what they store, so they never hold an
// object a Kubernetes API server would refuse.
func admit(ctx context.Context, op manifest.Operation, obj, old manifest.Object) (manifest.Object, error) {
	return manifest.Admit(ctx, op, obj.GetObjectKind().GroupVersionKind().Version, obj, old)
}

func invalid(kind *manifest.Kind, name string, err error) error {
	path, msg := field.NewPath("metadata"), err.Error()
	var fe *manifest.FieldError
	if errors.As(err, &fe) {
		path, msg = field.NewPath(fe.Field), fe.Msg
	}
	// The message already quotes the bad value; OmitValueType keeps it from
	// being repeated (or, for a label, replaced by the object's name).
	return apierrors.NewInvalid(kind.GroupVersionKind().GroupKind(), name,
		field.ErrorList{field.Invalid(path, field.OmitValueType{}, msg)})
}

// newObject applies the server-set fields of Create to obj (a private copy).
func (o Options) newObject(kind *manifest.Kind, obj manifest.Object) {
	obj.SetUID(o.NewUID())
	obj.SetCreationTimestamp(metav1.NewTime(o.Now().Truncate(time.Second)))
	obj.SetGeneration(0)
	if kind.TracksGeneration {
		obj.SetGeneration(1)
	}
	obj.SetResourceVersion("")
	if ns, ok := obj.(*corev1.Namespace); ok {
		ns.Status.Phase = corev1.NamespaceActive
	}
	enforceNamespaceLabel(obj)
}

// enforceNamespaceLabel gives a Namespace its name label; users cannot remove it.
func enforceNamespaceLabel(obj manifest.Object) {
	if _, ok := obj.(*corev1.Namespace); !ok {
		return
	}
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[NamespaceNameLabel] = obj.GetName()
	obj.SetLabels(labels)
}

// updatedObject is what Update stores: desired's metadata and spec, current's
// status and server-set fields, admitted, and a generation bumped when the
// spec changed.
func updatedObject(ctx context.Context, kind *manifest.Kind, current, desired manifest.Object) (manifest.Object, error) {
	if err := checkUID(kind, current, desired); err != nil {
		return nil, err
	}
	version := desired.GetObjectKind().GroupVersionKind().Version
	out, err := joinStatusOf(kind, desired, current)
	if err != nil {
		return nil, err
	}
	out.SetUID(current.GetUID())
	out.SetCreationTimestamp(current.GetCreationTimestamp())
	out.SetGeneration(current.GetGeneration())
	out.SetResourceVersion("")
	enforceNamespaceLabel(out)
	out.GetObjectKind().SetGroupVersionKind(kind.GroupVersionKind().GroupKind().WithVersion(version))
	if out, err = admit(ctx, manifest.Update, out, current); err != nil {
		return nil, err
	}
	changed, err := specChanged(current, out)
	if err != nil {
		return nil, err
	}
	if changed && kind.TracksGeneration {
		out.SetGeneration(current.GetGeneration() + 1)
	}
	return out, nil
}

// statusUpdatedObject is what UpdateStatus stores: current with desired's
// status, admitted.
func statusUpdatedObject(ctx context.Context, kind *manifest.Kind, current, desired manifest.Object) (manifest.Object, error) {
	if err := checkUID(kind, current, desired); err != nil {
		return nil, err
	}
	version := desired.GetObjectKind().GroupVersionKind().Version
	out, err := joinStatusOf(kind, current, desired)
	if err != nil {
		return nil, err
	}
	out.SetResourceVersion("")
	out.GetObjectKind().SetGroupVersionKind(kind.GroupVersionKind().GroupKind().WithVersion(version))
	return admit(ctx, manifest.UpdateStatus, out, current)
}

// checkUID refuses a write meant for another incarnation of the object (deleted
// and created again since the writer read it), as the API server does.
func checkUID(kind *manifest.Kind, current, desired manifest.Object) error {
	if uid := desired.GetUID(); uid != "" && uid != current.GetUID() {
		return apierrors.NewConflict(kind.GroupResource(), current.GetName(),
			fmt.Errorf("precondition failed: UID in precondition: %v, UID in object meta: %v", uid, current.GetUID()))
	}
	return nil
}

// checkResourceVersion is the precondition of Update, UpdateStatus and Delete.
func checkResourceVersion(kind *manifest.Kind, name, want, current string) error {
	if want != "" && want != current {
		return Conflict(kind, name)
	}
	return nil
}

// splitStatus separates an object's JSON tree into everything but the status
// (the "spec part", which includes metadata) and the status.
func splitStatus(obj manifest.Object) (spec map[string]any, status any, err error) {
	m, err := manifest.ToMap(obj)
	if err != nil {
		return nil, nil, err
	}
	status = m["status"]
	delete(m, "status")
	return m, status, nil
}

// joinStatus is the inverse of splitStatus.
func joinStatus(kind *manifest.Kind, spec map[string]any, status any) (manifest.Object, error) {
	m := make(map[string]any, len(spec)+1)
	for k, v := range spec {
		m[k] = v
	}
	if status != nil {
		m["status"] = status
	}
	return manifest.FromMap(kind, m)
}

// joinStatusOf is a copy of spec's object with status's status: on the
// typed objects when they are of one Go type, through JSON otherwise.
func joinStatusOf(kind *manifest.Kind, spec, status manifest.Object) (manifest.Object, error) {
	if out, ok := withStatusOf(spec, status); ok {
		return out, nil
	}
	specPart, _, err := splitStatus(spec)
	if err != nil {
		return nil, err
	}
	_, statusPart, err := splitStatus(status)
	if err != nil {
		return nil, err
	}
	return joinStatus(kind, specPart, statusPart)
}

// specChanged reports whether anything outside metadata and status differs,
// which is what bumps generation.
func specChanged(a, b manifest.Object) (bool, error) {
	am, _, err := splitStatus(a)
	if err != nil {
		return false, err
	}
	bm, _, err := splitStatus(b)
	if err != nil {
		return false, err
	}
	delete(am, "metadata")
	delete(bm, "metadata")
	return !reflect.DeepEqual(am, bm), nil
}

// sameContent reports whether two objects are equal apart from resourceVersion,
// so a write that changes nothing can keep the resourceVersion, as the API
// server does for a no-op update.
func sameContent(a, b manifest.Object) (bool, error) {
	am, err := manifest.ToMap(withoutResourceVersion(a))
	if err != nil {
		return false, err
	}
	bm, err := manifest.ToMap(withoutResourceVersion(b))
	if err != nil {
		return false, err
	}
	return reflect.DeepEqual(am, bm), nil
}

func withoutResourceVersion(obj manifest.Object) manifest.Object {
	c := copyObject(obj)
	c.SetResourceVersion("")
	return c
}

// isEmptyStatus reports whether a status tree holds nothing: absent, or maps
// (possibly nested) with no values, as a new object's status encodes.
func isEmptyStatus(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, e := range t {
			if !isEmptyStatus(e) {
				return false
			}
		}
		return true
	default:
		return false
	}
}

// copyObject deep-copies an object so the caller and the store never share memory.
func copyObject(obj manifest.Object) manifest.Object {
	return obj.DeepCopyObject().(manifest.Object)
}
