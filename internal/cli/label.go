package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

type labelOptions struct {
	selector      string
	all           bool
	overwrite     bool
	allNamespaces bool
}

func newLabelCmd(a *app) *cobra.Command {
	o := &labelOptions{}
	cmd := &cobra.Command{
		Use:   "label KIND (NAME… | -l SELECTOR | --all) KEY=VALUE… KEY-…",
		Short: "Add, change or remove labels on objects in the config store, as kubectl label does",
		Example: `  meshctl label ns default istio.io/use-waypoint=waypoint
  meshctl label service reviews istio.io/use-waypoint=reviews-svc-waypoint
  meshctl label pod -l version=v2,app=reviews istio.io/use-waypoint=reviews-v2-pod-waypoint
  meshctl label ns default istio.io/use-waypoint-`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runLabel(cmd.Context(), cmd.OutOrStdout(), args, o)
		},
	}
	cmd.Flags().StringVarP(&o.selector, "selector", "l", "", "label the objects of KIND matching this selector")
	cmd.Flags().BoolVar(&o.all, "all", false, "label every object of KIND in the namespace")
	cmd.Flags().BoolVar(&o.overwrite, "overwrite", false, "allow changing the value of a label that is already set")
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "with -l or --all, select across all namespaces")
	return cmd
}

// labelChange is one KEY=VALUE (set) or KEY- (remove) argument.
type labelChange struct {
	key, value string
	remove     bool
}

func parseLabelChanges(args []string) (resources []string, changes []labelChange, err error) {
	for _, arg := range args {
		switch {
		case strings.Contains(arg, "="):
			key, value, _ := strings.Cut(arg, "=")
			if err := manifest.ValidateLabels(map[string]string{key: value}); err != nil {
				return nil, nil, fmt.Errorf("invalid label %q: %w", arg, err)
			}
			changes = append(changes, labelChange{key: key, value: value})
		case strings.HasSuffix(arg, "-"): // no object name ends in "-", so this is a removal
			changes = append(changes, labelChange{key: strings.TrimSuffix(arg, "-"), remove: true})
		case len(changes) > 0:
			return nil, nil, fmt.Errorf("resource names must come before labels: %q", arg)
		default:
			resources = append(resources, arg)
		}
	}
	if len(changes) == 0 {
		return nil, nil, fmt.Errorf("at least one label update is required, e.g. istio.io/use-waypoint=waypoint or istio.io/use-waypoint-")
	}
	return resources, changes, nil
}

func (a *app) runLabel(ctx context.Context, out io.Writer, args []string, o *labelOptions) error {
	resources, changes, err := parseLabelChanges(args)
	if err != nil {
		return err
	}
	targets, err := parseTargets(resources)
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
	// Resolve every target first: a missing object fails the command before any write.
	objs, err := a.selectObjects(ctx, s, targets, selection{labels: sel, all: o.all, allNamespaces: o.allNamespaces, mustExist: true})
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return fmt.Errorf("no objects passed to label")
	}
	for _, obj := range objs {
		if !o.overwrite {
			for _, c := range changes {
				if v, ok := obj.GetLabels()[c.key]; ok && !c.remove && v != c.value {
					return fmt.Errorf("'%s' already has a value (%s), and --overwrite is false", c.key, v)
				}
			}
		}
	}
	for _, obj := range objs {
		verb, err := relabel(ctx, s, obj, changes)
		if err != nil {
			return fmt.Errorf("labelling %s: %w", objectRef(obj), serverError(err))
		}
		fmt.Fprintf(out, "%s %s\n", objectRef(obj), verb)
	}
	return nil
}

// relabel applies the changes with a conflict-checked update and says what it did
// in kubectl's words: labeled, unlabeled or not labeled.
func relabel(ctx context.Context, s store.Store, obj manifest.Object, changes []labelChange) (string, error) {
	k := manifest.MustKindOf(obj)
	verb := "not labeled"
	err := retryOnConflict(func() error {
		current, err := s.Get(ctx, k, obj.GetNamespace(), obj.GetName())
		if err != nil {
			return err
		}
		next := maps.Clone(current.GetLabels())
		if next == nil {
			next = map[string]string{}
		}
		added, removed := false, false
		for _, c := range changes {
			old, had := next[c.key]
			switch {
			case c.remove && had:
				delete(next, c.key)
				removed = true
			case !c.remove && (!had || old != c.value):
				next[c.key] = c.value
				added = true
			}
		}
		switch {
		case added:
			verb = "labeled"
		case removed:
			verb = "unlabeled"
		default:
			verb = "not labeled"
			return nil
		}
		current.SetLabels(next)
		_, err = s.Update(ctx, current)
		return err
	})
	return verb, err
}
