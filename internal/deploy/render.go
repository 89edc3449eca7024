package deploy

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/manifest"
)

// Options are the installation-wide settings that shape the rendered objects.
// The zero value is the defaults.
type Options struct {
	// ClusterDomain is the cluster's DNS domain, used in the Gateway's
	// status address. Default "cluster.local".
	ClusterDomain string
	// Image is the waypoint container image. Default "meshway/waypoint:latest".
	// Only Kubernetes uses it: the embedded runtime runs its own waypoint
	// binary and ignores the image.
	Image string
	// Revision is the control plane revision, written as the pod annotation
	// istio.io/rev. Default "default".
	Revision string
	// Network, when set, is the topology.istio.io/network label of every
	// object (unless infrastructure labels already set one).
	Network string
	// SystemNamespace is where class-wide defaults ConfigMaps (labelled
	// gateway.istio.io/defaults-for-class=istio-waypoint) are read from and
	// where meshd runs. Default "istio-system".
	SystemNamespace string
	// XDSAddress is the control plane's secure address (xDS and the CA
	// over TLS, port 15012) the waypoint dials for its configuration and
	// its certificate. Default "meshd.<SystemNamespace>.svc:15012", which
	// the control plane's serving certificate names whatever the cluster
	// domain (as Istio's istiod.istio-system.svc:15012).
	XDSAddress string
	// TrustDomain of the waypoint's identity,
	// spiffe://<TrustDomain>/ns/<namespace>/sa/<service-account>. Default
	// "cluster.local".
	TrustDomain string
}

// Where the waypoint pod finds what authenticates it to the control plane
// and what it trusts the control plane by: Istio's paths, volume names and
// token settings, as in its waypoint template.
const (
	// TokenDir holds the projected ServiceAccount token, file TokenFile.
	TokenDir  = "/var/run/secrets/tokens"
	TokenFile = "istio-token"
	// TokenAudience is the token's audience: the control plane accepts
	// no other, and the token is good for nothing else.
	TokenAudience = "istio-ca"
	// TokenExpirationSeconds is the token's lifetime (12 h); the kubelet
	// rewrites it at 80% of that.
	TokenExpirationSeconds = 43200
	// RootCertDir holds root-cert.pem from ConfigMap istio-ca-root-cert.
	RootCertDir       = "/var/run/secrets/istio"
	RootCertFile      = "root-cert.pem"
	RootCertConfigMap = "istio-ca-root-cert"
)

func (o Options) withDefaults() Options {
	o.ClusterDomain = cmp.Or(o.ClusterDomain, "cluster.local")
	o.Image = cmp.Or(o.Image, "meshway/waypoint:latest")
	o.Revision = cmp.Or(o.Revision, "default")
	o.SystemNamespace = cmp.Or(o.SystemNamespace, "istio-system")
	o.XDSAddress = cmp.Or(o.XDSAddress, fmt.Sprintf("meshd.%s.svc:%d", o.SystemNamespace, SecurePort))
	o.TrustDomain = cmp.Or(o.TrustDomain, "cluster.local")
	return o
}

// omittedAnnotations are Gateway annotations never copied to the rendered
// objects: they steer the controller, not the workload.
var omittedAnnotations = []string{
	"kubectl.kubernetes.io/last-applied-configuration",
	AnnotationNameOverride,
	AnnotationServiceAccount,
	AnnotationControllerVersion,
}

