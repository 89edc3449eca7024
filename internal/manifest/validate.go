package manifest

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// FieldError is a validation failure of one field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %s: %s", e.Field, e.Msg) }

// ValidateMetadata checks what the Kubernetes API server checks of every object's
// metadata: a valid name, and label keys and values in the allowed syntax.
func ValidateMetadata(k *Kind, obj Object) error {
	name := obj.GetName()
	if name == "" {
		return &FieldError{Field: "metadata.name", Msg: "missing; every object needs a name"}
	}
	var problems []string
	switch k {
	case Namespace:
		problems = validation.IsDNS1123Label(name)
	case Service:
		problems = validation.IsDNS1035Label(name)
	default:
		problems = validation.IsDNS1123Subdomain(name)
	}
	if len(problems) > 0 {
		return &FieldError{Field: "metadata.name", Msg: fmt.Sprintf("invalid name %q: %s", name, strings.Join(problems, "; "))}
	}
	if ns := obj.GetNamespace(); k.Namespaced && ns != "" {
		if p := validation.IsDNS1123Label(ns); len(p) > 0 {
			return &FieldError{Field: "metadata.namespace", Msg: fmt.Sprintf("invalid namespace %q: %s", ns, strings.Join(p, "; "))}
		}
	}
	return ValidateLabels(obj.GetLabels())
}

// ValidateLabels checks label keys and values, in key order so the first problem
// reported is stable.
func ValidateLabels(labels map[string]string) error {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if p := validation.IsQualifiedName(key); len(p) > 0 {
			return &FieldError{Field: "metadata.labels", Msg: fmt.Sprintf("invalid label key %q: %s", key, strings.Join(p, "; "))}
		}
		if p := validation.IsValidLabelValue(labels[key]); len(p) > 0 {
			return &FieldError{Field: "metadata.labels[" + key + "]", Msg: fmt.Sprintf("invalid label value %q: %s", labels[key], strings.Join(p, "; "))}
		}
	}
	return nil
}
