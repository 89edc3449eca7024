package main

import (
	"crypto/sha256"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/translate"
)

// meshSize is the shape of the generated mesh: namespaces, each with one
// waypoint and services × podsPerService pods.
type meshSize struct {
	namespaces, services, podsPerService int
}

func (s meshSize) String() string {
	return fmt.Sprintf("%d namespaces × (1 waypoint, %d services, %d pods)", s.namespaces, s.services, s.services*s.podsPerService)
}

// created is every generated object's creationTimestamp: a fixed time, so
// that two runs generate the same bytes.
var created = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

func nsName(i int) string { return fmt.Sprintf("ns-%03d", i) }

// waypointName is the xDS resource name of namespace i's waypoint.
func waypointName(i int) string { return nsName(i) + "/waypoint" }

// ip4 numbers addresses within a /8 from n, skipping nothing: n < 2^24.
func ip4(first byte, n int) string {
	return fmt.Sprintf("%d.%d.%d.%d", first, n>>16&255, n>>8&255, n&255)
}

// uidOf is a stable uid, so that a status file written by the generator
// belongs to the object of its spec file.
func uidOf(kind, ns, name string) types.UID {
	s := sha256.Sum256([]byte(kind + "/" + ns + "/" + name))
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16]))
}

func meta(kind, ns, name string, lbls map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls, UID: uidOf(kind, ns, name), CreationTimestamp: created}
}

// generate calls emit for every object of the mesh, namespaces first (with
// the two a new store starts with, default and istio-system). What
// each namespace holds (all of it bound to its own waypoint by the
// namespace's istio.io/use-waypoint label):
//   - a ready waypoint Gateway (status.addresses set);
//   - services svc-0..svc-N, each with an http port 80 and a grpc port 9090,
//     selecting pods app=svc-j; podsPerService ready pods each, with an IP;
//   - HTTPRoutes: a 90/10 weighted split of svc-0 to svc-0 and svc-1 (the
//     route whose weight the bench changes), and a header match on svc-2
//     sending canaries to svc-3, with a timeout;
//   - AuthorizationPolicies: one on the waypoint allowing its own and the
//     system namespace, one on svc-4 allowing GET /api/*;
//   - a DestinationRule for svc-5 with outlier detection and subsets.
func generate(size meshSize, emit func(manifest.Object)) {
	// The namespaces a new store starts with.
	for _, ns := range []string{"default", translate.DefaultRootNamespace} {
		emit(&corev1.Namespace{ObjectMeta: meta("Namespace", "", ns, nil)})
	}
	emit(&gwv1.GatewayClass{
		ObjectMeta: meta("GatewayClass", "", translate.WaypointClassName, nil),
		Spec:       gwv1.GatewayClassSpec{ControllerName: "istio.io/mesh-controller"},
	})
	for i := range size.namespaces {
		emit(&corev1.Namespace{ObjectMeta: meta("Namespace", "", nsName(i), map[string]string{
			translate.LabelDataplaneMode: translate.DataplaneModeAmbient,
			translate.LabelUseWaypoint:   "waypoint",
		})})
	}
	for i := range size.namespaces {
		generateNamespace(size, i, emit)
	}
}

func generateNamespace(size meshSize, i int, emit func(manifest.Object)) {
	ns := nsName(i)
	ipType := gwv1.IPAddressType
	emit(&gwv1.Gateway{
		ObjectMeta: meta("Gateway", ns, "waypoint", nil),
		Spec: gwv1.GatewaySpec{
			GatewayClassName: translate.WaypointClassName,
			Listeners:        []gwv1.Listener{{Name: "mesh", Port: 15008, Protocol: "HBONE"}},
		},
		Status: gwv1.GatewayStatus{
			Addresses: []gwv1.GatewayStatusAddress{{Type: &ipType, Value: ip4(10, 0xF00000+i)}},
			Conditions: []metav1.Condition{{
				Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed",
				Message: "Resource programmed", LastTransitionTime: created,
			}},
		},
	})
	grpc := "grpc"
	for j := range size.services {
		svc := fmt.Sprintf("svc-%d", j)
		emit(&corev1.Service{
			ObjectMeta: meta("Service", ns, svc, map[string]string{"app": svc}),
			Spec: corev1.ServiceSpec{
				Type:       corev1.ServiceTypeClusterIP,
				ClusterIP:  ip4(10, 0x600000+i*size.services+j),
				ClusterIPs: []string{ip4(10, 0x600000+i*size.services+j)},
				Selector:   map[string]string{"app": svc},
				Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)},
					{Name: "grpc", Port: 9090, Protocol: corev1.ProtocolTCP, AppProtocol: &grpc, TargetPort: intstr.FromInt32(9090)},
				},
			},
		})
		for k := range size.podsPerService {
			emit(pod(size, i, j, k))
		}
	}
	emitRoutes(size, i, emit)
	emitPolicies(size, i, emit)
}

func podName(j, k int) string { return fmt.Sprintf("svc-%d-%d", j, k) }

