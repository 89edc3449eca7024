package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshway/meshway/internal/crd"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// lastAppliedAnnotation is kubectl's record of what `apply` last wrote, so a label
// removed from the manifest is removed from the object while labels set by
// `label` are kept — and so kubectl and meshctl can be mixed on a cluster.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

type fileOptions struct {
	files     []string
	recursive bool
}

func (f *fileOptions) register(cmd *cobra.Command, verb string) {
	cmd.Flags().StringSliceVarP(&f.files, "filename", "f", nil, "file, directory or - (stdin) with the manifests to "+verb)
	cmd.Flags().BoolVarP(&f.recursive, "recursive", "R", false, "read directories given with -f recursively")
}

// load reads every manifest and defaults namespaces; it fails before anything is
// written when any document is bad, so a malformed manifest changes nothing.
func (a *app) load(f *fileOptions) ([]manifest.Document, error) {
	if len(f.files) == 0 {
		return nil, fmt.Errorf("must specify one of -f or --filename")
	}
	docs, err := manifest.Load(f.files, a.env.Stdin, f.recursive)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no objects passed to apply")
	}
	for _, d := range docs {
		k := manifest.MustKindOf(d.Object)
		if !k.Namespaced {
			continue
		}
		switch ns := d.Object.GetNamespace(); {
		case ns == "":
			d.Object.SetNamespace(a.ns())
		case a.nsSet && ns != a.namespace:
			return nil, &manifest.Error{Source: d.Source, Document: d.Index, Line: d.Line, Object: k.Kind + " " + d.Object.GetName(), Field: "metadata.namespace",
				Err: fmt.Errorf("the namespace from the provided object %q does not match the namespace %q; pass --namespace=%s or remove one of them", ns, a.namespace, ns)}
		}
	}
	return docs, nil
}

// checkNamespaces refuses the whole set when an object's namespace neither exists
// nor is created by the set, so nothing is half-applied.
func checkNamespaces(ctx context.Context, s store.Store, docs []manifest.Document) error {
	creating := map[string]bool{}
	for _, d := range docs {
		if manifest.MustKindOf(d.Object) == manifest.Namespace {
			creating[d.Object.GetName()] = true
		}
	}
	checked := map[string]bool{}
	for _, d := range docs {
		ns := d.Object.GetNamespace()
		if ns == "" || creating[ns] || checked[ns] {
			continue
		}
		if _, err := s.Get(ctx, manifest.Namespace, "", ns); apierrors.IsNotFound(err) {
			return &manifest.Error{Source: d.Source, Document: d.Index, Line: d.Line, Object: manifest.MustKindOf(d.Object).Kind + " " + ns + "/" + d.Object.GetName(), Field: "metadata.namespace",
				Err: fmt.Errorf("namespace %q not found; create it first (meshctl apply a Namespace manifest), nothing was applied", ns)}
		} else if err != nil {
			return err
		}
		checked[ns] = true
	}
	return nil
}

func newApplyCmd(a *app) *cobra.Command {
	f := &fileOptions{}
	var subresource string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update objects in the config store from manifests, as kubectl apply does",
		Example: `  meshctl apply -f bookinfo.yaml
  meshctl apply -f manifests/
  cat gateway.yaml | meshctl apply -f -
  meshctl apply --subresource=status -f waypoint-status.yaml   # write only the status of existing objects`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch subresource {
			case "":
				return a.runApply(cmd.Context(), cmd.OutOrStdout(), f)
			case "status":
				return a.runApplyStatus(cmd.Context(), cmd.OutOrStdout(), f)
			default:
				return fmt.Errorf("--subresource=%s is not supported; the only subresource is status", subresource)
			}
		},
	}
	f.register(cmd, "apply")
	cmd.Flags().StringVar(&subresource, "subresource", "", "write only this subresource of existing objects: status")
	return cmd
}

func (a *app) runApply(ctx context.Context, out io.Writer, f *fileOptions) error {
	docs, err := a.load(f)
	if err != nil {
		return err
	}
	s, err := a.store()
	if err != nil {
		return err
	}
	if err := checkNamespaces(ctx, s, docs); err != nil {
		return err
	}
	// As kubectl: an object the server refuses is reported and the others are
	// still applied; the command fails at the end.
	failed := false
	for _, d := range docs {
		result, err := applyObject(ctx, s, d.Object, d.Raw)
		if err != nil {
			if apierrors.ReasonForError(err) == "" {
				return fmt.Errorf("applying %s: %w", describeDoc(d), err) // not the server's answer: stop
			}
			failed = true
			printError(a.env.Stderr, refused(d, err))
			continue
		}
		fmt.Fprintf(out, "%s %s\n", objectRef(d.Object), result)
	}
	if failed {
		return &exitError{}
	}
	return nil
}

