package translate

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/model"
)

const gatewayGroup = "gateway.networking.k8s.io"

// routes attaches HTTPRoutes, GRPCRoutes and VirtualServices to the ports of
// the waypoint's services.
func (b *wpBuild) routes() {
	for i := range b.out.Services {
		svc := &b.out.Services[i]
		tg := b.targets[i]
		for j := range svc.Ports {
			p := &svc.Ports[j]
			var routes []model.HTTPRoute
			routes = append(routes, b.httpRoutes(tg, p)...)
			routes = append(routes, b.grpcRoutes(tg, p)...)
			routes = append(routes, b.virtualServices(tg, p)...)
			slices.SortStableFunc(routes, func(x, y model.HTTPRoute) int {
				return olderFirst(x.Created, x.Namespace+"/"+x.Name, y.Created, y.Namespace+"/"+y.Name)
			})
			p.Routes = routes
		}
	}
}

// routeTarget is what a captured service was built from: a Service, or one
// host of a ServiceEntry.
type routeTarget struct {
	kind, ns, name string
	// host is the captured service's hostname.
	host string
}

func (tg routeTarget) String() string { return tg.kind + " " + tg.ns + "/" + tg.name }

// protocolHint says how to make the target's port HTTP.
func (tg routeTarget) protocolHint() string {
	if tg.kind == "ServiceEntry" {
		return "set the port's protocol to HTTP, HTTP2 or GRPC"
	}
	return "name the port http-..., or set appProtocol"
}

// parentApplies reports whether parent ref pr of a route in namespace routeNs
// attaches the route to port p of target tg on this waypoint: a Service (or
// ServiceEntry) parent naming tg (and the port's number or name, if set), or
// the waypoint's Gateway (every port of the services whose hostname matches
// the route's hostnames, if any).
func (b *wpBuild) parentApplies(kind, routeNs, routeName string, pr gwv1.ParentReference, hostnames []gwv1.Hostname, tg routeTarget, p *model.ServicePort) bool {
	group, k := gatewayGroup, "Gateway"
	if pr.Group != nil {
		group = string(*pr.Group)
	}
	if pr.Kind != nil {
		k = string(*pr.Kind)
	}
	ns := routeNs
	if pr.Namespace != nil {
		ns = string(*pr.Namespace)
	}
	switch {
	case (group == "" || group == "core") && k == "Service", group == istioNetworkingGroup && k == "ServiceEntry":
		if k != tg.kind || string(pr.Name) != tg.name || ns != tg.ns {
			return false
		}
		if routeNs != tg.ns {
			b.t.warnf(kind, routeNs, routeName, "parent %s %s/%s is in another namespace: consumer routes are not supported by waypoints; the route is ignored", k, ns, pr.Name)
			return false
		}
		return (pr.Port == nil || *pr.Port == int32(p.Port)) && (pr.SectionName == nil || string(*pr.SectionName) == p.Name)
	case group == gatewayGroup && k == "Gateway":
		if string(pr.Name) != b.w.Ref.Name || ns != b.w.Ref.Namespace {
			return false
		}
		if len(hostnames) > 0 && !slices.ContainsFunc(hostnames, func(h gwv1.Hostname) bool {
			return string(h) == tg.host || wildcardMatch(string(h), tg.host)
		}) {
			return false
		}
		if !b.w.AllowedRoutes.allows(b.w.Ref.Namespace, routeNs, b.t.binder.namespaceLabels(routeNs)) {
			b.t.warnf(kind, routeNs, routeName, "waypoint %s does not allow routes from namespace %s (listener allowedRoutes); the route is ignored", b.w.Ref, routeNs)
			return false
		}
		return true
	}
	return false
}

