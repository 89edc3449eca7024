package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// LocalRateLimitPolicy limits the rate of HTTP requests a waypoint lets
// through to its targets: a waypoint Gateway (all the traffic it handles)
// or a Service behind a waypoint. The limit is local: each waypoint replica
// keeps its own token buckets, so N replicas allow up to N times the limit.
//
// Every rule that matches a request must allow it (the most restrictive
// wins). A request over a limit is answered 429 with retry-after,
// x-ratelimit-limit and x-ratelimit-remaining headers.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=meshway,shortName=lrlp
// +kubebuilder:subresource:status
type LocalRateLimitPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the policy limits.
	// +required
	Spec LocalRateLimitPolicySpec `json:"spec"`

	// Status is written by meshway: whether the policy is accepted, per
	// waypoint it applies to.
	// +optional
	Status gwv1.PolicyStatus `json:"status,omitzero"`
}

// LocalRateLimitPolicyList is a list of LocalRateLimitPolicy.
//
// +kubebuilder:object:root=true
type LocalRateLimitPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LocalRateLimitPolicy `json:"items"`
}

// LocalRateLimitPolicySpec is the desired state of a LocalRateLimitPolicy.
type LocalRateLimitPolicySpec struct {
	// TargetRefs are what the policy applies to, in the policy's namespace:
	// a waypoint Gateway (group gateway.networking.k8s.io, kind Gateway),
	// whose every service's traffic it limits, each service with its own
	// buckets; or a Service (group "", kind Service) or ServiceEntry (group
	// networking.istio.io) served by a waypoint. sectionName is not
	// supported yet. Like an Istio AuthorizationPolicy's targetRefs.
	//
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:message="targetRefs must name a Gateway (group gateway.networking.k8s.io), a Service (group \"\") or a ServiceEntry (group networking.istio.io), without sectionName",rule="self.all(r, ((r.group == 'gateway.networking.k8s.io' && r.kind == 'Gateway') || (r.group == '' && r.kind == 'Service') || (r.group == 'networking.istio.io' && r.kind == 'ServiceEntry')) && !has(r.sectionName))"
	// +kubebuilder:validation:XValidation:message="targetRefs must be unique",rule="self.all(r1, self.exists_one(r2, r1.group == r2.group && r1.kind == r2.kind && r1.name == r2.name))"
	TargetRefs []gwv1.LocalPolicyTargetReferenceWithSectionName `json:"targetRefs"`

	// Rules are the limits. A request must be allowed by every rule that
	// matches it.
	//
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Rules []RateLimitRule `json:"rules"`
}

// RateLimitRule is one limit and the requests it applies to.
type RateLimitRule struct {
	// ClientSelectors select the clients the rule applies to; all of them
	// must match. Without selectors the rule applies to every request of
	// the target, sharing one bucket. A selector field of type Distinct
	// gives each distinct value (each client) its own bucket.
	//
	// +optional
	// +kubebuilder:validation:MaxItems=8
	ClientSelectors []RateLimitSelectCondition `json:"clientSelectors,omitempty"`

	// Route, when set, limits only the requests that went by this route
	// (and, with ruleName, by this rule of it).
	//
	// +optional
	Route *RouteRef `json:"route,omitempty"`

	// Limit is the number of requests allowed per unit of time: the rate
	// at which the bucket refills.
	//
	// +required
	Limit RateLimitValue `json:"limit"`

	// Burst is the bucket size: how many requests can be sent at once
	// after a quiet period. Defaults to limit.requests.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	Burst *int32 `json:"burst,omitempty"`
}

// RateLimitSelectCondition selects clients by request attributes; every set
// field must match, and at least one must be set.
//
// +kubebuilder:validation:XValidation:message="set at least one of headers, sourceCIDR and sourcePrincipal",rule="has(self.headers) || has(self.sourceCIDR) || has(self.sourcePrincipal)"
type RateLimitSelectCondition struct {
	// Headers match request headers; all of them must match.
	//
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Headers []HeaderMatch `json:"headers,omitempty"`

	// SourceCIDR matches the client's IP address.
	//
	// +optional
	SourceCIDR *SourceMatch `json:"sourceCIDR,omitempty"`

	// SourcePrincipal matches the client's mesh identity (meshway's
	// addition to Envoy Gateway's selectors).
	//
	// +optional
	SourcePrincipal *PrincipalMatch `json:"sourcePrincipal,omitempty"`
}

// HeaderMatchType is how a header is matched.
//
// +kubebuilder:validation:Enum=Exact;RegularExpression;Distinct
type HeaderMatchType string

// Header match types.
const (
	// HeaderMatchExact matches a header with the value given.
	HeaderMatchExact HeaderMatchType = "Exact"
	// HeaderMatchRegularExpression matches a header whose whole value
	// matches the RE2 expression given.
	HeaderMatchRegularExpression HeaderMatchType = "RegularExpression"
	// HeaderMatchDistinct matches any value of the header and gives each
	// distinct value its own bucket.
	HeaderMatchDistinct HeaderMatchType = "Distinct"
)

