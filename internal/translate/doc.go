// Package translate turns store objects (Kubernetes, Gateway API and Istio
// resources, as their upstream Go types) into the mesh model. It is pure: no
// I/O, no clients, no clocks; every function is a deterministic function of
// its arguments, so the control plane and meshctl can run the same code.
//
// Today it owns waypoint binding (which waypoint, if any, carries traffic
// addressed to a Service, ServiceEntry, Pod or WorkloadEntry, with the
// istio.io/WaypointBound condition Istio would report) and the
// human-readable explanations of those decisions behind `meshctl explain`.
package translate
