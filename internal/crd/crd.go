// Package crd holds the CustomResourceDefinitions of the custom resources
// meshway reads — the Gateway API's (experimental channel: meshway reads an
// HTTPRoute rule's retry, which only it declares), Istio's and meshway's
// own, copied into crds/ by `make gen` — and treats objects as a Kubernetes API
// server treats custom resources on write: it prunes fields the schema does
// not declare, applies the schema's defaults, and validates against the
// OpenAPI schema (types, enums, bounds, patterns, required fields, list
// types) and the CEL rules (x-kubernetes-validations), with the API server's
// cost budget and its ratcheting of unchanged fields on update. It uses the
// API server's own code (k8s.io/apiextensions-apiserver), so messages read as
// kubectl shows them.
//
// Objects are unstructured JSON trees (map[string]any with int64 and float64
// numbers, as k8s.io/apimachinery/pkg/util/json decodes them). Built-in kinds
// (Service, Pod, Namespace…) have no CRD here.
package crd

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"sync"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/common"
	sigsyaml "sigs.k8s.io/yaml"
)

// crds holds the CRDs, one file per CRD named after it
// ("httproutes.gateway.networking.k8s.io.yaml"). The directory (not a
// pattern) is embedded, so the package builds while `make gen` rewrites it.
//
//go:embed crds
var crds embed.FS

// Operation is the kind of write an object is admitted for.
type Operation int

// Operations.
const (
	// Create validates the whole object.
	Create Operation = iota
	// Update validates the whole object against the stored one: errors in
	// fields left unchanged are ratcheted (ignored), as the API server does.
	Update
	// UpdateStatus validates the status against the stored object, ratcheted.
	UpdateStatus
)

// Schema is one served version of a CRD, compiled for validation. It is safe
// for concurrent use.
type Schema struct {
	// GroupVersionKind this schema validates.
	GroupVersionKind schema.GroupVersionKind
	// CRDName is the CRD's name, e.g. "httproutes.gateway.networking.k8s.io".
	CRDName string
	// Origin names the project and version the CRD comes from, e.g.
	// "Gateway API experimental channel v1.6.3".
	Origin string
	// HasStatusSubresource: the status is written apart from the rest.
	HasStatusSubresource bool

	structural *structuralschema.Structural // defaults pruned, as the API server serves it
	openAPI    *apiextensionsinternal.JSONSchemaProps
	shared     *Schema // the version with the same schema whose validators this one uses

	compile         sync.Once
	validator       validation.SchemaValidator
	statusValidator validation.SchemaValidator
	celValidator    *cel.Validator // nil when the schema has no CEL rules
	compileErr      error
}

var (
	mu      sync.Mutex
	byCRD   = map[string]*crdEntry{} // by CRD name
	errNone = errors.New("no CRD")
)

type crdEntry struct {
	once     sync.Once
	crd      *apiextensionsv1.CustomResourceDefinition
	origin   string
	err      error
	versions map[string]*Schema // by version name, built on first use
	vmu      sync.Mutex
}

// BuiltInGroup reports whether an API group is served by the API server
// itself (the kinds meshway reads from it have no CRD): core, apps,
// autoscaling and policy.
func BuiltInGroup(group string) bool {
	switch group {
	case "", "apps", "autoscaling", "policy":
		return true
	}
	return false
}

// For returns the schema of a resource at a version: gvr.Resource is the
// lower-case plural ("httproutes"). It returns (nil, nil) when no embedded
// CRD defines the resource — a built-in kind — and an error when the CRD
// does not serve the version. The CRD is read and its schema converted on
// first use; the CEL rules are compiled on the first validation.
func For(gvr schema.GroupVersionResource) (*Schema, error) {
	if BuiltInGroup(gvr.Group) {
		return nil, nil
	}
	name := gvr.Resource + "." + gvr.Group
	mu.Lock()
	e, ok := byCRD[name]
	if !ok {
		e = &crdEntry{versions: map[string]*Schema{}}
		byCRD[name] = e
	}
	mu.Unlock()
	e.once.Do(func() { e.crd, e.origin, e.err = readCRD(name) })
	if errors.Is(e.err, errNone) {
		return nil, nil
	} else if e.err != nil {
		return nil, e.err
	}
	return e.version(gvr.Version)
}

// Names lists the names of the embedded CRDs.
func Names() []string {
	entries, _ := fs.ReadDir(crds, "crds")
	var out []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			out = append(out, n)
		}
	}
	return out
}

// Read returns the embedded CRD of that name (e.g.
// "httproutes.gateway.networking.k8s.io"), as `make gen` copied it.
func Read(name string) (*apiextensionsv1.CustomResourceDefinition, error) {
	crd, _, err := readCRD(name)
	return crd, err
}

