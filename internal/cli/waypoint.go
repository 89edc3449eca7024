package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/translate"
)

const (
	labelRevision      = "istio.io/rev"
	defaultWaypoint    = "waypoint"
	meshListenerName   = "mesh"
	hboneProtocol      = "HBONE"
	hbonePort          = 15008
	defaultWaitTimeout = 90 * time.Second
)

var trafficTypes = []string{translate.TrafficAll, translate.TrafficNone, translate.TrafficService, translate.TrafficWorkload}

// waypointFlags are the flags istioctl's waypoint commands share.
type waypointFlags struct {
	name        string
	trafficType string
	revision    string
	enrollNS    bool
	overwrite   bool
	wait        bool
	waitTimeout time.Duration
	all         bool
	allNS       bool
	output      string
}

func newWaypointCmd(a *app) *cobra.Command {
	f := &waypointFlags{}
	cmd := &cobra.Command{
		Use:   "waypoint",
		Short: "Manage waypoint configuration (compatible with istioctl waypoint)",
		Long: `Manage waypoints: Gateways of class istio-waypoint that add L7 processing for the
services and workloads that opt in with the istio.io/use-waypoint label.`,
	}
	cmd.PersistentFlags().StringVar(&f.name, "name", defaultWaypoint, "name of the waypoint")
	cmd.AddCommand(
		newWaypointGenerateCmd(a, f),
		newWaypointApplyCmd(a, f),
		newWaypointDeleteCmd(a, f),
		newWaypointListCmd(a, f),
		newWaypointStatusCmd(a, f),
		newWaypointExplainCmd(a, f),
	)
	return cmd
}

func (f *waypointFlags) addTrafficType(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.trafficType, "for", "", "traffic the waypoint handles: "+strings.Join(trafficTypes, ", ")+" (label istio.io/waypoint-for; service when unset)")
}

func (f *waypointFlags) addRevision(cmd *cobra.Command, what string) {
	cmd.Flags().StringVarP(&f.revision, "revision", "r", "", what)
}

// waypointName is --name with istioctl's rules: empty means "waypoint"; "none" is reserved.
func (f *waypointFlags) waypointName() (string, error) {
	switch f.name {
	case "":
		return defaultWaypoint, nil
	case translate.TrafficNone:
		return "", fmt.Errorf("failed to create gateway: invalid name provided for waypoint, 'none' is a reserved value")
	}
	return f.name, nil
}

// buildGateway renders the Gateway that istioctl waypoint generate/apply writes.
func (a *app) buildGateway(f *waypointFlags) (*gwv1.Gateway, error) {
	name, err := f.waypointName()
	if err != nil {
		return nil, err
	}
	if f.trafficType != "" && !slices.Contains(trafficTypes, f.trafficType) {
		return nil, fmt.Errorf("failed to create gateway: invalid traffic type: %s. Valid options are: [%s]", f.trafficType, strings.Join(trafficTypes, " "))
	}
	gw := manifest.Gateway.New().(*gwv1.Gateway)
	gw.Name = name
	if a.nsSet {
		gw.Namespace = a.namespace
	}
	if f.trafficType != "" {
		gw.Labels = map[string]string{translate.LabelWaypointFor: f.trafficType}
	}
	if f.revision != "" {
		if gw.Labels == nil {
			gw.Labels = map[string]string{}
		}
		gw.Labels[labelRevision] = f.revision
	}
	gw.Spec = gwv1.GatewaySpec{
		GatewayClassName: translate.WaypointClassName,
		Listeners:        []gwv1.Listener{{Name: meshListenerName, Port: hbonePort, Protocol: hboneProtocol}},
	}
	return gw, nil
}

func newWaypointGenerateCmd(a *app, f *waypointFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "generate",
		Short:   "Print the Gateway manifest of a waypoint",
		Example: "  meshctl waypoint generate --for all -n default",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gw, err := a.buildGateway(f)
			if err != nil {
				return err
			}
			m, err := manifest.ToMap(gw)
			if err != nil {
				return err
			}
			delete(m, "status")
			data, err := sigsyaml.Marshal(m)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	f.addTrafficType(cmd)
	f.addRevision(cmd, "revision label (istio.io/rev) to set on the waypoint")
	return cmd
}

