package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/manifest"
)

// ConfigMap keys an overlay may use, one per rendered kind.
const (
	keyDeployment     = "deployment"
	keyService        = "service"
	keyServiceAccount = "serviceAccount"
	keyHPA            = "horizontalPodAutoscaler"
	keyPDB            = "podDisruptionBudget"
)

var keyForKind = map[string]string{
	"Deployment":              keyDeployment,
	"Service":                 keyService,
	"ServiceAccount":          keyServiceAccount,
	"HorizontalPodAutoscaler": keyHPA,
	"PodDisruptionBudget":     keyPDB,
}

var allowedKeys = []string{keyDeployment, keyService, keyServiceAccount, keyHPA, keyPDB}

// overlay is one ConfigMap key: a strategic merge patch in JSON.
type overlay struct {
	source string // "ConfigMap ns/name"
	key    string
	what   string // "Gateway ns/name" the overlay applies to
	patch  []byte
}

func (ov overlay) errorf(format string, args ...any) error {
	return fmt.Errorf("%s key %q (overlay for %s): %s", ov.source, ov.key, ov.what, fmt.Sprintf(format, args...))
}

// overlays are the patches for one Gateway, in the order they apply.
type overlays []overlay

func (ps overlays) has(key string) bool {
	return slices.ContainsFunc(ps, func(p overlay) bool { return p.key == key })
}

// selectOverlays picks the class defaults ConfigMaps then the parametersRef
// ConfigMap out of cms and parses their keys.
func selectOverlays(gw *gwv1.Gateway, cms []*corev1.ConfigMap, o Options) (overlays, error) {
	what := "Gateway " + gw.Namespace + "/" + gw.Name
	var chosen []*corev1.ConfigMap
	var defaults []*corev1.ConfigMap
	for _, cm := range cms {
		if cm != nil && cm.Namespace == o.SystemNamespace && cm.Labels[LabelDefaultsForClass] == ClassName {
			defaults = append(defaults, cm)
		}
	}
	slices.SortFunc(defaults, func(a, b *corev1.ConfigMap) int { return strings.Compare(a.Name, b.Name) })
	chosen = append(chosen, defaults...)

	if inf := gw.Spec.Infrastructure; inf != nil && inf.ParametersRef != nil {
		ref := inf.ParametersRef
		if ref.Group != "" || ref.Kind != "ConfigMap" {
			return nil, fmt.Errorf("%s: spec.infrastructure.parametersRef is %s %q (group %q); only a ConfigMap (group \"\") is supported: point it at a ConfigMap in namespace %s",
				what, ref.Kind, ref.Name, ref.Group, gw.Namespace)
		}
		i := slices.IndexFunc(cms, func(cm *corev1.ConfigMap) bool {
			return cm != nil && cm.Namespace == gw.Namespace && cm.Name == ref.Name
		})
		if i < 0 {
			return nil, fmt.Errorf("%s: spec.infrastructure.parametersRef names ConfigMap %s/%s, which does not exist; create it or remove the parametersRef",
				what, gw.Namespace, ref.Name)
		}
		chosen = append(chosen, cms[i])
	}

	var out overlays
	for _, cm := range chosen {
		source := "ConfigMap " + cm.Namespace + "/" + cm.Name
		keys := slices.Sorted(maps.Keys(cm.Data))
		for _, key := range keys {
			ov := overlay{source: source, key: key, what: what}
			if !slices.Contains(allowedKeys, key) {
				return nil, fmt.Errorf("%s (overlay for %s): key %q is not one of %s; rename or remove it",
					source, what, key, strings.Join(allowedKeys, ", "))
			}
			patch, err := sigsyaml.YAMLToJSON([]byte(cm.Data[key]))
			if err != nil {
				return nil, ov.errorf("not valid YAML: %v; fix the YAML", err)
			}
			var probe map[string]any
			if err := json.Unmarshal(patch, &probe); err != nil || probe == nil {
				return nil, ov.errorf("must be a YAML mapping (a partial %s), e.g. \"spec: {replicas: 2}\"", kindForKey(key))
			}
			ov.patch = patch
			out = append(out, ov)
		}
		if len(cm.BinaryData) > 0 {
			return nil, fmt.Errorf("%s (overlay for %s): binaryData is not read; move the overlay into data", source, what)
		}
	}
	return out, nil
}

