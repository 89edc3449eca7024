package manifest

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istiosecurityv1 "istio.io/client-go/pkg/apis/security/v1"
	istiotelemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ratelimitv1alpha1 "github.com/meshway/meshway/api/ratelimit/v1alpha1"
	"github.com/meshway/meshway/internal/crd"
)

// Object is a Kubernetes-style object: the upstream Go types all satisfy it.
type Object interface {
	metav1.Object
	runtime.Object
}

// Kind describes one kind of object meshway reads, named as the Kubernetes API
// names it so that kubectl habits (plural, short names, resource.group) carry over.
type Kind struct {
	Group    string
	Version  string // the version objects are stored and printed in
	Kind     string
	Resource string // lower-case plural, e.g. "services"
	Singular string
	// ShortNames are kubectl's short names for the resource.
	ShortNames []string
	Namespaced bool
	// TracksGeneration: the API server keeps metadata.generation (1, then +1 per
	// spec change) — for custom resources, Pods and Deployments, not for
	// Namespaces, Services, ServiceAccounts or ConfigMaps.
	TracksGeneration bool
	// OtherVersions are older apiVersions whose schema is identical to Version
	// for the fields meshway reads (e.g. networking.istio.io/v1beta1); objects
	// written in them are read into the stored type and stored as Version.
	OtherVersions []string

	goType reflect.Type
}

// New returns a new empty object of this kind with its TypeMeta set.
func (k *Kind) New() Object {
	obj := reflect.New(k.goType).Interface().(Object)
	obj.GetObjectKind().SetGroupVersionKind(k.GroupVersionKind())
	return obj
}

// GroupVersionKind of the stored version.
func (k *Kind) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind}
}

// GroupResource names the resource as API errors do ("services", "gateways.gateway.networking.k8s.io").
func (k *Kind) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: k.Group, Resource: k.Resource}
}

// APIVersion of the stored version, e.g. "gateway.networking.k8s.io/v1".
func (k *Kind) APIVersion() string {
	return k.GroupVersionKind().GroupVersion().String()
}

// QualifiedResource is "resource" for the core group and "resource.group" otherwise;
// it is the name kubectl prints in "service/foo created"-style messages.
func (k *Kind) QualifiedResource() string {
	if k.Group == "" {
		return k.Resource
	}
	return k.Resource + "." + k.Group
}

// QualifiedSingular is the lower-case singular, qualified like QualifiedResource.
func (k *Kind) QualifiedSingular() string {
	if k.Group == "" {
		return k.Singular
	}
	return k.Singular + "." + k.Group
}

func (k *Kind) String() string { return k.Kind }

// IsCustomResource reports whether the kind is a custom resource, defined by a
// CRD, rather than built in to the API server.
func (k *Kind) IsCustomResource() bool { return !crd.BuiltInGroup(k.Group) }

func kind[T any](group, version, name, resource string, namespaced bool, short []string, other ...string) *Kind {
	return &Kind{
		Group: group, Version: version, Kind: name, Resource: resource,
		Singular: strings.ToLower(name), ShortNames: short, Namespaced: namespaced,
		OtherVersions: other, goType: reflect.TypeFor[T](),
		TracksGeneration: group != "" && group != "apps" || name == "Pod" || name == "Deployment",
	}
}

const (
	gatewayGroup    = "gateway.networking.k8s.io"
	networkingGroup = "networking.istio.io"
	securityGroup   = "security.istio.io"
	telemetryGroup  = "telemetry.istio.io"
)

