package model

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Waypoint is the whole configuration of one waypoint proxy: the services
// and workloads whose traffic it captures, how their HTTP requests are
// routed, and the clusters of endpoints requests go to. A Waypoint is built
// and validated whole and then swapped in at once.
type Waypoint struct {
	// Name and Namespace are those of the waypoint's Gateway.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Services are the captured services, addressed by VIP:port or
	// hostname:port.
	Services []Service `json:"services,omitempty"`
	// Workloads are the captured workloads, addressed by IP:port.
	Workloads []Workload `json:"workloads,omitempty"`
	// Clusters are the upstreams routes send to.
	Clusters []Cluster `json:"clusters,omitempty"`
	// Policies are the AuthorizationPolicies that target the waypoint
	// itself (targetRefs kind Gateway, or GatewayClass istio-waypoint from
	// the root namespace): they apply to all its traffic.
	Policies []AuthorizationPolicy `json:"policies,omitempty"`
	// Telemetry is what Istio's Telemetry resources ask of the waypoint.
	Telemetry Telemetry `json:"telemetry,omitzero"`
	// RateLimits are the LocalRateLimitPolicies that target the waypoint
	// itself; each service gets its own buckets under them.
	RateLimits []LocalRateLimit `json:"rateLimits,omitempty"`
	// DefaultRetry is the retry policy of requests no route matches (they
	// go to their original destination); nil: they are tried once.
	// Translation sets Istio's default, as Istio's default route has it.
	DefaultRetry *Retry `json:"defaultRetry,omitempty"`
}

// Telemetry configures the waypoint's access logs and tracing; metrics
// are always on.
type Telemetry struct {
	// AccessLog writes one JSON line per request to standard output.
	AccessLog bool `json:"accessLog,omitempty"`
	// TracingPercent is the share of new traces sampled (requests that
	// arrive with a traceparent keep its decision); nil means 1, Istio's
	// default.
	TracingPercent *float64 `json:"tracingPercent,omitempty"`
	// TracingEndpoint is the OTLP collector spans are sent to (host:port,
	// in plain text, as an in-mesh collector is reached); empty: traces are
	// continued but no spans are exported.
	TracingEndpoint string `json:"tracingEndpoint,omitempty"`
	// TracingProtocol is how spans reach TracingEndpoint. Empty is
	// TracingHTTP, what TracingEndpoint meant before this field existed;
	// translation always sets it (Istio's OpenTelemetry provider is gRPC
	// unless it has an http block).
	TracingProtocol TracingProtocol `json:"tracingProtocol,omitempty"`
	// TracingPath is the URL path OTLP/HTTP spans are POSTed to; empty is
	// /v1/traces. Only with TracingHTTP.
	TracingPath string `json:"tracingPath,omitempty"`
}

// TracingProtocol is the OTLP transport of span export.
type TracingProtocol string

// Tracing protocols.
const (
	TracingHTTP TracingProtocol = "http" // OTLP/HTTP, protobuf bodies (collector port 4318)
	TracingGRPC TracingProtocol = "grpc" // OTLP/gRPC (collector port 4317)
)

// Protocol is how the waypoint handles a port's traffic, from the Service
// port's appProtocol or name prefix as in Istio.
type Protocol string

// Protocols.
const (
	ProtocolHTTP  Protocol = "HTTP"  // HTTP/1.1, or HTTP/2 with prior knowledge
	ProtocolHTTP2 Protocol = "HTTP2" // HTTP/2 cleartext (h2c)
	ProtocolGRPC  Protocol = "GRPC"  // gRPC: HTTP/2
	ProtocolTCP   Protocol = "TCP"   // opaque: bytes are forwarded as they are
)

// IsHTTP reports whether requests on the port are parsed and routed.
func (p Protocol) IsHTTP() bool { return p == ProtocolHTTP || p == ProtocolHTTP2 || p == ProtocolGRPC }

// Service is a captured service.
type Service struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Hostname is the service's DNS name, e.g.
	// reviews.default.svc.cluster.local.
	Hostname string `json:"hostname"`
	// Addresses are the service's VIPs.
	Addresses []string      `json:"addresses,omitempty"`
	Ports     []ServicePort `json:"ports"`
	// Policies are the AuthorizationPolicies that target this service;
	// they apply together with the waypoint's own.
	Policies []AuthorizationPolicy `json:"policies,omitempty"`
	// RateLimits are the LocalRateLimitPolicies that target this service;
	// they apply together with the waypoint's own.
	RateLimits []LocalRateLimit `json:"rateLimits,omitempty"`
}

