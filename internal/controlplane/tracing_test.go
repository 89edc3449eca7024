package controlplane_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/controlplane"
	"github.com/meshway/meshway/internal/push"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/store"
)

// meshConfigMap is Istio's MeshConfig with an OTLP/gRPC collector.
const meshConfigMap = `
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |
    extensionProviders:
    - name: otel
      opentelemetry:
        service: opentelemetry-collector.observability.svc.cluster.local
        port: 4317
`

// TestMeshConfigTracingPushed: the collector a Telemetry names reaches the
// waypoint once the root namespace's ConfigMap istio defines it, and goes
// when the ConfigMap no longer parses (which is logged, not fatal).
func TestMeshConfigTracingPushed(t *testing.T) {
	st := store.NewMemory(store.Options{InitialNamespaces: []string{"istio-system"}})
	apply(t, st, meshYAML+`
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: tracing
  namespace: default
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  tracing:
  - providers: [{name: otel}]
    randomSamplingPercentage: 10
`)
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, Logf: t.Logf})
	t.Cleanup(srv.Stop)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	l := &logs{}
	ctl := controlplane.New(controlplane.Options{
		Store: st, Push: srv, Logf: l.logf, DebounceAfter: 20 * time.Millisecond, DebounceMax: time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ctl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-ctl.Synced()

	p := &proxy{}
	c := pushclient.New(pushclient.Options{
		Address: ln.Addr().String(), TypeURL: wire.WaypointType, Names: []string{"default/waypoint"}, Handler: p,
		Node: pushclient.NodeInfo{Kind: pushclient.KindWaypoint, Namespace: "default", Name: "waypoint", Instance: "test"},
	})
	go func() { _ = c.Run(ctx) }()
	waitFor(t, "the first configuration", func() bool { cfg, _ := p.get(); return cfg != nil })
	if cfg, _ := p.get(); cfg.GetTelemetry().GetTracingEndpoint() != "" || cfg.GetTelemetry().GetTracingPercent() != 10 {
		t.Errorf("without a MeshConfig: telemetry %v, want sampling 10 and no collector", cfg.GetTelemetry())
	}
	waitFor(t, "the unknown provider's warning", func() bool { return l.find(`tracing provider "otel" is not defined`) != "" })

	apply(t, st, meshConfigMap)
	waitFor(t, "the collector pushed", func() bool {
		cfg, _ := p.get()
		tel := cfg.GetTelemetry()
		return tel.GetTracingEndpoint() == "opentelemetry-collector.observability.svc.cluster.local:4317" && tel.GetTracingProtocol() == "grpc"
	})

	apply(t, st, `
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: "extensionProviders: [oops"
`)
	waitFor(t, "the collector removed", func() bool { cfg, _ := p.get(); return cfg.GetTelemetry().GetTracingEndpoint() == "" })
	waitFor(t, "the bad MeshConfig's warning", func() bool {
		return l.find("ConfigMap istio-system/istio: data.mesh is not a valid Istio MeshConfig") != ""
	})
}