// refused is the error for a document the server refused: where it is, which
// object, and the server's answer — for an invalid object, one line per field
// at fault, as kubectl prints them.
func refused(d manifest.Document, err error) error {
	k := manifest.MustKindOf(d.Object)
	what := k.Kind + " " + d.Object.GetName()
	if k.Namespaced {
		what = k.Kind + " " + d.Object.GetNamespace() + "/" + d.Object.GetName()
	}
	return &manifest.Error{Source: d.Source, Document: d.Index, Line: d.Line, Object: what, Err: invalidFields(err)}
}

// invalidFields renders an Invalid API error as kubectl does ("The HTTPRoute
// "reviews" is invalid:" and a line per cause); other errors as
// serverError does.
func invalidFields(err error) error {
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Details == nil || len(status.Status().Details.Causes) == 0 {
		return serverError(err)
	}
	d := status.Status().Details
	// In the order the embedded store reports them (an API server's order
	// changes from one request to the next).
	errs := make(field.ErrorList, len(d.Causes))
	for i, c := range d.Causes {
		errs[i] = &field.Error{Field: c.Field, Detail: c.Message}
	}
	crd.SortErrors(errs)
	var b strings.Builder
	fmt.Fprintf(&b, "The %s %q is invalid:", d.Kind, d.Name)
	for _, e := range errs {
		fmt.Fprintf(&b, "\n* %s: %s", e.Field, e.Detail)
	}
	return errors.New(b.String())
}

func describeDoc(d manifest.Document) string {
	return fmt.Sprintf("%s document %d (%s %s)", d.Source, d.Index, manifest.MustKindOf(d.Object).Kind, d.Object.GetName())
}

// objectRef is kubectl's "resource.group/name" form used in its messages.
func objectRef(obj manifest.Object) string {
	return manifest.MustKindOf(obj).QualifiedSingular() + "/" + obj.GetName()
}

// applyObject creates obj or merges it into the stored object: spec and the other
// top-level fields are replaced; labels and annotations are merged three-way
// against the last-applied record. It returns "created", "configured" or "unchanged".
func applyObject(ctx context.Context, s store.Store, desired manifest.Object, raw []byte) (string, error) {
	k := manifest.MustKindOf(desired)
	applied, err := lastApplied(desired, raw)
	if err != nil {
		return "", err
	}
	result := ""
	err = retryOnConflict(func() error {
		current, err := s.Get(ctx, k, desired.GetNamespace(), desired.GetName())
		if apierrors.IsNotFound(err) {
			obj := desired.DeepCopyObject().(manifest.Object)
			obj.SetAnnotations(withAnnotation(obj.GetAnnotations(), lastAppliedAnnotation, applied))
			_, err = s.Create(ctx, obj)
			result = "created"
			return err
		}
		if err != nil {
			return err
		}
		next, err := mergeApply(k, current, desired, applied)
		if err != nil {
			return err
		}
		if sameContent(current, next) {
			result = "unchanged"
			return nil
		}
		_, err = s.Update(ctx, next)
		result = "configured"
		return err
	})
	return result, err
}

// lastApplied is the manifest as written, with its namespace filled in and
// without the record itself — byte for byte what kubectl records (including its
// empty "annotations":{}), so kubectl apply after meshctl apply is "unchanged".
func lastApplied(desired manifest.Object, raw []byte) (string, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", fmt.Errorf("re-reading the manifest of %s: %w", objectRef(desired), err)
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		if ns := desired.GetNamespace(); ns != "" {
			md["namespace"] = ns
		}
		ann, _ := md["annotations"].(map[string]any)
		if ann == nil {
			ann = map[string]any{}
		}
		delete(ann, lastAppliedAnnotation)
		md["annotations"] = ann
	}
	data, err := json.Marshal(m)
	return string(data) + "\n", err // kubectl's encoder ends the record with a newline
}

