package translate

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/meshway/meshway/internal/model"
)

// virtualServices converts the VirtualServices that apply to port p of s:
// those in the service's or the waypoint's namespace (as in Istio), for the
// mesh gateway, whose hosts name the service.
func (b *wpBuild) virtualServices(tg routeTarget, p *model.ServicePort) []model.HTTPRoute {
	host := tg.host
	var out []model.HTTPRoute
	for _, i := range b.t.idx.virtualServiceCandidates(tg.ns, b.w.Ref.Namespace) {
		vs := b.t.in.VirtualServices[i]
		if gws := vs.Spec.GetGateways(); len(gws) > 0 && !slices.Contains(gws, "mesh") {
			continue
		}
		if !slices.ContainsFunc(vs.Spec.GetHosts(), func(h string) bool {
			h = b.t.fqdn(h, vs.Namespace)
			return h == host || wildcardMatch(h, host)
		}) {
			continue
		}
		m := routeMeta{"VirtualService", vs.Namespace, vs.Name, vs.CreationTimestamp.UTC()}
		if len(vs.Spec.GetTcp()) > 0 || len(vs.Spec.GetTls()) > 0 {
			m.warnf(b.t, "tcp and tls routes are not supported by meshway waypoints; only http routes apply")
		}
		if len(vs.Spec.GetHttp()) == 0 {
			continue
		}
		if !p.Protocol.IsHTTP() {
			m.warnf(b.t, "port %d of %s is %s, not HTTP: the http routes are dropped there (%s)", p.Port, tg, p.Protocol, tg.protocolHint())
			continue
		}
		route := model.HTTPRoute{Kind: model.KindVirtualService, Name: vs.Name, Namespace: vs.Namespace, Created: m.created}
		for i, h := range vs.Spec.GetHttp() {
			if rule, ok := b.vsRule(m, vs, i, h, p.Port); ok {
				route.Rules = append(route.Rules, rule)
			}
		}
		if len(route.Rules) > 0 && b.checkRoute(m, route) {
			out = append(out, route)
		}
	}
	return out
}