// attaches reports whether any parent of a route attaches it to the port,
// recording the parents that did; a route for a TCP port is dropped with a
// warning.
func (b *wpBuild) attaches(kind string, obj routeMeta, parents []gwv1.ParentReference, hostnames []gwv1.Hostname, tg routeTarget, p *model.ServicePort) bool {
	applies := false
	for i, pr := range parents {
		if b.parentApplies(kind, obj.ns, obj.name, pr, hostnames, tg, p) {
			b.t.attached[fmt.Sprintf("%s %s/%s %d", kind, obj.ns, obj.name, i)] = true
			applies = true
		}
	}
	if applies {
		b.deps[obj.ns] = true // its backends are Services of that namespace
	}
	if applies && !p.Protocol.IsHTTP() {
		b.t.warnf(kind, obj.ns, obj.name, "port %d of %s is %s, not HTTP: the route is dropped there (%s)", p.Port, tg, p.Protocol, tg.protocolHint())
		return false
	}
	return applies
}

type routeMeta struct {
	kind, ns, name string
	created        time.Time
}

func (m routeMeta) warnf(t *translator, format string, args ...any) {
	t.warnf(m.kind, m.ns, m.name, format, args...)
}

func (b *wpBuild) httpRoutes(tg routeTarget, p *model.ServicePort) []model.HTTPRoute {
	var out []model.HTTPRoute
	for _, i := range routeCandidates(b.t.idx.httpRoutes, tg, b.w) {
		r := b.t.in.HTTPRoutes[i]
		m := routeMeta{"HTTPRoute", r.Namespace, r.Name, r.CreationTimestamp.UTC()}
		if !b.attaches(m.kind, m, r.Spec.ParentRefs, r.Spec.Hostnames, tg, p) {
			continue
		}
		route := model.HTTPRoute{Kind: model.KindHTTPRoute, Name: r.Name, Namespace: r.Namespace, Created: m.created}
		for i, rule := range r.Spec.Rules {
			route.Rules = append(route.Rules, b.httpRule(m, i, rule))
		}
		if b.checkRoute(m, route) {
			out = append(out, route)
		}
	}
	return out
}

func (b *wpBuild) httpRule(m routeMeta, i int, rule gwv1.HTTPRouteRule) model.RouteRule {
	at := fmt.Sprintf("rules[%d]", i)
	r := model.RouteRule{Name: sectionName(rule.Name)}
	for _, match := range rule.Matches {
		r.Matches = append(r.Matches, httpMatch(match))
	}
	filters, ok := b.httpFilters(m, at, rule.Filters)
	r.Filters = filters
	if t := rule.Timeouts; t != nil {
		r.Timeouts.Request = b.gwDuration(m, at+".timeouts.request", t.Request)
		r.Timeouts.BackendRequest = b.gwDuration(m, at+".timeouts.backendRequest", t.BackendRequest)
	}
	if rt := rule.Retry; rt != nil {
		retry := &model.Retry{Attempts: 2, Backoff: b.gwDuration(m, at+".retry.backoff", rt.Backoff)}
		if rt.Attempts != nil {
			retry.Attempts = *rt.Attempts
		}
		for _, c := range rt.Codes {
			retry.Codes = append(retry.Codes, int(c))
		}
		r.Retry = retry
	}
	if !ok {
		// The Gateway API: a rule whose filters cannot be honoured answers 500.
		return r
	}
	for j, br := range rule.BackendRefs {
		be := model.Backend{Cluster: b.backendCluster(m, fmt.Sprintf("%s.backendRefs[%d]", at, j), br.BackendObjectReference), Weight: br.Weight}
		fs, ok := b.httpFilters(m, fmt.Sprintf("%s.backendRefs[%d]", at, j), br.Filters)
		if !ok {
			be.Cluster = b.blackHole()
		}
		be.Filters = fs
		r.Backends = append(r.Backends, be)
	}
	return r
}

func sectionName(n *gwv1.SectionName) string {
	if n == nil {
		return ""
	}
	return string(*n)
}