// ServicePort is one port of a service and what happens to its traffic.
type ServicePort struct {
	Name     string   `json:"name,omitempty"`
	Port     uint16   `json:"port"`
	Protocol Protocol `json:"protocol"`
	// Cluster is where traffic no route matches goes: the service's own
	// endpoints for this port. Required.
	Cluster string `json:"cluster"`
	// Routes are the HTTPRoutes (and VirtualServices) attached to this
	// port, for HTTP protocols. Order does not matter for HTTPRoutes:
	// the Gateway API's precedence rules apply.
	Routes []HTTPRoute `json:"routes,omitempty"`
}

// Workload is a captured workload, for workload-addressed traffic.
type Workload struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Addresses are the workload's IPs.
	Addresses []string `json:"addresses"`
	// Ports the workload serves; traffic to other ports goes through as TCP
	// to the same address.
	Ports []WorkloadPort `json:"ports,omitempty"`
	// Identity is the workload's SPIFFE ID, for the upstream HBONE tunnel.
	Identity string `json:"identity,omitempty"`
}

// WorkloadPort is a port of a workload.
type WorkloadPort struct {
	Port     uint16   `json:"port"`
	Protocol Protocol `json:"protocol"`
}

// RouteKind says which API a route came from; it decides how routes are
// ordered.
type RouteKind string

// Route kinds.
const (
	// KindHTTPRoute routes are ordered by the Gateway API's precedence
	// rules across all routes of a port.
	KindHTTPRoute RouteKind = "HTTPRoute"
	// KindGRPCRoute routes match gRPC service and method.
	KindGRPCRoute RouteKind = "GRPCRoute"
	// KindVirtualService routes are first-match in the order written, as
	// in Istio.
	KindVirtualService RouteKind = "VirtualService"
)

// HTTPRoute is one route object as it applies to a port.
type HTTPRoute struct {
	Kind      RouteKind `json:"kind,omitempty"` // empty means HTTPRoute
	Name      string    `json:"name"`
	Namespace string    `json:"namespace"`
	// Created is the route's creation time, the Gateway API's first
	// tie-breaker between equally specific matches of different routes.
	Created time.Time   `json:"created,omitzero"`
	Rules   []RouteRule `json:"rules"`
}

// RouteRule is a rule of a route: requests matching any of Matches (or
// every request, if there are none) go to Backends.
type RouteRule struct {
	Name    string       `json:"name,omitempty"`
	Matches []RouteMatch `json:"matches,omitempty"`
	// Filters apply to every request the rule matches, in order.
	Filters []Filter `json:"filters,omitempty"`
	// Backends share the rule's requests by weight. No backend (or all
	// weights zero) answers 500, as the Gateway API says.
	Backends []Backend `json:"backends,omitempty"`
	Timeouts Timeouts  `json:"timeouts,omitzero"`
	// Retry, if set, retries failed tries.
	Retry *Retry `json:"retry,omitempty"`
	// Fault, if set, injects delays and aborts (VirtualService fault).
	Fault *Fault `json:"fault,omitempty"`
}

// Fault injects failures into a share of a rule's requests, as Istio's
// VirtualService HTTPFaultInjection: the delay first, then the abort.
type Fault struct {
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay holds Percent of requests for Fixed before forwarding them.
type FaultDelay struct {
	Percent float64  `json:"percent"`
	Fixed   Duration `json:"fixedDelay"`
}

// FaultAbort answers Percent of requests with HTTPStatus without
// forwarding them.
type FaultAbort struct {
	Percent    float64 `json:"percent"`
	HTTPStatus int     `json:"httpStatus"`
}

// Retry says when and how often a failed try is retried: HTTPRoute's
// retry (attempts, codes, backoff) and VirtualService's retries
// (attempts, perTryTimeout, retryOn).
type Retry struct {
	// Attempts is the number of retries after the first try.
	Attempts int `json:"attempts"`
	// Codes are HTTP statuses retried (retriable-status-codes).
	Codes []int `json:"codes,omitempty"`
	// On lists Envoy retry_on conditions: 5xx, gateway-error, reset,
	// connect-failure, refused-stream, retriable-4xx,
	// retriable-status-codes, and the gRPC ones (Envoy's retry_grpc_on:
	// a response whose headers carry that grpc-status, a trailers-only
	// answer) cancelled, deadline-exceeded, internal, resource-exhausted,
	// unavailable. Empty means connect-failure, refused-stream and
	// retriable-status-codes, as Istio sets for an HTTPRoute retry.
	On []string `json:"on,omitempty"`
	// PerTryTimeout bounds each try; zero means only the request timeout.
	PerTryTimeout Duration `json:"perTryTimeout,omitzero"`
	// Backoff is the base of the exponential back-off between tries
	// (jittered, at most ten times the base); zero means 25ms, Envoy's.
	Backoff Duration `json:"backoff,omitzero"`
}

// RetryOn conditions.
var retryOn = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "connect-failure": true,
	"refused-stream": true, "retriable-4xx": true, "retriable-status-codes": true,
	"cancelled": true, "deadline-exceeded": true, "internal": true, "resource-exhausted": true, "unavailable": true,
}