// Kinds meshway reads, in the order `get all`-style listings print them.
var (
	Namespace      = kind[corev1.Namespace]("", "v1", "Namespace", "namespaces", false, []string{"ns"})
	Service        = kind[corev1.Service]("", "v1", "Service", "services", true, []string{"svc"})
	Pod            = kind[corev1.Pod]("", "v1", "Pod", "pods", true, []string{"po"})
	ServiceAccount = kind[corev1.ServiceAccount]("", "v1", "ServiceAccount", "serviceaccounts", true, []string{"sa"})
	ConfigMap      = kind[corev1.ConfigMap]("", "v1", "ConfigMap", "configmaps", true, []string{"cm"})
	Deployment     = kind[appsv1.Deployment]("apps", "v1", "Deployment", "deployments", true, []string{"deploy"})
	// HorizontalPodAutoscaler and PodDisruptionBudget are what a waypoint
	// Gateway's parametersRef overlay may add to its deployment.
	HorizontalPodAutoscaler = kind[autoscalingv2.HorizontalPodAutoscaler]("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, []string{"hpa"})
	PodDisruptionBudget     = kind[policyv1.PodDisruptionBudget]("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, []string{"pdb"})
	GatewayClass            = kind[gwv1.GatewayClass](gatewayGroup, "v1", "GatewayClass", "gatewayclasses", false, []string{"gc"}, "v1beta1")
	Gateway                 = kind[gwv1.Gateway](gatewayGroup, "v1", "Gateway", "gateways", true, []string{"gtw"}, "v1beta1")
	HTTPRoute               = kind[gwv1.HTTPRoute](gatewayGroup, "v1", "HTTPRoute", "httproutes", true, nil, "v1beta1")
	GRPCRoute               = kind[gwv1.GRPCRoute](gatewayGroup, "v1", "GRPCRoute", "grpcroutes", true, nil)
	ServiceEntry            = kind[istionetworkingv1.ServiceEntry](networkingGroup, "v1", "ServiceEntry", "serviceentries", true, []string{"se"}, "v1beta1", "v1alpha3")
	WorkloadEntry           = kind[istionetworkingv1.WorkloadEntry](networkingGroup, "v1", "WorkloadEntry", "workloadentries", true, []string{"we"}, "v1beta1", "v1alpha3")
	DestinationRule         = kind[istionetworkingv1.DestinationRule](networkingGroup, "v1", "DestinationRule", "destinationrules", true, []string{"dr"}, "v1beta1", "v1alpha3")
	VirtualService          = kind[istionetworkingv1.VirtualService](networkingGroup, "v1", "VirtualService", "virtualservices", true, []string{"vs"}, "v1beta1", "v1alpha3")
	AuthorizationPolicy     = kind[istiosecurityv1.AuthorizationPolicy](securityGroup, "v1", "AuthorizationPolicy", "authorizationpolicies", true, []string{"ap"}, "v1beta1")
	Telemetry               = kind[istiotelemetryv1.Telemetry](telemetryGroup, "v1", "Telemetry", "telemetries", true, []string{"telemetry"}, "v1alpha1")
	// LocalRateLimitPolicy is meshway's own: Istio has no rate limiting on
	// waypoints.
	LocalRateLimitPolicy = kind[ratelimitv1alpha1.LocalRateLimitPolicy](ratelimitv1alpha1.GroupName, ratelimitv1alpha1.Version, "LocalRateLimitPolicy", "localratelimitpolicies", true, []string{"lrlp"})
)

// All lists every kind meshway reads.
var All = []*Kind{
	Namespace, Service, Pod, ServiceAccount, ConfigMap, Deployment,
	HorizontalPodAutoscaler, PodDisruptionBudget,
	GatewayClass, Gateway, HTTPRoute, GRPCRoute,
	ServiceEntry, WorkloadEntry, DestinationRule, VirtualService,
	AuthorizationPolicy, Telemetry, LocalRateLimitPolicy,
}

var (
	byType = map[reflect.Type]*Kind{}
	byGVK  = map[schema.GroupVersionKind]*Kind{}
)

func init() {
	for _, k := range All {
		byType[k.goType] = k
		byGVK[k.GroupVersionKind()] = k
		for _, v := range k.OtherVersions {
			byGVK[schema.GroupVersionKind{Group: k.Group, Version: v, Kind: k.Kind}] = k
		}
	}
}

// KindOf returns the kind of an object of one of the upstream types meshway reads.
func KindOf(obj Object) (*Kind, error) {
	if k, ok := byType[reflect.TypeOf(obj).Elem()]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("meshway does not handle objects of Go type %T", obj)
}

// MustKindOf is KindOf for objects the caller built itself from a known type.
func MustKindOf(obj Object) *Kind {
	k, err := KindOf(obj)
	if err != nil {
		panic(err)
	}
	return k
}

// ForGVK finds the kind for an apiVersion and kind, accepting older versions.
func ForGVK(gvk schema.GroupVersionKind) (*Kind, bool) {
	k, ok := byGVK[gvk]
	return k, ok
}

// Lookup resolves a name as kubectl does: a kind ("Service"), plural ("services"),
// singular ("service") or short name ("svc"), each optionally qualified by its group
// ("gateways.gateway.networking.k8s.io"). Matching ignores case.
func Lookup(name string) (*Kind, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	var matches []*Kind
	for _, k := range All {
		for _, candidate := range k.names() {
			if n == candidate || (k.Group != "" && n == candidate+"."+k.Group) {
				matches = append(matches, k)
				break
			}
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return nil, fmt.Errorf("the server doesn't have a resource type %q; meshway knows: %s", name, strings.Join(ResourceNames(), ", "))
	default:
		var qualified []string
		for _, k := range matches {
			qualified = append(qualified, k.QualifiedResource())
		}
		return nil, fmt.Errorf("resource type %q is ambiguous; use one of: %s", name, strings.Join(qualified, ", "))
	}
}

func (k *Kind) names() []string {
	return append([]string{strings.ToLower(k.Kind), k.Resource, k.Singular}, k.ShortNames...)
}

// ResourceNames lists the resource names (with short names) for help and errors.
func ResourceNames() []string {
	var out []string
	for _, k := range All {
		n := k.Resource
		if len(k.ShortNames) > 0 {
			n += " (" + strings.Join(k.ShortNames, ", ") + ")"
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
