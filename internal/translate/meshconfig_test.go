package translate

import (
	"strings"
	"testing"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/model"
)

func TestParseMeshConfig(t *testing.T) {
	for _, tc := range []struct {
		name, mesh       string
		err, unknown     string // parts of the messages; "" for none
		defaultProviders []string
	}{
		{name: "empty", mesh: ""},
		{name: "providers", mesh: "defaultProviders:\n  tracing: [otel]\nextensionProviders:\n- name: otel\n  opentelemetry: {service: otel.observability, port: 4317}\n",
			defaultProviders: []string{"otel"}},
		{name: "unknown field is skipped", mesh: "defaultProviders:\n  tracing: [otel]\nenableTracingg: true\n",
			unknown: `unknown field "enableTracingg"`, defaultProviders: []string{"otel"}},
		{name: "YAML syntax", mesh: "defaultProviders:\n  tracing: [otel\n", err: "yaml: line 2: did not find expected ',' or ']' (lines count from the value's first line)"},
		{name: "wrong type", mesh: "extensionProviders:\n- name: otel\n  opentelemetry: {service: otel, port: four}\n", err: `invalid value for uint32 field port: "four"`},
		{name: "a list", mesh: "- otel\n", err: "the value is not a YAML mapping of MeshConfig fields"},
		{name: "comments only", mesh: "# nothing yet\n"},
		{name: "JSON syntax in YAML", mesh: "{\"defaultProviders\": {\"tracing\": \"otel\"}}", err: `syntax error: unexpected token "otel"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc, unknown, err := parseMeshConfig(tc.mesh)
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				// protojson's prefix and its position in the JSON (not the
				// YAML the user wrote) are cut.
				if strings.Contains(err.Error(), "proto:") || strings.Contains(err.Error(), "(line 1:") {
					t.Errorf("err = %q, want no protojson prefix or JSON position", err)
				}
				return
			case err != nil:
				t.Fatalf("err = %v, want nil", err)
			}
			if (unknown == nil) != (tc.unknown == "") || unknown != nil && !strings.Contains(unknown.Error(), tc.unknown) {
				t.Errorf("unknown = %v, want %q", unknown, tc.unknown)
			}
			if got := mc.GetDefaultProviders().GetTracing(); strings.Join(got, ",") != strings.Join(tc.defaultProviders, ",") {
				t.Errorf("defaultProviders.tracing = %q, want %q", got, tc.defaultProviders)
			}
		})
	}
}

// translateTracing translates a waypoint default/waypoint with the
// manifests given and returns its telemetry and the warnings.
func translateTracing(t *testing.T, manifests string) (model.Telemetry, []Warning) {
	t.Helper()
	const waypoint = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: default}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
status: {addresses: [{value: 10.96.0.1}]}
`
	docs, err := manifest.Decode("test.yaml", strings.NewReader(waypoint+"---\n"+manifests))
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
		t.Fatalf("%d waypoints, want 1", len(wps))
	}
	if err := wps[0].Validate(); err != nil {
		t.Fatalf("waypoint does not validate: %v", err)
	}
	return wps[0].Telemetry, warnings
}

const telemetryNamingOtel = `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: tracing, namespace: default}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  tracing:
  - providers: [{name: otel}]
`

func meshConfigMap(mesh string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    " +
		strings.ReplaceAll(strings.TrimSpace(mesh), "\n", "\n    ") + "\n---\n"
}

func TestTracingProviders(t *testing.T) {
	for _, tc := range []struct {
		name      string
		manifests string
		want      model.Telemetry
		warnings  []string // each a part of one warning's "object: message"
	}{{
		name:      "no MeshConfig",
		manifests: telemetryNamingOtel,
		warnings: []string{`Telemetry default/tracing: spec.tracing[0].providers[0]: tracing provider "otel" is not defined: ` +
			`there is no MeshConfig (ConfigMap istio-system/istio, data.mesh) with extensionProviders`},
	}, {
		name:      "a ConfigMap istio without key mesh",
		manifests: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata: {meshNetworks: '{}'}\n---\n" + telemetryNamingOtel,
		warnings:  []string{`tracing provider "otel" is not defined: there is no MeshConfig`},
	}, {
		name: "the brief's example: defaultProviders and a Telemetry naming the provider",
		manifests: meshConfigMap(`
extensionProviders:
- name: otel
  opentelemetry:
    service: opentelemetry-collector.observability.svc.cluster.local
    port: 4317
defaultProviders:
  tracing: [otel]`) + telemetryNamingOtel + "  - randomSamplingPercentage: 10\n",
		want: model.Telemetry{TracingEndpoint: "opentelemetry-collector.observability.svc.cluster.local:4317", TracingProtocol: model.TracingGRPC, TracingPercent: new(10.0)},
	}, {
		name:      "mesh defaults only, no Telemetry",
		manifests: meshConfigMap("defaultProviders: {tracing: [otel]}\nextensionProviders: [{name: otel, opentelemetry: {service: otel.obs, port: 4318, http: {}}}]"),
		want:      model.Telemetry{TracingEndpoint: "otel.obs:4318", TracingProtocol: model.TracingHTTP, TracingPath: "/v1/traces"},
	}, {
		name:      "unknown MeshConfig field",
		manifests: meshConfigMap("defaultProviders: {tracing: [otel]}\nextensionProviders: [{name: otel, opentelemetry: {service: otel.obs, port: 4317}}]\nfutureField: 1"),
		want:      model.Telemetry{TracingEndpoint: "otel.obs:4317", TracingProtocol: model.TracingGRPC},
		warnings:  []string{`ConfigMap istio-system/istio: data.mesh: unknown field "futureField" (not in the MeshConfig`},
	}, {
		name:      "wrong type",
		manifests: meshConfigMap("extensionProviders: [{name: otel, opentelemetry: {service: otel.obs, port: [4317]}}]") + telemetryNamingOtel,
		warnings: []string{
			`ConfigMap istio-system/istio: data.mesh is not a valid Istio MeshConfig: invalid value for uint32 field port: [`,
			`Telemetry default/tracing: spec.tracing[0].providers[0]: tracing provider "otel" cannot be looked up`,
		},
	}, {
		name:      "no port",
		manifests: meshConfigMap("extensionProviders: [{name: otel, opentelemetry: {service: otel.obs}}]") + telemetryNamingOtel,
		warnings:  []string{"ConfigMap istio-system/istio: data.mesh: extensionProviders[0] (otel).opentelemetry.port: 0 is not a port"},
	}, {
		name:      "no service",
		manifests: meshConfigMap("extensionProviders: [{name: otel, opentelemetry: {service: observability/, port: 4317}}]") + telemetryNamingOtel,
		warnings:  []string{"extensionProviders[0] (otel).opentelemetry.service: required"},
	}, {
		name:      "a port in service",
		manifests: meshConfigMap("extensionProviders: [{name: otel, opentelemetry: {service: 'otel.obs:4317', port: 4317}}]") + telemetryNamingOtel,
		warnings:  []string{`extensionProviders[0] (otel).opentelemetry.service: "otel.obs:4317" is not a hostname`},
	}, {
		name:      "an IP address in service",
		manifests: meshConfigMap("extensionProviders: [{name: otel, opentelemetry: {service: 'fd00::7', port: 4317}}]") + telemetryNamingOtel,
		want:      model.Telemetry{TracingEndpoint: "[fd00::7]:4317", TracingProtocol: model.TracingGRPC},
	}, {
		name:      "two default providers",
		manifests: meshConfigMap("defaultProviders: {tracing: [otel, zipkin]}\nextensionProviders: [{name: otel, opentelemetry: {service: otel.obs, port: 4317}}]"),
		want:      model.Telemetry{TracingEndpoint: "otel.obs:4317", TracingProtocol: model.TracingGRPC},
		warnings:  []string{`ConfigMap istio-system/istio: data.mesh: defaultProviders.tracing: only the first provider, "otel", is used, as in Istio; the others ("zipkin") are ignored`},
	}, {
		name:      "unknown default provider",
		manifests: meshConfigMap("defaultProviders: {tracing: [otel]}"),
		warnings:  []string{`ConfigMap istio-system/istio: data.mesh: defaultProviders.tracing[0]: tracing provider "otel" is not in the MeshConfig's extensionProviders (ConfigMap istio-system/istio, data.mesh; it defines none)`},
	}, {
		name:      "the MeshConfig of another namespace is not read",
		manifests: strings.ReplaceAll(meshConfigMap("defaultProviders: {tracing: [otel]}\nextensionProviders: [{name: otel, opentelemetry: {service: otel.obs, port: 4317}}]"), "istio-system", "default"),
	}, {
		name:      "sampling from defaultConfig, over 100 is 1 as in Istio",
		manifests: meshConfigMap("defaultConfig: {tracing: {sampling: 150}}"),
		want:      model.Telemetry{TracingPercent: new(1.0)},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings := translateTracing(t, tc.manifests)
			if got.TracingEndpoint != tc.want.TracingEndpoint || got.TracingProtocol != tc.want.TracingProtocol || got.TracingPath != tc.want.TracingPath ||
				(got.TracingPercent == nil) != (tc.want.TracingPercent == nil) || got.TracingPercent != nil && *got.TracingPercent != *tc.want.TracingPercent {
				t.Errorf("telemetry = %+v (percent %v), want %+v (percent %v)", got, percentOf(got.TracingPercent), tc.want, percentOf(tc.want.TracingPercent))
			}
			var all []string
			for _, w := range warnings {
				all = append(all, w.Object+": "+w.Message)
			}
			for _, want := range tc.warnings {
				found := false
				for _, w := range all {
					found = found || strings.Contains(w, want)
				}
				if !found {
					t.Errorf("no warning contains %q; warnings:\n%s", want, strings.Join(all, "\n"))
				}
			}
			if len(all) != len(tc.warnings) {
				t.Errorf("%d warnings, want %d:\n%s", len(all), len(tc.warnings), strings.Join(all, "\n"))
			}
		})
	}
}

func percentOf(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
