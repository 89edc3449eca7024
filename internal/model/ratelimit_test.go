package model

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func validRateLimit() LocalRateLimit {
	return LocalRateLimit{
		Name: "reviews", Namespace: "default",
		Rules: []RateLimitRule{{
			ClientSelectors: []RateLimitSelector{{
				Headers: []RateLimitHeaderMatch{
					{Name: "x-user-id", Type: MatchDistinct},
					{Name: "x-plan", Value: "free"},
					{Name: "x-plan", Type: MatchExact, Value: "free"},
					{Name: "x-org", Type: MatchRegularExpression, Value: "acme-[0-9]+"},
				},
				SourceCIDR:      &RateLimitSourceMatch{Type: MatchDistinct, Value: "0.0.0.0/0"},
				SourcePrincipal: &RateLimitPrincipalMatch{Value: "cluster.local/ns/default/sa/sleep"},
			}, {
				SourceCIDR:      &RateLimitSourceMatch{Value: "10.1.2.3"},
				SourcePrincipal: &RateLimitPrincipalMatch{Type: MatchDistinct},
			}},
			Route: &RateLimitRoute{Name: "reviews", RuleName: "v2"},
			Limit: RateLimitValue{Requests: 10, Unit: RateLimitSecond},
			Burst: 20,
		}, {
			Route: &RateLimitRoute{Kind: KindGRPCRoute, Namespace: "other", Name: "ratings"},
			Limit: RateLimitValue{Requests: MaxRateLimitRequests, Unit: RateLimitHour},
		}, {
			Limit: RateLimitValue{Requests: 1, Unit: RateLimitMinute},
			Burst: MaxRateLimitRequests,
		}},
	}
}

func TestRateLimitValidateAccepts(t *testing.T) {
	p := validRateLimit()
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
}

