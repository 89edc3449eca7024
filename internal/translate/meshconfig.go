package translate

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/model"
)

// This file reads Istio's MeshConfig where istiod reads it, the root
// namespace's ConfigMap istio, key mesh (YAML), for what waypoint tracing
// needs of it: the extension providers a Telemetry's tracing names, the
// default tracing providers, and the default sampling percentage.

// Where Istio keeps the MeshConfig: the ConfigMap of the root namespace and
// its key. (A revisioned istiod reads istio-REVISION; meshway has no
// revisions.)
const (
	MeshConfigMapName = "istio"
	MeshConfigKey     = "mesh"
)

// meshConfig is the root namespace's MeshConfig as translation sees it.
type meshConfig struct {
	// present: the ConfigMap exists with key mesh. mc is nil when it does
	// not, or when the value could not be read (a warning on the
	// ConfigMap says why).
	present bool
	mc      *meshv1alpha1.MeshConfig
}

// readMeshConfig parses the root namespace's MeshConfig into t.mesh. A
// value that does not parse is reported on the ConfigMap and translation
// goes on without it: the tracing providers it would define are then
// unknown, which the Telemetries naming them are warned about too.
func (t *translator) readMeshConfig() {
	var cm *corev1.ConfigMap
	for _, c := range t.in.MeshConfigMaps {
		if c != nil && c.Namespace == t.rootNs && c.Name == MeshConfigMapName {
			cm = c
		}
	}
	if cm == nil {
		return
	}
	data, ok := cm.Data[MeshConfigKey]
	if !ok {
		return
	}
	t.mesh.present = true
	mc, unknown, err := parseMeshConfig(data)
	if err != nil {
		t.warnf("ConfigMap", t.rootNs, MeshConfigMapName,
			"data.%s is not a valid Istio MeshConfig: %v; it is ignored (no extensionProviders, defaultProviders or defaultConfig) until it is fixed", MeshConfigKey, err)
		return
	}
	if unknown != nil {
		t.warnf("ConfigMap", t.rootNs, MeshConfigMapName,
			"data.%s: %v (not in the MeshConfig of the Istio API meshway is built with: a newer Istio's field, or a misspelling); it is skipped and the rest is read", MeshConfigKey, unknown)
	}
	t.mesh.mc = mc
}

// protoErrNoise is what protojson adds to its messages that would only
// mislead here: the "proto:" prefix, with a space that is sometimes a
// non-breaking one (on purpose, so that nobody matches on it; a golden
// file would change between builds), and positions in the JSON made of
// the YAML, which the user never sees.
var protoErrNoise = regexp.MustCompile(`^proto:[\s\x{00a0}]*|[\s\x{00a0}]*\(line \d+:\d+\)`)