// Render returns the objects Istio's deployment controller renders for a
// waypoint Gateway, sorted by kind then name: ServiceAccount, Deployment and
// Service, plus a HorizontalPodAutoscaler and a PodDisruptionBudget only when
// an overlay has a horizontalPodAutoscaler or podDisruptionBudget key.
//
// overlays may hold any ConfigMaps; Render uses those labelled
// gateway.istio.io/defaults-for-class=istio-waypoint in Options.SystemNamespace
// (in name order), then the Gateway's spec.infrastructure.parametersRef
// ConfigMap, which therefore wins. Each key (deployment, service,
// serviceAccount, horizontalPodAutoscaler, podDisruptionBudget) is a YAML
// strategic merge patch on the rendered object. An overlay may add labels and
// annotations but not change any other metadata.
//
// The waypoint container runs
//
//	waypoint -xds-address <XDSAddress> -ca-address <XDSAddress>
//	  -root-cert /var/run/secrets/istio/root-cert.pem
//	  -token-file /var/run/secrets/tokens/istio-token -trust-domain <TrustDomain>
//	  -hbone :15008 -ready :15021 -metrics :15020
//
// (the exact command line may change with the waypoint's flags) with
// POD_NAME, POD_NAMESPACE, SERVICE_ACCOUNT, INSTANCE_IP, NODE_NAME and
// GATEWAY_NAME (the pod's gateway-name label) from the downward API. As in
// Istio's waypoint template, the pod mounts a projected ServiceAccount
// token for audience istio-ca (volume istio-token) and ConfigMap
// istio-ca-root-cert (volume istiod-ca-cert): with them the waypoint
// verifies the control plane, authenticates to it, and obtains the
// certificate of its ServiceAccount's identity.
func Render(gw *gwv1.Gateway, overlays []*corev1.ConfigMap, o Options) ([]manifest.Object, error) {
	if gw == nil {
		return nil, fmt.Errorf("deploy.Render: no Gateway")
	}
	o = o.withDefaults()
	what := "Gateway " + gw.Namespace + "/" + gw.Name
	if skip, why := Skip(gw); skip {
		return nil, fmt.Errorf("%s: not a waypoint meshway deploys (%s); use gatewayClassName %s with no spec.addresses", what, why, ClassName)
	}
	patches, err := selectOverlays(gw, overlays, o)
	if err != nil {
		return nil, err
	}
	r := newRenderer(gw, o)
	objs := []manifest.Object{r.serviceAccount(), r.deployment(), r.service()}
	if patches.has(keyHPA) {
		objs = append(objs, r.hpa())
	}
	if patches.has(keyPDB) {
		objs = append(objs, r.pdb())
	}
	for i, obj := range objs {
		if objs[i], err = patches.apply(obj); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(objs, func(a, b manifest.Object) int {
		return cmp.Or(
			cmp.Compare(a.GetObjectKind().GroupVersionKind().Kind, b.GetObjectKind().GroupVersionKind().Kind),
			cmp.Compare(a.GetName(), b.GetName()))
	})
	return objs, nil
}

// renderer holds what every object of one Gateway shares.
type renderer struct {
	gw          *gwv1.Gateway
	o           Options
	name        string // Deployment, Service (and HPA, PDB) name
	sa          string // ServiceAccount name
	labels      map[string]string
	annotations map[string]string
}

func newRenderer(gw *gwv1.Gateway, o Options) *renderer {
	r := &renderer{gw: gw, o: o}
	r.name = cmp.Or(gw.Annotations[AnnotationNameOverride], gw.Name)
	r.sa = cmp.Or(gw.Annotations[AnnotationServiceAccount], r.name)

	// Infrastructure labels and annotations; without spec.infrastructure,
	// Istio (PILOT_ENABLE_GATEWAY_API_COPY_LABELS_ANNOTATIONS, default on)
	// copies the Gateway's own.
	r.labels, r.annotations = map[string]string{}, map[string]string{}
	if inf := gw.Spec.Infrastructure; inf != nil {
		for k, v := range inf.Labels {
			r.labels[string(k)] = string(v)
		}
		for k, v := range inf.Annotations {
			r.annotations[string(k)] = string(v)
		}
	} else {
		maps.Copy(r.labels, gw.Labels)
		maps.Copy(r.annotations, gw.Annotations)
	}
	maps.DeleteFunc(r.labels, func(k, _ string) bool { return strings.HasPrefix(k, "gateway.networking.k8s.io/") })
	for _, k := range omittedAnnotations {
		delete(r.annotations, k)
	}
	r.labels[LabelGatewayName] = gw.Name
	r.labels[LabelGatewayClassName] = string(gw.Spec.GatewayClassName)
	r.labels[LabelManaged] = ManagedValue
	if _, set := r.labels[LabelNetwork]; !set && o.Network != "" {
		r.labels[LabelNetwork] = o.Network
	}
	return r
}

// meta is the ObjectMeta of a rendered object: the shared labels and
// annotations (plus extra), owned by the Gateway. Istio sets no controller or
// blockOwnerDeletion on the reference.
func (r *renderer) meta(name string, extra map[string]string) metav1.ObjectMeta {
	ann := maps.Clone(r.annotations)
	maps.Copy(ann, extra)
	if len(ann) == 0 {
		ann = nil // as the API server returns it
	}
	return metav1.ObjectMeta{
		Name:        name,
		Namespace:   r.gw.Namespace,
		Labels:      maps.Clone(r.labels),
		Annotations: ann,
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: gwv1.GroupVersion.String(),
			Kind:       "Gateway",
			Name:       r.gw.Name,
			UID:        r.gw.UID,
		}},
	}
}

func (r *renderer) selector() map[string]string {
	return map[string]string{LabelGatewayName: r.gw.Name}
}

func (r *renderer) serviceAccount() *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: r.meta(r.sa, nil),
	}
}