// HeaderMatch matches a request header. A request without the header does
// not match, whatever the type.
//
// +kubebuilder:validation:XValidation:message="value is required for types Exact and RegularExpression and must not be set for type Distinct",rule="has(self.value) != (has(self.type) && self.type == 'Distinct')"
type HeaderMatch struct {
	// Type is Exact (the default), RegularExpression or Distinct.
	//
	// +optional
	// +kubebuilder:default=Exact
	Type *HeaderMatchType `json:"type,omitempty"`

	// Name is the header's name, matched case-insensitively.
	//
	// +required
	Name gwv1.HeaderName `json:"name"`

	// Value is the value to match (Exact) or an RE2 expression that must
	// match the whole value (RegularExpression). Not set for Distinct.
	//
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Value *string `json:"value,omitempty"`
}

// SourceMatchType is how a client attribute is matched.
//
// +kubebuilder:validation:Enum=Exact;Distinct
type SourceMatchType string

// Source match types.
const (
	// SourceMatchExact: every matching client shares the rule's bucket.
	SourceMatchExact SourceMatchType = "Exact"
	// SourceMatchDistinct: each matching client (each IP address, each
	// principal) gets its own bucket.
	SourceMatchDistinct SourceMatchType = "Distinct"
)

// SourceMatch matches the client's IP address against a CIDR.
//
// +kubebuilder:validation:XValidation:message="value must be a CIDR (10.0.0.0/8, ::/0) or an IP address",rule="isCIDR(self.value) || isIP(self.value)"
type SourceMatch struct {
	// Type is Exact (the default: all addresses in the CIDR share one
	// bucket) or Distinct (each address in it gets its own: 0.0.0.0/0 and
	// ::/0 limit per client IP).
	//
	// +optional
	// +kubebuilder:default=Exact
	Type *SourceMatchType `json:"type,omitempty"`

	// Value is a CIDR ("10.0.0.0/8") or a single IP address.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Value string `json:"value"`
}

// PrincipalMatch matches the client's mesh identity: its SPIFFE ID without
// the spiffe:// scheme, as AuthorizationPolicy writes principals
// ("cluster.local/ns/default/sa/sleep"). A client without one (plaintext)
// does not match.
//
// +kubebuilder:validation:XValidation:message="value is required for type Exact and must not be set for type Distinct",rule="has(self.value) != (has(self.type) && self.type == 'Distinct')"
// +kubebuilder:validation:XValidation:message="write the principal without the spiffe:// prefix",rule="!has(self.value) || !self.value.startsWith('spiffe://')"
type PrincipalMatch struct {
	// Type is Exact (the default) or Distinct (each principal gets its own
	// bucket).
	//
	// +optional
	// +kubebuilder:default=Exact
	Type *SourceMatchType `json:"type,omitempty"`

	// Value is the principal to match, for type Exact.
	//
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Value *string `json:"value,omitempty"`
}

// RouteKind is the kind of a route a rule is scoped to.
//
// +kubebuilder:validation:Enum=HTTPRoute;GRPCRoute
type RouteKind string

// Route kinds.
const (
	RouteKindHTTPRoute RouteKind = "HTTPRoute"
	RouteKindGRPCRoute RouteKind = "GRPCRoute"
)

// RouteRef names a route in the policy's namespace, and optionally one of
// its rules.
type RouteRef struct {
	// Kind is HTTPRoute (the default) or GRPCRoute.
	//
	// +optional
	// +kubebuilder:default=HTTPRoute
	Kind *RouteKind `json:"kind,omitempty"`

	// Name is the route's name.
	//
	// +required
	Name gwv1.ObjectName `json:"name"`

	// RuleName, when set, is the name of the route's rule whose requests
	// the rule limits (the route rule's name field).
	//
	// +optional
	RuleName *gwv1.SectionName `json:"ruleName,omitempty"`
}

// RateLimitUnit is the period a limit counts requests over.
//
// +kubebuilder:validation:Enum=Second;Minute;Hour
type RateLimitUnit string

// Rate limit units.
const (
	RateLimitUnitSecond RateLimitUnit = "Second"
	RateLimitUnitMinute RateLimitUnit = "Minute"
	RateLimitUnitHour   RateLimitUnit = "Hour"
)

// RateLimitValue is a number of requests per unit of time.
type RateLimitValue struct {
	// Requests is the number of requests allowed per unit.
	//
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	Requests int32 `json:"requests"`

	// Unit is Second, Minute or Hour.
	//
	// +required
	Unit RateLimitUnit `json:"unit"`
}

// MatchType returns the header match type, Exact when unset (the API
// server defaults it; files read without one may not have it).
func (h *HeaderMatch) MatchType() HeaderMatchType {
	if h.Type == nil {
		return HeaderMatchExact
	}
	return *h.Type
}

// MatchType returns the match type, Exact when unset.
func (s *SourceMatch) MatchType() SourceMatchType {
	if s.Type == nil {
		return SourceMatchExact
	}
	return *s.Type
}

// MatchType returns the match type, Exact when unset.
func (p *PrincipalMatch) MatchType() SourceMatchType {
	if p.Type == nil {
		return SourceMatchExact
	}
	return *p.Type
}

// EffectiveKind returns the route's kind, HTTPRoute when unset.
func (r *RouteRef) EffectiveKind() RouteKind {
	if r.Kind == nil {
		return RouteKindHTTPRoute
	}
	return *r.Kind
}