// GRPCRetryOn maps the gRPC retry conditions to their grpc-status codes.
var GRPCRetryOn = map[string]string{
	"cancelled": "1", "deadline-exceeded": "4", "resource-exhausted": "8", "internal": "13", "unavailable": "14",
}

// RouteMatch matches a request when every set field does.
type RouteMatch struct {
	Path        *PathMatch   `json:"path,omitempty"`
	Headers     []ValueMatch `json:"headers,omitempty"`
	QueryParams []ValueMatch `json:"queryParams,omitempty"`
	Method      string       `json:"method,omitempty"`
	GRPC        *GRPCMethod  `json:"grpc,omitempty"`
}

// Match types, as in the Gateway API.
const (
	MatchExact             = "Exact"
	MatchPathPrefix        = "PathPrefix"
	MatchRegularExpression = "RegularExpression"
)

// PathMatch matches the request path.
type PathMatch struct {
	Type  string `json:"type"` // Exact, PathPrefix or RegularExpression
	Value string `json:"value"`
}

// ValueMatch matches a header or query parameter by name.
type ValueMatch struct {
	Type  string `json:"type,omitempty"` // Exact (default) or RegularExpression
	Name  string `json:"name"`
	Value string `json:"value"`
}

// GRPCMethod matches a gRPC service and method (either may be empty: any).
// Type is Exact (the default) or RegularExpression: then Service and Method
// are RE2 expressions that must match the whole name, as GRPCRoute's
// method match says.
type GRPCMethod struct {
	Type    string `json:"type,omitempty"`
	Service string `json:"service,omitempty"`
	Method  string `json:"method,omitempty"`
}

// Filter kinds, as in the Gateway API.
const (
	FilterRequestHeaderModifier  = "RequestHeaderModifier"
	FilterResponseHeaderModifier = "ResponseHeaderModifier"
	FilterRequestRedirect        = "RequestRedirect"
	FilterURLRewrite             = "URLRewrite"
	FilterRequestMirror          = "RequestMirror"
)

// Filter changes a request or its response. Type says which of the other
// fields is set.
type Filter struct {
	Type            string           `json:"type"`
	HeaderModifier  *HeaderModifier  `json:"headerModifier,omitempty"`
	RequestRedirect *RequestRedirect `json:"requestRedirect,omitempty"`
	URLRewrite      *URLRewrite      `json:"urlRewrite,omitempty"`
	RequestMirror   *RequestMirror   `json:"requestMirror,omitempty"`
}

// Path modifier types, as in the Gateway API.
const (
	ReplaceFullPath    = "ReplaceFullPath"
	ReplacePrefixMatch = "ReplacePrefixMatch"
)

// PathModifier replaces the whole path, or the prefix the rule's
// PathPrefix match matched.
type PathModifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// RequestRedirect answers with a redirect instead of forwarding; unset
// fields keep the request's.
type RequestRedirect struct {
	Scheme   string        `json:"scheme,omitempty"`
	Hostname string        `json:"hostname,omitempty"`
	Path     *PathModifier `json:"path,omitempty"`
	Port     uint16        `json:"port,omitempty"`
	// StatusCode is 301 or 302 (the default).
	StatusCode int `json:"statusCode,omitempty"`
}

// URLRewrite changes the request's host and path before forwarding.
type URLRewrite struct {
	Hostname string        `json:"hostname,omitempty"`
	Path     *PathModifier `json:"path,omitempty"`
}