func newWaypointApplyCmd(a *app, f *waypointFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Create or update a waypoint, and optionally enroll its namespace",
		Example: `  meshctl waypoint apply -n default --enroll-namespace
  meshctl waypoint apply -n default --name reviews-svc-waypoint
  meshctl waypoint apply -n default --name reviews-v2-pod-waypoint --for workload`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runWaypointApply(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	f.addTrafficType(cmd)
	f.addRevision(cmd, "revision label (istio.io/rev) to set on the waypoint")
	cmd.Flags().BoolVar(&f.enrollNS, "enroll-namespace", false, "label the namespace with istio.io/use-waypoint=<name>")
	cmd.Flags().BoolVar(&f.overwrite, "overwrite", false, "with --enroll-namespace, replace a namespace's existing istio.io/use-waypoint label")
	cmd.Flags().BoolVarP(&f.wait, "wait", "w", false, "wait until the waypoint is programmed")
	cmd.Flags().DurationVar(&f.waitTimeout, "waypoint-timeout", defaultWaitTimeout, "how long --wait waits")
	return cmd
}

func (a *app) runWaypointApply(ctx context.Context, out, errOut io.Writer, f *waypointFlags) error {
	gw, err := a.buildGateway(f)
	if err != nil {
		return err
	}
	ns := a.ns()
	gw.Namespace = ns
	s, err := a.store()
	if err != nil {
		return err
	}
	nsObj, err := s.Get(ctx, manifest.Namespace, "", ns)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("namespace: %s not found", ns)
	} else if err != nil {
		return err
	}
	if f.enrollNS {
		// istioctl warns here and exits 0 having done nothing, which scripts take for
		// success; meshway fails instead (docs/compatibility.md).
		if cur := nsObj.GetLabels()[translate.LabelUseWaypoint]; cur != "" && cur != gw.Name && !f.overwrite {
			return fmt.Errorf("namespace (%s) already has an enrolled Waypoint (%s=%s); nothing was applied. Add the `--overwrite` flag to your apply command to enroll it with %s instead", ns, translate.LabelUseWaypoint, cur, gw.Name)
		}
		if nsObj.GetLabels()[translate.LabelDataplaneMode] != "ambient" {
			fmt.Fprintf(errOut, "⚠️ Warning: namespace is not enrolled in ambient. Consider running\t`meshctl label namespace %s %s=ambient`\n", ns, translate.LabelDataplaneMode)
		}
	}
	if err := applyWaypointGateway(ctx, s, gw, f.trafficType != "", f.revision != ""); missingResourceType(err) {
		return fmt.Errorf("missing Kubernetes Gateway CRDs need to be installed before applying a waypoint: %w", err)
	} else if err != nil {
		return fmt.Errorf("applying waypoint %s/%s: %w", ns, gw.Name, serverError(err))
	}
	fmt.Fprintf(out, "✅ waypoint %s/%s applied\n", ns, gw.Name)
	if f.wait {
		if err := a.waitProgrammed(ctx, s, ns, gw.Name, f.waitTimeout); err != nil {
			return err
		}
		fmt.Fprintf(out, "✅ waypoint %s/%s is ready!\n", ns, gw.Name)
	}
	if f.enrollNS {
		_, err := relabel(ctx, s, nsObj, []labelChange{{key: translate.LabelUseWaypoint, value: gw.Name}})
		if err != nil {
			return fmt.Errorf("labelling namespace %s: %w", ns, err)
		}
		fmt.Fprintf(out, "✅ namespace %s labeled with \"%s: %s\"\n", ns, translate.LabelUseWaypoint, gw.Name)
	}
	return nil
}

// applyWaypointGateway creates the Gateway, or updates the fields istioctl owns on
// an existing one (class, the mesh listener's port and protocol, and the labels
// given by flags), leaving fields others set, such as the listener's allowedRoutes.
func applyWaypointGateway(ctx context.Context, s store.Store, gw *gwv1.Gateway, setFor, setRev bool) error {
	return retryOnConflict(func() error {
		cur, err := s.Get(ctx, manifest.Gateway, gw.Namespace, gw.Name)
		if apierrors.IsNotFound(err) {
			_, err = s.Create(ctx, gw)
			return err
		}
		if err != nil {
			return err
		}
		existing := cur.(*gwv1.Gateway)
		existing.Spec.GatewayClassName = gw.Spec.GatewayClassName
		idx := slices.IndexFunc(existing.Spec.Listeners, func(l gwv1.Listener) bool { return l.Name == meshListenerName })
		if idx < 0 {
			existing.Spec.Listeners = append(existing.Spec.Listeners, gw.Spec.Listeners[0])
		} else {
			existing.Spec.Listeners[idx].Port = hbonePort
			existing.Spec.Listeners[idx].Protocol = hboneProtocol
		}
		if existing.Labels == nil {
			existing.Labels = map[string]string{}
		}
		if setFor {
			existing.Labels[translate.LabelWaypointFor] = gw.Labels[translate.LabelWaypointFor]
		}
		if setRev {
			existing.Labels[labelRevision] = gw.Labels[labelRevision]
		}
		_, err = s.Update(ctx, existing)
		return err
	})
}