func kindForKey(key string) string {
	for k, v := range keyForKind {
		if v == key {
			return k
		}
	}
	return key
}

// apply patches obj with every overlay for its kind, in order.
func (ps overlays) apply(obj manifest.Object) (manifest.Object, error) {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	key := keyForKind[kind]
	for _, ov := range ps {
		if ov.key != key {
			continue
		}
		patched, err := ov.applyTo(obj, kind)
		if err != nil {
			return nil, err
		}
		obj = patched
	}
	return obj, nil
}

func (ov overlay) applyTo(obj manifest.Object, kind string) (manifest.Object, error) {
	what := fmt.Sprintf("%s %s/%s", kind, obj.GetNamespace(), obj.GetName())
	original, err := json.Marshal(obj)
	if err != nil {
		return nil, ov.errorf("encoding %s: %v", what, err)
	}
	typ := reflect.TypeOf(obj).Elem()
	merged, err := strategicpatch.StrategicMergePatch(original, ov.patch, reflect.New(typ).Interface())
	if err != nil {
		return nil, ov.errorf("cannot be applied to %s: %v; fix the overlay", what, err)
	}
	out := reflect.New(typ).Interface().(manifest.Object)
	strict, err := sigsjson.UnmarshalStrict(merged, out, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, ov.errorf("does not fit %s: %v; fix the overlay", what, err)
	}
	if len(strict) > 0 {
		return nil, ov.errorf("does not fit %s: %v; remove the field or check its spelling", what, strict[0])
	}
	if field := metadataChange(obj, out); field != "" {
		return nil, ov.errorf("changes %s of %s; an overlay may only add metadata.labels and metadata.annotations: remove %s from the overlay",
			field, what, field)
	}
	out.GetObjectKind().SetGroupVersionKind(obj.GetObjectKind().GroupVersionKind())
	return out, nil
}

// protectedLabels are rendered labels an overlay may not change: selectors
// and ownership depend on them.
var protectedLabels = []string{LabelGatewayName, LabelGatewayClassName, LabelManaged}

// metadataChange names the first metadata field that differs between the
// rendered object and the patched one, other than added or changed labels
// and annotations; "" if none.
func metadataChange(before, after manifest.Object) string {
	for _, l := range protectedLabels {
		if before.GetLabels()[l] != after.GetLabels()[l] {
			return "metadata.labels." + l
		}
	}
	for k := range before.GetLabels() {
		if _, ok := after.GetLabels()[k]; !ok {
			return "metadata.labels." + k
		}
	}
	for k := range before.GetAnnotations() {
		if _, ok := after.GetAnnotations()[k]; !ok {
			return "metadata.annotations." + k
		}
	}
	b, a := metaOf(before), metaOf(after)
	b.Labels, a.Labels, b.Annotations, a.Annotations = nil, nil, nil, nil
	checks := []struct {
		field string
		same  bool
	}{
		{"metadata.name", b.Name == a.Name},
		{"metadata.namespace", b.Namespace == a.Namespace},
		{"metadata.ownerReferences", reflect.DeepEqual(b.OwnerReferences, a.OwnerReferences)},
		{"metadata.finalizers", reflect.DeepEqual(b.Finalizers, a.Finalizers)},
		{"metadata", reflect.DeepEqual(b, a)},
	}
	for _, c := range checks {
		if !c.same {
			return c.field
		}
	}
	return ""
}

func metaOf(obj manifest.Object) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: obj.GetName(), GenerateName: obj.GetGenerateName(), Namespace: obj.GetNamespace(),
		UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(), Generation: obj.GetGeneration(),
		Labels: obj.GetLabels(), Annotations: obj.GetAnnotations(),
		OwnerReferences: obj.GetOwnerReferences(), Finalizers: obj.GetFinalizers(),
		DeletionGracePeriodSeconds: obj.GetDeletionGracePeriodSeconds(),
		CreationTimestamp:          obj.GetCreationTimestamp(),
		ManagedFields:              obj.GetManagedFields(),
	}
}
