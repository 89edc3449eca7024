package model

import (
	"strings"
	"testing"
)

// TestValidateGRPCMethod: a gRPC method match is Exact (the default) or
// RegularExpression, whose service and method must be valid RE2; errors
// name the field.
func TestValidateGRPCMethod(t *testing.T) {
	const at = "services[0].ports[0].routes[0].rules[0].matches[0].grpc"
	for _, tc := range []struct {
		name string
		g    GRPCMethod
		want []string // nil: valid
	}{
		{"exact by default", GRPCMethod{Service: "pkg.Svc", Method: "Get"}, nil},
		{"exact", GRPCMethod{Type: MatchExact, Service: "pkg.Svc"}, nil},
		{"regular expressions", GRPCMethod{Type: MatchRegularExpression, Service: `pkg\.(A|B)`, Method: "Get.*"}, nil},
		{"regular expression, method only", GRPCMethod{Type: MatchRegularExpression, Method: "List|Watch"}, nil},
		{"bad regular expressions", GRPCMethod{Type: MatchRegularExpression, Service: "(", Method: "[a-"}, []string{
			at + `.service: invalid regular expression "("`, at + `.method: invalid regular expression "[a-"`,
		}},
		{"an exact value is no expression", GRPCMethod{Service: "("}, nil},
		{"unknown type", GRPCMethod{Type: "Prefix", Service: "pkg"}, []string{at + `.type: unknown "Prefix"; use Exact or RegularExpression`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			w := &Waypoint{
				Name: "waypoint", Namespace: "default",
				Services: []Service{{Name: "ratings", Namespace: "default", Hostname: "ratings.default.svc.cluster.local", Ports: []ServicePort{{
					Port: 9090, Protocol: ProtocolGRPC, Cluster: "ratings",
					Routes: []HTTPRoute{{Kind: KindGRPCRoute, Name: "r", Namespace: "default", Rules: []RouteRule{{
						Matches: []RouteMatch{{GRPC: &g}}, Backends: []Backend{{Cluster: "ratings"}},
					}}}},
				}}}},
				Clusters: []Cluster{{Name: "ratings"}},
			}
			err := w.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v; want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error; want %q", tc.want)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate: %v; want it to say %q", err, want)
				}
			}
		})
	}
}
