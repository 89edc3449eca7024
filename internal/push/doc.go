// Package push delivers configuration from the control plane to the proxies
// over xDS: an aggregated, incremental (delta) discovery server built on
// go-control-plane (the client both proxies run is internal/push/client).
// Resources are the project's own protobuf messages (api/meshpb), one per
// proxy configuration, named "<namespace>/<name>".
//
// Flow control is xDS's own: the server sends a proxy at most one response
// per resource type until the proxy ACKs or NACKs it, and changes made
// meanwhile coalesce in the cache, so a slow proxy gets the newest state when
// it catches up, never a backlog, and a writer never waits for a proxy. A
// proxy that leaves a response unanswered for longer than the ACK timeout is
// disconnected; it reconnects and resyncs.
package push
