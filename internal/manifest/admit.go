package manifest

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/meshway/meshway/internal/crd"
)

// Operation is the kind of write an object is admitted for.
type Operation = crd.Operation

// Operations, as crd names them.
const (
	Create       = crd.Create
	Update       = crd.Update
	UpdateStatus = crd.UpdateStatus
)

// SchemaFor returns the CRD schema of a kind at a version ("" is the stored
// version), or nil for a built-in kind, which has none.
func SchemaFor(k *Kind, version string) (*crd.Schema, error) {
	if version == "" {
		version = k.Version
	}
	return crd.For(schema.GroupVersionResource{Group: k.Group, Version: version, Resource: k.Resource})
}

// Admit returns obj as a Kubernetes API server stores it after a write: for a
// custom resource, pruned of the fields its CRD's schema does not declare,
// defaulted, and validated against the schema and its CEL rules — an
// Invalid API error (kubectl's "… is invalid: [field: Invalid value: …]")
// lists every field at fault. For built-in kinds only the defaults of
// ApplyDefaults are applied; their validation is left to the API server
// (see docs/compatibility.md).
//
// version is the apiVersion's version the object was written in, whose
// schema validates it ("" is the kind's stored version); old is the stored
// object for Update and UpdateStatus. An empty status counts as none, as
// for a create on an API server, which drops the status. obj is not
// modified; the result always carries the kind's stored version.
func Admit(ctx context.Context, op Operation, version string, obj, old Object) (Object, error) {
	k, err := KindOf(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	s, err := SchemaFor(k, version)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if s == nil {
		out := obj.DeepCopyObject().(Object)
		ApplyDefaults(out)
		return out, nil
	}
	u, err := toUnstructured(k, obj)
	if err != nil {
		return nil, err
	}
	var oldU map[string]any
	if old != nil && op != Create {
		if oldU, err = toUnstructured(k, old); err != nil {
			return nil, err
		}
		s.Default(oldU) // as the API server reads the stored object
	}
	s.Default(u)
	errs, err := s.Validate(ctx, op, u, oldU)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(k.GroupVersionKind().GroupKind(), obj.GetName(), errs)
	}
	return FromMap(k, u)
}

// toUnstructured renders obj as the JSON tree an API server decodes from a
// request: integers as int64, an empty status left out.
func toUnstructured(k *Kind, obj Object) (map[string]any, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %s %s: %w", k.Kind, obj.GetName(), err)
	}
	var m map[string]any
	if err := utiljson.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("encoding %s %s: %w", k.Kind, obj.GetName(), err)
	}
	m["apiVersion"] = k.APIVersion()
	m["kind"] = k.Kind
	if emptyJSON(m["status"]) {
		delete(m, "status")
	}
	return m, nil
}

// emptyJSON reports whether a JSON value holds nothing: null, "", an empty
// list, or maps holding only such values — how the Go types encode a status
// no one has written.
func emptyJSON(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, x := range v {
			if !emptyJSON(x) {
				return false
			}
		}
		return true
	case []any:
		return len(v) == 0
	case string:
		return v == ""
	}
	return false
}