// waypointGateways lists the Gateways of class istio-waypoint in ns ("" for all).
func waypointGateways(ctx context.Context, s store.Store, ns string, sel labels.Selector) ([]*gwv1.Gateway, int, error) {
	objs, err := s.List(ctx, manifest.Gateway, store.ListOptions{Namespace: ns, Labels: sel})
	if err != nil {
		return nil, 0, err
	}
	var out []*gwv1.Gateway
	for _, o := range objs {
		if gw := o.(*gwv1.Gateway); gw.Spec.GatewayClassName == translate.WaypointClassName {
			out = append(out, gw)
		}
	}
	return out, len(objs), nil
}

func newWaypointDeleteCmd(a *app, f *waypointFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete [NAME…]",
		Short: "Delete waypoints (the namespace's enrollment label is left in place)",
		Example: `  meshctl waypoint delete --all -n default
  meshctl waypoint delete reviews-svc-waypoint -n default`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runWaypointDelete(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cmd.Flags().Changed("name"), args, f)
		},
	}
	cmd.Flags().BoolVar(&f.all, "all", false, "delete every waypoint in the namespace")
	f.addRevision(cmd, "delete the waypoints of this revision (label istio.io/rev)")
	return cmd
}

func (a *app) runWaypointDelete(ctx context.Context, out, errOut io.Writer, nameSet bool, names []string, f *waypointFlags) error {
	if f.all && len(names) > 0 {
		return fmt.Errorf("cannot specify waypoint names when deleting all waypoints")
	}
	if len(names) == 0 && nameSet {
		names = []string{f.name}
	}
	if !f.all && len(names) == 0 && f.revision == "" {
		return fmt.Errorf("must specify a waypoint name or delete all using --all or delete specific revision using --revision")
	}
	s, err := a.store()
	if err != nil {
		return err
	}
	ns := a.ns()
	var victims []string
	var failed error
	if len(names) > 0 {
		for _, n := range names {
			obj, err := s.Get(ctx, manifest.Gateway, ns, n)
			if err == nil && obj.(*gwv1.Gateway).Spec.GatewayClassName == translate.WaypointClassName {
				victims = append(victims, n)
				continue
			}
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			if failed != nil {
				fmt.Fprintf(errOut, "Error: %v\n", failed)
			}
			failed = fmt.Errorf("waypoint %s/%s not found", ns, n)
		}
	} else {
		var sel labels.Selector
		if f.revision != "" {
			sel = labels.SelectorFromSet(labels.Set{labelRevision: f.revision})
		}
		gws, _, err := waypointGateways(ctx, s, ns, sel)
		if err != nil {
			return err
		}
		for _, gw := range gws {
			victims = append(victims, gw.Name)
		}
	}
	for _, n := range victims {
		if err := s.Delete(ctx, manifest.Gateway, ns, n, store.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting waypoint %s/%s: %w", ns, n, err)
		}
		fmt.Fprintf(out, "waypoint %s/%s deleted\n", ns, n)
	}
	return failed
}

// gatewayClasses indexes the stored GatewayClasses by name, for traffic-type defaults.
func gatewayClasses(ctx context.Context, s store.Store) (map[string]*gwv1.GatewayClass, error) {
	objs, err := s.List(ctx, manifest.GatewayClass, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]*gwv1.GatewayClass{}
	for _, o := range objs {
		out[o.GetName()] = o.(*gwv1.GatewayClass)
	}
	return out, nil
}

func newWaypointListCmd(a *app, f *waypointFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the waypoints in a namespace, with the traffic type in effect",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runWaypointList(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	cmd.Flags().BoolVarP(&f.allNS, "all-namespaces", "A", false, "list waypoints in all namespaces")
	return cmd
}

// istioTabWriter pads columns as istioctl's waypoint tables do.
func istioTabWriter(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 5, ' ', 0) }

