package translate

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Builders for test objects. They only set what binding reads, so each test
// case reads as the labels it is about.

// kv builds a label map from key, value pairs.
func kv(pairs ...string) map[string]string {
	if len(pairs)%2 != 0 {
		panic("kv needs key, value pairs")
	}
	m := map[string]string{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

func meta(ns, name string, lbls map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls}
}

func namespace(name string, lbls map[string]string) *corev1.Namespace {
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls["kubernetes.io/metadata.name"] = name
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

// ambientNamespace is a namespace enrolled in ambient mode plus extra labels.
func ambientNamespace(name string, pairs ...string) *corev1.Namespace {
	return namespace(name, kv(append([]string{LabelDataplaneMode, DataplaneModeAmbient}, pairs...)...))
}

func service(ns, name string, lbls, selector map[string]string) *corev1.Service {
	return &corev1.Service{ObjectMeta: meta(ns, name, lbls), Spec: corev1.ServiceSpec{Selector: selector}}
}

func pod(ns, name string, lbls map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: meta(ns, name, lbls)}
}

// podWithSA is an instance pod of Gateway gw running as service account sa.
func podWithSA(ns, name, gw, sa string) *corev1.Pod {
	p := pod(ns, name, kv(LabelGatewayName, gw))
	p.Spec.ServiceAccountName = sa
	return p
}

func serviceEntry(ns, name string, lbls map[string]string, exportTo ...string) *networkingv1.ServiceEntry {
	return &networkingv1.ServiceEntry{
		ObjectMeta: meta(ns, name, lbls),
		Spec:       networkingv1alpha3.ServiceEntry{Hosts: []string{name + ".example.com"}, ExportTo: exportTo},
	}
}

func workloadEntry(ns, name string, lbls map[string]string) *networkingv1.WorkloadEntry {
	return &networkingv1.WorkloadEntry{ObjectMeta: meta(ns, name, lbls), Spec: networkingv1alpha3.WorkloadEntry{Address: "10.9.0.1"}}
}

type gatewayOption func(*gwv1.Gateway)

// waypointGateway is a Gateway as `waypoint generate` writes it, ready
// (status.addresses set) unless notReady is passed.
func waypointGateway(ns, name string, opts ...gatewayOption) *gwv1.Gateway {
	hostname := gwv1.HostnameAddressType
	gw := &gwv1.Gateway{
		ObjectMeta: meta(ns, name, map[string]string{}),
		Spec: gwv1.GatewaySpec{
			GatewayClassName: WaypointClassName,
			Listeners:        []gwv1.Listener{{Name: "mesh", Port: portHBONE, Protocol: protocolHBONE}},
		},
		Status: gwv1.GatewayStatus{Addresses: []gwv1.GatewayStatusAddress{
			{Type: &hostname, Value: name + "." + ns + ".svc.cluster.local"},
		}},
	}
	for _, o := range opts {
		o(gw)
	}
	return gw
}

func waypointFor(trafficType string) gatewayOption {
	return func(gw *gwv1.Gateway) { gw.Labels[LabelWaypointFor] = trafficType }
}

func notReady(gw *gwv1.Gateway) { gw.Status.Addresses = nil }

func fromNamespaces(from gwv1.FromNamespaces, selector map[string]string) gatewayOption {
	return func(gw *gwv1.Gateway) {
		rn := &gwv1.RouteNamespaces{From: &from}
		if selector != nil {
			rn.Selector = &metav1.LabelSelector{MatchLabels: selector}
		}
		gw.Spec.Listeners[0].AllowedRoutes = &gwv1.AllowedRoutes{Namespaces: rn}
	}
}

func ref(ns, name string) *Ref { return &Ref{ns, name} }

func checkDecision(t *testing.T, got, want Decision) {
	t.Helper()
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("decision mismatch (-want +got):\n%s", diff)
	}
}

func boundCondition(msg string) *metav1.Condition {
	return &metav1.Condition{Type: ConditionWaypointBound, Status: metav1.ConditionTrue, Reason: ReasonWaypointAccepted, Message: msg}
}

func failedCondition(reason, msg string) *metav1.Condition {
	return &metav1.Condition{Type: ConditionWaypointBound, Status: metav1.ConditionFalse, Reason: reason, Message: msg}
}
