package translate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	telemetryv1alpha1 "istio.io/api/telemetry/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ratelimitv1alpha1 "github.com/meshway/meshway/api/ratelimit/v1alpha1"
	"github.com/meshway/meshway/internal/model"
)

// target is one targetRefs entry, normalised.
type target struct{ group, kind, name string }

func (t target) isGateway() bool { return t.group == gatewayGroup && t.kind == "Gateway" }
func (t target) isClass() bool   { return t.group == gatewayGroup && t.kind == "GatewayClass" }
func (t target) isService() bool { return (t.group == "" || t.group == "core") && t.kind == "Service" }
func (t target) isServiceEntry() bool {
	return t.group == istioNetworkingGroup && t.kind == "ServiceEntry"
}

func istioTargets(single *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) []target {
	var out []target
	for _, r := range append([]*typev1beta1.PolicyTargetReference{single}, refs...) {
		if r != nil {
			out = append(out, target{r.GetGroup(), r.GetKind(), r.GetName()})
		}
	}
	return out
}

// attachment says where a policy in namespace ns with targets applies on
// this waypoint: to the waypoint itself and/or to some of its services.
func (b *wpBuild) attachment(ns string, targets []target) (waypoint bool, services []int) {
	for _, tg := range targets {
		switch {
		case tg.isGateway():
			waypoint = waypoint || ns == b.w.Ref.Namespace && tg.name == b.w.Ref.Name
		case tg.isClass():
			waypoint = waypoint || ns == b.t.rootNs && tg.name == WaypointClassName &&
				string(b.w.Gateway.Spec.GatewayClassName) == WaypointClassName
		case tg.isService():
			if i, ok := b.services[Ref{ns, tg.name}]; ok && !slices.Contains(services, i) {
				services = append(services, i)
			}
		case tg.isServiceEntry():
			for _, i := range b.seServices[Ref{ns, tg.name}] {
				if !slices.Contains(services, i) {
					services = append(services, i)
				}
			}
		}
	}
	slices.Sort(services)
	return waypoint, services
}

// policies attaches AuthorizationPolicies by targetRefs.
func (b *wpBuild) policies() {
	var aps []*securityv1.AuthorizationPolicy
	for _, ns := range b.policyNamespaces() {
		aps = append(aps, b.t.idx.authorizationPolicies[ns]...)
	}
	for _, ap := range aps {
		onWaypoint, svcs := b.attachment(ap.Namespace, istioTargets(ap.Spec.GetTargetRef(), ap.Spec.GetTargetRefs()))
		if !onWaypoint && len(svcs) == 0 {
			continue
		}
		p, ok := b.t.authorizationPolicy(ap)
		if !ok {
			continue
		}
		if onWaypoint {
			b.out.Policies = append(b.out.Policies, p)
		}
		for _, i := range svcs {
			b.out.Services[i].Policies = append(b.out.Services[i].Policies, p)
		}
	}
}

func byRef(a, b metav1.ObjectMeta) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