func readCRD(name string) (*apiextensionsv1.CustomResourceDefinition, string, error) {
	data, err := crds.ReadFile("crds/" + name + ".yaml")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", errNone
	} else if err != nil {
		return nil, "", err
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := sigsyaml.Unmarshal(data, &crd); err != nil {
		return nil, "", fmt.Errorf("embedded CRD %s: %w; run make gen", name, err)
	}
	origin := "unknown origin"
	for line := range strings.Lines(string(data)) {
		if !strings.HasPrefix(line, "#") {
			break
		}
		if o, ok := strings.CutPrefix(line, "# Origin: "); ok {
			origin = strings.TrimSpace(o)
		}
	}
	return &crd, origin, nil
}

// version builds the schema of one version; versions whose schemas are
// equal (Gateway API's v1 and v1beta1, Istio's v1, v1beta1 and v1alpha3)
// share one, so its CEL rules are compiled once.
func (e *crdEntry) version(name string) (*Schema, error) {
	e.vmu.Lock()
	defer e.vmu.Unlock()
	if s, ok := e.versions[name]; ok {
		return s, nil
	}
	var v *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range e.crd.Spec.Versions {
		if e.crd.Spec.Versions[i].Name == name && e.crd.Spec.Versions[i].Served {
			v = &e.crd.Spec.Versions[i]
		}
	}
	if v == nil {
		return nil, fmt.Errorf("the CRD %s does not serve version %s", e.crd.Name, name)
	}
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("the CRD %s has no schema for version %s", e.crd.Name, name)
	}
	gvk := schema.GroupVersionKind{Group: e.crd.Spec.Group, Version: name, Kind: e.crd.Spec.Names.Kind}
	hasStatus := v.Subresources != nil && v.Subresources.Status != nil
	for other, s := range e.versions {
		ov := e.served(other)
		if reflect.DeepEqual(ov.Schema, v.Schema) && s.HasStatusSubresource == hasStatus {
			shared := s.shareAs(gvk)
			e.versions[name] = shared
			return shared, nil
		}
	}
	internal := &apiextensionsinternal.CustomResourceValidation{}
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(v.Schema, internal, nil); err != nil {
		return nil, fmt.Errorf("the CRD %s version %s: %w", e.crd.Name, name, err)
	}
	structural, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("the CRD %s version %s has no structural schema: %w", e.crd.Name, name, err)
	}
	// As the API server serves a CRD: defaults inside the schema are pruned
	// of fields the schema does not declare.
	structural = structural.DeepCopy()
	if err := structuraldefaulting.PruneDefaults(structural); err != nil {
		return nil, fmt.Errorf("the CRD %s version %s: pruning defaults: %w", e.crd.Name, name, err)
	}
	s := &Schema{
		GroupVersionKind: gvk, CRDName: e.crd.Name, Origin: e.origin,
		HasStatusSubresource: hasStatus,
		structural:           structural, openAPI: internal.OpenAPIV3Schema,
	}
	e.versions[name] = s
	return s, nil
}

func (e *crdEntry) served(name string) *apiextensionsv1.CustomResourceDefinitionVersion {
	for i := range e.crd.Spec.Versions {
		if e.crd.Spec.Versions[i].Name == name {
			return &e.crd.Spec.Versions[i]
		}
	}
	return nil
}

// shareAs is s for another version with the same schema: a new Schema that
// shares the compiled validators (compiled once, by whichever is first).
func (s *Schema) shareAs(gvk schema.GroupVersionKind) *Schema {
	if s.GroupVersionKind == gvk {
		return s
	}
	return &Schema{GroupVersionKind: gvk, CRDName: s.CRDName, Origin: s.Origin, HasStatusSubresource: s.HasStatusSubresource,
		structural: s.structural, openAPI: s.openAPI, shared: s}
}

// compiled returns the schema whose validators are compiled, compiling them
// on first use.
func (s *Schema) compiled() (*Schema, error) {
	if s.shared != nil {
		return s.shared.compiled()
	}
	s.compile.Do(func() {
		s.validator, _, s.compileErr = validation.NewSchemaValidator(s.openAPI)
		if s.compileErr != nil {
			return
		}
		if status, ok := s.openAPI.Properties["status"]; ok && s.HasStatusSubresource {
			s.statusValidator, _, s.compileErr = validation.NewSchemaValidator(&status)
			if s.compileErr != nil {
				return
			}
		}
		// Compiles every CEL rule of the schema: the costly part, done once.
		s.celValidator = cel.NewValidator(s.structural, true, celconfig.PerCallLimit)
	})
	return s, s.compileErr
}

