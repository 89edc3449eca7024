package translate

import (
	"fmt"
	"slices"
	"strings"

	securityv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshway/meshway/internal/model"
)

// Istio's status messages for what ztunnel cannot enforce
// (pilot/pkg/serviceregistry/ambient/authorization.go), reused as warnings
// so that they read the same.
const (
	ztunnelHTTPRuleFmt  = "ztunnel does not support HTTP attributes (found: %s). In ambient mode you must use a waypoint proxy to enforce HTTP rules. %s"
	ztunnelDenyHTTPRule = "DENY policy with HTTP attributes is enforced without the HTTP rules. This will be more restrictive than requested."
	ztunnelAllowHTTP    = "Within an ALLOW policy, rules matching HTTP attributes are omitted. This will be more restrictive than requested."
)

// ztunnelPolicySelection is where a converted policy applies.
type ztunnelPolicySelection struct {
	key       string // namespace/name
	namespace string
	// selector is nil for a namespace-wide (or, in the root namespace,
	// mesh-wide) policy.
	selector labels.Selector
}

// L4 policies: the AuthorizationPolicies without targetRefs (those with
// targetRefs are the waypoints', and Istio never sends them to ztunnel),
// converted by ztunnelPolicy (draftZtunnelPolicies). Each captured
// workload gets the keys of those that apply to it: mesh-wide ones (root
// namespace, no selector), its namespace's, and those whose selector
// matches its labels, from its namespace or the root namespace, in the
// order of the policies (namespace, then name). A selector without labels
// counts as none.

func newPolicySelection(ap *securityv1.AuthorizationPolicy) ztunnelPolicySelection {
	s := ztunnelPolicySelection{key: ap.Namespace + "/" + ap.Name, namespace: ap.Namespace}
	if m := ap.Spec.GetSelector().GetMatchLabels(); len(m) > 0 {
		s.selector = labels.SelectorFromSet(m)
	}
	return s
}

// mergeSelections lists the policies that can apply to a workload of a
// namespace whose own are own: those and the root namespace's (root), in
// the order of their namespaces.
func mergeSelections(own, root []ztunnelPolicySelection, rootNs string) []ztunnelPolicySelection {
	switch {
	case len(root) == 0 || len(own) > 0 && own[0].namespace == rootNs:
		return own
	case len(own) == 0:
		return root
	case rootNs < own[0].namespace:
		return append(slices.Clone(root), own...)
	}
	return append(slices.Clone(own), root...)
}

// selectedPolicies are the keys of the selections that select a workload
// with labels lbls.
func selectedPolicies(selections []ztunnelPolicySelection, lbls map[string]string) []string {
	var out []string
	for _, s := range selections {
		if s.selector == nil || s.selector.Matches(labels.Set(lbls)) {
			out = append(out, s.key)
		}
	}
	return out
}

// ztunnelPolicy converts ap as Istio converts a policy for ztunnel: only
// ALLOW and DENY; HTTP attributes (hosts, methods, paths, their not-forms,
// remoteIpBlocks, requestPrincipals and `when` keys other than source.ip,
// source.namespace, source.principal, destination.ip and destination.port)
// cannot be seen on a connection, so an ALLOW rule using one is dropped
// (it allows less) and a DENY rule is kept without them (it denies more),
// with Istio's message as a warning. Fields meshway does not implement
// (serviceAccounts, trustDomains) are treated the same way, and so is a
// rule that fails validation (an ALLOW rule is dropped; a DENY rule too,
// saying so). false when nothing of the policy can apply.
func (t *translator) ztunnelPolicy(ap *securityv1.AuthorizationPolicy) (model.AuthorizationPolicy, bool) {
	warn := func(format string, args ...any) {
		t.warnf("AuthorizationPolicy", ap.Namespace, ap.Name, format, args...)
	}
	p := model.AuthorizationPolicy{Name: ap.Name, Namespace: ap.Namespace}
	switch ap.Spec.GetAction() {
	case securityv1beta1.AuthorizationPolicy_ALLOW:
		p.Action = model.ActionAllow
	case securityv1beta1.AuthorizationPolicy_DENY:
		p.Action = model.ActionDeny
	default:
		warn("ztunnel does not support the %s action", ap.Spec.GetAction())
		return p, false
	}
	allow := p.Action == model.ActionAllow
	var found []string
	for i, r := range ap.Spec.GetRules() {
		rule, l7, unsupported := l4Rule(r)
		found = append(found, l7...)
		if len(unsupported) > 0 {
			if allow {
				warn("rules[%d]: %s not supported; the ALLOW rule is dropped, so it matches no connection", i, strings.Join(unsupported, ", "))
				continue
			}
			warn("rules[%d]: %s not supported and ignored; the DENY rule matches more connections", i, strings.Join(unsupported, ", "))
		}
		if allow && len(l7) > 0 {
			continue
		}
		one := model.AuthorizationPolicy{Name: p.Name, Namespace: p.Namespace, Action: p.Action, Rules: []model.Rule{rule}}
		if err := one.Validate(); err != nil {
			msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), "\n", "; "), "rules[0]", fmt.Sprintf("rules[%d]", i))
			if allow {
				warn("rules[%d] is dropped, so it matches no connection: %s", i, msg)
			} else {
				warn("rules[%d] is dropped, so it denies nothing: %s", i, msg)
			}
			continue
		}
		p.Rules = append(p.Rules, rule)
	}
	if len(found) > 0 {
		slices.Sort(found)
		boilerplate := ztunnelAllowHTTP
		if !allow {
			boilerplate = ztunnelDenyHTTPRule
		}
		warn(ztunnelHTTPRuleFmt, strings.Join(slices.Compact(found), ", "), boilerplate)
	}
	return p, true
}

