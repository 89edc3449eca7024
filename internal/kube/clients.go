package kube

import (
	"context"
	"fmt"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istiosecurityv1 "istio.io/client-go/pkg/apis/security/v1"
	istiotelemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/gentype"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	ratelimitv1alpha1 "github.com/meshway/meshway/api/ratelimit/v1alpha1"
	"github.com/meshway/meshway/internal/manifest"
)

// typedClient is the method set every generated typed client shares (client-go's
// gentype clients), for one Go type T and its list type L.
type typedClient[T manifest.Object, L runtime.Object] interface {
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

// statusClient is implemented by typed clients of kinds with a status subresource.
type statusClient[T manifest.Object] interface {
	UpdateStatus(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

// resource is one kind's typed client with its types erased, so the store can
// treat every kind alike.
type resource struct {
	kind *manifest.Kind
	// hasStatus: the kind has a status subresource, written only by UpdateStatus.
	hasStatus bool

	get          func(ctx context.Context, ns, name string) (manifest.Object, error)
	list         func(ctx context.Context, ns string, opts metav1.ListOptions) ([]manifest.Object, string, error)
	create       func(ctx context.Context, obj manifest.Object) (manifest.Object, error)
	update       func(ctx context.Context, obj manifest.Object) (manifest.Object, error)
	updateStatus func(ctx context.Context, obj manifest.Object) (manifest.Object, error)
	delete       func(ctx context.Context, ns, name string, opts metav1.DeleteOptions) error
	watch        func(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error)
	patch        func(ctx context.Context, ns, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions) (manifest.Object, error)
}

// typed erases a typed client constructor (per namespace) into a resource.
func typed[T manifest.Object, L runtime.Object](kind *manifest.Kind, client func(ns string) typedClient[T, L]) *resource {
	r := &resource{kind: kind}
	r.get = func(ctx context.Context, ns, name string) (manifest.Object, error) {
		return withKind[T](kind)(client(ns).Get(ctx, name, metav1.GetOptions{}))
	}
	r.list = func(ctx context.Context, ns string, opts metav1.ListOptions) ([]manifest.Object, string, error) {
		l, err := client(ns).List(ctx, opts)
		if err != nil {
			return nil, "", err
		}
		items, err := meta.ExtractList(l)
		if err != nil {
			return nil, "", fmt.Errorf("reading the %s list: %w", kind.Resource, err)
		}
		out := make([]manifest.Object, 0, len(items))
		for _, item := range items {
			obj, ok := item.(manifest.Object)
			if !ok {
				return nil, "", fmt.Errorf("listing %s returned %T", kind.Resource, item)
			}
			setKind(kind, obj)
			out = append(out, obj)
		}
		rv := ""
		if la, err := meta.ListAccessor(l); err == nil {
			rv = la.GetResourceVersion()
		}
		return out, rv, nil
	}
	r.create = func(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
		return withKind[T](kind)(client(obj.GetNamespace()).Create(ctx, obj.(T), metav1.CreateOptions{}))
	}
	r.update = func(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
		return withKind[T](kind)(client(obj.GetNamespace()).Update(ctx, obj.(T), metav1.UpdateOptions{}))
	}
	r.delete = func(ctx context.Context, ns, name string, opts metav1.DeleteOptions) error {
		return client(ns).Delete(ctx, name, opts)
	}
	r.watch = func(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
		return client(ns).Watch(ctx, opts)
	}
	r.patch = func(ctx context.Context, ns, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions) (manifest.Object, error) {
		return withKind[T](kind)(client(ns).Patch(ctx, name, pt, data, opts))
	}
	if _, ok := client("").(statusClient[T]); ok {
		r.hasStatus = true
		r.updateStatus = func(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
			sc := client(obj.GetNamespace()).(statusClient[T])
			return withKind[T](kind)(sc.UpdateStatus(ctx, obj.(T), metav1.UpdateOptions{}))
		}
	}
	return r
}

// setKind fills TypeMeta, which typed clients leave empty on decoded objects.
func setKind(kind *manifest.Kind, obj manifest.Object) {
	obj.GetObjectKind().SetGroupVersionKind(kind.GroupVersionKind())
}

// withKind adapts a typed client's (T, error) result, filling in TypeMeta.
func withKind[T manifest.Object](kind *manifest.Kind) func(T, error) (manifest.Object, error) {
	return func(obj T, err error) (manifest.Object, error) {
		if err != nil {
			return nil, err
		}
		setKind(kind, obj)
		return obj, nil
	}
}

// clusterScoped adapts a cluster-scoped typed client to the per-namespace form.
func clusterScoped[T manifest.Object, L runtime.Object](c typedClient[T, L]) func(string) typedClient[T, L] {
	return func(string) typedClient[T, L] { return c }
}

// resources builds the typed clients for every kind meshway reads.
func resources(cfg *rest.Config) (map[*manifest.Kind]*resource, error) {
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the Kubernetes client: %w", err)
	}
	gw, err := gatewayclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the Gateway API client: %w", err)
	}
	istio, err := istioclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the Istio client: %w", err)
	}
	rl, err := ratelimitClient(cfg)
	if err != nil {
		return nil, err
	}
	c, g := core.CoreV1(), gw.GatewayV1()
	n, sec, tel := istio.NetworkingV1(), istio.SecurityV1(), istio.TelemetryV1()
	all := []*resource{
		typed(manifest.Namespace, clusterScoped(typedClient[*corev1.Namespace, *corev1.NamespaceList](c.Namespaces()))),
		typed(manifest.Service, func(ns string) typedClient[*corev1.Service, *corev1.ServiceList] { return c.Services(ns) }),
		typed(manifest.Pod, func(ns string) typedClient[*corev1.Pod, *corev1.PodList] { return c.Pods(ns) }),
		typed(manifest.ServiceAccount, func(ns string) typedClient[*corev1.ServiceAccount, *corev1.ServiceAccountList] {
			return c.ServiceAccounts(ns)
		}),
		typed(manifest.ConfigMap, func(ns string) typedClient[*corev1.ConfigMap, *corev1.ConfigMapList] { return c.ConfigMaps(ns) }),
		typed(manifest.Deployment, func(ns string) typedClient[*appsv1.Deployment, *appsv1.DeploymentList] {
			return core.AppsV1().Deployments(ns)
		}),
		typed(manifest.HorizontalPodAutoscaler, func(ns string) typedClient[*autoscalingv2.HorizontalPodAutoscaler, *autoscalingv2.HorizontalPodAutoscalerList] {
			return core.AutoscalingV2().HorizontalPodAutoscalers(ns)
		}),
		typed(manifest.PodDisruptionBudget, func(ns string) typedClient[*policyv1.PodDisruptionBudget, *policyv1.PodDisruptionBudgetList] {
			return core.PolicyV1().PodDisruptionBudgets(ns)
		}),
		typed(manifest.GatewayClass, clusterScoped(typedClient[*gwv1.GatewayClass, *gwv1.GatewayClassList](g.GatewayClasses()))),
		typed(manifest.Gateway, func(ns string) typedClient[*gwv1.Gateway, *gwv1.GatewayList] { return g.Gateways(ns) }),
		typed(manifest.HTTPRoute, func(ns string) typedClient[*gwv1.HTTPRoute, *gwv1.HTTPRouteList] { return g.HTTPRoutes(ns) }),
		typed(manifest.GRPCRoute, func(ns string) typedClient[*gwv1.GRPCRoute, *gwv1.GRPCRouteList] { return g.GRPCRoutes(ns) }),
		typed(manifest.ServiceEntry, func(ns string) typedClient[*istionetworkingv1.ServiceEntry, *istionetworkingv1.ServiceEntryList] {
			return n.ServiceEntries(ns)
		}),
		typed(manifest.WorkloadEntry, func(ns string) typedClient[*istionetworkingv1.WorkloadEntry, *istionetworkingv1.WorkloadEntryList] {
			return n.WorkloadEntries(ns)
		}),
		typed(manifest.DestinationRule, func(ns string) typedClient[*istionetworkingv1.DestinationRule, *istionetworkingv1.DestinationRuleList] {
			return n.DestinationRules(ns)
		}),
		typed(manifest.VirtualService, func(ns string) typedClient[*istionetworkingv1.VirtualService, *istionetworkingv1.VirtualServiceList] {
			return n.VirtualServices(ns)
		}),
		typed(manifest.AuthorizationPolicy, func(ns string) typedClient[*istiosecurityv1.AuthorizationPolicy, *istiosecurityv1.AuthorizationPolicyList] {
			return sec.AuthorizationPolicies(ns)
		}),
		typed(manifest.Telemetry, func(ns string) typedClient[*istiotelemetryv1.Telemetry, *istiotelemetryv1.TelemetryList] {
			return tel.Telemetries(ns)
		}),
		typed(manifest.LocalRateLimitPolicy, rl),
	}
	out := make(map[*manifest.Kind]*resource, len(all))
	for _, r := range all {
		out[r.kind] = r
	}
	for _, k := range manifest.All {
		if out[k] == nil {
			return nil, fmt.Errorf("no Kubernetes client for kind %s", k.Kind)
		}
	}
	return out, nil
}

// ratelimitClient is the typed client of meshway's own LocalRateLimitPolicy:
// client-go's generic typed client over a REST client for its group, as
// generated clientsets are built.
func ratelimitClient(cfg *rest.Config) (func(ns string) typedClient[*ratelimitv1alpha1.LocalRateLimitPolicy, *ratelimitv1alpha1.LocalRateLimitPolicyList], error) {
	scheme := runtime.NewScheme()
	if err := ratelimitv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &ratelimitv1alpha1.SchemeGroupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("building the %s client: %w", ratelimitv1alpha1.GroupName, err)
	}
	codec := runtime.NewParameterCodec(scheme)
	return func(ns string) typedClient[*ratelimitv1alpha1.LocalRateLimitPolicy, *ratelimitv1alpha1.LocalRateLimitPolicyList] {
		return gentype.NewClientWithList(ratelimitv1alpha1.Resource, rc, codec, ns,
			func() *ratelimitv1alpha1.LocalRateLimitPolicy { return &ratelimitv1alpha1.LocalRateLimitPolicy{} },
			func() *ratelimitv1alpha1.LocalRateLimitPolicyList {
				return &ratelimitv1alpha1.LocalRateLimitPolicyList{}
			})
	}, nil
}
