// Package manifest knows the kinds of object meshway reads — the upstream
// Kubernetes, Gateway API and Istio Go types — and turns YAML or JSON manifests
// from files, directories or stdin into those typed objects, with errors that name
// the file, the document, the object and the field at fault; and it admits an
// object as a Kubernetes API server would store it (Admit: defaults, and for
// custom resources their CRD's pruning and validation, from internal/crd).
package manifest
