package model

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

func validPolicy() AuthorizationPolicy {
	return AuthorizationPolicy{
		Name: "view-only", Namespace: "default", Action: ActionAllow,
		Rules: []Rule{{
			From: []Source{{
				Principals: []string{"cluster.local/ns/default/sa/sleep", "cluster.local/ns/*"}, NotPrincipals: []string{"*/sa/admin"},
				Namespaces: []string{"default", "istio-system"}, NotNamespaces: []string{"kube-*"},
				IPBlocks: []string{"10.0.0.0/8", "203.0.113.4"}, NotIPBlocks: []string{"2001:db8::/32"},
				RemoteIPBlocks: []string{"192.0.2.0/24"}, NotRemoteIPBlocks: []string{"192.0.2.7"},
			}},
			To: []Operation{{
				Hosts: []string{"*.example.com"}, NotHosts: []string{"admin.example.com"},
				Ports: []string{"8080"}, NotPorts: []string{"0", "65535"},
				Methods: []string{"GET"}, NotMethods: []string{"DELETE"},
				Paths: []string{"/api/*", "*.png", "/"}, NotPaths: []string{"/admin*"},
			}},
			When: []Condition{
				{Key: "request.headers[x-user]", Values: []string{"*"}},
				{Key: "source.ip", NotValues: []string{"10.1.0.0/16"}},
				{Key: "remote.ip", Values: []string{"192.0.2.1"}},
				{Key: "source.namespace", Values: []string{"default"}},
				{Key: "source.principal", Values: []string{"cluster.local/ns/default/sa/sleep"}},
				{Key: "destination.ip", Values: []string{"10.0.0.1"}},
				{Key: "destination.port", Values: []string{"9080"}},
			},
		}},
	}
}

