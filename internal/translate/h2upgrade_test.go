package translate

import (
	"strings"
	"testing"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/model"
)

// TestClusterProtocol: a cluster has its port's protocol; an HTTP port's
// becomes HTTP2 when the DestinationRule's h2UpgradePolicy is UPGRADE, or
// when it is DEFAULT and the MeshConfig's is UPGRADE (Istio's rule).
func TestClusterProtocol(t *testing.T) {
	const mesh = `apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: default}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
status: {addresses: [{value: 10.96.0.1}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.0.2
  selector: {app: reviews}
  ports: [{name: http, port: 9080}, {name: grpc, port: 9090}]
`
	dr := func(policy string) string {
		return `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: ` + policy + `}}}
`
	}
	meshUpgrade := "---\n" + strings.TrimSuffix(meshConfigMap("h2UpgradePolicy: UPGRADE"), "---\n")
	cases := []struct {
		name       string
		extra      string
		http, grpc model.Protocol
	}{
		{"ports' own", "", model.ProtocolHTTP, model.ProtocolGRPC},
		{"DestinationRule UPGRADE", dr("UPGRADE"), model.ProtocolHTTP2, model.ProtocolGRPC},
		{"MeshConfig UPGRADE", meshUpgrade, model.ProtocolHTTP2, model.ProtocolGRPC},
		{"MeshConfig UPGRADE, DestinationRule DO_NOT_UPGRADE", meshUpgrade + dr("DO_NOT_UPGRADE"), model.ProtocolHTTP, model.ProtocolGRPC},
		{"MeshConfig UPGRADE, DestinationRule DEFAULT", meshUpgrade + dr("DEFAULT"), model.ProtocolHTTP2, model.ProtocolGRPC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := manifest.Decode("test.yaml", strings.NewReader(mesh+tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			var in ConfigInputs
			for _, d := range docs {
				manifest.ApplyDefaults(d.Object)
				in.Add(d.Object)
			}
			wps, warnings := WaypointConfigs(in)
			if len(wps) != 1 {
				t.Fatalf("%d waypoints, want 1 (warnings %v)", len(wps), warnings)
			}
			got := map[string]model.Protocol{}
			for _, c := range wps[0].Clusters {
				got[c.Name] = c.Protocol
			}
			want := map[string]model.Protocol{
				"outbound|9080||reviews.default.svc.cluster.local": tc.http,
				"outbound|9090||reviews.default.svc.cluster.local": tc.grpc,
			}
			for name, p := range want {
				if got[name] != p {
					t.Errorf("cluster %s: protocol %q, want %q (clusters %v)", name, got[name], p, got)
				}
			}
		})
	}
}
