package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/spf13/cobra"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/translate"
)

func newWaypointExplainCmd(a *app, f *waypointFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "explain KIND/NAME",
		Short: "Say which waypoint, if any, carries traffic to a service or workload, and why",
		Long: `explain resolves the istio.io/use-waypoint labels of a Service, Pod, ServiceEntry or
WorkloadEntry, its namespace and the waypoints, exactly as the control plane does, and
says separately for traffic addressed to the service and to each workload which
waypoint carries it (or that none does), the label and rule that decided, and every
trap that applies — before any traffic flows.`,
		Example: `  meshctl waypoint explain svc/reviews -n default
  meshctl waypoint explain pod/reviews-v2 -n default -o json
  meshctl waypoint explain serviceentry/istio-site`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runExplain(cmd.Context(), cmd.OutOrStdout(), args, f.output)
		},
	}
	cmd.Flags().StringVarP(&f.output, "output", "o", "", "output format: json (default: text)")
	return cmd
}

func (a *app) runExplain(ctx context.Context, out io.Writer, args []string, output string) error {
	if output != "" && output != "json" {
		return fmt.Errorf("unknown output format %q; use -o json or omit -o", output)
	}
	targets, err := parseTargets(args)
	if err != nil {
		return err
	}
	if len(targets) != 1 || targets[0].name == "" {
		return fmt.Errorf("explain takes one object, e.g. svc/reviews or pod reviews-v1")
	}
	t := targets[0]
	switch t.kind {
	case manifest.Service, manifest.Pod, manifest.ServiceEntry, manifest.WorkloadEntry:
	default:
		return fmt.Errorf("explain works on services, pods, serviceentries and workloadentries, not %s", t.kind.Resource)
	}
	s, err := a.store()
	if err != nil {
		return err
	}
	obj, err := s.Get(ctx, t.kind, a.ns(), t.name)
	if err != nil {
		return serverError(err)
	}
	binder, err := loadBinder(ctx, s)
	if err != nil {
		return err
	}
	var e translate.Explanation
	switch o := obj.(type) {
	case *corev1.Service:
		e = binder.ExplainService(o)
	case *corev1.Pod:
		e = binder.ExplainPod(o)
	case *istionetworkingv1.ServiceEntry:
		e = binder.ExplainServiceEntry(o)
	case *istionetworkingv1.WorkloadEntry:
		e = binder.ExplainWorkloadEntry(o)
	}
	if output == "json" {
		data, err := json.MarshalIndent(e, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", data)
		return err
	}
	writeExplanation(out, e)
	return nil
}

// loadBinder reads everything waypoint binding depends on.
func loadBinder(ctx context.Context, s store.Store) (*translate.Binder, error) {
	var in translate.BindingInputs
	for _, k := range []*manifest.Kind{manifest.Namespace, manifest.Service, manifest.Pod, manifest.ServiceEntry, manifest.WorkloadEntry, manifest.Gateway, manifest.GatewayClass} {
		objs, err := s.List(ctx, k, store.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", k.Resource, err)
		}
		for _, o := range objs {
			switch o := o.(type) {
			case *corev1.Namespace:
				in.Namespaces = append(in.Namespaces, o)
			case *corev1.Service:
				in.Services = append(in.Services, o)
			case *corev1.Pod:
				in.Pods = append(in.Pods, o)
			case *istionetworkingv1.ServiceEntry:
				in.ServiceEntries = append(in.ServiceEntries, o)
			case *istionetworkingv1.WorkloadEntry:
				in.WorkloadEntries = append(in.WorkloadEntries, o)
			case *gwv1.Gateway:
				in.Gateways = append(in.Gateways, o)
			case *gwv1.GatewayClass:
				in.GatewayClasses = append(in.GatewayClasses, o)
			}
		}
	}
	return translate.NewBinder(in), nil
}

func waypointOrNone(w *string) string {
	if w == nil {
		return "none (traffic bypasses waypoints)"
	}
	return "waypoint " + *w
}

func writeExplanation(out io.Writer, e translate.Explanation) {
	kind, rest, _ := strings.Cut(e.Target, "/")
	fmt.Fprintf(out, "%s %s\n", kind, rest)
	if e.Service != nil {
		fmt.Fprintf(out, "\nTraffic addressed to the service:\n  %s\n  because %s\n", waypointOrNone(e.Service.Waypoint), e.Service.Reason)
	}
	fmt.Fprintf(out, "\nTraffic addressed to the workload")
	if e.Service != nil {
		fmt.Fprintf(out, "s it selects")
	}
	fmt.Fprintln(out, ":")
	if len(e.Workloads) == 0 {
		fmt.Fprintln(out, "  (no workloads selected)")
	}
	for _, w := range e.Workloads {
		fmt.Fprintf(out, "  %s: %s\n    because %s\n", w.Name, waypointOrNone(w.Waypoint), w.Reason)
	}
	if len(e.Warnings) > 0 {
		fmt.Fprintln(out, "\nWarnings:")
		for _, w := range e.Warnings {
			fmt.Fprintf(out, "  ⚠️  %s\n", w)
		}
	}
}
