package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// target is one object named on the command line, or all objects of a kind when name is empty.
type target struct {
	kind *manifest.Kind
	name string
}

// parseTargets reads kubectl's argument forms: "KIND NAME…", "KIND[,KIND…]" and "KIND/NAME…".
func parseTargets(args []string) ([]target, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("you must specify the type of resource, e.g. %q; known types: %s", "svc", strings.Join(manifest.ResourceNames(), ", "))
	}
	if strings.Contains(args[0], "/") {
		var out []target
		for _, a := range args {
			kindName, name, ok := strings.Cut(a, "/")
			if !ok || name == "" {
				return nil, fmt.Errorf("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'meshctl get svc/reviews' instead of 'meshctl get svc reviews'): %q", a)
			}
			k, err := manifest.Lookup(kindName)
			if err != nil {
				return nil, err
			}
			out = append(out, target{kind: k, name: name})
		}
		return out, nil
	}
	var kinds []*manifest.Kind
	for _, kn := range strings.Split(args[0], ",") {
		k, err := manifest.Lookup(kn)
		if err != nil {
			return nil, err
		}
		kinds = append(kinds, k)
	}
	names := args[1:]
	if len(names) > 0 && len(kinds) > 1 {
		return nil, fmt.Errorf("names cannot be given with several resource types; use TYPE/NAME for each")
	}
	var out []target
	for _, k := range kinds {
		if len(names) == 0 {
			out = append(out, target{kind: k})
		}
		for _, n := range names {
			out = append(out, target{kind: k, name: n})
		}
	}
	return out, nil
}

func parseSelector(s string) (labels.Selector, error) {
	if s == "" {
		return nil, nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid label selector %q: %w", s, err)
	}
	return sel, nil
}

// missingResourceType reports an error meaning the cluster does not serve the
// resource type at all — its CRD is not installed.
func missingResourceType(err error) bool {
	return apierrors.IsNotFound(err) && strings.Contains(err.Error(), "the server could not find the requested resource")
}

// serverError renders a store error as kubectl shows API errors.
func serverError(err error) error {
	var api *apiError
	if errors.As(err, &api) {
		return err
	}
	if missingResourceType(err) {
		return fmt.Errorf("the server doesn't have a resource type %q (%w); install its CRDs", resourceOf(err), err)
	}
	if apierrors.ReasonForError(err) != "" {
		return &apiError{err: err}
	}
	return err
}

// apiError prints as kubectl prints an error from the API server; as a command's
// final error it is shown without meshctl's "Error: " prefix, as kubectl shows it.
type apiError struct{ err error }

func (e *apiError) Error() string {
	return fmt.Sprintf("Error from server (%s): %v", apierrors.ReasonForError(e.err), e.err)
}

func (e *apiError) Unwrap() error { return e.err }

// resourceOf names the resource an API error is about, e.g. "gateways".
func resourceOf(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Details != nil {
		if d := st.Status().Details; d.Kind != "" {
			return d.Kind
		}
	}
	return "unknown"
}

// selection is how a command picks objects beyond the names it was given.
type selection struct {
	labels        labels.Selector
	all           bool // --all: every object of the kind
	allNamespaces bool
	// mustExist fetches named objects, failing on the first missing one; otherwise
	// a named object is returned as a stub holding only its identity.
	mustExist bool
}

// selectObjects resolves targets: by name, or by label selector or --all for a
// bare kind, in the command's namespace unless allNamespaces.
func (a *app) selectObjects(ctx context.Context, s store.Store, targets []target, sel selection) ([]manifest.Object, error) {
	var objs []manifest.Object
	for _, t := range targets {
		if t.name != "" {
			if sel.labels != nil || sel.all {
				return nil, fmt.Errorf("names cannot be combined with --selector or --all")
			}
			if !sel.mustExist {
				obj := t.kind.New()
				obj.SetName(t.name)
				if t.kind.Namespaced {
					obj.SetNamespace(a.ns())
				}
				objs = append(objs, obj)
				continue
			}
			obj, err := s.Get(ctx, t.kind, a.ns(), t.name)
			if err != nil {
				return nil, serverError(err)
			}
			objs = append(objs, obj)
			continue
		}
		if sel.labels == nil && !sel.all {
			return nil, fmt.Errorf("resource(s) were provided, but no name was specified; give a name, -l SELECTOR or --all")
		}
		opts := store.ListOptions{Labels: sel.labels}
		if !sel.allNamespaces {
			opts.Namespace = a.ns()
		}
		found, err := s.List(ctx, t.kind, opts)
		if err != nil {
			return nil, err
		}
		objs = append(objs, found...)
	}
	return objs, nil
}

type getOptions struct {
	output        string
	allNamespaces bool
	selector      string
	labelColumns  []string
	showLabels    bool
	managedFields bool
}