func TestRateLimitValidateRejects(t *testing.T) {
	const at = "local rate limit default/reviews: rules[0]"
	tests := []struct {
		name string
		edit func(p *LocalRateLimit)
		want []string // each must appear in the error
	}{
		{"no name", func(p *LocalRateLimit) { p.Name = "" }, []string{"name is empty"}},
		{"no namespace", func(p *LocalRateLimit) { p.Namespace = "" }, []string{"namespace is empty"}},
		{"no rules", func(p *LocalRateLimit) { p.Rules = nil }, []string{"rules is empty; add at least one rule"}},
		{"zero requests", func(p *LocalRateLimit) { p.Rules[0].Limit.Requests = 0 }, []string{at + ".limit.requests: 0; set at least 1"}},
		{"too many requests", func(p *LocalRateLimit) { p.Rules[0].Limit.Requests = MaxRateLimitRequests + 1 }, []string{at + ".limit.requests: 1000001 is more than 1000000"}},
		{"no unit", func(p *LocalRateLimit) { p.Rules[0].Limit.Unit = "" }, []string{at + ".limit.unit: required; use Second, Minute or Hour"}},
		{"unknown unit", func(p *LocalRateLimit) { p.Rules[0].Limit.Unit = "Day" }, []string{at + `.limit.unit: unknown "Day"`}},
		{"negative burst", func(p *LocalRateLimit) { p.Rules[0].Burst = -1 }, []string{at + ".burst: -1 is negative"}},
		{"huge burst", func(p *LocalRateLimit) { p.Rules[0].Burst = MaxRateLimitRequests + 1 }, []string{at + ".burst: 1000001 is more than"}},
		{"empty selector", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[1] = RateLimitSelector{} }, []string{at + ".clientSelectors[1] is empty; set headers, sourceCIDR or sourcePrincipal"}},
		{"header without name", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[0].Headers[1].Name = "" }, []string{at + ".clientSelectors[0].headers[1].name: required"}},
		{"bad header name", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[0].Headers[1].Name = ":authority" }, []string{at + `.clientSelectors[0].headers[1].name: ":authority" is not a header name`}},
		{"exact without value", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[0].Headers[1].Value = "" }, []string{at + ".clientSelectors[0].headers[1].value: required for type Exact"}},
		{"regexp without value", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[0].Headers[3].Value = "" }, []string{at + ".clientSelectors[0].headers[3].value: required for type RegularExpression"}},
		{"bad regexp", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[0].Headers[3].Value = "a(" }, []string{at + `.clientSelectors[0].headers[3].value: invalid regular expression "a("`}},
		{"distinct with value", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[0].Headers[0].Value = "bob" }, []string{at + ".clientSelectors[0].headers[0].value: must be empty for type Distinct"}},
		{"unknown header type", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[0].Headers[0].Type = "Prefix" }, []string{at + `.clientSelectors[0].headers[0].type: unknown "Prefix"; use Exact, RegularExpression or Distinct`}},
		{"cidr without value", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[0].SourceCIDR.Value = "" }, []string{at + ".clientSelectors[0].sourceCIDR.value: required; set a CIDR"}},
		{"bad cidr", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[0].SourceCIDR.Value = "10.0.0.0/33" }, []string{at + `.clientSelectors[0].sourceCIDR.value: "10.0.0.0/33" is not a CIDR`}},
		{"cidr type", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[0].SourceCIDR.Type = "RegularExpression" }, []string{at + `.clientSelectors[0].sourceCIDR.type: unknown "RegularExpression"; use Exact or Distinct`}},
		{"principal with scheme", func(p *LocalRateLimit) {
			p.Rules[0].ClientSelectors[0].SourcePrincipal.Value = "spiffe://cluster.local/ns/default/sa/sleep"
		}, []string{at + `.clientSelectors[0].sourcePrincipal.value: "spiffe://cluster.local/ns/default/sa/sleep": write the principal without the spiffe:// prefix, e.g. "cluster.local/ns/default/sa/sleep"`}},
		{"principal pattern", func(p *LocalRateLimit) {
			p.Rules[0].ClientSelectors[0].SourcePrincipal.Value = "cluster.local/ns/default/*"
		}, []string{at + ".clientSelectors[0].sourcePrincipal.value: \"cluster.local/ns/default/*\": type Exact compares the whole principal"}},
		{"principal without value", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[0].SourcePrincipal.Value = "" }, []string{at + ".clientSelectors[0].sourcePrincipal.value: required for type Exact"}},
		{"distinct principal with value", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[1].SourcePrincipal.Value = "x" }, []string{at + ".clientSelectors[1].sourcePrincipal.value: must be empty for type Distinct"}},
		{"principal type", func(p *LocalRateLimit) { p.Rules[0].ClientSelectors[1].SourcePrincipal.Type = "Any" }, []string{at + `.clientSelectors[1].sourcePrincipal.type: unknown "Any"`}},
		{"route without name", func(p *LocalRateLimit) { p.Rules[0].Route.Name = "" }, []string{at + ".route.name: required"}},
		{"route kind", func(p *LocalRateLimit) { p.Rules[0].Route.Kind = "TCPRoute" }, []string{at + `.route.kind: unknown "TCPRoute"`}},
		{"every problem is reported", func(p *LocalRateLimit) {
			p.Rules[0].Limit.Requests = 0
			p.Rules[2].Limit.Unit = "Week"
		}, []string{at + ".limit.requests", "local rate limit default/reviews: rules[2].limit.unit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validRateLimit()
			tt.edit(&p)
			err := p.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestRateLimitHelpers(t *testing.T) {
	p := validRateLimit()
	if got := p.Rules[0].EffectiveBurst(); got != 20 {
		t.Errorf("EffectiveBurst with burst 20 = %d", got)
	}
	if got := p.Rules[1].EffectiveBurst(); got != MaxRateLimitRequests {
		t.Errorf("EffectiveBurst without burst = %d, want limit.requests", got)
	}
	for u, d := range map[RateLimitUnit]time.Duration{RateLimitSecond: time.Second, RateLimitMinute: time.Minute, RateLimitHour: time.Hour, "Day": 0} {
		if got := u.Duration(); got != d {
			t.Errorf("%q.Duration() = %v, want %v", u, got, d)
		}
	}
}

// A waypoint configuration file carries policies in these JSON field names.
func TestRateLimitJSON(t *testing.T) {
	const doc = `{"name":"reviews","namespace":"default","rules":[{
		"clientSelectors":[{"headers":[{"type":"Distinct","name":"x-user-id"}],
			"sourceCIDR":{"type":"Distinct","value":"0.0.0.0/0"},
			"sourcePrincipal":{"value":"cluster.local/ns/default/sa/sleep"}}],
		"route":{"kind":"HTTPRoute","namespace":"default","name":"reviews","ruleName":"v2"},
		"limit":{"requests":10,"unit":"Second"},"burst":20}]}`
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	var p LocalRateLimit
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	r := p.Rules[0]
	if r.Burst != 20 || r.Limit != (RateLimitValue{10, RateLimitSecond}) || r.Route.RuleName != "v2" ||
		r.ClientSelectors[0].SourceCIDR.Type != MatchDistinct || r.ClientSelectors[0].Headers[0].Name != "x-user-id" {
		t.Fatalf("decoded %+v", r)
	}
	out, err := json.Marshal(LocalRateLimit{Name: "n", Namespace: "ns", Rules: []RateLimitRule{{Limit: RateLimitValue{1, RateLimitSecond}}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"n","namespace":"ns","rules":[{"limit":{"requests":1,"unit":"Second"}}]}`; string(out) != want {
		t.Fatalf("Marshal = %s, want %s", out, want)
	}
}
