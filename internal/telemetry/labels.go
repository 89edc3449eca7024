package telemetry

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Values of the reporter label. Istio's waypoints report "waypoint"; sidecars
// report "source" on the client side and "destination" on the server side.
const (
	ReporterWaypoint    = "waypoint"
	ReporterSource      = "source"
	ReporterDestination = "destination"
)

// Values of the request_protocol label.
const (
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
	ProtocolTCP  = "tcp"
)

// Values of the connection_security_policy label.
const (
	SecurityMutualTLS = "mutual_tls"
	SecurityNone      = "none"
)

// Label values written for what the caller left empty, as Istio writes them.
const (
	Unknown = "unknown"
	// Latest stands for an unknown canonical revision.
	Latest = "latest"
	// NoFlags is response_flags when no flag is set.
	NoFlags = "-"
)

// Workload is one side of a request, from its peer metadata (for Istio's
// ambient mode: the HBONE baggage and the peer certificate). Empty fields are
// reported as [Unknown] ([Latest] for CanonicalRevision).
type Workload struct {
	// Name is the workload: the Deployment (or other controller) name.
	Name string
	// Namespace is the workload's namespace.
	Namespace string
	// Principal is the workload's identity as a full SPIFFE ID, as Istio's
	// metrics write it: "spiffe://cluster.local/ns/default/sa/productpage".
	Principal string
	// App and Version are the pod's app and version labels.
	App     string
	Version string
	// CanonicalService and CanonicalRevision are the pod's
	// service.istio.io/canonical-name and canonical-revision (Kiali groups
	// by them).
	CanonicalService  string
	CanonicalRevision string
	// Cluster is the workload's cluster id ("Kubernetes" by default in Istio).
	Cluster string
}

// Service is the destination service of a request.
type Service struct {
	// Host is the service's host name: "reviews.default.svc.cluster.local"
	// (destination_service).
	Host string
	// Name is its short name: "reviews" (destination_service_name).
	Name string
	// Namespace is its namespace (destination_service_namespace).
	Namespace string
}

// RequestInfo is what the metrics need of one HTTP or gRPC request. It is a
// plain struct: fill it on the request path and pass a pointer; it is not
// kept.
type RequestInfo struct {
	Source      Workload
	Destination Workload
	Service     Service
	// Protocol is [ProtocolHTTP] (the default) or [ProtocolGRPC].
	Protocol string
	// ResponseCode is the HTTP status sent downstream; 0 when none was.
	ResponseCode int
	// GRPCStatus is the grpc-status of a gRPC response as received ("0",
	// "14"), empty when it had none. It is ignored for plain HTTP.
	GRPCStatus string
	// ResponseFlags are Envoy's short response flags ("UF", "UH,URX"), empty
	// for none.
	ResponseFlags string
	// ConnectionSecurityPolicy is [SecurityMutualTLS] or [SecurityNone].
	ConnectionSecurityPolicy string
	// Duration is from the first request byte to the last response byte.
	Duration time.Duration
	// RequestBytes and ResponseBytes are the bytes received from and sent to
	// the downstream for this request. Istio counts them on the wire, headers
	// included.
	RequestBytes  int64
	ResponseBytes int64
}

// TCPInfo is what the metrics need of one TCP connection. Pass the same
// values to every call for one connection.
type TCPInfo struct {
	Source      Workload
	Destination Workload
	Service     Service
	// ResponseFlags are Envoy's short response flags, empty for none.
	ResponseFlags string
	// ConnectionSecurityPolicy is [SecurityMutualTLS] or [SecurityNone].
	ConnectionSecurityPolicy string
}

// commonLabels are the label names every metric has, in Istio's order.
var commonLabels = []string{
	"reporter",
	"source_workload",
	"source_canonical_service",
	"source_canonical_revision",
	"source_workload_namespace",
	"source_principal",
	"source_app",
	"source_version",
	"source_cluster",
	"destination_workload",
	"destination_workload_namespace",
	"destination_principal",
	"destination_app",
	"destination_version",
	"destination_service",
	"destination_canonical_service",
	"destination_canonical_revision",
	"destination_service_name",
	"destination_service_namespace",
	"destination_cluster",
	"request_protocol",
	"response_flags",
	"connection_security_policy",
}

// httpLabels are the HTTP metrics' label names: the common ones and the
// response's.
var httpLabels = append(append([]string(nil), commonLabels...), "response_code", "grpc_response_status")

// tcpLabels are the TCP metrics' label names: the common ones only.
var tcpLabels = commonLabels

// peerKey is a Workload with its defaults applied.
type peerKey Workload

// tcpKey is a TCP connection's label values, defaults applied. It is
// comparable: the cache of metric handles is keyed by it.
type tcpKey struct {
	src, dst peerKey
	svc      Service
	flags    string
	security string
}

// httpKey is a request's label values, defaults applied.
type httpKey struct {
	tcpKey
	protocol string
	code     int
	grpc     string
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func peerOf(w *Workload) peerKey {
	return peerKey{
		Name:              or(w.Name, Unknown),
		Namespace:         or(w.Namespace, Unknown),
		Principal:         or(w.Principal, Unknown),
		App:               or(w.App, Unknown),
		Version:           or(w.Version, Unknown),
		CanonicalService:  or(w.CanonicalService, Unknown),
		CanonicalRevision: or(w.CanonicalRevision, Latest),
		Cluster:           or(w.Cluster, Unknown),
	}
}

func tcpKeyOf(src, dst *Workload, svc *Service, flags, security string) tcpKey {
	return tcpKey{
		src: peerOf(src),
		dst: peerOf(dst),
		svc: Service{
			Host:      or(svc.Host, Unknown),
			Name:      or(svc.Name, Unknown),
			Namespace: or(svc.Namespace, Unknown),
		},
		flags:    or(flags, NoFlags),
		security: or(security, Unknown),
	}
}

func httpKeyOf(r *RequestInfo) httpKey {
	k := httpKey{
		tcpKey:   tcpKeyOf(&r.Source, &r.Destination, &r.Service, r.ResponseFlags, r.ConnectionSecurityPolicy),
		protocol: or(r.Protocol, ProtocolHTTP),
		code:     r.ResponseCode,
	}
	if k.protocol == ProtocolGRPC {
		k.grpc = r.GRPCStatus
	}
	return k
}

// values returns the label values of the common labels, in commonLabels'
// order, with the given protocol.
func (k *tcpKey) values(reporter, protocol string) []string {
	return []string{
		reporter,
		k.src.Name,
		k.src.CanonicalService,
		k.src.CanonicalRevision,
		k.src.Namespace,
		k.src.Principal,
		k.src.App,
		k.src.Version,
		k.src.Cluster,
		k.dst.Name,
		k.dst.Namespace,
		k.dst.Principal,
		k.dst.App,
		k.dst.Version,
		k.svc.Host,
		k.dst.CanonicalService,
		k.dst.CanonicalRevision,
		k.svc.Name,
		k.svc.Namespace,
		k.dst.Cluster,
		protocol,
		k.flags,
		k.security,
	}
}

// values returns the label values of httpLabels, in order.
func (k *httpKey) values(reporter string) []string {
	return validUTF8(append(k.tcpKey.values(reporter, k.protocol), strconv.Itoa(k.code), k.grpc))
}

// validUTF8 replaces invalid UTF-8 in label values, which come from peers:
// the Prometheus client panics on them.
func validUTF8(vs []string) []string {
	for i, v := range vs {
		if !utf8.ValidString(v) {
			vs[i] = strings.ToValidUTF8(v, "\uFFFD")
		}
	}
	return vs
}
