package model

import (
	"strings"
	"testing"
)

func TestTelemetryValidate(t *testing.T) {
	percent := 10.0
	for _, tc := range []struct {
		name string
		tel  Telemetry
		want string // "" for valid
	}{
		{"none", Telemetry{}, ""},
		{"sampling only", Telemetry{TracingPercent: &percent}, ""},
		{"http as before the protocol field", Telemetry{TracingEndpoint: "otel.observability:4318"}, ""},
		{"http with a path", Telemetry{TracingEndpoint: "otel.observability:4318", TracingProtocol: TracingHTTP, TracingPath: "/api/otlp/traces"}, ""},
		{"grpc", Telemetry{TracingEndpoint: "otel.observability:4317", TracingProtocol: TracingGRPC}, ""},
		{"ipv6", Telemetry{TracingEndpoint: "[fd00::1]:4317", TracingProtocol: TracingGRPC}, ""},
		{"no port", Telemetry{TracingEndpoint: "otel.observability"}, `telemetry.tracingEndpoint: "otel.observability" is not host:port`},
		{"no host", Telemetry{TracingEndpoint: ":4317"}, `telemetry.tracingEndpoint: ":4317" is not host:port`},
		{"host with a port", Telemetry{TracingEndpoint: "[otel:4317]:4317"}, `telemetry.tracingEndpoint: host "otel:4317" of "[otel:4317]:4317" is neither an IP address nor a hostname`},
		{"host with a space", Telemetry{TracingEndpoint: "otel collector:4317"}, `host "otel collector" of`},
		{"fqdn with a final dot", Telemetry{TracingEndpoint: "otel.observability.svc.cluster.local.:4317"}, ""},
		{"port zero", Telemetry{TracingEndpoint: "otel:0"}, `telemetry.tracingEndpoint: port "0" of "otel:0" is not a number 1-65535`},
		{"port name", Telemetry{TracingEndpoint: "otel:grpc"}, `port "grpc" of "otel:grpc" is not a number`},
		{"unknown protocol", Telemetry{TracingEndpoint: "otel:9411", TracingProtocol: "zipkin"}, `telemetry.tracingProtocol: "zipkin" is not "grpc" or "http"`},
		{"grpc with a path", Telemetry{TracingEndpoint: "otel:4317", TracingProtocol: TracingGRPC, TracingPath: "/v1/traces"}, "telemetry.tracingPath: \"/v1/traces\" is set but tracingProtocol is grpc"},
		{"relative path", Telemetry{TracingEndpoint: "otel:4318", TracingPath: "v1/traces"}, `telemetry.tracingPath: "v1/traces" does not start with /`},
		{"protocol without endpoint", Telemetry{TracingProtocol: TracingGRPC}, "telemetry: tracingProtocol and tracingPath need a tracingEndpoint"},
		{"percent out of range", Telemetry{TracingPercent: new(101.0)}, "telemetry.tracingPercent: 101 is outside 0-100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Waypoint{Name: "waypoint", Namespace: "default", Telemetry: tc.tel}
			err := w.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && err == nil:
				t.Errorf("Validate() = nil, want an error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("Validate() =\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}
