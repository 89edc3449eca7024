// Command crdgen copies the CustomResourceDefinitions of the custom resources
// meshway reads (internal/manifest.All) into internal/crd/crds, where the
// binaries embed them: the Gateway API's standard channel and Istio's CRDs
// from the module cache, at the versions go.mod pins, and meshway's own from
// api/. Descriptions are left out (they are most of the bytes and no part of
// validation); everything else — types, enums, bounds, patterns, required,
// defaults, list types and CEL rules — is copied as it is. `make gen` runs it,
// `make gen-check` fails when its output differs from what is committed.
//
// Usage: go run ./hack/crdgen [-out internal/crd/crds]
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/manifest"
)

// source is one place CRDs are read from.
type source struct {
	module string // Go module holding it; "" for this repository
	path   string // file or directory inside the module
	note   string // said in the header of each CRD copied from it
}

// sources, searched in this order: a kind found in an earlier one is taken
// from there.
//
// The Gateway API's CRDs come from its experimental channel, although every
// kind meshway reads is in the standard channel too: meshway translates a
// field only the experimental channel declares — an HTTPRoute rule's retry
// (Istio reads it as well, on clusters with the experimental CRDs). With the
// standard channel's CRDs the embedded store would prune it and meshctl apply
// refuse it, as a cluster with those CRDs does. internal/kube/kubetest
// installs the same channel, so the tests' API server agrees with the
// embedded store.
var sources = []source{
	{"sigs.k8s.io/gateway-api", "config/crd/experimental", "Gateway API experimental channel"},
	{"istio.io/api", "kubernetes/customresourcedefinitions.gen.yaml", "Istio"},
	{"", "api/ratelimit/v1alpha1/crd.yaml", "meshway"},
}

type found struct {
	crd    *apiextensionsv1.CustomResourceDefinition
	from   string // module@version/path of the file it came from
	origin string // e.g. "Gateway API standard channel v1.6.3"
}

func main() {
	out := flag.String("out", "internal/crd/crds", "directory to write the CRDs into (relative to the repository root)")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "crdgen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	byGroupKind := map[string]found{}
	for _, src := range sources {
		if err := readSource(src, byGroupKind); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	written := map[string]bool{}
	for _, k := range manifest.All {
		if !k.IsCustomResource() {
			continue // built in to the API server, no CRD
		}
		f, ok := byGroupKind[k.Group+"/"+k.Kind]
		if !ok {
			return fmt.Errorf("no CRD defines %s in group %s; add the file that does to sources in hack/crdgen", k.Kind, k.Group)
		}
		for _, v := range append([]string{k.Version}, k.OtherVersions...) {
			if !served(f.crd, v) {
				return fmt.Errorf("%s (%s) does not serve %s version %s, which internal/manifest/kinds.go reads", f.crd.Name, f.from, k.Kind, v)
			}
		}
		data, err := render(f)
		if err != nil {
			return err
		}
		name := f.crd.Name + ".yaml"
		if err := writeIfChanged(filepath.Join(out, name), data); err != nil {
			return err
		}
		written[name] = true
	}
	// CRDs of kinds meshway no longer reads go.
	entries, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") && !written[e.Name()] {
			if err := os.Remove(filepath.Join(out, e.Name())); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(os.Stderr, "crdgen: %d CRDs in %s\n", len(written), out)
	return nil
}

func served(crd *apiextensionsv1.CustomResourceDefinition, version string) bool {
	for _, v := range crd.Spec.Versions {
		if v.Name == version {
			return v.Served
		}
	}
	return false
}

// readSource adds the CRDs of src not found in an earlier source.
func readSource(src source, into map[string]found) error {
	root, from, origin := ".", src.path, src.note
	if src.module != "" {
		dir, version, err := moduleDir(src.module)
		if err != nil {
			return err
		}
		root, from, origin = dir, src.module+"@"+version+"/"+src.path, src.note+" "+version
	}
	path := filepath.Join(root, filepath.FromSlash(src.path))
	var files []string
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", from, err)
	}
	slices.Sort(files)
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(path, file)
		where := from
		if rel != "." {
			where = from + "/" + filepath.ToSlash(rel)
		}
		for _, doc := range splitYAML(data) {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := sigsyaml.Unmarshal(doc, &crd); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			if crd.Kind != "CustomResourceDefinition" {
				continue // e.g. a kustomization or a ValidatingAdmissionPolicy
			}
			key := crd.Spec.Group + "/" + crd.Spec.Names.Kind
			if _, ok := into[key]; !ok {
				into[key] = found{crd: &crd, from: where, origin: origin}
			}
		}
	}
	return nil
}

func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
	return docs
}

func moduleDir(module string) (dir, version string, err error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", module)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("finding module %s (go list -m): %w", module, err)
	}
	dir, version, _ = strings.Cut(strings.TrimSpace(string(out)), " ")
	if dir == "" {
		return "", "", errors.New("module " + module + " is not in the module cache; run go mod download")
	}
	return dir, version, nil
}

// render writes the CRD without descriptions, status or server-set metadata,
// keys sorted: the same input always gives the same bytes.
func render(f found) ([]byte, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{TypeMeta: f.crd.TypeMeta, Spec: f.crd.Spec}
	crd.Name = f.crd.Name
	crd.Annotations = f.crd.Annotations
	crd.Labels = f.crd.Labels
	for i := range crd.Spec.Versions {
		if s := crd.Spec.Versions[i].Schema; s != nil && s.OpenAPIV3Schema != nil {
			stripDescriptions(s.OpenAPIV3Schema)
		}
	}
	body, err := sigsyaml.Marshal(crd)
	if err != nil {
		return nil, err
	}
	header := fmt.Sprintf("# Code generated by hack/crdgen; DO NOT EDIT.\n"+
		"# From: %s\n# Origin: %s\n"+
		"# Descriptions are left out; everything that validates or defaults is as upstream.\n", f.from, f.origin)
	return append([]byte(header), body...), nil
}

func stripDescriptions(s *apiextensionsv1.JSONSchemaProps) {
	if s == nil {
		return
	}
	s.Description = ""
	for _, m := range []map[string]apiextensionsv1.JSONSchemaProps{s.Properties, s.PatternProperties, s.Definitions} {
		for k, v := range m {
			stripDescriptions(&v)
			m[k] = v
		}
	}
	for k, v := range s.Dependencies {
		stripDescriptions(v.Schema)
		s.Dependencies[k] = v
	}
	for _, list := range [][]apiextensionsv1.JSONSchemaProps{s.AllOf, s.OneOf, s.AnyOf} {
		for i := range list {
			stripDescriptions(&list[i])
		}
	}
	stripDescriptions(s.Not)
	if s.Items != nil {
		stripDescriptions(s.Items.Schema)
		for i := range s.Items.JSONSchemas {
			stripDescriptions(&s.Items.JSONSchemas[i])
		}
	}
	if s.AdditionalProperties != nil {
		stripDescriptions(s.AdditionalProperties.Schema)
	}
	if s.AdditionalItems != nil {
		stripDescriptions(s.AdditionalItems.Schema)
	}
}

func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return os.WriteFile(path, data, 0o644)
}