// RequestMirror sends a copy of Percent of the requests (all if zero) to
// Cluster and ignores the answers.
type RequestMirror struct {
	Cluster string  `json:"cluster"`
	Percent float64 `json:"percent,omitempty"`
}

// HeaderModifier sets, adds and removes headers.
type HeaderModifier struct {
	Set    []Header `json:"set,omitempty"`
	Add    []Header `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// Header is a header name and value.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Backend is a weighted upstream of a rule.
type Backend struct {
	Cluster string `json:"cluster"`
	// Weight is relative to the rule's other backends; nil means 1.
	Weight *int32 `json:"weight,omitempty"`
	// Filters apply only to requests sent to this backend.
	Filters []Filter `json:"filters,omitempty"`
}

// EffectiveWeight returns the backend's weight, 1 when unset.
func (b Backend) EffectiveWeight() int32 {
	if b.Weight == nil {
		return 1
	}
	return *b.Weight
}

// Timeouts bound a request: Request from the first byte received to the
// last byte of the response, all retries included; BackendRequest one try.
// Zero means none.
type Timeouts struct {
	Request        Duration `json:"request,omitzero"`
	BackendRequest Duration `json:"backendRequest,omitzero"`
}

// Duration is a time.Duration written as "10s", "250ms".
type Duration time.Duration

// MarshalText writes the duration as Go does ("1m30s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses "10s", "250ms" (Go and Gateway API syntax).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: write it like 10s or 250ms", b)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", b)
	}
	*d = Duration(v)
	return nil
}

// Cluster is a set of endpoints a route sends to, e.g. the endpoints of
// one service port (or of one DestinationRule subset of it), with the
// DestinationRule's traffic policy.
type Cluster struct {
	Name      string     `json:"name"`
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// Protocol is the destination port's, as Istio's cluster for a service
	// port has: HTTP2 or GRPC make every request to the cluster HTTP/2
	// cleartext, whatever the client spoke (a route on an HTTP port may
	// send to a gRPC backend); empty, HTTP and TCP follow the listener's
	// protocol and the client's.
	Protocol Protocol `json:"protocol,omitempty"`
	// LoadBalancer picks among healthy endpoints; nil means LEAST_REQUEST,
	// Istio's default.
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`
	// ConnectionPool limits requests to the cluster; over the limits the
	// circuit breaker answers 503 at once instead of queueing.
	ConnectionPool *ConnectionPool `json:"connectionPool,omitempty"`
	// OutlierDetection ejects endpoints that keep failing.
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
}

// Load-balancing policies, as DestinationRule's loadBalancer.simple, and
// consistent hashing.
const (
	LBRoundRobin     = "ROUND_ROBIN"
	LBLeastRequest   = "LEAST_REQUEST"
	LBRandom         = "RANDOM"
	LBConsistentHash = "CONSISTENT_HASH"
)

// LoadBalancer is a cluster's load-balancing policy.
type LoadBalancer struct {
	Policy string `json:"policy"`
	// For CONSISTENT_HASH, exactly one key: a header's value, a cookie's,
	// or the source IP.
	HashHeader   string `json:"hashHeader,omitempty"`
	HashCookie   string `json:"hashCookie,omitempty"`
	HashSourceIP bool   `json:"hashSourceIP,omitempty"`
}

// ConnectionPool is DestinationRule's connectionPool. Zero fields mean no
// limit. HTTP/1.1 carries one request per connection at a time, so
// MaxConnections bounds the requests in flight to HTTP/1.1 clusters, and
// HTTP1MaxPendingRequests how many more may wait for one; HTTP2MaxRequests
// bounds the requests in flight to any cluster.
type ConnectionPool struct {
	MaxConnections          int `json:"maxConnections,omitempty"`
	HTTP1MaxPendingRequests int `json:"http1MaxPendingRequests,omitempty"`
	HTTP2MaxRequests        int `json:"http2MaxRequests,omitempty"`
	// MaxRetries bounds the retries in flight to the cluster.
	MaxRetries int `json:"maxRetries,omitempty"`
	// MaxRequestsPerConnection is how many requests an upstream
	// connection carries (http.maxRequestsPerConnection): an HTTP/1.1
	// connection is closed after them, an HTTP/2 one takes no new streams
	// and closes once they are done.
	MaxRequestsPerConnection int `json:"maxRequestsPerConnection,omitempty"`
}

