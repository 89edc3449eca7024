// Package waypoint is the L7 engine of the waypoint proxy: it takes the
// traffic of the services and workloads bound to the waypoint — by original
// destination, from HBONE streams or from plain TCP listeners mapped to one —
// and routes HTTP requests per the configuration ([model.Waypoint]) to
// upstream endpoints, over HBONE when the endpoint has a mesh identity.
// HTTP/1.1 is served on a fast path that reuses per-connection state
// (h1server.go) and hands anything it does not parse to net/http's
// server, which serves HTTP/2 too.
//
// A configuration is validated and compiled whole, then swapped in with one
// atomic store ([Proxy.Load]): requests already being served finish on the
// one they started with; an invalid configuration is refused and the
// previous one keeps serving.
package waypoint
