// Package meshpb holds the mesh's own protobuf APIs and their generated Go
// code: the certificate authority's CSR service (ca.proto) and the
// configurations the control plane pushes over xDS: the waypoint's
// (waypoint.proto) and each node's ztunnel's (ztunnel.proto), converted from
// and to the model by internal/push/wire; and the subset of Envoy's delta
// discovery messages the proxies speak it with (xds.proto). Regenerate with `make gen`
// (hack/gen.sh); the generated files are committed, and `make gen-check`
// fails when they are not current.
package meshpb