// OutlierDetection is DestinationRule's outlierDetection: an endpoint
// that answers Consecutive5xxErrors 5xx (or ConsecutiveGatewayErrors 502,
// 503 or 504; connection failures count for both) in a row is ejected for
// BaseEjectionTime times the number of its ejections (at most 300s, or
// BaseEjectionTime if longer: Envoy's max_ejection_time), but never more
// than MaxEjectionPercent of the cluster's endpoints at once. Each Interval
// (zero means 10s, Envoy's default) an endpoint spends in the pool takes
// one from its number of ejections, as Envoy's sweep does.
type OutlierDetection struct {
	Consecutive5xxErrors     int      `json:"consecutive5xxErrors,omitempty"`
	ConsecutiveGatewayErrors int      `json:"consecutiveGatewayErrors,omitempty"`
	Interval                 Duration `json:"interval,omitzero"`
	BaseEjectionTime         Duration `json:"baseEjectionTime,omitzero"`
	// MaxEjectionPercent: zero means 10, Envoy's default.
	MaxEjectionPercent int `json:"maxEjectionPercent,omitempty"`
}

// Endpoint is one upstream address of a cluster.
type Endpoint struct {
	// Address is the endpoint's ip:port: the pod IP and target port.
	Address string `json:"address"`
	// Identity is the endpoint's SPIFFE ID. When set the waypoint reaches
	// the endpoint through HBONE (podIP:15008, :authority Address), as in
	// the mesh; when empty, over plain TCP (tests, benchmarks).
	Identity string            `json:"identity,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Workload and Namespace name the endpoint's workload (its Deployment,
	// say) for telemetry labels.
	Workload  string `json:"workload,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// Weight is relative to the cluster's other endpoints; 0 means 1.
	Weight uint32 `json:"weight,omitempty"`
	// Unhealthy endpoints get no traffic.
	Unhealthy bool `json:"unhealthy,omitempty"`
}

// Validate checks the whole configuration and returns every problem found,
// each naming where it is (services[1].ports[0].routes[2].rules[0]...).
func (w *Waypoint) Validate() error {
	v := &validator{}
	clusters := map[string]bool{}
	for i, c := range w.Clusters {
		at := fmt.Sprintf("clusters[%d]", i)
		switch {
		case c.Name == "":
			v.addf("%s.name: required", at)
		case clusters[c.Name]:
			v.addf("%s.name: cluster %q is defined twice", at, c.Name)
		}
		clusters[c.Name] = true
		if c.Protocol != "" {
			v.protocol(at+".protocol", c.Protocol)
		}
		v.traffic(at, &c)
		for j, e := range c.Endpoints {
			if _, err := netip.ParseAddrPort(e.Address); err != nil {
				v.addf("%s.endpoints[%d].address: %q is not ip:port", at, j, e.Address)
			}
			if e.Identity != "" && !strings.HasPrefix(e.Identity, "spiffe://") {
				v.addf("%s.endpoints[%d].identity: %q is not a spiffe:// ID", at, j, e.Identity)
			}
		}
	}
	cluster := func(at, name string) {
		switch {
		case name == "":
			v.addf("%s: required", at)
		case !clusters[name]:
			v.addf("%s: no cluster %q in clusters", at, name)
		}
	}
	captured := map[string]string{}
	capture := func(at, key string) {
		if prev, ok := captured[key]; ok {
			v.addf("%s: %s is captured twice (also by %s)", at, key, prev)
			return
		}
		captured[key] = at
	}
	for i, s := range w.Services {
		at := fmt.Sprintf("services[%d]", i)
		if s.Name == "" || s.Namespace == "" {
			v.addf("%s: name and namespace are required", at)
		}
		if s.Hostname == "" && len(s.Addresses) == 0 {
			v.addf("%s: needs a hostname or addresses to be reached by", at)
		}
		for j, a := range s.Addresses {
			if _, err := netip.ParseAddr(a); err != nil {
				v.addf("%s.addresses[%d]: %q is not an IP address", at, j, a)
			}
		}
		if len(s.Ports) == 0 {
			v.addf("%s.ports: at least one port is required", at)
		}
		for j, p := range s.Ports {
			pat := fmt.Sprintf("%s.ports[%d]", at, j)
			if p.Port == 0 {
				v.addf("%s.port: required (1-65535)", pat)
			}
			v.protocol(pat+".protocol", p.Protocol)
			cluster(pat+".cluster", p.Cluster)
			if s.Hostname != "" {
				capture(pat, fmt.Sprintf("%s:%d", s.Hostname, p.Port))
			}
			for _, a := range s.Addresses {
				if addr, err := netip.ParseAddr(a); err == nil {
					capture(pat, netip.AddrPortFrom(addr, p.Port).String())
				}
			}
			if len(p.Routes) > 0 && !p.Protocol.IsHTTP() {
				v.addf("%s.routes: port protocol %s is not HTTP; routes apply only to HTTP, HTTP2 and GRPC ports", pat, p.Protocol)
			}
			for k, r := range p.Routes {
				v.route(fmt.Sprintf("%s.routes[%d]", pat, k), r, cluster)
			}
		}
	}
	if p := w.Telemetry.TracingPercent; p != nil && (*p < 0 || *p > 100) {
		v.addf("telemetry.tracingPercent: %v is outside 0-100", *p)
	}
	v.tracing(&w.Telemetry)
	for i := range w.Policies {
		if err := w.Policies[i].Validate(); err != nil {
			v.addf("policies[%d] (%s/%s): %w", i, w.Policies[i].Namespace, w.Policies[i].Name, err)
		}
	}
	for i := range w.RateLimits {
		if err := w.RateLimits[i].Validate(); err != nil {
			v.addf("rateLimits[%d]: %w", i, err)
		}
	}
	v.retry("defaultRetry", w.DefaultRetry)
	for i := range w.Services {
		for j := range w.Services[i].RateLimits {
			if err := w.Services[i].RateLimits[j].Validate(); err != nil {
				v.addf("services[%d].rateLimits[%d]: %w", i, j, err)
			}
		}
		for j := range w.Services[i].Policies {
			p := &w.Services[i].Policies[j]
			if err := p.Validate(); err != nil {
				v.addf("services[%d].policies[%d] (%s/%s): %w", i, j, p.Namespace, p.Name, err)
			}
		}
	}
	for i, wl := range w.Workloads {
		at := fmt.Sprintf("workloads[%d]", i)
		if len(wl.Addresses) == 0 {
			v.addf("%s.addresses: at least one address is required", at)
		}
		for j, a := range wl.Addresses {
			if _, err := netip.ParseAddr(a); err != nil {
				v.addf("%s.addresses[%d]: %q is not an IP address", at, j, a)
			}
		}
		for j, p := range wl.Ports {
			v.protocol(fmt.Sprintf("%s.ports[%d].protocol", at, j), p.Protocol)
		}
	}
	return v.err()
}

