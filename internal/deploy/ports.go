package deploy

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Ports of the waypoint pod, as Istio's.
const (
	StatusPort  = 15021 // readiness: GET /healthz/ready
	MetricsPort = 15020 // Prometheus: GET /stats/prometheus
	HBONEPort   = 15008 // HBONE (mTLS HTTP/2 CONNECT)
	XDSPort     = 15010 // control plane xDS, plaintext (tests, loopback)
	SecurePort  = 15012 // control plane xDS and CA over TLS
)

// maxPortName is the longest Service port name Kubernetes accepts (a DNS-1123 label).
const maxPortName = 63

// servicePorts is Istio's extractServicePorts: status-port 15021 (appProtocol
// tcp), then one port per distinct listener port (the first listener on a
// port wins), named after the listener and with the lowercased listener
// protocol as appProtocol; targetPort is the port itself (what the API
// server would default it to). Unlike Istio, names are sanitized into valid,
// unique Service port names (see portName).
func servicePorts(listeners []gwv1.Listener) []corev1.ServicePort {
	tcp := "tcp"
	ports := []corev1.ServicePort{{
		Name: "status-port", Port: StatusPort, Protocol: corev1.ProtocolTCP, AppProtocol: &tcp,
		TargetPort: intstr.FromInt32(StatusPort),
	}}
	used := map[string]bool{"status-port": true}
	seen := map[int32]bool{}
	for i, l := range listeners {
		port := l.Port
		if seen[port] {
			continue
		}
		seen[port] = true
		app := strings.ToLower(string(l.Protocol))
		name := uniquePortName(portName(string(l.Name), app, i), used)
		ports = append(ports, corev1.ServicePort{
			Name: name, Port: port, Protocol: corev1.ProtocolTCP, AppProtocol: &app,
			TargetPort: intstr.FromInt32(port),
		})
	}
	return ports
}

// portName turns a listener name (a Gateway API section name: DNS subdomain
// characters, up to 253 long) into a DNS-1123 label of at most 63 characters:
// lower case, anything but [a-z0-9-] becomes "-", no leading or trailing "-".
// An empty result falls back to Istio's "<protocol>-<index>".
func portName(listener, protocol string, index int) string {
	if name := sanitizeLabel(listener); name != "" {
		return name
	}
	suffix := "-" + strconv.Itoa(index)
	proto := sanitizeLabel(protocol)
	if proto == "" {
		proto = "port"
	}
	if len(proto)+len(suffix) > maxPortName {
		proto = strings.TrimRight(proto[:maxPortName-len(suffix)], "-")
	}
	return proto + suffix
}

// sanitizeLabel lowercases s, replaces anything but [a-z0-9-] with "-", cuts
// it to maxPortName and strips "-" from both ends.
func sanitizeLabel(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return trimLabel(b.String())
}

// trimLabel cuts s to maxPortName and strips "-" from both ends.
func trimLabel(s string) string {
	if len(s) > maxPortName {
		s = s[:maxPortName]
	}
	return strings.Trim(s, "-")
}

// uniquePortName returns name, or name with the smallest "-N" suffix (N ≥ 2)
// not in used, cutting name so the result stays within maxPortName; it
// records the result in used.
func uniquePortName(name string, used map[string]bool) string {
	candidate := name
	for n := 2; used[candidate]; n++ {
		suffix := fmt.Sprintf("-%d", n)
		base := name
		if len(base)+len(suffix) > maxPortName {
			base = strings.TrimRight(base[:maxPortName-len(suffix)], "-")
		}
		candidate = base + suffix
	}
	used[candidate] = true
	return candidate
}