func TestValidateAcceptsValidPolicies(t *testing.T) {
	for name, p := range map[string]AuthorizationPolicy{
		"every field":          validPolicy(),
		"no rules (deny all)":  {Name: "deny-all", Namespace: "default"},
		"empty rule (allow)":   {Name: "allow-all", Namespace: "default", Rules: []Rule{{}}},
		"deny":                 {Name: "d", Namespace: "ns", Action: ActionDeny, Rules: []Rule{{To: []Operation{{Methods: []string{"POST"}}}}}},
		"audit":                {Name: "a", Namespace: "ns", Action: ActionAudit, Rules: []Rule{{}}},
		"empty action (ALLOW)": {Name: "a", Namespace: "ns", Rules: []Rule{{}}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := p.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	const at = "authorization policy default/p: rules[0]"
	tests := []struct {
		name string
		edit func(p *AuthorizationPolicy)
		want []string
	}{
		{"CUSTOM action", func(p *AuthorizationPolicy) { p.Action = ActionCustom }, []string{"authorization policy default/p: action CUSTOM is not supported", "use ALLOW or DENY"}},
		{"unknown action", func(p *AuthorizationPolicy) { p.Action = "allow" }, []string{`action "allow" is unknown`}},
		{"no name", func(p *AuthorizationPolicy) { p.Name = "" }, []string{"name is empty"}},
		{"no namespace", func(p *AuthorizationPolicy) { p.Namespace = "" }, []string{"namespace is empty"}},
		{"bad CIDR", func(p *AuthorizationPolicy) { p.Rules[0].From[0].IPBlocks = []string{"10.0.0.0/33"} },
			[]string{at + `.from[0].ipBlocks[0]: "10.0.0.0/33" is not a CIDR`}},
		{"bad IP", func(p *AuthorizationPolicy) { p.Rules[0].From[0].NotRemoteIPBlocks = []string{"10.0.0.x"} },
			[]string{at + `.from[0].notRemoteIpBlocks[0]: "10.0.0.x" is not an IP address or CIDR`, "203.0.113.0/24"}},
		{"IP with zone", func(p *AuthorizationPolicy) { p.Rules[0].From[0].NotIPBlocks = []string{"fe80::1%eth0"} },
			[]string{".notIpBlocks[0]: \"fe80::1%eth0\" is not an IP address"}},
		{"bad port", func(p *AuthorizationPolicy) { p.Rules[0].To[0].Ports = []string{"http"} },
			[]string{at + `.to[0].ports[0]: "http" is not a port number`, "0 to 65535"}},
		{"port out of range", func(p *AuthorizationPolicy) { p.Rules[0].To[0].NotPorts = []string{"65536"} },
			[]string{`.to[0].notPorts[0]: "65536" is not a port number`}},
		{"wildcard port", func(p *AuthorizationPolicy) { p.Rules[0].To[0].Ports = []string{"80*"} }, []string{`ports[0]: "80*" is not a port number`}},
		{"empty value", func(p *AuthorizationPolicy) { p.Rules[0].From[0].Namespaces = []string{"default", ""} },
			[]string{at + `.from[0].namespaces[1]: value is empty`, `use "*"`}},
		{"star in the middle", func(p *AuthorizationPolicy) { p.Rules[0].To[0].Paths = []string{"/api/*/users"} },
			[]string{`.to[0].paths[0]: "/api/*/users": '*' is allowed only once`}},
		{"star at both ends", func(p *AuthorizationPolicy) { p.Rules[0].To[0].Hosts = []string{"*example*"} }, []string{`hosts[0]: "*example*": '*'`}},
		{"double star", func(p *AuthorizationPolicy) { p.Rules[0].To[0].Methods = []string{"**"} }, []string{`methods[0]: "**": '*'`}},
		{"path template", func(p *AuthorizationPolicy) { p.Rules[0].To[0].NotPaths = []string{"/x/{*}/y"} }, []string{`notPaths[0]: "/x/{*}/y": path templates`}},
		{"spiffe principal", func(p *AuthorizationPolicy) {
			p.Rules[0].From[0].Principals = []string{"spiffe://cluster.local/ns/a/sa/b"}
		},
			[]string{`principals[0]: "spiffe://cluster.local/ns/a/sa/b": write principals without the spiffe:// prefix, e.g. "cluster.local/ns/a/sa/b"`}},
		{"empty source", func(p *AuthorizationPolicy) { p.Rules[0].From = append(p.Rules[0].From, Source{}) },
			[]string{at + ".from[1] is empty; set at least one field"}},
		{"empty operation", func(p *AuthorizationPolicy) { p.Rules[0].To = []Operation{{}} }, []string{at + ".to[0] is empty"}},
		{"request.auth key", func(p *AuthorizationPolicy) {
			p.Rules[0].When = []Condition{{Key: "request.auth.claims[iss]", Values: []string{"x"}}}
		}, []string{at + `.when[0]: key "request.auth.claims[iss]" is not supported`, "RequestAuthentication"}},
		{"connection.sni key", func(p *AuthorizationPolicy) {
			p.Rules[0].When = []Condition{{Key: "connection.sni", Values: []string{"x"}}}
		},
			[]string{`key "connection.sni" is not supported`}},
		{"unknown key", func(p *AuthorizationPolicy) {
			p.Rules[0].When = []Condition{{Key: "source.user", Values: []string{"x"}}}
		},
			[]string{`.when[0]: key "source.user" is not a known attribute`, "destination.port"}},
		{"empty key", func(p *AuthorizationPolicy) { p.Rules[0].When = []Condition{{Values: []string{"x"}}} }, []string{".when[0]: key is empty"}},
		{"bad header key", func(p *AuthorizationPolicy) {
			p.Rules[0].When = []Condition{{Key: "request.headers[]", Values: []string{"x"}}}
		},
			[]string{`key "request.headers[]" is not a valid header attribute`}},
		{"unclosed header key", func(p *AuthorizationPolicy) {
			p.Rules[0].When = []Condition{{Key: "request.headers[x", Values: []string{"x"}}}
		},
			[]string{`key "request.headers[x" is not a valid header attribute`}},
		{"condition without values", func(p *AuthorizationPolicy) { p.Rules[0].When = []Condition{{Key: "source.ip"}} },
			[]string{".when[0] (source.ip): set values or notValues"}},
		{"condition bad IP", func(p *AuthorizationPolicy) {
			p.Rules[0].When = []Condition{{Key: "destination.ip", NotValues: []string{"nope"}}}
		},
			[]string{`.when[0].notValues[0]: "nope" is not an IP address`}},
		{"condition bad port", func(p *AuthorizationPolicy) {
			p.Rules[0].When = []Condition{{Key: "destination.port", Values: []string{"-1"}}}
		},
			[]string{`.when[0].values[0]: "-1" is not a port number`}},
		{"condition spiffe principal", func(p *AuthorizationPolicy) {
			p.Rules[0].When = []Condition{{Key: "source.principal", Values: []string{"spiffe://td/ns/a/sa/b"}}}
		}, []string{`.when[0].values[0]: "spiffe://td/ns/a/sa/b": write principals without`}},
		{"condition empty value", func(p *AuthorizationPolicy) {
			p.Rules[0].When = []Condition{{Key: "request.headers[x]", Values: []string{""}}}
		}, []string{`.when[0].values[0]: value is empty`}},
		{"every error reported", func(p *AuthorizationPolicy) {
			p.Rules[0].To[0].Ports = []string{"x"}
			p.Rules[0].From[0].IPBlocks = []string{"y"}
		}, []string{`ports[0]: "x"`, `ipBlocks[0]: "y"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPolicy()
			p.Name = "p"
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

func TestJSONFieldNames(t *testing.T) {
	b, err := json.Marshal(validPolicy())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{
		`"name"`, `"namespace"`, `"action":"ALLOW"`, `"rules"`, `"from"`, `"to"`, `"when"`,
		`"principals"`, `"notPrincipals"`, `"namespaces"`, `"notNamespaces"`, `"ipBlocks"`, `"notIpBlocks"`,
		`"remoteIpBlocks"`, `"notRemoteIpBlocks"`, `"hosts"`, `"notHosts"`, `"ports"`, `"notPorts"`,
		`"methods"`, `"notMethods"`, `"paths"`, `"notPaths"`, `"key"`, `"values"`, `"notValues"`,
	} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	var back AuthorizationPolicy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) {
		t.Errorf("round trip changed the policy:\n%s\n%s", b, b2)
	}
	empty, _ := json.Marshal(AuthorizationPolicy{Name: "n", Namespace: "ns"})
	if got, want := string(empty), `{"name":"n","namespace":"ns"}`; got != want {
		t.Errorf("empty policy JSON = %s, want %s", got, want)
	}
}

func TestParseIPBlock(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.4", "203.0.113.4/32"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"::ffff:10.0.0.1", "10.0.0.1/32"},
		{"2001:db8::/32", "2001:db8::/32"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseIPBlock(tt.in)
			if err != nil || got != netip.MustParsePrefix(tt.want) {
				t.Errorf("ParseIPBlock(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseConditionKey(t *testing.T) {
	tests := []struct {
		key    string
		attr   Attribute
		header string
	}{
		{"request.headers[X-User]", AttrRequestHeader, "X-User"},
		{"source.ip", AttrSourceIP, ""},
		{"remote.ip", AttrRemoteIP, ""},
		{"source.namespace", AttrSourceNamespace, ""},
		{"source.principal", AttrSourcePrincipal, ""},
		{"destination.ip", AttrDestinationIP, ""},
		{"destination.port", AttrDestinationPort, ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			a, h, err := ParseConditionKey(tt.key)
			if err != nil || a != tt.attr || h != tt.header {
				t.Errorf("ParseConditionKey(%q) = %v, %q, %v; want %v, %q", tt.key, a, h, err, tt.attr, tt.header)
			}
		})
	}
}

func TestActionEffective(t *testing.T) {
	if got := Action("").Effective(); got != ActionAllow {
		t.Errorf(`Action("").Effective() = %q, want ALLOW`, got)
	}
	if got := ActionDeny.Effective(); got != ActionDeny {
		t.Errorf("ActionDeny.Effective() = %q", got)
	}
}