func httpMatch(m gwv1.HTTPRouteMatch) model.RouteMatch {
	var out model.RouteMatch
	if p := m.Path; p != nil {
		pm := &model.PathMatch{Type: model.MatchPathPrefix, Value: "/"}
		if p.Type != nil {
			pm.Type = string(*p.Type)
		}
		if p.Value != nil {
			pm.Value = *p.Value
		}
		out.Path = pm
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, model.ValueMatch{Type: matchType((*string)(h.Type)), Name: string(h.Name), Value: h.Value})
	}
	for _, q := range m.QueryParams {
		out.QueryParams = append(out.QueryParams, model.ValueMatch{Type: matchType((*string)(q.Type)), Name: string(q.Name), Value: q.Value})
	}
	if m.Method != nil {
		out.Method = string(*m.Method)
	}
	return out
}

// matchType returns the Gateway API match type, "" (Exact) when unset.
func matchType(t *string) string {
	if t == nil || *t == model.MatchExact {
		return ""
	}
	return *t
}

// gwDuration parses a Gateway API duration; "0s" (or unset) means none.
func (b *wpBuild) gwDuration(m routeMeta, at string, d *gwv1.Duration) model.Duration {
	if d == nil {
		return 0
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil || v < 0 {
		m.warnf(b.t, "%s: %q is not a duration; ignored", at, *d)
		return 0
	}
	return model.Duration(v)
}

// httpFilters converts filters; false when one is not supported.
func (b *wpBuild) httpFilters(m routeMeta, at string, filters []gwv1.HTTPRouteFilter) ([]model.Filter, bool) {
	var out []model.Filter
	for i, f := range filters {
		fat := fmt.Sprintf("%s.filters[%d]", at, i)
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			out = append(out, model.Filter{Type: model.FilterRequestHeaderModifier, HeaderModifier: headerModifier(f.RequestHeaderModifier)})
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			out = append(out, model.Filter{Type: model.FilterResponseHeaderModifier, HeaderModifier: headerModifier(f.ResponseHeaderModifier)})
		case gwv1.HTTPRouteFilterRequestRedirect:
			out = append(out, model.Filter{Type: model.FilterRequestRedirect, RequestRedirect: redirect(f.RequestRedirect)})
		case gwv1.HTTPRouteFilterURLRewrite:
			rw := &model.URLRewrite{}
			if u := f.URLRewrite; u != nil {
				if u.Hostname != nil {
					rw.Hostname = string(*u.Hostname)
				}
				rw.Path = pathModifier(u.Path)
			}
			out = append(out, model.Filter{Type: model.FilterURLRewrite, URLRewrite: rw})
		case gwv1.HTTPRouteFilterRequestMirror:
			out = append(out, b.mirror(m, fat, f.RequestMirror))
		default:
			m.warnf(b.t, "%s: filter %s is not supported; the rule answers 500, as the Gateway API asks", fat, f.Type)
			return nil, false
		}
	}
	return out, true
}

func (b *wpBuild) mirror(m routeMeta, at string, f *gwv1.HTTPRequestMirrorFilter) model.Filter {
	if f == nil {
		m.warnf(b.t, "%s: requestMirror is required for RequestMirror", at)
		return model.Filter{Type: model.FilterRequestMirror, RequestMirror: &model.RequestMirror{Cluster: b.blackHole()}}
	}
	rm := &model.RequestMirror{Cluster: b.backendCluster(m, at+".requestMirror.backendRef", f.BackendRef)}
	switch {
	case f.Percent != nil:
		rm.Percent = float64(*f.Percent)
	case f.Fraction != nil:
		den := int32(100)
		if f.Fraction.Denominator != nil && *f.Fraction.Denominator > 0 {
			den = *f.Fraction.Denominator
		}
		rm.Percent = min(100, max(0, 100*float64(f.Fraction.Numerator)/float64(den)))
	}
	return model.Filter{Type: model.FilterRequestMirror, RequestMirror: rm}
}

