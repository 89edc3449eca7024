package v1alpha1_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshway/meshway/api/ratelimit/v1alpha1"
	"github.com/meshway/meshway/internal/kube/kubetest"
)

// TestAgainstAPIServer installs crd.yaml in a real kube-apiserver (when
// hack/k8s-test-bins.sh has built one; skipped otherwise, failed under CI)
// and checks what only the server does: the CEL rules, defaults, and
// metadata.generation moving on spec changes only.
func TestAgainstAPIServer(t *testing.T) {
	if reason := kubetest.Missing(); reason != "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the API server tests: " + reason)
		}
		t.Skip("no Kubernetes control plane: " + reason)
	}
	env, err := kubetest.Start(kubetest.WithoutCRDs())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	kubectl := func(stdin string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(filepath.Join(os.Getenv(kubetest.AssetsEnv), "kubectl"), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("running kubectl: %v", err)
		}
		return string(out), err
	}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, err := kubectl(stdin, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	get := func(name string) v1alpha1.LocalRateLimitPolicy {
		t.Helper()
		var p v1alpha1.LocalRateLimitPolicy
		if err := json.Unmarshal([]byte(must("", "get", "localratelimitpolicy", name, "-o", "json")), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	must("", "apply", "-f", "crd.yaml")
	must("", "wait", "--for=condition=Established", "--timeout=60s", "crd/"+v1alpha1.Resource+"."+v1alpha1.GroupName)

	// The example is accepted as written.
	must("", "apply", "-f", "../../../examples/ratelimit/reviews-ratelimit.yaml")
	p := get("reviews-per-client")
	if p.Generation != 1 || len(p.Spec.Rules) != 2 || *p.Spec.Rules[0].Burst != 20 {
		t.Fatalf("example stored as generation %d with %d rules", p.Generation, len(p.Spec.Rules))
	}
	// Labels are not spec: the generation stays.
	must("", "label", "localratelimitpolicy", "reviews-per-client", "team=reviews")
	if g := get("reviews-per-client").Generation; g != 1 {
		t.Fatalf("generation %d after a label change, want 1", g)
	}
	// A spec change moves it.
	must("", "patch", "lrlp", "reviews-per-client", "--type=json", "-p", `[{"op":"replace","path":"/spec/rules/0/limit/requests","value":5}]`)
	if p := get("reviews-per-client"); p.Generation != 2 || p.Spec.Rules[0].Limit.Requests != 5 {
		t.Fatalf("after a spec change: generation %d, requests %d; want 2, 5", p.Generation, p.Spec.Rules[0].Limit.Requests)
	}
	// Status goes through the status subresource and does not move it.
	must("", "patch", "lrlp", "reviews-per-client", "--subresource=status", "--type=merge", "-p", `{"status":{"ancestors":[{
		"ancestorRef":{"group":"","kind":"Service","name":"reviews"},
		"controllerName":"meshway.io/controller",
		"conditions":[{"type":"Accepted","status":"True","reason":"Accepted","message":"","lastTransitionTime":"2026-01-02T03:04:05Z","observedGeneration":2}]}]}}`)
	if p := get("reviews-per-client"); p.Generation != 2 || len(p.Status.Ancestors) != 1 {
		t.Fatalf("after a status change: generation %d, %d ancestors; want 2, 1", p.Generation, len(p.Status.Ancestors))
	}

	// A ServiceEntry is a target too.
	must(`apiVersion: ratelimit.meshway.io/v1alpha1
kind: LocalRateLimitPolicy
metadata: {name: external, namespace: default}
spec:
  targetRefs: [{group: networking.istio.io, kind: ServiceEntry, name: httpbin-ext}]
  rules: [{limit: {requests: 5, unit: Second}}]
`, "apply", "-f", "-")

	// Defaults: types Exact, route kind HTTPRoute.
	must(`apiVersion: ratelimit.meshway.io/v1alpha1
kind: LocalRateLimitPolicy
metadata: {name: defaults, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: waypoint}]
  rules:
  - clientSelectors:
    - headers: [{name: x-user, value: bob}]
      sourceCIDR: {value: 10.0.0.0/8}
      sourcePrincipal: {value: cluster.local/ns/default/sa/sleep}
    route: {name: reviews}
    limit: {requests: 1, unit: Minute}
`, "apply", "-f", "-")
	d := get("defaults")
	sel := d.Spec.Rules[0].ClientSelectors[0]
	if sel.Headers[0].Type == nil || *sel.Headers[0].Type != v1alpha1.HeaderMatchExact ||
		sel.SourceCIDR.Type == nil || *sel.SourceCIDR.Type != v1alpha1.SourceMatchExact ||
		sel.SourcePrincipal.Type == nil || *sel.SourcePrincipal.Type != v1alpha1.SourceMatchExact ||
		d.Spec.Rules[0].Route.Kind == nil || *d.Spec.Rules[0].Route.Kind != v1alpha1.RouteKindHTTPRoute {
		t.Fatalf("defaults not applied: %+v", d.Spec.Rules[0])
	}

	// The CEL rules.
	const head = `apiVersion: ratelimit.meshway.io/v1alpha1
kind: LocalRateLimitPolicy
metadata: {name: bad, namespace: default}
spec:
`
	const target = "  targetRefs: [{group: \"\", kind: Service, name: reviews}]\n"
	const limit = "    limit: {requests: 1, unit: Second}\n"
	for _, c := range []struct{ name, spec, want string }{
		{"target kind", "  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]\n  rules: [{limit: {requests: 1, unit: Second}}]\n",
			"targetRefs must name a Gateway (group gateway.networking.k8s.io), a Service"},
		{"target sectionName", "  targetRefs: [{group: \"\", kind: Service, name: reviews, sectionName: http}]\n  rules: [{limit: {requests: 1, unit: Second}}]\n",
			"without sectionName"},
		{"target twice", "  targetRefs: [{group: \"\", kind: Service, name: a}, {group: \"\", kind: Service, name: a}]\n  rules: [{limit: {requests: 1, unit: Second}}]\n",
			"targetRefs must be unique"},
		{"no rules", target + "  rules: []\n", "spec.rules: Invalid value"},
		{"empty selector", target + "  rules:\n  - clientSelectors: [{}]\n" + limit,
			"set at least one of headers, sourceCIDR and sourcePrincipal"},
		{"distinct header with value", target + "  rules:\n  - clientSelectors: [{headers: [{type: Distinct, name: x-user, value: bob}]}]\n" + limit,
			"value is required for types Exact and RegularExpression and must not be set for type Distinct"},
		{"exact header without value", target + "  rules:\n  - clientSelectors: [{headers: [{name: x-user}]}]\n" + limit,
			"value is required for types Exact and RegularExpression"},
		{"bad CIDR", target + "  rules:\n  - clientSelectors: [{sourceCIDR: {value: 10.0.0.0/33}}]\n" + limit,
			"value must be a CIDR"},
		{"principal with scheme", target + "  rules:\n  - clientSelectors: [{sourcePrincipal: {value: \"spiffe://cluster.local/ns/a/sa/b\"}}]\n" + limit,
			"write the principal without the spiffe:// prefix"},
		{"distinct principal with value", target + "  rules:\n  - clientSelectors: [{sourcePrincipal: {type: Distinct, value: a}}]\n" + limit,
			"value is required for type Exact and must not be set for type Distinct"},
		{"zero requests", target + "  rules: [{limit: {requests: 0, unit: Second}}]\n", "should be greater than or equal to 1"},
		{"unknown unit", target + "  rules: [{limit: {requests: 1, unit: Day}}]\n", `supported values: "Second", "Minute", "Hour"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := kubectl(head+c.spec, "apply", "--dry-run=server", "-f", "-")
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("kubectl apply: err %v, output:\n%s\nwant it rejected with %q", err, out, c.want)
			}
		})
	}
}
