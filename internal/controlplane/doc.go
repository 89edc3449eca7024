// Package controlplane is meshd's loop: it watches the config store, turns
// what users wrote into each proxy's configuration (internal/translate),
// pushes it (internal/push), keeps the waypoints' workload objects in the
// store (internal/deploy) and writes the status users read on their objects.
// It also serves the secure port (SecureServer: xDS and the CA's CSR service
// over TLS, for callers with a token, each xDS subscription checked against
// the caller's namespace) and publishes the mesh's roots in ConfigMap
// istio-ca-root-cert of every namespace (RootCertWriter).
//
// The waypoints' configurations and the ztunnels' (shared pieces of the
// whole mesh) are translated incrementally, the waypoints' first: a change
// reaches the waypoints it affects without waiting for the ztunnels.
//
// Pushing does not wait for writes: the store's writes (deployment objects,
// status) run on their own goroutine on the newest snapshot, and only on the
// elected leader, while every replica serves xDS.
package controlplane
