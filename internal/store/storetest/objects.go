package storetest

import (
	"testing"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// Service is a Service with one port (80), for tests.
func Service(namespace, name string, labels map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
}

// Gateway is a waypoint Gateway as `istioctl waypoint generate` writes it.
func Gateway(namespace, name string) *gwv1.Gateway {
	return &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: gwv1.GatewaySpec{
			GatewayClassName: "istio-waypoint",
			Listeners:        []gwv1.Listener{{Name: "mesh", Port: 15008, Protocol: "HBONE"}},
		},
	}
}

// ServiceEntry is a ServiceEntry for an external API, with an Istio (protobuf) spec.
func ServiceEntry(namespace, name string) *istionetworkingv1.ServiceEntry {
	se := &istionetworkingv1.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	se.Spec.Hosts = []string{name + ".example.com"}
	se.Spec.Ports = []*networkingv1alpha3.ServicePort{{Number: 443, Name: "https", Protocol: "HTTPS"}}
	se.Spec.Resolution = networkingv1alpha3.ServiceEntry_DNS
	se.Spec.Location = networkingv1alpha3.ServiceEntry_MESH_EXTERNAL
	return se
}

func addresses(ips ...string) []gwv1.GatewayStatusAddress {
	var out []gwv1.GatewayStatusAddress
	ipType := gwv1.IPAddressType
	for _, ip := range ips {
		out = append(out, gwv1.GatewayStatusAddress{Type: &ipType, Value: ip})
	}
	return out
}

// MustCreate creates obj or fails the test.
func MustCreate(t testing.TB, s store.Store, obj manifest.Object) manifest.Object {
	t.Helper()
	out, err := s.Create(t.Context(), obj)
	if err != nil {
		t.Fatalf("Create %s %s/%s: %v", manifest.MustKindOf(obj), obj.GetNamespace(), obj.GetName(), err)
	}
	return out
}

// MustGet gets an object or fails the test.
func MustGet(t testing.TB, s store.Store, kind *manifest.Kind, namespace, name string) manifest.Object {
	t.Helper()
	out, err := s.Get(t.Context(), kind, namespace, name)
	if err != nil {
		t.Fatalf("Get %s %s/%s: %v", kind, namespace, name, err)
	}
	return out
}

// ToMap is manifest.ToMap for tests.
func ToMap(t testing.TB, obj manifest.Object) map[string]any {
	t.Helper()
	m, err := manifest.ToMap(obj)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Spec is an object's spec as its JSON tree, comparable across Go types with
// protobuf fields.
func Spec(t testing.TB, obj manifest.Object) any {
	t.Helper()
	return ToMap(t, obj)["spec"]
}

// names lists objects as "namespace/name" (or "name" when cluster-scoped).
func names(objs []manifest.Object) []string {
	var out []string
	for _, o := range objs {
		if ignored(manifest.MustKindOf(o), o) {
			continue
		}
		if o.GetNamespace() == "" {
			out = append(out, o.GetName())
		} else {
			out = append(out, o.GetNamespace()+"/"+o.GetName())
		}
	}
	return out
}

// visible drops the objects IgnoreObjects hides.
func visible(objs []manifest.Object) []manifest.Object {
	var out []manifest.Object
	for _, o := range objs {
		if !ignored(manifest.MustKindOf(o), o) {
			out = append(out, o)
		}
	}
	return out
}