// vsRule converts http[i] for port; false when it does not apply to the port
// or cannot be honoured (with a warning).
func (b *wpBuild) vsRule(m routeMeta, vs *networkingv1.VirtualService, i int, h *networkingv1alpha3.HTTPRoute, port uint16) (model.RouteRule, bool) {
	at := fmt.Sprintf("http[%d]", i)
	if h.GetName() != "" {
		at = fmt.Sprintf("http[%d] (%s)", i, h.GetName())
	}
	fail := func(format string, args ...any) (model.RouteRule, bool) {
		m.warnf(b.t, "%s: %s; the rule is dropped", at, fmt.Sprintf(format, args...))
		return model.RouteRule{}, false
	}
	switch {
	case h.GetDelegate() != nil:
		return fail("delegate is not supported")
	case h.GetDirectResponse() != nil:
		return fail("directResponse is not supported")
	case h.GetCorsPolicy() != nil:
		return fail("corsPolicy is not supported")
	}
	r := model.RouteRule{Name: h.GetName()}
	hasPrefix := false
	for j, mr := range h.GetMatch() {
		if mr.GetPort() != 0 && mr.GetPort() != uint32(port) {
			continue
		}
		rm, prefix, err := vsMatch(mr)
		if err != nil {
			m.warnf(b.t, "%s.match[%d]: %v; the match is dropped", at, j, err)
			continue
		}
		hasPrefix = hasPrefix || prefix
		r.Matches = append(r.Matches, rm)
	}
	if len(h.GetMatch()) > 0 && len(r.Matches) == 0 {
		// No match alternative applies to this port: the rule does not
		// either (no matches would mean every request).
		return model.RouteRule{}, false
	}
	if rw := h.GetRewrite(); rw != nil {
		if rw.GetUriRegexRewrite() != nil {
			return fail("rewrite.uriRegexRewrite is not supported")
		}
		if rw.GetUri() != "" && hasPrefix {
			return fail("rewrite.uri after a prefix match is not supported (only full-path rewrites)")
		}
		u := &model.URLRewrite{Hostname: rw.GetAuthority()}
		if rw.GetUri() != "" {
			u.Path = &model.PathModifier{Type: model.ReplaceFullPath, Value: rw.GetUri()}
		}
		r.Filters = append(r.Filters, model.Filter{Type: model.FilterURLRewrite, URLRewrite: u})
	}
	if hs := h.GetHeaders(); hs != nil {
		if hm := vsHeaders(hs.GetRequest()); hm != nil {
			r.Filters = append(r.Filters, model.Filter{Type: model.FilterRequestHeaderModifier, HeaderModifier: hm})
		}
		if hm := vsHeaders(hs.GetResponse()); hm != nil {
			r.Filters = append(r.Filters, model.Filter{Type: model.FilterResponseHeaderModifier, HeaderModifier: hm})
		}
	}
	if mirror := h.GetMirror(); mirror != nil {
		pct := 100.0
		if mp := h.GetMirrorPercentage(); mp != nil {
			pct = mp.GetValue()
		} else if mp := h.GetMirrorPercent(); mp != nil { //nolint:staticcheck // deprecated field, still honoured
			pct = float64(mp.GetValue())
		}
		r.Filters = append(r.Filters, b.vsMirror(m, vs, at+".mirror", mirror, pct, port))
	}
	for j, mp := range h.GetMirrors() {
		pct := 100.0
		if mp.GetPercentage() != nil {
			pct = mp.GetPercentage().GetValue()
		}
		r.Filters = append(r.Filters, b.vsMirror(m, vs, fmt.Sprintf("%s.mirrors[%d]", at, j), mp.GetDestination(), pct, port))
	}
	if rd := h.GetRedirect(); rd != nil {
		red := &model.RequestRedirect{Scheme: rd.GetScheme(), Hostname: rd.GetAuthority()}
		if rd.GetUri() != "" {
			red.Path = &model.PathModifier{Type: model.ReplaceFullPath, Value: rd.GetUri()}
		}
		if p := rd.GetPort(); p > 0 && p <= 65535 {
			red.Port = uint16(p)
		}
		switch c := rd.GetRedirectCode(); c {
		case 0:
			red.StatusCode = 301 // Istio's default
		case 301, 302:
			red.StatusCode = int(c)
		default:
			return fail("redirect.redirectCode %d is not supported (only 301 and 302)", c)
		}
		r.Filters = append(r.Filters, model.Filter{Type: model.FilterRequestRedirect, RequestRedirect: red})
	}
	if d := h.GetTimeout(); d != nil {
		r.Timeouts.Request = protoDuration(d)
	}
	if rt := h.GetRetries(); rt != nil {
		retry, err := vsRetry(rt)
		if err != nil {
			m.warnf(b.t, "%s.retries: %v", at, err)
		}
		r.Retry = retry
	}
	if f := h.GetFault(); f != nil {
		fault, err := vsFault(f)
		if err != nil {
			return fail("fault: %v", err)
		}
		r.Fault = fault
	}
	if h.GetRedirect() == nil {
		single := len(h.GetRoute()) == 1
		for j, d := range h.GetRoute() {
			be := model.Backend{Cluster: b.vsDestination(m, vs, fmt.Sprintf("%s.route[%d]", at, j), d.GetDestination(), port)}
			if !single {
				w := d.GetWeight()
				be.Weight = &w
			}
			if hs := d.GetHeaders(); hs != nil {
				if hm := vsHeaders(hs.GetRequest()); hm != nil {
					be.Filters = append(be.Filters, model.Filter{Type: model.FilterRequestHeaderModifier, HeaderModifier: hm})
				}
				if hm := vsHeaders(hs.GetResponse()); hm != nil {
					be.Filters = append(be.Filters, model.Filter{Type: model.FilterResponseHeaderModifier, HeaderModifier: hm})
				}
			}
			r.Backends = append(r.Backends, be)
		}
	}
	return r, true
}