type validator struct{ errs []error }

func (v *validator) addf(format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf(format, args...))
}

func (v *validator) err() error { return errors.Join(v.errs...) }

func (v *validator) protocol(at string, p Protocol) {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolTCP:
	case "":
		v.addf("%s: required (HTTP, HTTP2, GRPC or TCP)", at)
	default:
		v.addf("%s: unknown protocol %q; use HTTP, HTTP2, GRPC or TCP", at, p)
	}
}

func (v *validator) route(at string, r HTTPRoute, cluster func(at, name string)) {
	switch r.Kind {
	case "", KindHTTPRoute, KindGRPCRoute, KindVirtualService:
	default:
		v.addf("%s.kind: unknown %q; use HTTPRoute, GRPCRoute or VirtualService", at, r.Kind)
	}
	if r.Name == "" || r.Namespace == "" {
		v.addf("%s: name and namespace are required", at)
	}
	for i, rule := range r.Rules {
		rat := fmt.Sprintf("%s.rules[%d]", at, i)
		for j, m := range rule.Matches {
			v.match(fmt.Sprintf("%s.matches[%d]", rat, j), m)
		}
		for j, f := range rule.Filters {
			v.filter(fmt.Sprintf("%s.filters[%d]", rat, j), f, cluster)
		}
		for j, b := range rule.Backends {
			bat := fmt.Sprintf("%s.backends[%d]", rat, j)
			cluster(bat+".cluster", b.Cluster)
			if b.Weight != nil && (*b.Weight < 0 || *b.Weight > 1000000) {
				v.addf("%s.weight: %d is outside 0-1000000", bat, *b.Weight)
			}
			for k, f := range b.Filters {
				v.filter(fmt.Sprintf("%s.filters[%d]", bat, k), f, cluster)
			}
		}
		v.retry(rat+".retry", rule.Retry)
		if f := rule.Fault; f != nil {
			if d := f.Delay; d != nil && (d.Percent < 0 || d.Percent > 100) {
				v.addf("%s.fault.delay.percent: %v is outside 0-100", rat, d.Percent)
			}
			if a := f.Abort; a != nil {
				if a.Percent < 0 || a.Percent > 100 {
					v.addf("%s.fault.abort.percent: %v is outside 0-100", rat, a.Percent)
				}
				if a.HTTPStatus < 200 || a.HTTPStatus > 599 {
					v.addf("%s.fault.abort.httpStatus: %d is not an HTTP status 200-599", rat, a.HTTPStatus)
				}
			}
		}
		if t := rule.Timeouts; t.Request != 0 && t.BackendRequest > t.Request {
			v.addf("%s.timeouts.backendRequest: %v is longer than timeouts.request %v; it must not be", rat, time.Duration(t.BackendRequest), time.Duration(t.Request))
		}
	}
}

