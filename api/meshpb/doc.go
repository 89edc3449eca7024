// Package meshpb holds the mesh's own protobuf APIs and their generated Go
// code: the certificate authority's CSR service (ca.proto). Regenerate with
// `make gen` (hack/gen.sh); the generated files are committed.
package meshpb