// vsMatch converts one HTTPMatchRequest; prefix reports a uri prefix match.
// Istio's prefix is a string prefix, so it becomes a regular expression (the
// Gateway API's PathPrefix matches whole segments only).
func vsMatch(mr *networkingv1alpha3.HTTPMatchRequest) (rm model.RouteMatch, prefix bool, err error) {
	switch {
	case mr.GetAuthority() != nil:
		return rm, false, fmt.Errorf("authority matches are not supported")
	case mr.GetScheme() != nil:
		return rm, false, fmt.Errorf("scheme matches are not supported")
	case len(mr.GetWithoutHeaders()) > 0:
		return rm, false, fmt.Errorf("withoutHeaders is not supported")
	case mr.GetIgnoreUriCase():
		return rm, false, fmt.Errorf("ignoreUriCase is not supported")
	case mr.GetSourceNamespace() != "" || len(mr.GetSourceLabels()) > 0 || len(mr.GetGateways()) > 0:
		return rm, false, fmt.Errorf("sourceNamespace, sourceLabels and gateways do not apply at a waypoint (Istio drops them too)")
	}
	if u := mr.GetUri(); u != nil {
		switch {
		case u.GetExact() != "":
			rm.Path = &model.PathMatch{Type: model.MatchExact, Value: u.GetExact()}
		case u.GetPrefix() == "/":
			rm.Path = &model.PathMatch{Type: model.MatchPathPrefix, Value: "/"}
		case u.GetPrefix() != "":
			rm.Path = &model.PathMatch{Type: model.MatchRegularExpression, Value: regexp.QuoteMeta(u.GetPrefix()) + ".*"}
			prefix = true
		case u.GetRegex() != "":
			rm.Path = &model.PathMatch{Type: model.MatchRegularExpression, Value: u.GetRegex()}
		}
	}
	if meth := mr.GetMethod(); meth != nil {
		if meth.GetExact() == "" {
			return rm, false, fmt.Errorf("method: only exact matches are supported")
		}
		rm.Method = meth.GetExact()
	}
	if rm.Headers, err = stringMatches("headers", mr.GetHeaders()); err != nil {
		return rm, false, err
	}
	if rm.QueryParams, err = stringMatches("queryParams", mr.GetQueryParams()); err != nil {
		return rm, false, err
	}
	return rm, prefix, nil
}

func stringMatches(field string, ms map[string]*networkingv1alpha3.StringMatch) ([]model.ValueMatch, error) {
	var out []model.ValueMatch
	for _, name := range slices.Sorted(maps.Keys(ms)) {
		sm := ms[name]
		switch {
		case sm.GetExact() != "":
			out = append(out, model.ValueMatch{Name: name, Value: sm.GetExact()})
		case sm.GetPrefix() != "":
			out = append(out, model.ValueMatch{Type: model.MatchRegularExpression, Name: name, Value: regexp.QuoteMeta(sm.GetPrefix()) + ".*"})
		case sm.GetRegex() != "":
			out = append(out, model.ValueMatch{Type: model.MatchRegularExpression, Name: name, Value: sm.GetRegex()})
		default:
			return nil, fmt.Errorf("%s[%s]: an empty (presence) match is not supported", field, name)
		}
	}
	return out, nil
}

func vsHeaders(ops *networkingv1alpha3.Headers_HeaderOperations) *model.HeaderModifier {
	if ops == nil || len(ops.GetSet())+len(ops.GetAdd())+len(ops.GetRemove()) == 0 {
		return nil
	}
	hm := &model.HeaderModifier{Remove: slices.Clone(ops.GetRemove())}
	for _, k := range slices.Sorted(maps.Keys(ops.GetSet())) {
		hm.Set = append(hm.Set, model.Header{Name: k, Value: ops.GetSet()[k]})
	}
	for _, k := range slices.Sorted(maps.Keys(ops.GetAdd())) {
		hm.Add = append(hm.Add, model.Header{Name: k, Value: ops.GetAdd()[k]})
	}
	return hm
}

// vsRetry converts retries; unknown retryOn conditions are dropped and
// reported in err (the retry is still returned).
func vsRetry(rt *networkingv1alpha3.HTTPRetry) (*model.Retry, error) {
	r := &model.Retry{Attempts: int(rt.GetAttempts()), PerTryTimeout: protoDuration(rt.GetPerTryTimeout()), Backoff: protoDuration(rt.GetBackoff())}
	if strings.TrimSpace(rt.GetRetryOn()) == "" {
		// Istio's conditions when retryOn is left out are its default policy's.
		d := IstioDefaultRetry()
		r.On, r.Codes = d.On, d.Codes
		return r, nil
	}
	var unknown []string
	for _, on := range strings.Split(rt.GetRetryOn(), ",") {
		on = strings.TrimSpace(on)
		if on == "" {
			continue
		}
		if code, err := strconv.Atoi(on); err == nil {
			r.Codes = append(r.Codes, code)
			continue
		}
		switch on {
		case "5xx", "gateway-error", "reset", "connect-failure", "refused-stream", "retriable-4xx", "retriable-status-codes",
			"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable":
			r.On = append(r.On, on)
		default:
			unknown = append(unknown, on)
		}
	}
	if len(r.Codes) > 0 && !slices.Contains(r.On, "retriable-status-codes") {
		r.On = append(r.On, "retriable-status-codes")
	}
	if len(unknown) > 0 {
		return r, fmt.Errorf("retryOn conditions %s are not supported and are ignored", strings.Join(unknown, ", "))
	}
	return r, nil
}