func (v *validator) traffic(at string, c *Cluster) {
	if lb := c.LoadBalancer; lb != nil {
		switch lb.Policy {
		case LBRoundRobin, LBLeastRequest, LBRandom:
		case LBConsistentHash:
			keys := 0
			for _, set := range []bool{lb.HashHeader != "", lb.HashCookie != "", lb.HashSourceIP} {
				if set {
					keys++
				}
			}
			if keys != 1 {
				v.addf("%s.loadBalancer: CONSISTENT_HASH needs exactly one of hashHeader, hashCookie, hashSourceIP", at)
			}
		default:
			v.addf("%s.loadBalancer.policy: unknown %q; use ROUND_ROBIN, LEAST_REQUEST, RANDOM or CONSISTENT_HASH", at, lb.Policy)
		}
	}
	if p := c.ConnectionPool; p != nil {
		for _, f := range []struct {
			name string
			v    int
		}{{"maxConnections", p.MaxConnections}, {"http1MaxPendingRequests", p.HTTP1MaxPendingRequests}, {"http2MaxRequests", p.HTTP2MaxRequests}, {"maxRetries", p.MaxRetries}, {"maxRequestsPerConnection", p.MaxRequestsPerConnection}} {
			if f.v < 0 {
				v.addf("%s.connectionPool.%s: %d must not be negative", at, f.name, f.v)
			}
		}
	}
	if o := c.OutlierDetection; o != nil && (o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100) {
		v.addf("%s.outlierDetection.maxEjectionPercent: %d is outside 0-100", at, o.MaxEjectionPercent)
	}
}

func (v *validator) match(at string, m RouteMatch) {
	if p := m.Path; p != nil {
		switch p.Type {
		case MatchExact, MatchPathPrefix:
			if !strings.HasPrefix(p.Value, "/") {
				v.addf("%s.path.value: %q must start with /", at, p.Value)
			}
		case MatchRegularExpression:
			v.regexp(at+".path.value", p.Value)
		default:
			v.addf("%s.path.type: unknown %q; use Exact, PathPrefix or RegularExpression", at, p.Type)
		}
	}
	if g := m.GRPC; g != nil {
		switch g.Type {
		case "", MatchExact:
		case MatchRegularExpression:
			if g.Service != "" {
				v.regexp(at+".grpc.service", g.Service)
			}
			if g.Method != "" {
				v.regexp(at+".grpc.method", g.Method)
			}
		default:
			v.addf("%s.grpc.type: unknown %q; use Exact or RegularExpression", at, g.Type)
		}
	}
	for _, list := range []struct {
		field string
		ms    []ValueMatch
	}{{"headers", m.Headers}, {"queryParams", m.QueryParams}} {
		for i, vm := range list.ms {
			vat := fmt.Sprintf("%s.%s[%d]", at, list.field, i)
			if vm.Name == "" {
				v.addf("%s.name: required", vat)
			}
			switch vm.Type {
			case "", MatchExact:
			case MatchRegularExpression:
				v.regexp(vat+".value", vm.Value)
			default:
				v.addf("%s.type: unknown %q; use Exact or RegularExpression", vat, vm.Type)
			}
		}
	}
}

func (v *validator) regexp(at, expr string) {
	if _, err := regexp.Compile(expr); err != nil {
		v.addf("%s: invalid regular expression %q: %v", at, expr, err)
	}
}