func headerModifier(f *gwv1.HTTPHeaderFilter) *model.HeaderModifier {
	hm := &model.HeaderModifier{}
	if f == nil {
		return hm
	}
	for _, h := range f.Set {
		hm.Set = append(hm.Set, model.Header{Name: string(h.Name), Value: h.Value})
	}
	for _, h := range f.Add {
		hm.Add = append(hm.Add, model.Header{Name: string(h.Name), Value: h.Value})
	}
	hm.Remove = slices.Clone(f.Remove)
	return hm
}

func redirect(f *gwv1.HTTPRequestRedirectFilter) *model.RequestRedirect {
	r := &model.RequestRedirect{}
	if f == nil {
		return r
	}
	if f.Scheme != nil {
		r.Scheme = *f.Scheme
	}
	if f.Hostname != nil {
		r.Hostname = string(*f.Hostname)
	}
	if f.Port != nil && *f.Port > 0 && *f.Port <= 65535 {
		r.Port = uint16(*f.Port)
	}
	if f.StatusCode != nil {
		r.StatusCode = *f.StatusCode
	}
	r.Path = pathModifier(f.Path)
	return r
}

func pathModifier(p *gwv1.HTTPPathModifier) *model.PathModifier {
	if p == nil {
		return nil
	}
	switch p.Type {
	case gwv1.FullPathHTTPPathModifier:
		return &model.PathModifier{Type: model.ReplaceFullPath, Value: valueOf(p.ReplaceFullPath)}
	case gwv1.PrefixMatchHTTPPathModifier:
		return &model.PathModifier{Type: model.ReplacePrefixMatch, Value: valueOf(p.ReplacePrefixMatch)}
	}
	return &model.PathModifier{Type: string(p.Type)}
}