func (r *renderer) service() *corev1.Service {
	policy := corev1.IPFamilyPolicyPreferDualStack
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: r.meta(r.name, map[string]string{AnnotationTrafficDistrib: "PreferClose"}),
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeClusterIP,
			IPFamilyPolicy: &policy,
			Selector:       r.selector(),
			Ports:          servicePorts(r.gw.Spec.Listeners),
		},
	}
}

func (r *renderer) deployment() *appsv1.Deployment {
	podLabels := maps.Clone(r.labels)
	maps.Copy(podLabels, map[string]string{
		"sidecar.istio.io/inject":             "false",
		"istio.io/dataplane-mode":             "none",
		"service.istio.io/canonical-name":     r.name,
		"service.istio.io/canonical-revision": "latest",
	})
	podAnnotations := maps.Clone(r.annotations)
	maps.Copy(podAnnotations, map[string]string{
		AnnotationRevision:     r.o.Revision,
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   strconv.Itoa(MetricsPort),
		"prometheus.io/path":   "/stats/prometheus",
	})
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: r.meta(r.name, nil),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: r.selector()},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnnotations},
				Spec: corev1.PodSpec{
					ServiceAccountName: r.sa,
					Containers:         []corev1.Container{r.container()},
					Volumes:            r.volumes(),
				},
			},
		},
	}
}

func (r *renderer) container() corev1.Container {
	ready := func(initialDelay, period, failure int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/healthz/ready", Port: intstr.FromInt32(StatusPort), Scheme: corev1.URISchemeHTTP,
			}},
			InitialDelaySeconds: initialDelay, PeriodSeconds: period, FailureThreshold: failure,
			SuccessThreshold: 1, TimeoutSeconds: 1,
		}
	}
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	id := int64(1337)
	return corev1.Container{
		Name:  "waypoint",
		Image: r.o.Image,
		Args: []string{
			"-xds-address", r.o.XDSAddress,
			"-ca-address", r.o.XDSAddress,
			"-root-cert", RootCertDir + "/" + RootCertFile,
			"-token-file", TokenDir + "/" + TokenFile,
			"-trust-domain", r.o.TrustDomain,
			"-hbone", fmt.Sprintf(":%d", HBONEPort),
			"-ready", fmt.Sprintf(":%d", StatusPort),
			"-metrics", fmt.Sprintf(":%d", MetricsPort),
		},
		Env: []corev1.EnvVar{
			field("POD_NAME", "metadata.name"),
			field("POD_NAMESPACE", "metadata.namespace"),
			field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
			field("INSTANCE_IP", "status.podIP"),
			field("NODE_NAME", "spec.nodeName"),
			// The waypoint subscribes to its Gateway's configuration by name.
			field("GATEWAY_NAME", "metadata.labels['"+LabelGatewayName+"']"),
		},
		Ports: []corev1.ContainerPort{
			{Name: "metrics", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
			{Name: "status-port", ContainerPort: StatusPort, Protocol: corev1.ProtocolTCP},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: volumeRootCert, MountPath: RootCertDir, ReadOnly: true},
			{Name: volumeToken, MountPath: TokenDir, ReadOnly: true},
		},
		ReadinessProbe: ready(0, 15, 4),
		StartupProbe:   ready(1, 1, 30),
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: new(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			Privileged:               new(false),
			ReadOnlyRootFilesystem:   new(true),
			RunAsGroup:               &id,
			RunAsNonRoot:             new(true),
			RunAsUser:                &id,
		},
	}
}

// Volume names, as in Istio's waypoint template.
const (
	volumeToken    = "istio-token"
	volumeRootCert = "istiod-ca-cert"
)

// volumes are the token and the root certificate the waypoint
// authenticates and verifies the control plane with.
func (r *renderer) volumes() []corev1.Volume {
	exp := int64(TokenExpirationSeconds)
	return []corev1.Volume{
		{Name: volumeToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: TokenAudience, ExpirationSeconds: &exp, Path: TokenFile,
			}}},
		}}},
		{Name: volumeRootCert, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: RootCertConfigMap},
		}}},
	}
}

// hpa is Istio's default HorizontalPodAutoscaler (maxReplicas 1), rendered
// only for an overlay to patch.
func (r *renderer) hpa() *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: r.meta(r.name, nil),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: r.name},
			MaxReplicas:    1,
		},
	}
}

// pdb is Istio's default PodDisruptionBudget, rendered only for an overlay
// to patch.
func (r *renderer) pdb() *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: r.meta(r.name, nil),
		Spec: policyv1.PodDisruptionBudgetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: r.selector()},
		},
	}
}