func vsFault(f *networkingv1alpha3.HTTPFaultInjection) (*model.Fault, error) {
	out := &model.Fault{}
	if d := f.GetDelay(); d != nil {
		if d.GetExponentialDelay() != nil {
			return nil, fmt.Errorf("delay.exponentialDelay is not supported")
		}
		pct := float64(d.GetPercent()) //nolint:staticcheck // deprecated field, still honoured
		if d.GetPercentage() != nil {
			pct = d.GetPercentage().GetValue()
		}
		out.Delay = &model.FaultDelay{Percent: pct, Fixed: protoDuration(d.GetFixedDelay())}
	}
	if a := f.GetAbort(); a != nil {
		if a.GetGrpcStatus() != "" || a.GetHttp2Error() != "" {
			return nil, fmt.Errorf("abort: only httpStatus is supported")
		}
		pct := 100.0 // Istio aborts every request when percentage is unset
		if a.GetPercentage() != nil {
			pct = a.GetPercentage().GetValue()
		}
		out.Abort = &model.FaultAbort{Percent: pct, HTTPStatus: int(a.GetHttpStatus())}
	}
	return out, nil
}

func (b *wpBuild) vsMirror(m routeMeta, vs *networkingv1.VirtualService, at string, d *networkingv1alpha3.Destination, pct float64, port uint16) model.Filter {
	return model.Filter{Type: model.FilterRequestMirror, RequestMirror: &model.RequestMirror{
		Cluster: b.vsDestination(m, vs, at, d, port),
		Percent: min(100, max(0, pct)),
	}}
}

// vsDestination resolves a VirtualService destination: host (short names in
// the VirtualService's namespace), subset, and port (when unset: the same
// port as the request's if the service has it, else its only port).
func (b *wpBuild) vsDestination(m routeMeta, vs *networkingv1.VirtualService, at string, d *networkingv1alpha3.Destination, port uint16) string {
	host := b.t.fqdn(d.GetHost(), vs.Namespace)
	s, ns, ok := b.t.serviceByHost(host)
	if ns != "" {
		// Even when missing: creating it there changes this destination.
		b.deps[ns] = true
	}
	if !ok {
		if se := b.t.backendIndex().serviceEntryByHost(d.GetHost(), vs.Namespace); se != nil {
			return b.vsEntryDestination(m, se, at, d, port)
		}
		m.warnf(b.t, "%s.destination: host %q is not a known Service or ServiceEntry host", at, d.GetHost())
		return b.blackHole()
	}
	p := int32(d.GetPort().GetNumber())
	switch {
	case p != 0:
	case hasPort(s, int32(port)):
		p = int32(port)
	case len(s.Spec.Ports) == 1:
		p = s.Spec.Ports[0].Port
	default:
		m.warnf(b.t, "%s.destination: host %s has several ports; set port.number", at, host)
		return b.blackHole()
	}
	if !hasPort(s, p) {
		m.warnf(b.t, "%s.destination: Service %s/%s has no port %d", at, s.Namespace, s.Name, p)
		return b.blackHole()
	}
	return b.cluster(s, p, d.GetSubset())
}

// vsEntryDestination is vsDestination for a ServiceEntry host: its port
// number, else the request's port if the entry has it, else its only port.
// ServiceEntry clusters have no subsets.
func (b *wpBuild) vsEntryDestination(m routeMeta, se *networkingv1.ServiceEntry, at string, d *networkingv1alpha3.Destination, port uint16) string {
	if d.GetSubset() != "" {
		m.warnf(b.t, "%s.destination: subset %q of ServiceEntry host %s: subsets of ServiceEntries are not supported", at, d.GetSubset(), d.GetHost())
		return b.blackHole()
	}
	ports := se.Spec.GetPorts()
	p := d.GetPort().GetNumber()
	switch {
	case p != 0:
	case seHasPort(se, int32(port)):
		p = uint32(port)
	case len(ports) == 1:
		p = ports[0].GetNumber()
	default:
		m.warnf(b.t, "%s.destination: host %s has several ports; set port.number", at, d.GetHost())
		return b.blackHole()
	}
	for _, sp := range ports {
		if sp.GetNumber() == p {
			return b.seCluster(se, d.GetHost(), sp)
		}
	}
	m.warnf(b.t, "%s.destination: ServiceEntry %s/%s has no port %d", at, se.Namespace, se.Name, p)
	return b.blackHole()
}
