// Package push delivers configuration from the control plane to the proxies
// over xDS: an aggregated, incremental (delta) discovery server built on
// go-control-plane (the client both proxies run is internal/push/client).
// Resources are the project's own protobuf messages (api/meshpb): one per
// waypoint configuration, named "<namespace>/<name>", which a waypoint
// subscribes to by name; and the pieces every ztunnel shares — one per
// workload, service, waypoint and L4 policy (internal/push/wire's
// ZtunnelTypes) — which a ztunnel subscribes to whole, with the wildcard
// "*", as Istio's ztunnels subscribe to WDS.
//
// Flow control is xDS's own: the server sends a proxy at most one response
// per resource type until the proxy ACKs or NACKs it, and changes made
// meanwhile coalesce in the cache, so a slow proxy gets the newest state when
// it catches up, never a backlog, and a writer never waits for a proxy. A
// proxy that leaves a response unanswered for longer than the ACK timeout is
// disconnected; it reconnects and resyncs. A type's subscribers wait until
// the control plane has set it once, so that a proxy reconnecting to a
// control plane that just started is not told its resources are gone.
//
// What the server keeps per proxy does not grow with the mesh for wildcard
// subscriptions: their sync state is tracked per type (tracker.go), their
// types are served from a cache that keeps a change log rather than each
// subscriber's map of versions (wildcardcache.go), and only a few streams
// at a time may have a response of the whole type outstanding (limit.go).
package push
