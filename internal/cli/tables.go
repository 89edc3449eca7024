package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istiosecurityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/manifest"
)

// kubectlTabWriter pads columns as kubectl's printers do.
func kubectlTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 6, 4, 3, ' ', 0)
}

// columns are a kind's default table columns (after NAME, before AGE), as kubectl prints them.
type columns struct {
	headers []string
	wide    []string // extra columns for -o wide
	row     func(obj manifest.Object) (cols, wide []string)
}

var none = "<none>"

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func tableColumns(k *manifest.Kind) columns {
	switch k {
	case manifest.Namespace:
		return columns{headers: []string{"STATUS"}, row: func(o manifest.Object) ([]string, []string) {
			return []string{string(o.(*corev1.Namespace).Status.Phase)}, nil
		}}
	case manifest.Service:
		return columns{headers: []string{"TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"}, wide: []string{"SELECTOR"}, row: serviceRow}
	case manifest.Pod:
		return columns{headers: []string{"READY", "STATUS", "RESTARTS"}, wide: []string{"IP", "NODE"}, row: podRow}
	case manifest.Deployment:
		return columns{headers: []string{"READY", "UP-TO-DATE", "AVAILABLE"}, row: func(o manifest.Object) ([]string, []string) {
			d := o.(*appsv1.Deployment)
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			return []string{fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, want), itoa(d.Status.UpdatedReplicas), itoa(d.Status.AvailableReplicas)}, nil
		}}
	case manifest.HorizontalPodAutoscaler:
		return columns{headers: []string{"REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS"}, row: hpaRow}
	case manifest.PodDisruptionBudget:
		return columns{headers: []string{"MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS"}, row: func(o manifest.Object) ([]string, []string) {
			pdb := o.(*policyv1.PodDisruptionBudget)
			orNA := func(v *intstr.IntOrString) string {
				if v == nil {
					return "N/A"
				}
				return v.String()
			}
			return []string{orNA(pdb.Spec.MinAvailable), orNA(pdb.Spec.MaxUnavailable), itoa(pdb.Status.DisruptionsAllowed)}, nil
		}}
	case manifest.ServiceAccount:
		return columns{headers: []string{"SECRETS"}, row: func(o manifest.Object) ([]string, []string) {
			return []string{strconv.Itoa(len(o.(*corev1.ServiceAccount).Secrets))}, nil
		}}
	case manifest.ConfigMap:
		return columns{headers: []string{"DATA"}, row: func(o manifest.Object) ([]string, []string) {
			cm := o.(*corev1.ConfigMap)
			return []string{strconv.Itoa(len(cm.Data) + len(cm.BinaryData))}, nil
		}}
	case manifest.Gateway:
		return columns{headers: []string{"CLASS", "ADDRESS", "PROGRAMMED"}, row: func(o manifest.Object) ([]string, []string) {
			gw := o.(*gwv1.Gateway)
			addr := ""
			if len(gw.Status.Addresses) > 0 {
				addr = gw.Status.Addresses[0].Value
			}
			return []string{string(gw.Spec.GatewayClassName), addr, conditionStatus(gw.Status.Conditions, "Programmed")}, nil
		}}
	case manifest.GatewayClass:
		return columns{headers: []string{"CONTROLLER", "ACCEPTED"}, row: func(o manifest.Object) ([]string, []string) {
			gc := o.(*gwv1.GatewayClass)
			return []string{string(gc.Spec.ControllerName), conditionStatus(gc.Status.Conditions, "Accepted")}, nil
		}}
	case manifest.HTTPRoute:
		return columns{headers: []string{"HOSTNAMES"}, row: func(o manifest.Object) ([]string, []string) {
			return []string{hostnames(o.(*gwv1.HTTPRoute).Spec.Hostnames)}, nil
		}}
	case manifest.GRPCRoute:
		return columns{headers: []string{"HOSTNAMES"}, row: func(o manifest.Object) ([]string, []string) {
			return []string{hostnames(o.(*gwv1.GRPCRoute).Spec.Hostnames)}, nil
		}}
	case manifest.ServiceEntry:
		return columns{headers: []string{"HOSTS", "LOCATION", "RESOLUTION"}, row: func(o manifest.Object) ([]string, []string) {
			se := o.(*istionetworkingv1.ServiceEntry)
			return []string{"[" + strings.Join(se.Spec.GetHosts(), ",") + "]", se.Spec.GetLocation().String(), se.Spec.GetResolution().String()}, nil
		}}
	case manifest.WorkloadEntry:
		return columns{headers: []string{"ADDRESS"}, row: func(o manifest.Object) ([]string, []string) {
			return []string{o.(*istionetworkingv1.WorkloadEntry).Spec.GetAddress()}, nil
		}}
	case manifest.AuthorizationPolicy:
		return columns{headers: []string{"ACTION"}, row: func(o manifest.Object) ([]string, []string) {
			return []string{o.(*istiosecurityv1.AuthorizationPolicy).Spec.GetAction().String()}, nil
		}}
	case manifest.DestinationRule:
		return columns{headers: []string{"HOST"}, row: func(o manifest.Object) ([]string, []string) {
			return []string{o.(*istionetworkingv1.DestinationRule).Spec.GetHost()}, nil
		}}
	case manifest.VirtualService:
		return columns{headers: []string{"GATEWAYS", "HOSTS"}, row: func(o manifest.Object) ([]string, []string) {
			vs := o.(*istionetworkingv1.VirtualService)
			return []string{listOrEmpty(vs.Spec.GetGateways()), listOrEmpty(vs.Spec.GetHosts())}, nil
		}}
	}
	return columns{row: func(manifest.Object) ([]string, []string) { return nil, nil }}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// hpaRow is kubectl's: the scale target, each metric's current/target
