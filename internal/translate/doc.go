// Package translate turns store objects (Kubernetes, Gateway API and Istio
// resources, as their upstream Go types) into the mesh model. It is pure: no
// I/O, no clients, no clocks; every function is a deterministic function of
// its arguments, so the control plane and meshctl can run the same code.
//
// It owns waypoint binding (which waypoint, if any, carries traffic
// addressed to a Service, ServiceEntry, Pod or WorkloadEntry, with the
// istio.io/WaypointBound condition Istio would report), the human-readable
// explanations of those decisions behind `meshctl explain`, and
// [WaypointConfigs]: each waypoint's configuration (model.Waypoint) from
// the services bound to it, their endpoints, HTTPRoutes, GRPCRoutes,
// VirtualServices, DestinationRules, AuthorizationPolicies, Telemetry (with
// the tracing providers of Istio's MeshConfig, the root namespace's
// ConfigMap istio) and LocalRateLimitPolicies, with warnings for what does
// not apply;
// [ZtunnelConfigs]: each node's ztunnel configuration (model.Ztunnel): the
// mesh's workloads, services and waypoints as binding resolves them, and
// the L4 AuthorizationPolicies, converted as Istio converts them for
// ztunnel — built once for every node ([ZtunnelMesh]) and kept up to date
// namespace by namespace ([ZtunnelTranslation]); and [ObjectStatuses]: the conditions users read on what they
// wrote (Services, ServiceEntries, WorkloadEntries, routes,
// AuthorizationPolicies), as Istio reports them.
package translate