func newGetCmd(a *app) *cobra.Command {
	o := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get KIND[,KIND…] [NAME…] | KIND/NAME…",
		Short: "Display objects from the config store, as kubectl get does",
		Example: `  meshctl get ns -L istio.io/dataplane-mode
  meshctl get svc -n default -o wide
  meshctl get gtw waypoint -o yaml
  meshctl get pods -l app=reviews -A`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runGet(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "", "output format: yaml, json, wide or name")
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list objects across all namespaces")
	f.StringVarP(&o.selector, "selector", "l", "", "label selector, e.g. app=reviews,version!=v1")
	f.StringSliceVarP(&o.labelColumns, "label-columns", "L", nil, "label keys to show as columns")
	f.BoolVar(&o.showLabels, "show-labels", false, "show all labels as the last column")
	f.BoolVar(&o.managedFields, "show-managed-fields", false, "keep metadata.managedFields in -o yaml and -o json (hidden by default, as kubectl does)")
	return cmd
}

func (a *app) runGet(ctx context.Context, out, errOut io.Writer, args []string, o *getOptions) error {
	switch o.output {
	case "", "wide", "yaml", "json", "name":
	default:
		return fmt.Errorf("unable to match a printer suitable for the output format %q, allowed formats are: json,name,wide,yaml", o.output)
	}
	targets, err := parseTargets(args)
	if err != nil {
		return err
	}
	sel, err := parseSelector(o.selector)
	if err != nil {
		return err
	}
	s, err := a.store()
	if err != nil {
		return err
	}
	var objs []manifest.Object
	byKind := map[*manifest.Kind][]manifest.Object{}
	var kindOrder []*manifest.Kind
	var notFound []error
	for _, t := range targets {
		var found []manifest.Object
		if t.name != "" {
			obj, err := s.Get(ctx, t.kind, a.ns(), t.name)
			if apierrors.IsNotFound(err) {
				notFound = append(notFound, err)
				continue
			}
			if err != nil {
				return err
			}
			found = []manifest.Object{obj}
		} else {
			opts := store.ListOptions{Labels: sel}
			if !o.allNamespaces {
				opts.Namespace = a.ns()
			}
			found, err = s.List(ctx, t.kind, opts)
			if err != nil {
				return err
			}
		}
		if _, seen := byKind[t.kind]; !seen {
			kindOrder = append(kindOrder, t.kind)
		}
		byKind[t.kind] = append(byKind[t.kind], found...)
		objs = append(objs, found...)
	}
	if err := a.printObjects(out, errOut, objs, kindOrder, byKind, o, targets[0].name == ""); err != nil {
		return err
	}
	if len(notFound) > 0 {
		for _, e := range notFound[:len(notFound)-1] {
			fmt.Fprintln(errOut, serverError(e))
		}
		return serverError(notFound[len(notFound)-1])
	}
	return nil
}

func (a *app) printObjects(out, errOut io.Writer, objs []manifest.Object, kinds []*manifest.Kind, byKind map[*manifest.Kind][]manifest.Object, o *getOptions, listing bool) error {
	switch o.output {
	case "yaml", "json":
		return printStructured(out, o.output, objs, listing, o.managedFields)
	case "name":
		for _, obj := range objs {
			fmt.Fprintf(out, "%s/%s\n", manifest.MustKindOf(obj).QualifiedSingular(), obj.GetName())
		}
		return nil
	}
	if len(objs) == 0 {
		if listing {
			if o.allNamespaces || (len(kinds) > 0 && !kinds[0].Namespaced) {
				fmt.Fprintln(errOut, "No resources found")
			} else {
				fmt.Fprintf(errOut, "No resources found in %s namespace.\n", a.ns())
			}
		}
		return nil
	}
	first := true
	for _, k := range kinds {
		if len(byKind[k]) == 0 {
			continue
		}
		if !first {
			fmt.Fprintln(out)
		}
		first = false
		err := printTable(out, k, byKind[k], tableOptions{
			allNamespaces: o.allNamespaces, wide: o.output == "wide",
			labelColumns: o.labelColumns, showLabels: o.showLabels, now: a.env.now(),
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// printStructured prints one object as itself, several (or a listing) as a v1 List, as kubectl does.
func printStructured(out io.Writer, format string, objs []manifest.Object, listing, managedFields bool) error {
	toMap := func(obj manifest.Object) (map[string]any, error) {
		m, err := manifest.ToMap(obj)
		if err == nil && !managedFields {
			if meta, ok := m["metadata"].(map[string]any); ok {
				delete(meta, "managedFields")
			}
		}
		return m, err
	}
	var doc any
	if len(objs) == 1 && !listing {
		m, err := toMap(objs[0])
		if err != nil {
			return err
		}
		doc = m
	} else {
		items := make([]any, 0, len(objs))
		for _, obj := range objs {
			m, err := toMap(obj)
			if err != nil {
				return err
			}
			items = append(items, m)
		}
		doc = map[string]any{"apiVersion": "v1", "kind": "List", "items": items, "metadata": map[string]any{"resourceVersion": ""}}
	}
	if format == "json" {
		data, err := json.MarshalIndent(doc, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", data)
		return err
	}
	data, err := sigsyaml.Marshal(doc)
	if err != nil {
		return err
	}
	_, err = out.Write(data)
	return err
}
