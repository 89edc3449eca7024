package translate

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	securityv1beta1 "istio.io/api/security/v1beta1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/model"
)

// goldenZtunnelConfigs is a golden file: the ztunnels, then (a second
// document) the warnings.
func goldenZtunnelConfigs(zs []*model.Ztunnel, warnings []Warning) ([]byte, error) {
	y, err := sigsyaml.Marshal(zs)
	if err != nil {
		return nil, err
	}
	w, err := sigsyaml.Marshal(map[string][]Warning{"warnings": warnings})
	if err != nil {
		return nil, err
	}
	return append(append(y, "---\n"...), w...), nil
}

// TestZtunnelConfigGolden translates testdata/ztunnelconfig/*.in.yaml and
// compares with *.out.yaml; regenerate with
// go test ./internal/translate -run ZtunnelConfigGolden -update.
func TestZtunnelConfigGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/ztunnelconfig/*.in.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			zs, warnings := ZtunnelConfigs(loadConfigInputs(t, file))
			if len(zs) == 0 {
				t.Error("no ztunnel: give the input's pods a spec.nodeName")
			}
			for _, z := range zs {
				if err := z.Validate(); err != nil {
					t.Errorf("ztunnel of node %s does not validate:\n%v", z.Node, err)
				}
				y, err := sigsyaml.Marshal(z)
				if err != nil {
					t.Fatal(err)
				}
				var back model.Ztunnel
				if err := sigsyaml.UnmarshalStrict(y, &back); err != nil {
					t.Errorf("ztunnel of node %s does not load back: %v", z.Node, err)
				}
			}
			got, err := goldenZtunnelConfigs(zs, warnings)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join("testdata", "ztunnelconfig", name+".out.yaml")
			if *update {
				if err := os.WriteFile(out, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-want +got); run with -update if intended:\n%s", out, diff)
			}
		})
	}
}

// TestZtunnelConfigsDeterministic shuffles every input slice and expects
// the same output.
func TestZtunnelConfigsDeterministic(t *testing.T) {
	files, _ := filepath.Glob("testdata/ztunnelconfig/*.in.yaml")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			in := loadConfigInputs(t, file)
			wantZ, wantWarn := ZtunnelConfigs(in)
			r := rand.New(rand.NewPCG(3, 4))
			for range 5 {
				shuffleSlices(r, reflect.ValueOf(&in).Elem())
				gotZ, gotWarn := ZtunnelConfigs(in)
				if diff := cmp.Diff(wantZ, gotZ); diff != "" {
					t.Fatalf("ztunnels depend on input order:\n%s", diff)
				}
				if diff := cmp.Diff(wantWarn, gotWarn); diff != "" {
					t.Fatalf("warnings depend on input order:\n%s", diff)
				}
			}
		})
	}
}

// TestZtunnelConfigsDifferOnlyInNode: every node gets the whole mesh, so
// that traffic to any destination can be addressed; only Node differs.
func TestZtunnelConfigsDifferOnlyInNode(t *testing.T) {
	zs, _ := ZtunnelConfigs(loadConfigInputs(t, "testdata/ztunnelconfig/pod-opt-out.in.yaml"))
	var nodes []string
	for _, z := range zs {
		nodes = append(nodes, z.Node)
	}
	// node-c has a pod without an IP: a node, though none of its pods is a
	// workload; the pod without a node makes none.
	if want := []string{"node-a", "node-b", "node-c"}; !reflect.DeepEqual(nodes, want) {
		t.Fatalf("nodes = %v, want %v", nodes, want)
	}
	for _, z := range zs[1:] {
		same := *z
		same.Node = zs[0].Node
		if diff := cmp.Diff(zs[0], &same); diff != "" {
			t.Errorf("node %s differs from node %s beyond Node:\n%s", z.Node, zs[0].Node, diff)
		}
	}
	local := map[string][]string{}
	for _, z := range zs {
		for _, w := range z.LocalWorkloads() {
			local[z.Node] = append(local[z.Node], w.Name)
		}
	}
	want := map[string][]string{"node-a": {"batch", "cart", "metrics-scraper"}, "node-b": {"new-app", "old-app", "sidecar-app"}}
	if !reflect.DeepEqual(local, want) {
		t.Errorf("local workloads = %v, want %v", local, want)
	}
}

func TestL4Rule(t *testing.T) {
	for _, tc := range []struct {
		name            string
		rule            *securityv1beta1.Rule
		want            model.Rule
		l7, unsupported []string
	}{{
		name: "L4 only",
		rule: &securityv1beta1.Rule{
			From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Principals: []string{"a"}, NotIpBlocks: []string{"10.0.0.1"}}}},
			To:   []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Ports: []string{"80"}}}},
			When: []*securityv1beta1.Condition{{Key: "destination.ip", Values: []string{"10.0.0.2"}}},
		},
		want: model.Rule{
			From: []model.Source{{Principals: []string{"a"}, NotIPBlocks: []string{"10.0.0.1"}}},
			To:   []model.Operation{{Ports: []string{"80"}}},
			When: []model.Condition{{Key: "destination.ip", Values: []string{"10.0.0.2"}}},
		},
	}, {
		name: "an operation of methods only matches any operation without them",
		rule: &securityv1beta1.Rule{To: []*securityv1beta1.Rule_To{
			{Operation: &securityv1beta1.Operation{Ports: []string{"80"}}},
			{Operation: &securityv1beta1.Operation{Methods: []string{"GET"}, NotPaths: []string{"/x"}}},
		}},
		want: model.Rule{},
		l7:   []string{"methods", "notPaths"},
	}, {
		name: "L7 fields beside L4 ones are removed",
		rule: &securityv1beta1.Rule{
			From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{Namespaces: []string{"a"}, RemoteIpBlocks: []string{"1.2.3.4"}, RequestPrincipals: []string{"*"}}}},
			To:   []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Ports: []string{"80"}, Hosts: []string{"h"}}}},
			When: []*securityv1beta1.Condition{{Key: "request.headers[x]", Values: []string{"v"}}, {Key: "remote.ip", Values: []string{"1.2.3.4"}}},
		},
		want: model.Rule{From: []model.Source{{Namespaces: []string{"a"}}}, To: []model.Operation{{Ports: []string{"80"}}}},
		l7:   []string{"remoteIpBlocks", "requestPrincipals", "hosts", "request.headers[x]", "remote.ip"},
	}, {
		name:        "unsupported and empty entries",
		rule:        &securityv1beta1.Rule{From: []*securityv1beta1.Rule_From{{Source: &securityv1beta1.Source{ServiceAccounts: []string{"sa"}}}, {Source: &securityv1beta1.Source{}}}, To: []*securityv1beta1.Rule_To{{}}},
		want:        model.Rule{},
		unsupported: []string{"from[0].source.serviceAccounts", "from[1].source (empty)", "to[0].operation (empty)"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, l7, unsupported := l4Rule(tc.rule)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("rule (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.l7, l7); diff != "" {
				t.Errorf("l7 (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.unsupported, unsupported); diff != "" {
				t.Errorf("unsupported (-want +got):\n%s", diff)
			}
		})
	}
}