// authorizationPolicy converts ap. Unsupported fields fail closed, as Istio
// does: an ALLOW (or AUDIT) rule using one is dropped (it matches less), a
// DENY rule ignores it (it matches more). A policy the proxy would refuse
// (CUSTOM, an invalid value) is dropped whole; each case is warned about.
func (t *translator) authorizationPolicy(ap *securityv1.AuthorizationPolicy) (model.AuthorizationPolicy, bool) {
	warn := func(format string, args ...any) {
		t.warnf("AuthorizationPolicy", ap.Namespace, ap.Name, format, args...)
	}
	p := model.AuthorizationPolicy{Name: ap.Name, Namespace: ap.Namespace}
	switch ap.Spec.GetAction() {
	case securityv1beta1.AuthorizationPolicy_ALLOW:
		p.Action = model.ActionAllow
	case securityv1beta1.AuthorizationPolicy_DENY:
		p.Action = model.ActionDeny
	case securityv1beta1.AuthorizationPolicy_AUDIT:
		p.Action = model.ActionAudit
	default:
		warn("action %s is not supported: meshway has no external authorization providers; the policy is ignored", ap.Spec.GetAction())
		return p, false
	}
	deny := p.Action == model.ActionDeny
	for i, r := range ap.Spec.GetRules() {
		rule, unsupported := convertRule(r)
		if len(unsupported) == 0 {
			p.Rules = append(p.Rules, rule)
			continue
		}
		if deny {
			warn("rules[%d]: %s not supported and ignored; the DENY rule matches more requests", i, strings.Join(unsupported, ", "))
			p.Rules = append(p.Rules, rule)
		} else {
			warn("rules[%d]: %s not supported; the %s rule is dropped, so it matches no request", i, strings.Join(unsupported, ", "), p.Action)
		}
	}
	if err := p.Validate(); err != nil {
		warn("the policy is ignored: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
		return p, false
	}
	return p, true
}

// convertRule converts one rule, leaving out (and naming) the fields
// meshway does not support.
func convertRule(r *securityv1beta1.Rule) (model.Rule, []string) {
	var rule model.Rule
	var unsupported []string
	note := func(field string, values []string) {
		if len(values) > 0 && !slices.Contains(unsupported, field) {
			unsupported = append(unsupported, field)
		}
	}
	for j, f := range r.GetFrom() {
		s := f.GetSource()
		at := fmt.Sprintf("from[%d].source.", j)
		note(at+"requestPrincipals", s.GetRequestPrincipals())
		note(at+"notRequestPrincipals", s.GetNotRequestPrincipals())
		note(at+"serviceAccounts", s.GetServiceAccounts())
		note(at+"notServiceAccounts", s.GetNotServiceAccounts())
		note(at+"trustDomains", s.GetTrustDomains())
		note(at+"notTrustDomains", s.GetNotTrustDomains())
		src := model.Source{
			Principals: s.GetPrincipals(), NotPrincipals: s.GetNotPrincipals(),
			Namespaces: s.GetNamespaces(), NotNamespaces: s.GetNotNamespaces(),
			IPBlocks: s.GetIpBlocks(), NotIPBlocks: s.GetNotIpBlocks(),
			RemoteIPBlocks: s.GetRemoteIpBlocks(), NotRemoteIPBlocks: s.GetNotRemoteIpBlocks(),
		}
		if len(src.Principals)+len(src.NotPrincipals)+len(src.Namespaces)+len(src.NotNamespaces)+
			len(src.IPBlocks)+len(src.NotIPBlocks)+len(src.RemoteIPBlocks)+len(src.NotRemoteIPBlocks) > 0 {
			rule.From = append(rule.From, src)
		}
	}
	for _, to := range r.GetTo() {
		o := to.GetOperation()
		op := model.Operation{
			Hosts: o.GetHosts(), NotHosts: o.GetNotHosts(), Ports: o.GetPorts(), NotPorts: o.GetNotPorts(),
			Methods: o.GetMethods(), NotMethods: o.GetNotMethods(), Paths: o.GetPaths(), NotPaths: o.GetNotPaths(),
		}
		if len(op.Hosts)+len(op.NotHosts)+len(op.Ports)+len(op.NotPorts)+len(op.Methods)+len(op.NotMethods)+len(op.Paths)+len(op.NotPaths) > 0 {
			rule.To = append(rule.To, op)
		}
	}
	for j, c := range r.GetWhen() {
		if _, _, err := model.ParseConditionKey(c.GetKey()); err != nil {
			note(fmt.Sprintf("when[%d] (%s)", j, c.GetKey()), []string{c.GetKey()})
			continue
		}
		rule.When = append(rule.When, model.Condition{Key: c.GetKey(), Values: c.GetValues(), NotValues: c.GetNotValues()})
	}
	return rule, unsupported
}

// rateLimits attaches LocalRateLimitPolicies by targetRefs.
func (b *wpBuild) rateLimits() {
	var ps []*ratelimitv1alpha1.LocalRateLimitPolicy
	for _, ns := range b.policyNamespaces() {
		ps = append(ps, b.t.idx.rateLimits[ns]...)
	}
	for _, p := range ps {
		onWaypoint, svcs := b.attachment(p.Namespace, gwTargets(p.Spec.TargetRefs))
		if !onWaypoint && len(svcs) == 0 {
			continue
		}
		rl, ok := b.t.rateLimit(p)
		if !ok {
			continue
		}
		if onWaypoint {
			b.out.RateLimits = append(b.out.RateLimits, rl)
		}
		for _, i := range svcs {
			b.out.Services[i].RateLimits = append(b.out.Services[i].RateLimits, rl)
		}
	}
}

func gwTargets(refs []gwv1.LocalPolicyTargetReferenceWithSectionName) []target {
	var out []target
	for _, r := range refs {
		out = append(out, target{string(r.Group), string(r.Kind), string(r.Name)})
	}
	return out
}

func (t *translator) rateLimit(p *ratelimitv1alpha1.LocalRateLimitPolicy) (model.LocalRateLimit, bool) {
	rl := model.LocalRateLimit{Name: p.Name, Namespace: p.Namespace}
	for _, r := range p.Spec.Rules {
		rule := model.RateLimitRule{
			Limit: model.RateLimitValue{Requests: int(r.Limit.Requests), Unit: model.RateLimitUnit(r.Limit.Unit)},
			Burst: int(valueOf(r.Burst)),
		}
		for _, cs := range r.ClientSelectors {
			sel := model.RateLimitSelector{}
			for _, h := range cs.Headers {
				sel.Headers = append(sel.Headers, model.RateLimitHeaderMatch{Type: string(h.MatchType()), Name: string(h.Name), Value: valueOf(h.Value)})
			}
			if c := cs.SourceCIDR; c != nil {
				sel.SourceCIDR = &model.RateLimitSourceMatch{Type: string(c.MatchType()), Value: c.Value}
			}
			if pm := cs.SourcePrincipal; pm != nil {
				sel.SourcePrincipal = &model.RateLimitPrincipalMatch{Type: string(pm.MatchType()), Value: valueOf(pm.Value)}
			}
			rule.ClientSelectors = append(rule.ClientSelectors, sel)
		}
		if rt := r.Route; rt != nil {
			rule.Route = &model.RateLimitRoute{Kind: model.RouteKind(rt.EffectiveKind()), Name: string(rt.Name), RuleName: sectionName(rt.RuleName)}
		}
		rl.Rules = append(rl.Rules, rule)
	}
	if err := rl.Validate(); err != nil {
		t.warnf("LocalRateLimitPolicy", p.Namespace, p.Name, "the policy is ignored: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
		return rl, false
	}
	return rl, true
}

// warnPolicyTargets warns about policies that apply to no waypoint: those
// without targetRefs (Istio ignores them on waypoints) and targets that are
// not a ready waypoint or a Service bound to one.
func (t *translator) warnPolicyTargets() {
	check := func(kind, ns, name string, targets []target, hasSelector bool) {
		if len(targets) == 0 {
			scope := "namespace-wide"
			if hasSelector {
				scope = "selector"
			}
			if kind == "Telemetry" && !hasSelector {
				return // namespace- and mesh-wide Telemetry does apply
			}
			t.warnf(kind, ns, name, "a %s policy (no targetRefs) does not apply to waypoints, as in Istio: it applies to workloads only; use targetRefs (kind Gateway or Service) to apply it at a waypoint", scope)
			return
		}
		for i, tg := range targets {
			ref := Ref{ns, tg.name}
			switch {
			case tg.isGateway():
				if _, ok := t.binder.Waypoint(ref); !ok {
					t.warnf(kind, ns, name, "targetRefs[%d]: Gateway %s is not a ready waypoint", i, ref)
				}
			case tg.isClass():
				if ns != t.rootNs || tg.name != WaypointClassName {
					t.warnf(kind, ns, name, "targetRefs[%d]: only GatewayClass %s, from the root namespace %s, applies to waypoints", i, WaypointClassName, t.rootNs)
				}
			case tg.isService():
				if _, ok := t.services[ref]; !ok {
					t.warnf(kind, ns, name, "targetRefs[%d]: Service %s not found", i, ref)
				} else if _, ok := t.bound[ref]; !ok {
					t.warnf(kind, ns, name, "targetRefs[%d]: Service %s is not bound to a waypoint; the policy does not apply", i, ref)
				}
			case tg.isServiceEntry():
				if _, ok := t.seByRef[ref]; !ok {
					t.warnf(kind, ns, name, "targetRefs[%d]: ServiceEntry %s not found", i, ref)
				} else if _, ok := t.seBound[ref]; !ok {
					t.warnf(kind, ns, name, "targetRefs[%d]: ServiceEntry %s is not bound to a waypoint; the policy does not apply", i, ref)
				}
			default:
				t.warnf(kind, ns, name, "targetRefs[%d]: kind %s (group %q) is not supported by meshway waypoints; use Gateway, Service or ServiceEntry", i, tg.kind, tg.group)
			}
		}
	}
	for _, ap := range t.in.AuthorizationPolicies {
		if ap != nil {
			check("AuthorizationPolicy", ap.Namespace, ap.Name, istioTargets(ap.Spec.GetTargetRef(), ap.Spec.GetTargetRefs()), ap.Spec.GetSelector() != nil)
		}
	}
	for _, p := range t.in.LocalRateLimitPolicies {
		if p != nil {
			check("LocalRateLimitPolicy", p.Namespace, p.Name, gwTargets(p.Spec.TargetRefs), false)
		}
	}
	for _, tel := range t.in.Telemetries {
		if tel != nil {
			check("Telemetry", tel.Namespace, tel.Name, istioTargets(tel.Spec.GetTargetRef(), tel.Spec.GetTargetRefs()), tel.Spec.GetSelector() != nil)
		}
	}
}

// telemetry merges the Telemetry resources that apply to waypoint w, from
// the widest to the narrowest, each level's oldest: mesh-wide (root
// namespace, no selector or targetRefs), the waypoint's namespace-wide, one
// targeting GatewayClass istio-waypoint from the root namespace, one
// targeting the waypoint's Gateway.
func (t *translator) telemetry(w Waypoint) model.Telemetry {
	var levels [4]*telemetryv1.Telemetry
	for _, i := range t.idx.telemetryCandidates(t.rootNs, w) {
		tel := t.in.Telemetries[i]
		if tel.Spec.GetSelector() != nil {
			continue
		}
		targets := istioTargets(tel.Spec.GetTargetRef(), tel.Spec.GetTargetRefs())
		level := -1
		switch {
		case len(targets) == 0 && tel.Namespace == t.rootNs:
			level = 0
		case len(targets) == 0 && tel.Namespace == w.Ref.Namespace:
			level = 1
		}
		for _, tg := range targets {
			switch {
			case tg.isClass() && tg.name == WaypointClassName && tel.Namespace == t.rootNs && string(w.Gateway.Spec.GatewayClassName) == WaypointClassName:
				level = max(level, 2)
			case tg.isGateway() && tg.name == w.Ref.Name && tel.Namespace == w.Ref.Namespace:
				level = 3
			}
		}
		if level < 0 {
			continue
		}
		if cur := levels[level]; cur == nil || olderFirst(tel.CreationTimestamp.Time, tel.Namespace+"/"+tel.Name, cur.CreationTimestamp.Time, cur.Namespace+"/"+cur.Name) < 0 {
			levels[level] = tel
		}
	}
	var out model.Telemetry
	// Tracing as Istio's Telemetries.Tracing merges it: the MeshConfig's
	// default provider, replaced by the provider each tracing entry names
	// (the narrowest level's last), and disableSpanReporting likewise.
	provider, hasProvider := t.defaultTracingRef()
	disabled := false
	for _, tel := range levels {
		if tel == nil {
			continue
		}
		if logs := tel.Spec.GetAccessLogging(); len(logs) > 0 {
			out.AccessLog = slices.ContainsFunc(logs, func(a *telemetryv1alpha1.AccessLogging) bool { return !a.GetDisabled().GetValue() })
		}
		for i, tr := range tel.Spec.GetTracing() {
			if p := tr.GetRandomSamplingPercentage(); p != nil {
				v := min(100, max(0, p.GetValue()))
				out.TracingPercent = &v
			}
			if ref, ok := t.telemetryTracingRef(tel, i); ok {
				provider, hasProvider = ref, true
			}
			if d := tr.GetDisableSpanReporting(); d != nil {
				disabled = d.GetValue()
			}
		}
	}
	if out.TracingPercent == nil {
		if p, ok := t.meshSamplingPercent(); ok {
			out.TracingPercent = &p
		}
	}
	if hasProvider && !disabled {
		t.setTracingCollector(&out, provider)
	}
	return out
}