func pod(size meshSize, i, j, k int) *corev1.Pod {
	ns, svc := nsName(i), fmt.Sprintf("svc-%d", j)
	n := (i*size.services+j)*size.podsPerService + k
	version := "v1"
	if k%2 == 1 {
		version = "v2"
	}
	return &corev1.Pod{
		ObjectMeta: meta("Pod", ns, podName(j, k), map[string]string{"app": svc, "version": version}),
		Spec: corev1.PodSpec{
			ServiceAccountName: svc,
			NodeName:           fmt.Sprintf("node-%d", n%50),
			Containers: []corev1.Container{{
				Name: "app", Image: "example.com/" + svc + ":1",
				Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
					{Name: "grpc", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
				},
			}},
		},
		Status: corev1.PodStatus{
			Phase:  corev1.PodRunning,
			PodIP:  ip4(10, 0x800000+n),
			PodIPs: []corev1.PodIP{{IP: ip4(10, 0x800000+n)}},
			Conditions: []corev1.PodCondition{{
				Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: created,
			}},
		},
	}
}

// splitRoute is the HTTPRoute whose weight a route change sets: weight is
// svc-0's share out of 100, the rest goes to svc-1.
func splitRoute(i, weight int) *gwv1.HTTPRoute {
	ns := nsName(i)
	port := gwv1.PortNumber(80)
	svcKind, core := gwv1.Kind("Service"), gwv1.Group("")
	w0, w1 := int32(weight), int32(100-weight)
	backend := func(name string, w *int32) gwv1.HTTPBackendRef {
		return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: &port},
			Weight:                 w,
		}}
	}
	return &gwv1.HTTPRoute{
		ObjectMeta: meta("HTTPRoute", ns, "svc-0-split", nil),
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Group: &core, Kind: &svcKind, Name: "svc-0", Port: &port}}},
			Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{backend("svc-0", &w0), backend("svc-1", &w1)}}},
		},
	}
}

func emitRoutes(size meshSize, i int, emit func(manifest.Object)) {
	if size.services < 4 {
		return
	}
	ns := nsName(i)
	emit(splitRoute(i, 90))
	port := gwv1.PortNumber(80)
	svcKind, core := gwv1.Kind("Service"), gwv1.Group("")
	exact, prefix := gwv1.HeaderMatchExact, gwv1.PathMatchPathPrefix
	api, timeout := "/api", gwv1.Duration("5s")
	backend := func(name string) []gwv1.HTTPBackendRef {
		return []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: &port}}}}
	}
	emit(&gwv1.HTTPRoute{
		ObjectMeta: meta("HTTPRoute", ns, "svc-2-canary", nil),
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Group: &core, Kind: &svcKind, Name: "svc-2", Port: &port}}},
			Rules: []gwv1.HTTPRouteRule{
				{
					Matches: []gwv1.HTTPRouteMatch{{
						Path:    &gwv1.HTTPPathMatch{Type: &prefix, Value: &api},
						Headers: []gwv1.HTTPHeaderMatch{{Type: &exact, Name: "x-canary", Value: "true"}},
					}},
					BackendRefs: backend("svc-3"),
					Timeouts:    &gwv1.HTTPRouteTimeouts{Request: &timeout},
				},
				{BackendRefs: backend("svc-2"), Timeouts: &gwv1.HTTPRouteTimeouts{Request: &timeout}},
			},
		},
	})
}

func emitPolicies(size meshSize, i int, emit func(manifest.Object)) {
	ns := nsName(i)
	emit(&securityv1.AuthorizationPolicy{
		ObjectMeta: meta("AuthorizationPolicy", ns, "allow-namespace", nil),
		Spec: securityv1beta1.AuthorizationPolicy{
			TargetRefs: []*typev1beta1.PolicyTargetReference{{Group: "gateway.networking.k8s.io", Kind: "Gateway", Name: "waypoint"}},
			Action:     securityv1beta1.AuthorizationPolicy_ALLOW,
			Rules: []*securityv1beta1.Rule{{From: []*securityv1beta1.Rule_From{{
				Source: &securityv1beta1.Source{Namespaces: []string{ns, translate.DefaultRootNamespace}},
			}}}},
		},
	})
	if size.services < 6 {
		return
	}
	emit(&securityv1.AuthorizationPolicy{
		ObjectMeta: meta("AuthorizationPolicy", ns, "svc-4-read-only", nil),
		Spec: securityv1beta1.AuthorizationPolicy{
			TargetRefs: []*typev1beta1.PolicyTargetReference{{Kind: "Service", Name: "svc-4"}},
			Action:     securityv1beta1.AuthorizationPolicy_ALLOW,
			Rules: []*securityv1beta1.Rule{{To: []*securityv1beta1.Rule_To{{
				Operation: &securityv1beta1.Operation{Methods: []string{"GET", "HEAD"}, Paths: []string{"/api/*"}},
			}}}},
		},
	})
	emit(&networkingv1.DestinationRule{
		ObjectMeta: meta("DestinationRule", ns, "svc-5", nil),
		Spec: networkingv1alpha3.DestinationRule{
			Host: "svc-5",
			TrafficPolicy: &networkingv1alpha3.TrafficPolicy{
				OutlierDetection: &networkingv1alpha3.OutlierDetection{
					Consecutive_5XxErrors: wrapperspb.UInt32(5),
					Interval:              durationpb.New(10 * time.Second),
					BaseEjectionTime:      durationpb.New(30 * time.Second),
				},
			},
			Subsets: []*networkingv1alpha3.Subset{
				{Name: "v1", Labels: map[string]string{"version": "v1"}},
				{Name: "v2", Labels: map[string]string{"version": "v2"}},
			},
		},
	})
}
