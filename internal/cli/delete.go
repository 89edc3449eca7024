package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

type deleteOptions struct {
	files          fileOptions
	selector       string
	all            bool
	ignoreNotFound bool
}

func newDeleteCmd(a *app) *cobra.Command {
	o := &deleteOptions{}
	cmd := &cobra.Command{
		Use:   "delete (-f FILE | KIND NAME… | KIND/NAME… | KIND -l SELECTOR | KIND --all)",
		Short: "Delete objects from the config store, as kubectl delete does",
		Example: `  meshctl delete -f bookinfo.yaml
  meshctl delete svc reviews
  meshctl delete gtw -l istio.io/waypoint-for=workload`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runDelete(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args, o)
		},
	}
	o.files.register(cmd, "delete")
	cmd.Flags().StringVarP(&o.selector, "selector", "l", "", "delete the objects of KIND matching this label selector")
	cmd.Flags().BoolVar(&o.all, "all", false, "delete every object of KIND in the namespace")
	cmd.Flags().BoolVar(&o.ignoreNotFound, "ignore-not-found", false, "treat a missing object as deleted")
	return cmd
}

func (a *app) runDelete(ctx context.Context, out, errOut io.Writer, args []string, o *deleteOptions) error {
	var victims []manifest.Object
	s, err := a.store()
	if err != nil {
		return err
	}
	switch {
	case len(o.files.files) > 0:
		if len(args) > 0 {
			return fmt.Errorf("give either -f or resource arguments, not both")
		}
		docs, err := a.load(&o.files)
		if err != nil {
			return err
		}
		for _, d := range docs {
			victims = append(victims, d.Object)
		}
	default:
		targets, err := parseTargets(args)
		if err != nil {
			return err
		}
		sel, err := parseSelector(o.selector)
		if err != nil {
			return err
		}
		// Named objects need not exist here: each missing one is reported as kubectl does.
		victims, err = a.selectObjects(ctx, s, targets, selection{labels: sel, all: o.all})
		if err != nil {
			return err
		}
		if len(victims) == 0 {
			fmt.Fprintf(errOut, "No resources found\n")
			return nil
		}
	}
	var last error
	// Namespaces this command deleted. On the embedded store their contents go
	// with them at once (on Kubernetes, a little later), so a manifest listing a
	// namespace before its objects finds them gone: that is their deletion too.
	deletedNamespaces := map[string]bool{}
	for _, v := range victims {
		k := manifest.MustKindOf(v)
		err := s.Delete(ctx, k, v.GetNamespace(), v.GetName(), store.DeleteOptions{})
		switch {
		case err == nil:
			fmt.Fprintf(out, "%s %q deleted\n", k.QualifiedSingular(), v.GetName())
			if k == manifest.Namespace {
				deletedNamespaces[v.GetName()] = true
			}
		case apierrors.IsNotFound(err) && deletedNamespaces[v.GetNamespace()]:
			fmt.Fprintf(out, "%s %q deleted\n", k.QualifiedSingular(), v.GetName())
		case apierrors.IsNotFound(err) && o.ignoreNotFound:
		default:
			if last != nil {
				fmt.Fprintln(errOut, serverError(last))
			}
			last = err
		}
	}
	if last != nil {
		return serverError(last)
	}
	return nil
}