// tracingHost is what a collector's hostname may be made of (DNS names,
// with a final dot or not).
var tracingHost = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$`)

// tracing checks the collector span export goes to.
func (v *validator) tracing(t *Telemetry) {
	e := t.TracingEndpoint
	if e == "" {
		if t.TracingProtocol != "" || t.TracingPath != "" {
			v.addf("telemetry: tracingProtocol and tracingPath need a tracingEndpoint (the collector's host:port); set it or remove them")
		}
		return
	}
	if host, port, err := net.SplitHostPort(e); err != nil || host == "" || port == "" {
		v.addf("telemetry.tracingEndpoint: %q is not host:port (the OTLP collector, e.g. otel-collector.observability:4317)", e)
	} else {
		if _, err := netip.ParseAddr(host); err != nil && !tracingHost.MatchString(host) {
			v.addf("telemetry.tracingEndpoint: host %q of %q is neither an IP address nor a hostname", host, e)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			v.addf("telemetry.tracingEndpoint: port %q of %q is not a number 1-65535", port, e)
		}
	}
	switch t.TracingProtocol {
	case "", TracingHTTP:
		if p := t.TracingPath; p != "" && !strings.HasPrefix(p, "/") {
			v.addf("telemetry.tracingPath: %q does not start with / (e.g. /v1/traces)", p)
		}
	case TracingGRPC:
		if t.TracingPath != "" {
			v.addf("telemetry.tracingPath: %q is set but tracingProtocol is grpc, which has no path; remove it or use http", t.TracingPath)
		}
	default:
		v.addf("telemetry.tracingProtocol: %q is not %q or %q", t.TracingProtocol, TracingGRPC, TracingHTTP)
	}
}

// retry checks a retry policy at path at (nil: nothing to check).
func (v *validator) retry(at string, r *Retry) {
	if r == nil {
		return
	}
	if r.Attempts < 0 || r.Attempts > 100 {
		v.addf("%s.attempts: %d is outside 0-100", at, r.Attempts)
	}
	for j, c := range r.Codes {
		if c < 100 || c > 599 {
			v.addf("%s.codes[%d]: %d is not an HTTP status", at, j, c)
		}
	}
	for j, on := range r.On {
		if !retryOn[on] {
			v.addf("%s.on[%d]: unknown condition %q; use 5xx, gateway-error, reset, connect-failure, refused-stream, retriable-4xx, retriable-status-codes, cancelled, deadline-exceeded, internal, resource-exhausted or unavailable", at, j, on)
		}
	}
}

func (v *validator) filter(at string, f Filter, cluster func(at, name string)) {
	path := func(at string, p *PathModifier) {
		if p == nil {
			return
		}
		switch p.Type {
		case ReplaceFullPath, ReplacePrefixMatch:
			if !strings.HasPrefix(p.Value, "/") {
				v.addf("%s.value: %q must start with /", at, p.Value)
			}
		default:
			v.addf("%s.type: unknown %q; use ReplaceFullPath or ReplacePrefixMatch", at, p.Type)
		}
	}
	switch f.Type {
	case FilterRequestHeaderModifier, FilterResponseHeaderModifier:
		if f.HeaderModifier == nil {
			v.addf("%s.headerModifier: required for %s", at, f.Type)
		}
	case FilterRequestRedirect:
		r := f.RequestRedirect
		if r == nil {
			v.addf("%s.requestRedirect: required for RequestRedirect", at)
			return
		}
		if r.Scheme != "" && r.Scheme != "http" && r.Scheme != "https" {
			v.addf("%s.requestRedirect.scheme: %q; use http or https", at, r.Scheme)
		}
		if r.StatusCode != 0 && r.StatusCode != http.StatusMovedPermanently && r.StatusCode != http.StatusFound {
			v.addf("%s.requestRedirect.statusCode: %d; use 301 or 302", at, r.StatusCode)
		}
		path(at+".requestRedirect.path", r.Path)
	case FilterURLRewrite:
		if f.URLRewrite == nil {
			v.addf("%s.urlRewrite: required for URLRewrite", at)
			return
		}
		path(at+".urlRewrite.path", f.URLRewrite.Path)
	case FilterRequestMirror:
		if f.RequestMirror == nil {
			v.addf("%s.requestMirror: required for RequestMirror", at)
			return
		}
		cluster(at+".requestMirror.cluster", f.RequestMirror.Cluster)
		if p := f.RequestMirror.Percent; p < 0 || p > 100 {
			v.addf("%s.requestMirror.percent: %v is outside 0-100", at, p)
		}
	default:
		v.addf("%s.type: unsupported filter %q; supported: RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror", at, f.Type)
	}
}