func withAnnotation(a map[string]string, key, value string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	out[key] = value
	return out
}

// mergeApply builds the object apply writes over current.
func mergeApply(k *manifest.Kind, current, desired manifest.Object, applied string) (manifest.Object, error) {
	var prev struct {
		Metadata struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if raw := current.GetAnnotations()[lastAppliedAnnotation]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &prev) // a corrupt record only loses the removal of stale keys
	}
	desiredMap, err := manifest.ToMap(desired)
	if err != nil {
		return nil, err
	}
	currentMap, err := manifest.ToMap(current)
	if err != nil {
		return nil, err
	}
	for key := range desiredMap {
		if key != "metadata" && key != "status" {
			currentMap[key] = desiredMap[key]
		}
	}
	for key := range currentMap {
		if _, ok := desiredMap[key]; !ok && key != "metadata" && key != "status" && key != "apiVersion" && key != "kind" {
			delete(currentMap, key)
		}
	}
	next, err := manifest.FromMap(k, currentMap)
	if err != nil {
		return nil, err
	}
	next.SetLabels(merge3(current.GetLabels(), prev.Metadata.Labels, desired.GetLabels()))
	ann := merge3(current.GetAnnotations(), prev.Metadata.Annotations, desired.GetAnnotations())
	next.SetAnnotations(withAnnotation(ann, lastAppliedAnnotation, applied))
	if len(desired.GetOwnerReferences()) > 0 {
		next.SetOwnerReferences(desired.GetOwnerReferences())
	}
	return next, nil
}

// merge3 keeps keys others set, drops keys the last apply set but this one does
// not, and sets every key this apply sets.
func merge3(current, lastApplied, desired map[string]string) map[string]string {
	out := maps.Clone(current)
	if out == nil {
		out = map[string]string{}
	}
	for k := range lastApplied {
		if _, keep := desired[k]; !keep {
			delete(out, k)
		}
	}
	maps.Copy(out, desired)
	if len(out) == 0 {
		return nil
	}
	return out
}

// sameContent compares what apply controls: everything but server-set metadata and status.
func sameContent(a, b manifest.Object) bool {
	am, err1 := manifest.ToMap(a)
	bm, err2 := manifest.ToMap(b)
	if err1 != nil || err2 != nil {
		return false
	}
	for _, m := range []map[string]any{am, bm} {
		delete(m, "status")
		if md, ok := m["metadata"].(map[string]any); ok {
			for _, f := range []string{"resourceVersion", "generation", "uid", "creationTimestamp", "managedFields"} {
				delete(md, f)
			}
		}
	}
	return reflect.DeepEqual(am, bm)
}

func (a *app) runApplyStatus(ctx context.Context, out io.Writer, f *fileOptions) error {
	docs, err := a.load(f)
	if err != nil {
		return err
	}
	s, err := a.store()
	if err != nil {
		return err
	}
	// Every target must exist before any status is written.
	for _, d := range docs {
		k := manifest.MustKindOf(d.Object)
		if _, err := s.Get(ctx, k, d.Object.GetNamespace(), d.Object.GetName()); err != nil {
			return fmt.Errorf("%s: %w; --subresource=status only writes the status of existing objects", describeDoc(d), serverError(err))
		}
	}
	for _, d := range docs {
		k := manifest.MustKindOf(d.Object)
		err := retryOnConflict(func() error {
			current, err := s.Get(ctx, k, d.Object.GetNamespace(), d.Object.GetName())
			if err != nil {
				return err
			}
			desired, err := manifest.ToMap(d.Object)
			if err != nil {
				return err
			}
			cur, err := manifest.ToMap(current)
			if err != nil {
				return err
			}
			cur["status"] = desired["status"]
			next, err := manifest.FromMap(k, cur)
			if err != nil {
				return err
			}
			_, err = s.UpdateStatus(ctx, next)
			return err
		})
		if err != nil {
			return fmt.Errorf("writing status of %s: %w", describeDoc(d), err)
		}
		fmt.Fprintf(out, "%s configured\n", objectRef(d.Object))
	}
	return nil
}

// retryOnConflict runs a read-modify-write until it does not race another writer.
func retryOnConflict(fn func() error) error {
	var err error
	for range 10 {
		if err = fn(); !apierrors.IsConflict(err) {
			return err
		}
	}
	return err
}