// parseMeshConfig reads a MeshConfig written in YAML, as Istio does
// (YAML to JSON, then the protobuf JSON mapping). Fields the MeshConfig of
// istio.io/api does not have are skipped, as istiod skips them, and the
// first one is returned as unknown so the caller can say so.
func parseMeshConfig(data string) (mc *meshv1alpha1.MeshConfig, unknown, err error) {
	js, err := sigsyaml.YAMLToJSON([]byte(data))
	if err != nil {
		return nil, nil, fmt.Errorf("%w (lines count from the value's first line)", err)
	}
	js = bytes.TrimSpace(js)
	switch {
	case string(js) == "null":
		// Empty, or only comments: Istio's defaults, nothing for us.
		return &meshv1alpha1.MeshConfig{}, nil, nil
	case len(js) == 0 || js[0] != '{':
		return nil, nil, errors.New("the value is not a YAML mapping of MeshConfig fields (extensionProviders:, defaultProviders:, ...)")
	}
	mc = &meshv1alpha1.MeshConfig{}
	strict := protojson.Unmarshal(js, mc)
	if strict == nil {
		return mc, nil, nil
	}
	mc = &meshv1alpha1.MeshConfig{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(js, mc); err != nil {
		return nil, nil, cleanProtoErr(err)
	}
	// Only unknown fields failed the strict read.
	return mc, cleanProtoErr(strict), nil
}

func cleanProtoErr(err error) error {
	msg := protoErrNoise.ReplaceAllString(err.Error(), "")
	// "(line 1:2): unknown field" has left ": unknown field".
	return errors.New(strings.TrimLeft(msg, ": \u00a0"))
}

// tracingRef is a tracing provider name and who wrote it, for warnings: a
// Telemetry's tracing entry or the MeshConfig's defaultProviders.
type tracingRef struct {
	name              string
	kind, ns, objName string
	field             string // "spec.tracing[0].providers[0]"
}

func (r tracingRef) warnf(t *translator, format string, args ...any) {
	t.warnf(r.kind, r.ns, r.objName, r.field+": "+format, args...)
}

// defaultTracingRef is the MeshConfig's first default tracing provider, as
// Istio takes it (the others are ignored, with a warning); ok is false when
// there is none.
func (t *translator) defaultTracingRef() (tracingRef, bool) {
	names := t.mesh.mc.GetDefaultProviders().GetTracing()
	if len(names) == 0 {
		return tracingRef{}, false
	}
	ref := tracingRef{name: names[0], kind: "ConfigMap", ns: t.rootNs, objName: MeshConfigMapName,
		field: "data." + MeshConfigKey + ": defaultProviders.tracing[0]"}
	if len(names) > 1 {
		t.warnf("ConfigMap", t.rootNs, MeshConfigMapName, "data.%s: defaultProviders.tracing: only the first provider, %q, is used, as in Istio; the others (%s) are ignored",
			MeshConfigKey, names[0], quoteList(names[1:]))
	}
	return ref, true
}

// telemetryTracingRef is the provider a Telemetry's tracing entry i names,
// its first as in Istio; ok is false when it names none.
func (t *translator) telemetryTracingRef(tel *telemetryv1.Telemetry, i int) (tracingRef, bool) {
	var names []string
	for _, p := range tel.Spec.GetTracing()[i].GetProviders() {
		names = append(names, p.GetName())
	}
	if len(names) == 0 {
		return tracingRef{}, false
	}
	field := fmt.Sprintf("spec.tracing[%d].providers", i)
	if len(names) > 1 {
		t.warnf("Telemetry", tel.Namespace, tel.Name, "%s: only the first provider, %q, is used, as in Istio; the others (%s) are ignored", field, names[0], quoteList(names[1:]))
	}
	return tracingRef{name: names[0], kind: "Telemetry", ns: tel.Namespace, objName: tel.Name, field: field + "[0]"}, true
}

// setTracingCollector points out's span export at the collector of the
// provider ref names, or leaves it empty, with a warning, when the provider
// is not one meshway can send to (unknown, not OpenTelemetry, incomplete).
// Istio too exports nothing when the provider it picked cannot be used.
func (t *translator) setTracingCollector(out *model.Telemetry, ref tracingRef) {
	where := fmt.Sprintf("ConfigMap %s/%s, data.%s", t.rootNs, MeshConfigMapName, MeshConfigKey)
	if t.mesh.mc == nil {
		if t.mesh.present {
			ref.warnf(t, "tracing provider %q cannot be looked up: the MeshConfig (%s) could not be read (see its warning); spans are not exported", ref.name, where)
		} else {
			ref.warnf(t, "tracing provider %q is not defined: there is no MeshConfig (%s) with extensionProviders; spans are not exported; define the provider there", ref.name, where)
		}
		return
	}
	var p *meshv1alpha1.MeshConfig_ExtensionProvider
	var index int
	var names []string
	for i, e := range t.mesh.mc.GetExtensionProviders() {
		names = append(names, e.GetName())
		if p == nil && e.GetName() == ref.name {
			p, index = e, i
		}
	}
	if p == nil {
		defined := "it defines none"
		if len(names) > 0 {
			defined = "it defines " + quoteList(names)
		}
		ref.warnf(t, "tracing provider %q is not in the MeshConfig's extensionProviders (%s; %s); spans are not exported, as in Istio; fix the name or define the provider", ref.name, where, defined)
		return
	}
	otel := p.GetOpentelemetry()
	if otel == nil {
		ref.warnf(t, "tracing provider %q is of type %s, which meshway waypoints do not support: they export spans only to opentelemetry (OTLP) providers, so spans are not exported; name an opentelemetry provider (an OpenTelemetry Collector can forward spans to other backends)",
			ref.name, providerType(p))
		return
	}
	at := fmt.Sprintf("data.%s: extensionProviders[%d] (%s).opentelemetry", MeshConfigKey, index, p.GetName())
	warnProvider := func(format string, args ...any) {
		t.warnf("ConfigMap", t.rootNs, MeshConfigMapName, at+format, args...)
	}
	host := otel.GetService()
	// Istio's [<Namespace>/]<Hostname>: the namespace only disambiguates
	// a lookup in Istio's registry; the waypoint resolves the hostname.
	if _, h, ok := strings.Cut(host, "/"); ok {
		host = h
	}
	if host == "" {
		warnProvider(".service: required (the collector's hostname, e.g. opentelemetry-collector.observability.svc.cluster.local); spans are not exported")
		return
	}
	if _, err := netip.ParseAddr(host); err != nil && len(validation.IsDNS1123Subdomain(strings.ToLower(host))) > 0 {
		warnProvider(".service: %q is not a hostname (write [<namespace>/]<hostname>, e.g. observability/otel.observability.svc.cluster.local; the port goes in port); spans are not exported", otel.GetService())
		return
	}
	if otel.GetPort() == 0 || otel.GetPort() > 65535 {
		warnProvider(".port: %d is not a port (1-65535; the collector's OTLP port, 4317 for gRPC, 4318 for HTTP); spans are not exported", otel.GetPort())
		return
	}
	var ignored []string
	if otel.GetMaxTagLength() != 0 {
		ignored = append(ignored, "maxTagLength")
	}
	if h := otel.GetHttp(); h != nil {
		if h.GetTimeout() != nil {
			ignored = append(ignored, "http.timeout")
		}
		if len(h.GetHeaders()) > 0 {
			ignored = append(ignored, "http.headers")
		}
	}
	if g := otel.GetGrpc(); g != nil {
		if g.GetTimeout() != nil {
			ignored = append(ignored, "grpc.timeout")
		}
		if len(g.GetInitialMetadata()) > 0 {
			ignored = append(ignored, "grpc.initialMetadata")
		}
	}
	if otel.GetResourceDetectors() != nil {
		ignored = append(ignored, "resourceDetectors")
	}
	if otel.GetDynatraceSampler() != nil {
		ignored = append(ignored, "dynatraceSampler")
	}
	if len(ignored) > 0 {
		// Spans are still sent: most collectors in a mesh need none of
		// these, and the warning says which are missing.
		warnProvider(": not supported by meshway waypoints, ignored: %s (exports time out after 10s and carry no extra headers or metadata)", strings.Join(ignored, ", "))
	}
	out.TracingEndpoint = net.JoinHostPort(host, strconv.FormatUint(uint64(otel.GetPort()), 10))
	// As Istio: OTLP/gRPC unless the provider has an http block.
	if h := otel.GetHttp(); h != nil {
		out.TracingProtocol = model.TracingHTTP
		out.TracingPath = "/v1/traces"
		if path := h.GetPath(); path != "" {
			// Istio joins the host and path as URL elements: a path
			// written without its leading slash means the same.
			out.TracingPath = "/" + strings.TrimLeft(path, "/")
		}
	} else {
		out.TracingProtocol = model.TracingGRPC
	}
}

// providerType is the kind of an extension provider as MeshConfig writes
// it: "zipkin", "datadog", "envoyFileAccessLog".
func providerType(p *meshv1alpha1.MeshConfig_ExtensionProvider) string {
	m := p.ProtoReflect()
	if fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("provider")); fd != nil {
		return fd.JSONName()
	}
	return "empty"
}

// meshSamplingPercent is the MeshConfig's defaultConfig.tracing.sampling,
// the sampling of traces where no Telemetry sets randomSamplingPercentage;
// ok is false when it is unset (0), which leaves Istio's default of 1%.
// Like Istio, a value over 100 means 1.
func (t *translator) meshSamplingPercent() (percent float64, ok bool) {
	s := t.mesh.mc.GetDefaultConfig().GetTracing().GetSampling()
	switch {
	case s == 0:
		return 0, false
	case s > 100:
		return 1, true
	case s < 0:
		return 0, true
	}
	return s, true
}

// quoteList is `"a", "b"`.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
