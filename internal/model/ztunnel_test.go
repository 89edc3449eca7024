package model

import (
	"strings"
	"testing"
)

// validZtunnel has one of everything Validate checks.
func validZtunnel() *Ztunnel {
	return &Ztunnel{
		Node: "node-1",
		Workloads: []ZtunnelWorkload{{
			UID: "Kubernetes//Pod/default/reviews-v1", Name: "reviews-v1", Namespace: "default",
			Addresses: []string{"10.244.0.13", "fd00::13"}, Node: "node-1",
			ServiceAccount: "bookinfo-reviews", Identity: "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
			Protocol: TunnelHBONE, Captured: true, Waypoint: "default/waypoint",
			CanonicalName: "reviews", CanonicalRevision: "v1", Policies: []string{"default/allow-sleep"},
		}, {
			UID: "Kubernetes//Pod/default/waypoint-0", Name: "waypoint-0", Namespace: "default",
			Addresses: []string{"10.244.0.20"}, Node: "node-2", ServiceAccount: "waypoint",
			Identity: "spiffe://cluster.local/ns/default/sa/waypoint", Protocol: TunnelHBONE,
		}, {
			UID: "Kubernetes/networking.istio.io/WorkloadEntry/default/vm", Name: "vm", Namespace: "default",
			Addresses: []string{"10.2.0.7"}, Protocol: TunnelTCP, Unhealthy: true,
		}},
		Services: []ZtunnelService{{
			Name: "reviews", Namespace: "default", Hostname: "reviews.default.svc.cluster.local",
			Addresses: []string{"10.96.0.13"}, Ports: []PortMapping{{Port: 9080, TargetPort: 9080}, {Port: 80}},
			Endpoints: []ZtunnelEndpoint{{Workload: "Kubernetes//Pod/default/reviews-v1", Ports: []PortMapping{{Port: 9080, TargetPort: 9080}, {Port: 80, TargetPort: 8080}}}},
			Waypoint:  "default/waypoint", IngressUseWaypoint: true,
		}, {
			Name: "headless", Namespace: "default", Hostname: "headless.default.svc.cluster.local",
		}},
		Waypoints: []ZtunnelWaypoint{{
			Name: "waypoint", Namespace: "default", Address: "waypoint.default.svc.cluster.local", HBONEPort: HBONEPort,
			Instances: []string{"Kubernetes//Pod/default/waypoint-0"}, Identities: []string{"spiffe://cluster.local/ns/default/sa/waypoint"},
		}},
		Policies: []AuthorizationPolicy{{
			Name: "allow-sleep", Namespace: "default", Action: ActionAllow,
			Rules: []Rule{{
				From: []Source{{Principals: []string{"cluster.local/ns/default/sa/sleep"}, NotIPBlocks: []string{"10.9.0.0/16"}}},
				To:   []Operation{{Ports: []string{"9080"}}},
				When: []Condition{{Key: "destination.port", Values: []string{"9080"}}, {Key: "source.namespace", NotValues: []string{"kube-system"}}},
			}},
		}, {Name: "deny-all", Namespace: "istio-system", Action: ActionDeny, Rules: []Rule{{}}}},
	}
}

func TestZtunnelValidateAccepts(t *testing.T) {
	if err := validZtunnel().Validate(); err != nil {
		t.Fatalf("Validate() = %v, want nil", err)
	}
	if err := (&Ztunnel{Node: "empty"}).Validate(); err != nil {
		t.Fatalf("an empty configuration: Validate() = %v, want nil", err)
	}
}

func TestZtunnelValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(z *Ztunnel)
		want string
	}{
		{"no node", func(z *Ztunnel) { z.Node = "" }, "node: required"},
		{"no uid", func(z *Ztunnel) { z.Workloads[2].UID = "" }, "workloads[2].uid: required"},
		{"uid twice", func(z *Ztunnel) { z.Workloads[2].UID = z.Workloads[0].UID }, `workloads[2].uid: workload "Kubernetes//Pod/default/reviews-v1" is listed twice`},
		{"workload without namespace", func(z *Ztunnel) { z.Workloads[1].Namespace = "" }, "workloads[1]: name and namespace are required"},
		{"workload without address", func(z *Ztunnel) { z.Workloads[2].Addresses = nil }, "workloads[2].addresses: at least one address is required"},
		{"bad address", func(z *Ztunnel) { z.Workloads[0].Addresses[1] = "fd00::x" }, `workloads[0].addresses[1]: "fd00::x" is not an IP address`},
		{"shared address", func(z *Ztunnel) { z.Workloads[2].Addresses = []string{"10.244.0.20"} }, "workloads[2].addresses[0]: 10.244.0.20 is also workloads[1].addresses[0]"},
		{"identity without spiffe", func(z *Ztunnel) { z.Workloads[1].Identity = "cluster.local/ns/default/sa/waypoint" }, `workloads[1].identity: "cluster.local/ns/default/sa/waypoint" is not a spiffe:// ID`},
		{"identity of another account", func(z *Ztunnel) { z.Workloads[1].ServiceAccount = "other" }, "workloads[1].identity: \"spiffe://cluster.local/ns/default/sa/waypoint\" is not the identity of service account default/other"},
		{"no protocol", func(z *Ztunnel) { z.Workloads[2].Protocol = "" }, "workloads[2].protocol: required (HBONE or TCP)"},
		{"unknown protocol", func(z *Ztunnel) { z.Workloads[2].Protocol = "NONE" }, `workloads[2].protocol: unknown "NONE"; use HBONE or TCP`},
		{"captured over TCP", func(z *Ztunnel) { z.Workloads[0].Protocol = TunnelTCP }, "workloads[0].captured: a captured workload runs on a node"},
		{"captured without node", func(z *Ztunnel) { z.Workloads[0].Node = "" }, "workloads[0].captured:"},
		{"unknown waypoint", func(z *Ztunnel) { z.Workloads[0].Waypoint = "default/other" }, `workloads[0].waypoint: no waypoint "default/other" in waypoints`},
		{"unknown policy", func(z *Ztunnel) { z.Workloads[0].Policies = []string{"default/nope"} }, `workloads[0].policies[0]: no policy "default/nope" in policies`},
		{"policy on an uncaptured workload", func(z *Ztunnel) { z.Workloads[1].Policies = []string{"default/allow-sleep"} }, "workloads[1].policies: only captured workloads have policies"},
		{"service without hostname", func(z *Ztunnel) { z.Services[1].Hostname = "" }, "services[1].hostname: required"},
		{"service without name", func(z *Ztunnel) { z.Services[1].Name = "" }, "services[1]: name and namespace are required"},
		{"hostname twice", func(z *Ztunnel) { z.Services[1].Hostname = z.Services[0].Hostname }, "services[1].hostname: reviews.default.svc.cluster.local is listed twice in namespace default"},
		{"shared VIP", func(z *Ztunnel) { z.Services[1].Addresses = []string{"10.96.0.13"} }, "services[1].addresses[0]: 10.96.0.13 is also services[0].addresses[0]"},
		{"port zero", func(z *Ztunnel) { z.Services[0].Ports[1].Port = 0 }, "services[0].ports[1].port: required (1-65535)"},
		{"port twice", func(z *Ztunnel) { z.Services[0].Ports[1].Port = 9080 }, "services[0].ports[1].port: 9080 is listed twice"},
		{"unknown endpoint", func(z *Ztunnel) { z.Services[0].Endpoints[0].Workload = "Kubernetes//Pod/default/gone" }, `services[0].endpoints[0].workload: no workload "Kubernetes//Pod/default/gone" in workloads`},
		{"endpoint without ports", func(z *Ztunnel) { z.Services[0].Endpoints[0].Ports = nil }, "services[0].endpoints[0].ports: at least one port is required"},
		{"endpoint port not the service's", func(z *Ztunnel) { z.Services[0].Endpoints[0].Ports[1].Port = 81 }, "services[0].endpoints[0].ports[1].port: 81 is not a port of the service"},
		{"endpoint without target port", func(z *Ztunnel) { z.Services[0].Endpoints[0].Ports[1].TargetPort = 0 }, "services[0].endpoints[0].ports[1].targetPort: required"},
		{"service waypoint unknown", func(z *Ztunnel) { z.Services[0].Waypoint = "x/y" }, `services[0].waypoint: no waypoint "x/y" in waypoints`},
		{"ingress without waypoint", func(z *Ztunnel) { z.Services[0].Waypoint = "" }, "services[0].ingressUseWaypoint: set without a waypoint"},
		{"waypoint without address", func(z *Ztunnel) { z.Waypoints[0].Address = "" }, "waypoints[0].address: required"},
		{"waypoint without port", func(z *Ztunnel) { z.Waypoints[0].HBONEPort = 0 }, "waypoints[0].hbonePort: required (15008)"},
		{"waypoint twice", func(z *Ztunnel) { z.Waypoints = append(z.Waypoints, z.Waypoints[0]) }, "waypoints[1]: waypoint default/waypoint is listed twice"},
		{"waypoint without namespace", func(z *Ztunnel) { z.Waypoints[0].Namespace = "" }, "waypoints[0]: name and namespace are required"},
		{"waypoint identity", func(z *Ztunnel) { z.Waypoints[0].Identities[0] = "waypoint" }, `waypoints[0].identities[0]: "waypoint" is not a spiffe:// ID`},
		{"waypoint instance unknown", func(z *Ztunnel) { z.Waypoints[0].Instances[0] = "Kubernetes//Pod/default/gone" }, `waypoints[0].instances[0]: no workload "Kubernetes//Pod/default/gone" in workloads`},
		{"policy twice", func(z *Ztunnel) { z.Policies[1] = z.Policies[0] }, "policies[1] (default/allow-sleep): policy default/allow-sleep is listed twice"},
		{"invalid policy", func(z *Ztunnel) { z.Policies[0].Rules[0].To[0].Ports = []string{"http"} }, `policies[0] (default/allow-sleep): authorization policy default/allow-sleep: rules[0].to[0].ports[0]: "http" is not a port number`},
		{"AUDIT policy", func(z *Ztunnel) { z.Policies[1].Action = ActionAudit }, "policies[1] (istio-system/deny-all).action: AUDIT is not enforced by ztunnel; use ALLOW or DENY"},
		{"L7 operation", func(z *Ztunnel) { z.Policies[0].Rules[0].To[0].Methods = []string{"GET"} }, "policies[0] (default/allow-sleep).rules[0].to[0].methods: ztunnel sees connections, not HTTP requests"},
		{"L7 source", func(z *Ztunnel) { z.Policies[0].Rules[0].From[0].RemoteIPBlocks = []string{"10.0.0.1"} }, "policies[0] (default/allow-sleep).rules[0].from[0].remoteIpBlocks: ztunnel sees connections"},
		{"L7 condition", func(z *Ztunnel) {
			z.Policies[0].Rules[0].When = append(z.Policies[0].Rules[0].When, Condition{Key: "request.headers[x-user]", Values: []string{"a"}})
		}, "policies[0] (default/allow-sleep).rules[0].when[2] (request.headers[x-user]): ztunnel sees connections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := validZtunnel()
			tc.edit(z)
			err := z.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() =\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLocalWorkloads(t *testing.T) {
	z := validZtunnel()
	local := z.LocalWorkloads()
	if len(local) != 1 || local[0].Name != "reviews-v1" {
		t.Errorf("LocalWorkloads() = %+v, want only reviews-v1 (node-1)", local)
	}
}

func TestL7Fields(t *testing.T) {
	p := validPolicy()
	got := strings.Join(p.Rules[0].L7Fields(), ", ")
	want := "from[0].remoteIpBlocks, from[0].notRemoteIpBlocks, to[0].hosts, to[0].notHosts, to[0].methods, to[0].notMethods, to[0].paths, to[0].notPaths, when[0] (request.headers[x-user]), when[2] (remote.ip)"
	if got != want {
		t.Errorf("L7Fields() =\n  %s\nwant\n  %s", got, want)
	}
}