// ("<unknown>" until the controller reports), the bounds and the replicas.
func hpaRow(o manifest.Object) ([]string, []string) {
	h := o.(*autoscalingv2.HorizontalPodAutoscaler)
	var targets []string
	for _, m := range h.Spec.Metrics {
		if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil {
			targets = append(targets, "<unknown>/<unknown>")
			continue
		}
		want := "<unknown>"
		switch t := m.Resource.Target; {
		case t.AverageUtilization != nil:
			want = fmt.Sprintf("%d%%", *t.AverageUtilization)
		case t.AverageValue != nil:
			want = t.AverageValue.String()
		}
		targets = append(targets, fmt.Sprintf("%s: <unknown>/%s", m.Resource.Name, want))
	}
	shown := "<none>"
	if len(targets) > 0 {
		shown = strings.Join(targets, ", ")
	}
	minPods := "<unset>"
	if h.Spec.MinReplicas != nil {
		minPods = itoa(*h.Spec.MinReplicas)
	}
	ref := h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name
	return []string{ref, shown, minPods, itoa(h.Spec.MaxReplicas), itoa(h.Status.CurrentReplicas)}, nil
}

func listOrEmpty(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return `["` + strings.Join(s, `","`) + `"]`
}

func hostnames(h []gwv1.Hostname) string {
	if len(h) == 0 {
		return ""
	}
	s := make([]string, len(h))
	for i, n := range h {
		s[i] = `"` + string(n) + `"`
	}
	return "[" + strings.Join(s, ",") + "]"
}

func conditionStatus(conds []metav1.Condition, typ string) string {
	if c := meta.FindStatusCondition(conds, typ); c != nil {
		return string(c.Status)
	}
	return "Unknown"
}

func serviceRow(o manifest.Object) ([]string, []string) {
	svc := o.(*corev1.Service)
	typ := svc.Spec.Type
	if typ == "" {
		typ = corev1.ServiceTypeClusterIP
	}
	ip := svc.Spec.ClusterIP
	if ip == "" {
		ip = none
	}
	ext := none
	if len(svc.Spec.ExternalIPs) > 0 {
		ext = strings.Join(svc.Spec.ExternalIPs, ",")
	}
	var ports []string
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		s := strconv.Itoa(int(p.Port))
		if p.NodePort != 0 {
			s += ":" + strconv.Itoa(int(p.NodePort))
		}
		ports = append(ports, s+"/"+string(proto))
	}
	var sel []string
	for k, v := range svc.Spec.Selector {
		sel = append(sel, k+"="+v)
	}
	sort.Strings(sel)
	return []string{string(typ), ip, ext, orNone(strings.Join(ports, ","))}, []string{orNone(strings.Join(sel, ","))}
}

func podRow(o manifest.Object) ([]string, []string) {
	pod := o.(*corev1.Pod)
	ready, restarts := 0, int32(0)
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Ready {
			ready++
		}
		restarts += cs.RestartCount
	}
	phase := string(pod.Status.Phase)
	if phase == "" {
		phase = "Pending"
	}
	return []string{fmt.Sprintf("%d/%d", ready, len(pod.Spec.Containers)), phase, itoa(restarts)},
		[]string{orNone(pod.Status.PodIP), orNone(pod.Spec.NodeName)}
}

// age prints how long ago t was, as kubectl does ("24h", "5m10s", "<unknown>").
func age(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

// tableOptions shape a `get` table.
type tableOptions struct {
	allNamespaces bool
	wide          bool
	labelColumns  []string // -L keys
	showLabels    bool
	now           time.Time
}

// printTable writes objects of one kind as kubectl's default table.
func printTable(w io.Writer, k *manifest.Kind, objs []manifest.Object, o tableOptions) error {
	cols := tableColumns(k)
	header := []string{"NAME"}
	if o.allNamespaces && k.Namespaced {
		header = append([]string{"NAMESPACE"}, header...)
	}
	header = append(header, cols.headers...)
	header = append(header, "AGE")
	if o.wide {
		header = append(header, cols.wide...)
	}
	for _, l := range o.labelColumns {
		header = append(header, labelColumnHeader(l))
	}
	if o.showLabels {
		header = append(header, "LABELS")
	}
	tw := kubectlTabWriter(w)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, obj := range objs {
		row := []string{obj.GetName()}
		if o.allNamespaces && k.Namespaced {
			row = append([]string{obj.GetNamespace()}, row...)
		}
		c, wide := cols.row(obj)
		row = append(row, c...)
		row = append(row, age(o.now, obj.GetCreationTimestamp().Time))
		if o.wide {
			row = append(row, wide...)
		}
		for _, l := range o.labelColumns {
			row = append(row, obj.GetLabels()[l])
		}
		if o.showLabels {
			row = append(row, labelString(obj.GetLabels()))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// labelColumnHeader is kubectl's -L header: the last path segment, upper-cased.
func labelColumnHeader(key string) string {
	if i := strings.LastIndex(key, "/"); i >= 0 {
		key = key[i+1:]
	}
	return strings.ToUpper(key)
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return none
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}
