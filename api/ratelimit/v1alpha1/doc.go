// Package v1alpha1 holds the Go types of meshway's own policy API,
// ratelimit.meshway.io/v1alpha1: LocalRateLimitPolicy, a local (per waypoint
// replica) rate limit for the HTTP traffic of a waypoint or of a service
// behind it. Istio has no supported rate limiting on waypoints; the fields
// are those of Envoy Gateway's BackendTrafficPolicy local rate limit
// (spec.rateLimit.local.rules), which users know, plus a sourcePrincipal
// selector for mesh identities.
//
// crd.yaml, next to this file, is the CustomResourceDefinition. It is
// written by hand (meshway runs no code generator for it) and tests keep it
// in step with these types: every JSON field of the types is in its schema
// and every schema property is a field. DeepCopy methods are hand-written
// too, in deepcopy.go, and tested the same way.
//
// The translator turns a policy into model.LocalRateLimit values
// (internal/model) for the waypoints it applies to; the limiter
// (internal/waypoint/ratelimit) enforces them.
//
// +groupName=ratelimit.meshway.io
package v1alpha1