// l4Rule converts the part of r ztunnel can evaluate. l7 names the HTTP
// attributes r uses, as Istio names them (methods, request.headers[x]);
// unsupported the fields meshway does not implement, by path. A from or to
// entry left empty once they are removed matches anything, so the list it
// is in does too.
func l4Rule(r *securityv1beta1.Rule) (rule model.Rule, l7, unsupported []string) {
	note := func(list *[]string, name string, values []string) bool {
		if len(values) == 0 {
			return false
		}
		if !slices.Contains(*list, name) {
			*list = append(*list, name)
		}
		return true
	}
	anySource := false
	for j, f := range r.GetFrom() {
		s := f.GetSource()
		at := fmt.Sprintf("from[%d].source.", j)
		dropped := note(&l7, "remoteIpBlocks", s.GetRemoteIpBlocks())
		dropped = note(&l7, "notRemoteIpBlocks", s.GetNotRemoteIpBlocks()) || dropped
		dropped = note(&l7, "requestPrincipals", s.GetRequestPrincipals()) || dropped
		dropped = note(&l7, "notRequestPrincipals", s.GetNotRequestPrincipals()) || dropped
		dropped = note(&unsupported, at+"serviceAccounts", s.GetServiceAccounts()) || dropped
		dropped = note(&unsupported, at+"notServiceAccounts", s.GetNotServiceAccounts()) || dropped
		dropped = note(&unsupported, at+"trustDomains", s.GetTrustDomains()) || dropped
		dropped = note(&unsupported, at+"notTrustDomains", s.GetNotTrustDomains()) || dropped
		src := model.Source{
			Principals: s.GetPrincipals(), NotPrincipals: s.GetNotPrincipals(),
			Namespaces: s.GetNamespaces(), NotNamespaces: s.GetNotNamespaces(),
			IPBlocks: s.GetIpBlocks(), NotIPBlocks: s.GetNotIpBlocks(),
		}
		if len(src.Principals)+len(src.NotPrincipals)+len(src.Namespaces)+len(src.NotNamespaces)+len(src.IPBlocks)+len(src.NotIPBlocks) > 0 {
			rule.From = append(rule.From, src)
			continue
		}
		if !dropped {
			// Istio refuses an empty source; fail closed.
			unsupported = append(unsupported, strings.TrimSuffix(at, ".")+" (empty)")
		}
		anySource = true
	}
	anyOperation := false
	for j, to := range r.GetTo() {
		o := to.GetOperation()
		dropped := note(&l7, "hosts", o.GetHosts())
		dropped = note(&l7, "notHosts", o.GetNotHosts()) || dropped
		dropped = note(&l7, "methods", o.GetMethods()) || dropped
		dropped = note(&l7, "notMethods", o.GetNotMethods()) || dropped
		dropped = note(&l7, "paths", o.GetPaths()) || dropped
		dropped = note(&l7, "notPaths", o.GetNotPaths()) || dropped
		op := model.Operation{Ports: o.GetPorts(), NotPorts: o.GetNotPorts()}
		if len(op.Ports)+len(op.NotPorts) > 0 {
			rule.To = append(rule.To, op)
			continue
		}
		if !dropped {
			unsupported = append(unsupported, fmt.Sprintf("to[%d].operation (empty)", j))
		}
		anyOperation = true
	}
	if anySource {
		rule.From = nil
	}
	if anyOperation {
		rule.To = nil
	}
	for j, c := range r.GetWhen() {
		if !model.IsL4ConditionKey(c.GetKey()) {
			name := c.GetKey()
			if name == "" {
				name = fmt.Sprintf("when[%d] (no key)", j)
			}
			note(&l7, name, []string{name})
			continue
		}
		rule.When = append(rule.When, model.Condition{Key: c.GetKey(), Values: c.GetValues(), NotValues: c.GetNotValues()})
	}
	return rule, l7, unsupported
}