func (a *app) runWaypointList(ctx context.Context, out io.Writer, f *waypointFlags) error {
	s, err := a.store()
	if err != nil {
		return err
	}
	ns := a.ns()
	if f.allNS {
		ns = ""
	}
	gws, _, err := waypointGateways(ctx, s, ns, nil)
	if err != nil {
		return err
	}
	if len(gws) == 0 {
		fmt.Fprintln(out, "No waypoints found.")
		return nil
	}
	classes, err := gatewayClasses(ctx, s)
	if err != nil {
		return err
	}
	w := istioTabWriter(out)
	header := "NAME\tREVISION\tTRAFFIC TYPE\tPROGRAMMED"
	if f.allNS {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(w, header)
	for _, gw := range gws {
		rev := gw.Labels[labelRevision]
		if rev == "" {
			rev = "default"
		}
		programmed := "False"
		for _, c := range gw.Status.Conditions {
			if c.Type == string(gwv1.GatewayConditionProgrammed) {
				programmed = string(c.Status)
			}
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s", gw.Name, rev, translate.TrafficTypeFor(gw, classes[string(gw.Spec.GatewayClassName)]), programmed)
		if f.allNS {
			row = gw.Namespace + "\t" + row
		}
		fmt.Fprintln(w, row)
	}
	return w.Flush()
}

func newWaypointStatusCmd(a *app, f *waypointFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether waypoints are programmed (with --wait, wait until they are)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runWaypointStatus(cmd.Context(), cmd.OutOrStdout(), cmd.Flags().Changed("name"), f)
		},
	}
	cmd.Flags().BoolVarP(&f.allNS, "all-namespaces", "A", false, "show waypoints in all namespaces")
	cmd.Flags().BoolVarP(&f.wait, "wait", "w", false, "wait until each waypoint is programmed (istioctl waits by default; meshctl prints once unless asked)")
	cmd.Flags().DurationVar(&f.waitTimeout, "waypoint-timeout", defaultWaitTimeout, "how long --wait waits")
	return cmd
}

func (a *app) runWaypointStatus(ctx context.Context, out io.Writer, nameSet bool, f *waypointFlags) error {
	s, err := a.store()
	if err != nil {
		return err
	}
	var gws []*gwv1.Gateway
	if nameSet && !f.allNS {
		obj, err := s.Get(ctx, manifest.Gateway, a.ns(), f.name)
		if apierrors.IsNotFound(err) || (err == nil && obj.(*gwv1.Gateway).Spec.GatewayClassName != translate.WaypointClassName) {
			return fmt.Errorf("waypoint %s/%s not found", a.ns(), f.name)
		} else if err != nil {
			return err
		}
		gws = []*gwv1.Gateway{obj.(*gwv1.Gateway)}
	} else {
		ns := a.ns()
		if f.allNS {
			ns = ""
		}
		if gws, _, err = waypointGateways(ctx, s, ns, nil); err != nil {
			return err
		}
	}
	if len(gws) == 0 {
		fmt.Fprintln(out, "No waypoints found.")
		return nil
	}
	w := istioTabWriter(out)
	header := "NAME\tSTATUS\tTYPE\tREASON\tMESSAGE"
	if f.allNS {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(w, header)
	var waitErr error
	for _, gw := range gws {
		if f.wait {
			if err := a.waitProgrammed(ctx, s, gw.Namespace, gw.Name, f.waitTimeout); err != nil {
				waitErr = errors.Join(waitErr, err)
			}
			if obj, err := s.Get(ctx, manifest.Gateway, gw.Namespace, gw.Name); err == nil {
				gw = obj.(*gwv1.Gateway)
			}
		}
		c := statusCondition(gw)
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", gw.Name, c.Status, c.Type, c.Reason, c.Message)
		if f.allNS {
			row = gw.Namespace + "\t" + row
		}
		fmt.Fprintln(w, row)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if waitErr != nil {
		return fmt.Errorf("failed to print waypoint status: %w", waitErr)
	}
	return nil
}

// statusCondition picks the condition `waypoint status` shows: Programmed when the
// Gateway has it, else its last condition, else what a new Gateway reports before a
// controller has seen it.
func statusCondition(gw *gwv1.Gateway) conditionRow {
	conds := gw.Status.Conditions
	for _, c := range conds {
		if c.Type == string(gwv1.GatewayConditionProgrammed) {
			return conditionRow{string(c.Status), c.Type, c.Reason, c.Message}
		}
	}
	if len(conds) > 0 {
		c := conds[len(conds)-1]
		return conditionRow{string(c.Status), c.Type, c.Reason, c.Message}
	}
	return conditionRow{"Unknown", string(gwv1.GatewayConditionProgrammed), "Pending", "Waiting for controller"}
}

type conditionRow struct{ Status, Type, Reason, Message string }

// waitProgrammed polls until the Gateway's Programmed condition is True.
func (a *app) waitProgrammed(ctx context.Context, s store.Store, ns, name string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(a.env.pollInterval())
	defer tick.Stop()
	for {
		obj, err := s.Get(ctx, manifest.Gateway, ns, name)
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if err == nil {
			if c := statusCondition(obj.(*gwv1.Gateway)); c.Type == string(gwv1.GatewayConditionProgrammed) && c.Status == "True" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("timed out while waiting for waypoint\t%s/%s", ns, name)
		case <-tick.C:
		}
	}
}