func valueOf[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// backendCluster is the cluster of a backendRef (see backendIndex.resolve),
// or the black hole, with a warning, when it names nothing the waypoint
// can send to.
func (b *wpBuild) backendCluster(m routeMeta, at string, ref gwv1.BackendObjectReference) string {
	tgt, problem := b.t.backendIndex().resolve(m.ns, ref)
	switch {
	case problem != nil:
		m.warnf(b.t, "%s: %s", at, problem.message)
		return b.blackHole()
	case tgt.svc != nil:
		return b.cluster(tgt.svc, tgt.port, "")
	}
	return b.seCluster(tgt.se, tgt.host, tgt.sePort)
}

// checkRoute validates a converted route against the waypoint's clusters,
// warning and returning false when the proxy would refuse it.
func (b *wpBuild) checkRoute(m routeMeta, r model.HTTPRoute) bool {
	probe := model.Waypoint{Name: "probe", Namespace: "probe", Services: []model.Service{{
		Name: "probe", Namespace: "probe", Hostname: "probe",
		Ports: []model.ServicePort{{Port: 1, Protocol: model.ProtocolHTTP, Cluster: "probe", Routes: []model.HTTPRoute{r}}},
	}}, Clusters: []model.Cluster{{Name: "probe"}}}
	for _, c := range b.clusters {
		probe.Clusters = append(probe.Clusters, model.Cluster{Name: c.Name})
	}
	slices.SortFunc(probe.Clusters, func(x, y model.Cluster) int { return strings.Compare(x.Name, y.Name) })
	if err := probe.Validate(); err != nil {
		msg := strings.ReplaceAll(err.Error(), "services[0].ports[0].routes[0].", "")
		m.warnf(b.t, "dropped: %s", strings.ReplaceAll(msg, "\n", "; "))
		return false
	}
	return true
}

func (b *wpBuild) grpcRoutes(tg routeTarget, p *model.ServicePort) []model.HTTPRoute {
	var out []model.HTTPRoute
	for _, i := range routeCandidates(b.t.idx.grpcRoutes, tg, b.w) {
		r := b.t.in.GRPCRoutes[i]
		m := routeMeta{"GRPCRoute", r.Namespace, r.Name, r.CreationTimestamp.UTC()}
		if !b.attaches(m.kind, m, r.Spec.ParentRefs, r.Spec.Hostnames, tg, p) {
			continue
		}
		route := model.HTTPRoute{Kind: model.KindGRPCRoute, Name: r.Name, Namespace: r.Namespace, Created: m.created}
		for i, rule := range r.Spec.Rules {
			if problem := grpcRuleProblem(i, rule); problem != "" {
				// The Gateway API's "Drop Rule(s)": route status reports it
				// (PartiallyInvalid, see routeStatus).
				m.warnf(b.t, "%s; the rule is dropped", problem)
				continue
			}
			route.Rules = append(route.Rules, b.grpcRule(m, i, rule))
		}
		if len(route.Rules) == 0 && len(r.Spec.Rules) > 0 {
			continue // every rule invalid: the route is not accepted
		}
		if b.checkRoute(m, route) {
			out = append(out, route)
		}
	}
	return out
}

func (b *wpBuild) grpcRule(m routeMeta, i int, rule gwv1.GRPCRouteRule) model.RouteRule {
	at := fmt.Sprintf("rules[%d]", i)
	r := model.RouteRule{Name: sectionName(rule.Name)}
	for _, match := range rule.Matches {
		rm := model.RouteMatch{}
		if mm := match.Method; mm != nil { // valid: see grpcRuleProblem
			rm.GRPC = &model.GRPCMethod{Service: valueOf(mm.Service), Method: valueOf(mm.Method)}
			if valueOf(mm.Type) == gwv1.GRPCMethodMatchRegularExpression {
				rm.GRPC.Type = model.MatchRegularExpression // Exact, the default, stays unwritten
			}
		}
		for _, h := range match.Headers {
			rm.Headers = append(rm.Headers, model.ValueMatch{Type: matchType((*string)(h.Type)), Name: string(h.Name), Value: h.Value})
		}
		r.Matches = append(r.Matches, rm)
	}
	filters, ok := b.grpcFilters(m, at, rule.Filters)
	r.Filters = filters
	if !ok {
		return r
	}
	for j, br := range rule.BackendRefs {
		bat := fmt.Sprintf("%s.backendRefs[%d]", at, j)
		be := model.Backend{Cluster: b.backendCluster(m, bat, br.BackendObjectReference), Weight: br.Weight}
		fs, ok := b.grpcFilters(m, bat, br.Filters)
		if !ok {
			be.Cluster = b.blackHole()
		}
		be.Filters = fs
		r.Backends = append(r.Backends, be)
	}
	return r
}

// grpcRuleProblem says what makes rule i of a GRPCRoute invalid, naming
// the field, or "" when nothing does: a method match of an unknown type,
// or a service or method regular expression that is not RE2 (the dialect
// the waypoint matches with; the Gateway API leaves it to
// implementations). Translation drops such a rule and route status
// reports it.
func grpcRuleProblem(i int, rule gwv1.GRPCRouteRule) string {
	for j, match := range rule.Matches {
		mm := match.Method
		if mm == nil {
			continue
		}
		at := fmt.Sprintf("rules[%d].matches[%d].method", i, j)
		switch typ := valueOf(mm.Type); typ {
		case "", gwv1.GRPCMethodMatchExact:
		case gwv1.GRPCMethodMatchRegularExpression:
			for _, f := range []struct {
				name string
				expr *string
			}{{"service", mm.Service}, {"method", mm.Method}} {
				if f.expr == nil {
					continue
				}
				if _, err := regexp.Compile(*f.expr); err != nil {
					return fmt.Sprintf("%s.%s: invalid regular expression %q (RE2 syntax): %v", at, f.name, *f.expr, err)
				}
			}
		default:
			return fmt.Sprintf("%s.type: unknown %q; use Exact or RegularExpression", at, typ)
		}
	}
	return ""
}

func (b *wpBuild) grpcFilters(m routeMeta, at string, filters []gwv1.GRPCRouteFilter) ([]model.Filter, bool) {
	var out []model.Filter
	for i, f := range filters {
		switch f.Type {
		case gwv1.GRPCRouteFilterRequestHeaderModifier:
			out = append(out, model.Filter{Type: model.FilterRequestHeaderModifier, HeaderModifier: headerModifier(f.RequestHeaderModifier)})
		case gwv1.GRPCRouteFilterResponseHeaderModifier:
			out = append(out, model.Filter{Type: model.FilterResponseHeaderModifier, HeaderModifier: headerModifier(f.ResponseHeaderModifier)})
		case gwv1.GRPCRouteFilterRequestMirror:
			out = append(out, b.mirror(m, fmt.Sprintf("%s.filters[%d]", at, i), f.RequestMirror))
		default:
			m.warnf(b.t, "%s.filters[%d]: filter %s is not supported; the rule answers 500, as the Gateway API asks", at, i, f.Type)
			return nil, false
		}
	}
	return out, true
}

// warnUnattached warns about route parents that named a Service or Gateway
// no waypoint took the route for, with Istio's message where it has one.
func (t *translator) warnUnattached() {
	type route struct {
		kind, ns, name string
		parents        []gwv1.ParentReference
	}
	var routes []route
	for _, r := range t.in.HTTPRoutes {
		if r != nil {
			routes = append(routes, route{"HTTPRoute", r.Namespace, r.Name, r.Spec.ParentRefs})
		}
	}
	for _, r := range t.in.GRPCRoutes {
		if r != nil {
			routes = append(routes, route{"GRPCRoute", r.Namespace, r.Name, r.Spec.ParentRefs})
		}
	}
	for _, r := range routes {
		for i, pr := range r.parents {
			if t.attached[fmt.Sprintf("%s %s/%s %d", r.kind, r.ns, r.name, i)] {
				continue
			}
			group, kind := gatewayGroup, "Gateway"
			if pr.Group != nil {
				group = string(*pr.Group)
			}
			if pr.Kind != nil {
				kind = string(*pr.Kind)
			}
			ref := Ref{cmp.Or(string(valueOf(pr.Namespace)), r.ns), string(pr.Name)}
			at := fmt.Sprintf("parentRefs[%d]", i)
			switch {
			case (group == "" || group == "core") && kind == "Service":
				s, ok := t.services[ref]
				switch _, bound := t.bound[ref]; {
				case !ok:
					t.warnf(r.kind, r.ns, r.name, "%s: Service %s not found", at, ref)
				case !bound:
					t.warnf(r.kind, r.ns, r.name, "%s: istio.io/use-waypoint label missing from parent and parent namespace; in ambient mode, route will not be respected", at)
				case pr.Port != nil && !hasPort(s, *pr.Port):
					t.warnf(r.kind, r.ns, r.name, "%s: Service %s has no port %d", at, ref, *pr.Port)
				}
			case group == gatewayGroup && kind == "Gateway":
				if _, ok := t.binder.Waypoint(ref); !ok {
					t.warnf(r.kind, r.ns, r.name, "%s: Gateway %s is not a ready waypoint", at, ref)
				}
			case group == istioNetworkingGroup && kind == "ServiceEntry":
				se, ok := t.seByRef[ref]
				switch _, bound := t.seBound[ref]; {
				case !ok:
					t.warnf(r.kind, r.ns, r.name, "%s: ServiceEntry %s not found", at, ref)
				case !bound:
					t.warnf(r.kind, r.ns, r.name, "%s: istio.io/use-waypoint label missing from parent and parent namespace; in ambient mode, route will not be respected", at)
				case pr.Port != nil && !seHasPort(se, *pr.Port):
					t.warnf(r.kind, r.ns, r.name, "%s: ServiceEntry %s has no port %d", at, ref, *pr.Port)
				}
			}
		}
	}
}
