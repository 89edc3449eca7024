package manifest

import (
	"encoding/json"
	"fmt"

	sigsyaml "sigs.k8s.io/yaml"
)

// ToMap renders an object as its JSON tree, with apiVersion and kind set from its
// Go type (stored objects may carry an empty TypeMeta) and, as kubectl and istioctl
// print objects, without a null creationTimestamp.
func ToMap(obj Object) (map[string]any, error) {
	k, err := KindOf(obj)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %s %s: %w", k.Kind, obj.GetName(), err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("encoding %s %s: %w", k.Kind, obj.GetName(), err)
	}
	m["apiVersion"] = k.APIVersion()
	m["kind"] = k.Kind
	if md, ok := m["metadata"].(map[string]any); ok {
		if v, present := md["creationTimestamp"]; present && v == nil {
			delete(md, "creationTimestamp")
		}
	}
	return m, nil
}

// FromMap is the inverse of ToMap.
func FromMap(k *Kind, m map[string]any) (Object, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", k.Kind, err)
	}
	obj := k.New()
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", k.Kind, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(k.GroupVersionKind())
	return obj, nil
}

// MarshalYAML renders an object as kubectl does: keys sorted, apiVersion and kind set.
func MarshalYAML(obj Object) ([]byte, error) {
	m, err := ToMap(obj)
	if err != nil {
		return nil, err
	}
	return sigsyaml.Marshal(m)
}