// UnknownFields lists the fields of obj that the schema does not declare, as
// paths like "spec.rules[0].sessionPersistence": the fields an API server
// prunes, and that kubectl's strict field validation (its default) refuses.
// obj is not modified. Metadata is not looked at.
func (s *Schema) UnknownFields(obj map[string]any) []string {
	c := runtime.DeepCopyJSON(obj)
	return structuralpruning.PruneWithOptions(c, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
}

// Default prunes obj of the fields the schema does not declare and of nulls
// it does not allow, and applies the schema's defaults, in place — what the
// API server does while decoding a request and reading from storage.
func (s *Schema) Default(obj map[string]any) {
	structuralpruning.Prune(obj, s.structural, true)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, s.structural)
	structuraldefaulting.Default(obj, s.structural)
}

// Validate returns what makes the API server refuse obj (already passed
// through Default) for op; old is the stored object (also defaulted) for
// Update and UpdateStatus, nil for Create. The order and the rules are the
// API server's: the OpenAPI schema, embedded objects' metadata, list types,
// then the CEL rules — unless an earlier error makes them unsafe to run.
func (s *Schema) Validate(ctx context.Context, op Operation, obj, old map[string]any) (field.ErrorList, error) {
	c, err := s.compiled()
	if err != nil {
		return nil, fmt.Errorf("compiling the schema of %s: %w", s.GroupVersionKind, err)
	}
	if op != Create && old == nil {
		return nil, fmt.Errorf("validating an update of %s: no stored object", s.GroupVersionKind)
	}
	var errs field.ErrorList
	var celOpts []cel.Option
	var celOld any
	switch op {
	case Create:
		errs = append(errs, validation.ValidateCustomResource(nil, obj, c.validator)...)
		errs = append(errs, schemaobjectmeta.Validate(ctx, nil, obj, s.structural, false)...)
		errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, s.structural, obj)...)
	case Update:
		corr := common.NewCorrelatedObject(obj, old, &model.Structural{Structural: s.structural})
		errs = append(errs, validation.ValidateCustomResourceUpdate(nil, obj, old, c.validator, validation.WithRatcheting(corr))...)
		errs = append(errs, schemaobjectmeta.Validate(ctx, nil, obj, s.structural, false)...)
		if oldErrs := structurallisttype.ValidateListSetsAndMaps(nil, s.structural, old); len(oldErrs) == 0 {
			errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, s.structural, obj)...)
		}
		celOpts, celOld = []cel.Option{cel.WithRatcheting(corr)}, old
	case UpdateStatus:
		corr := common.NewCorrelatedObject(obj, old, &model.Structural{Structural: s.structural})
		if status, ok := obj["status"]; ok && c.statusValidator != nil {
			errs = append(errs, validation.ValidateCustomResourceUpdate(field.NewPath("status"), status, old["status"], c.statusValidator, validation.WithRatcheting(corr.Key("status")))...)
		}
		if newErrs := structurallisttype.ValidateListSetsAndMaps(nil, s.structural, obj); len(newErrs) > 0 {
			if oldErrs := structurallisttype.ValidateListSetsAndMaps(nil, s.structural, old); len(oldErrs) == 0 {
				errs = append(errs, newErrs...)
			}
		}
		celOpts, celOld = []cel.Option{cel.WithRatcheting(corr)}, old
	}
	if c.celValidator != nil {
		if blocking, e := hasBlockingErr(errs); blocking {
			errs = append(errs, e)
		} else {
			celErrs, _ := c.celValidator.Validate(ctx, nil, s.structural, obj, celOld, celconfig.RuntimeCELCostBudget, celOpts...)
			errs = append(errs, celErrs...)
		}
	}
	SortErrors(errs)
	return errs, nil
}

// SortErrors orders field errors by field path, errors about no one field
// last. The API server reports schema errors in map order, which changes
// from one request to the next; sorted, the same object always gets the same
// message.
func SortErrors(errs field.ErrorList) {
	slices.SortStableFunc(errs, func(a, b *field.Error) int {
		an, bn := a.Field == "" || a.Field == "<nil>", b.Field == "" || b.Field == "<nil>"
		switch {
		case an != bn:
			if an {
				return 1
			}
			return -1
		default:
			return strings.Compare(a.Field, b.Field)
		}
	})
}

// hasBlockingErr is the API server's: after these errors the CEL rules are
// not run (their input may not have the types they expect).
func hasBlockingErr(errs field.ErrorList) (bool, *field.Error) {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true, field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")
		}
	}
	return false, nil
}
