// Package telemetry owns what meshway's proxies report about the traffic they
// carry, in the shapes Istio's tools read: Istio's standard Prometheus
// metrics, Istio's JSON access log and W3C trace context. The proxies (the
// waypoint first) call it; it knows nothing of their configuration.
//
// # Metrics
//
// [Metrics] holds Istio's standard metrics in a registry of its own and
// serves them in the Prometheus text format from [Metrics.Handler] (the
// waypoint mounts it at :15020/stats/prometheus, where Istio's proxies serve
// theirs). Names, types, labels and label values follow Istio's documentation
// (https://istio.io/latest/docs/reference/config/metrics/) and its
// implementation (istio/proxy source/extensions/filters/http/istio_stats), so
// Istio's Grafana dashboards and Kiali read them unchanged:
//
//   - HTTP and gRPC, one [RequestInfo] per request ([Metrics.ObserveRequest]):
//     istio_requests_total (counter), istio_request_duration_milliseconds,
//     istio_request_bytes and istio_response_bytes (histograms).
//   - TCP, per connection ([Metrics.ObserveTCPOpen], [Metrics.ObserveTCPBytes],
//     [Metrics.ObserveTCPClose]): istio_tcp_connections_opened_total,
//     istio_tcp_connections_closed_total, istio_tcp_sent_bytes_total and
//     istio_tcp_received_bytes_total (counters).
//
// Every metric carries reporter, the source and destination workload labels
// (workload, namespace, principal, app, version, canonical service and
// revision, cluster), the destination service labels, request_protocol,
// response_flags and connection_security_policy; the HTTP metrics add
// response_code and grpc_response_status. A value the caller leaves empty is
// written as Istio writes it: "unknown", except the canonical revisions
// ("latest"), response_flags ("-"), request_protocol ("http") and
// grpc_response_status (empty for plain HTTP).
//
// Observing is meant for the request path: the metric handles of each label
// set are cached, so a request whose labels were seen before allocates
// nothing.
//
// # Access log
//
// [AccessLogger] writes one JSON object a line per [AccessLogEntry], with the
// fields of Istio's default JSON access log (EnvoyJSONLogFormatIstio in
// istio/istio pilot/pkg/model/telemetry_logging.go, used with
// meshConfig.accessLogEncoding: JSON) typed as Envoy renders a JSON log
// format: numbers for response_code, bytes_received, bytes_sent and
// duration, null for an unknown value. Logging never blocks the caller: lines
// are queued to one writer goroutine and dropped, and counted, when the queue
// is full or the writer fails.
//
// # Tracing
//
// [SpanContext] is a W3C trace context (https://www.w3.org/TR/trace-context/):
// [ParseTraceparent] and [SpanContext.Traceparent] read and write the
// traceparent header, [NewRoot] and [NewChild] make span contexts, and
// [Sampler] decides from the trace id alone, so every proxy on a trace decides
// alike. [Tracer] exports one span per proxied request over OTLP/gRPC or
// OTLP/HTTP (as Istio's opentelemetry provider sends them) with the
// OpenTelemetry SDK, deciding sampling before the SDK is involved so
// that unsampled requests stay cheap.
package telemetry
