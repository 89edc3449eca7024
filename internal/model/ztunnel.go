package model

import (
	"fmt"
	"net/netip"
	"strings"
)

// Ztunnel is the whole configuration of the ztunnel of one node: what it
// needs to capture its own workloads' traffic, to address and verify every
// destination in the mesh, and to authorize connections to its workloads.
// Like a Waypoint it is built and validated whole and swapped in at once.
//
// Every node's configuration holds every workload, service, waypoint and
// policy of the mesh, as Istio's ztunnel knows them all: traffic to a pod
// on another node needs that pod's identity, tunnel protocol and waypoint.
// What makes a workload this ztunnel's own is its Node: ztunnel captures
// and authorizes only the workloads whose Node is Ztunnel.Node (see
// LocalWorkloads); the others are there to be addressed.
type Ztunnel struct {
	// Node is the name of the node (a Kubernetes node, or the host of the
	// embedded runtime) this ztunnel runs on.
	Node string `json:"node"`
	// Workloads are every workload of the mesh, sorted by UID.
	Workloads []ZtunnelWorkload `json:"workloads,omitempty"`
	// Services are every service of the mesh, sorted by namespace and
	// hostname.
	Services []ZtunnelService `json:"services,omitempty"`
	// Waypoints are every waypoint (Gateway with an address) of the mesh,
	// sorted by namespace and name.
	Waypoints []ZtunnelWaypoint `json:"waypoints,omitempty"`
	// Policies are the mesh's L4 AuthorizationPolicies, sorted by namespace
	// and name; each workload names those that apply to it (see
	// ZtunnelWorkload.Policies). ztunnel sees
	// connections, not requests, so it evaluates only the L4 fields of a
	// policy: from.principals, from.namespaces, from.ipBlocks (and their
	// not-forms), to.ports and to.notPorts, and when conditions on
	// source.ip, source.namespace, source.principal, destination.ip and
	// destination.port. Validate refuses any other field; translation has
	// already removed them the way Istio does. Actions are ALLOW (or empty)
	// and DENY.
	Policies []AuthorizationPolicy `json:"policies,omitempty"`
}

// TunnelProtocol is how other proxies reach a workload.
type TunnelProtocol string

// Tunnel protocols.
const (
	// TunnelHBONE: mTLS HTTP/2 CONNECT to the workload's IP on port 15008,
	// which its node's ztunnel (or the waypoint itself) terminates.
	TunnelHBONE TunnelProtocol = "HBONE"
	// TunnelTCP: plain TCP to the workload's IP and port, for workloads out
	// of the mesh (Istio's tunnel protocol NONE).
	TunnelTCP TunnelProtocol = "TCP"
)

// HBONEPort is the port HBONE is served on, by ztunnel and by waypoints.
const HBONEPort = 15008

// ZtunnelWorkload is one workload (a pod, a WorkloadEntry or an inline
// ServiceEntry endpoint) as ztunnel knows it.
type ZtunnelWorkload struct {
	// UID names the workload across the mesh, as Istio's Workload.uid:
	// "Kubernetes//Pod/<ns>/<name>",
	// "Kubernetes/networking.istio.io/WorkloadEntry/<ns>/<name>" or
	// "Kubernetes/networking.istio.io/ServiceEntry/<ns>/<entry>/<address>".
	// Services and waypoints refer to workloads by UID.
	UID       string `json:"uid"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Addresses are the workload's IPs; no two workloads share one.
	Addresses []string `json:"addresses"`
	// Node is the node the workload runs on; empty for workloads outside
	// any node (VMs, external endpoints).
	Node string `json:"node,omitempty"`
	// ServiceAccount and Identity (its SPIFFE ID,
	// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>) are
	// empty for workloads without one, which are reached over TCP.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	Identity       string `json:"identity,omitempty"`
	// Protocol is how the workload is reached: HBONE when it is captured by
	// its node's ztunnel (or is a waypoint, which serves HBONE itself),
	// else TCP.
	Protocol TunnelProtocol `json:"protocol"`
	// Captured: the workload is enrolled in ambient mode (label
	// istio.io/dataplane-mode=ambient on it or its namespace, not opted
	// out): its node's ztunnel intercepts its inbound and outbound traffic.
	Captured bool `json:"captured,omitempty"`
	// Waypoint is the "namespace/name" of the entry in Ztunnel.Waypoints
	// that traffic addressed to this workload's IP goes through; empty for
	// none.
	Waypoint string `json:"waypoint,omitempty"`
	// CanonicalName and CanonicalRevision are the workload's
	// service.istio.io/canonical-name and canonical-revision, as Istio
	// derives them, for telemetry labels.
	CanonicalName     string `json:"canonicalName,omitempty"`
	CanonicalRevision string `json:"canonicalRevision,omitempty"`
	// Unhealthy workloads (pods not ready) get no service traffic.
	Unhealthy bool `json:"unhealthy,omitempty"`
	// Policies are the "namespace/name" of the entries in Ztunnel.Policies
	// that apply to connections to this workload: mesh-wide, its
	// namespace's and those whose selector matches it, already resolved.
	// Only captured workloads have them: they are enforced by the ztunnel
	// of the workload's node.
	Policies []string `json:"policies,omitempty"`
}

// ZtunnelService is one service (a Kubernetes Service, or one host of a
// ServiceEntry) as ztunnel knows it: traffic to one of its addresses and
// ports goes to its waypoint, if it has one, else to one of its endpoints.
type ZtunnelService struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Hostname is the service's DNS name, e.g.
	// reviews.default.svc.cluster.local.
	Hostname string `json:"hostname"`
	// Addresses are the service's VIPs (none for a headless service); no
	// two services share one.
	Addresses []string `json:"addresses,omitempty"`
	// Ports map each service port to the target port it declares; a
	// TargetPort of 0 means it is named, and differs per endpoint.
	Ports []PortMapping `json:"ports,omitempty"`
	// Endpoints are the workloads that serve the service, by UID.
	Endpoints []ZtunnelEndpoint `json:"endpoints,omitempty"`
	// Waypoint is the "namespace/name" of the entry in Ztunnel.Waypoints
	// that traffic addressed to this service goes through; empty for none.
	Waypoint string `json:"waypoint,omitempty"`
	// IngressUseWaypoint: ingress gateways send to the waypoint too
	// (istio.io/ingress-use-waypoint). Only set with a Waypoint.
	IngressUseWaypoint bool `json:"ingressUseWaypoint,omitempty"`
}

// PortMapping maps a service port to a workload's target port.
type PortMapping struct {
	Port       uint16 `json:"port"`
	TargetPort uint16 `json:"targetPort,omitempty"`
}

// ZtunnelEndpoint is a workload serving a service.
type ZtunnelEndpoint struct {
	// Workload is the UID of an entry in Ztunnel.Workloads.
	Workload string `json:"workload"`
	// Ports map each service port the workload serves to its target port
	// on the workload; service ports not listed are not served by it.
	Ports []PortMapping `json:"ports"`
}

// ZtunnelWaypoint is a waypoint services and workloads send through.
// ztunnel opens HBONE to one of its Instances on HBONEPort, with the
// original destination as :authority, and accepts only the Identities as
// the waypoint's.
type ZtunnelWaypoint struct {
	// Name and Namespace are those of the waypoint's Gateway.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Address is the Gateway's status address Istio pushes as the
	// waypoint's address: its Service's hostname, else an IP. With no
	// Instances, ztunnel connects to it when it is an IP.
	Address string `json:"address"`
	// HBONEPort is the port the waypoint serves HBONE on (15008).
	HBONEPort uint16 `json:"hbonePort"`
	// Instances are the UIDs of the waypoint's pods.
	Instances []string `json:"instances,omitempty"`
	// Identities are the SPIFFE IDs of the waypoint's pods.
	Identities []string `json:"identities,omitempty"`
}

// LocalWorkloads returns the workloads on the ztunnel's node: those it
// captures and authorizes.
func (z *Ztunnel) LocalWorkloads() []ZtunnelWorkload {
	var out []ZtunnelWorkload
	for _, w := range z.Workloads {
		if w.Node == z.Node {
			out = append(out, w)
		}
	}
	return out
}

// l4ConditionKeys are the `when` attributes ztunnel can evaluate on a
// connection (Istio's l4WhenAttributes).
var l4ConditionKeys = map[string]bool{
	"source.ip": true, "source.namespace": true, "source.principal": true,
	"destination.ip": true, "destination.port": true,
}

// IsL4ConditionKey reports whether a `when` key names an attribute of a
// connection, which ztunnel can evaluate, rather than of an HTTP request.
func IsL4ConditionKey(key string) bool { return l4ConditionKeys[key] }

// L7Fields lists the fields of the rule that need an HTTP request (hosts,
// methods, paths, remoteIpBlocks, request attributes in when), each by its
// path within the rule, e.g. "to[0].methods".
func (r *Rule) L7Fields() []string {
	var out []string
	set := func(at string, values []string) {
		if len(values) > 0 {
			out = append(out, at)
		}
	}
	for i, s := range r.From {
		at := fmt.Sprintf("from[%d].", i)
		set(at+"remoteIpBlocks", s.RemoteIPBlocks)
		set(at+"notRemoteIpBlocks", s.NotRemoteIPBlocks)
	}
	for i, o := range r.To {
		at := fmt.Sprintf("to[%d].", i)
		set(at+"hosts", o.Hosts)
		set(at+"notHosts", o.NotHosts)
		set(at+"methods", o.Methods)
		set(at+"notMethods", o.NotMethods)
		set(at+"paths", o.Paths)
		set(at+"notPaths", o.NotPaths)
	}
	for i, c := range r.When {
		if !IsL4ConditionKey(c.Key) {
			out = append(out, fmt.Sprintf("when[%d] (%s)", i, c.Key))
		}
	}
	return out
}

// Validate checks the whole configuration and returns every problem found,
// each naming where it is (workloads[2].addresses[0], services[1].endpoints[0].workload, ...).
func (z *Ztunnel) Validate() error {
	v := &validator{}
	if z.Node == "" {
		v.addf("node: required (the name of the node this ztunnel runs on)")
	}
	waypoints := map[string]bool{}
	for i, w := range z.Waypoints {
		at := fmt.Sprintf("waypoints[%d]", i)
		key := w.Namespace + "/" + w.Name
		switch {
		case w.Name == "" || w.Namespace == "":
			v.addf("%s: name and namespace are required", at)
		case waypoints[key]:
			v.addf("%s: waypoint %s is listed twice", at, key)
		}
		waypoints[key] = true
		if w.Address == "" {
			v.addf("%s.address: required (the Gateway's status address)", at)
		}
		if w.HBONEPort == 0 {
			v.addf("%s.hbonePort: required (%d)", at, HBONEPort)
		}
		for j, id := range w.Identities {
			v.spiffeID(fmt.Sprintf("%s.identities[%d]", at, j), id)
		}
	}
	policies := map[string]bool{}
	for i := range z.Policies {
		p := &z.Policies[i]
		at := fmt.Sprintf("policies[%d] (%s/%s)", i, p.Namespace, p.Name)
		key := p.Namespace + "/" + p.Name
		if policies[key] {
			v.addf("%s: policy %s is listed twice", at, key)
		}
		policies[key] = true
		if err := p.Validate(); err != nil {
			v.addf("%s: %w", at, err)
		}
		switch p.Action.Effective() {
		case ActionAllow, ActionDeny:
		default:
			v.addf("%s.action: %s is not enforced by ztunnel; use ALLOW or DENY", at, p.Action)
		}
		for j := range p.Rules {
			for _, f := range p.Rules[j].L7Fields() {
				v.addf("%s.rules[%d].%s: ztunnel sees connections, not HTTP requests; enforce HTTP attributes at a waypoint (targetRefs)", at, j, f)
			}
		}
	}
	workloads := map[string]bool{}
	addresses := map[netip.Addr]string{}
	for i, w := range z.Workloads {
		at := fmt.Sprintf("workloads[%d]", i)
		switch {
		case w.UID == "":
			v.addf("%s.uid: required", at)
		case workloads[w.UID]:
			v.addf("%s.uid: workload %q is listed twice", at, w.UID)
		}
		workloads[w.UID] = true
		if w.Name == "" || w.Namespace == "" {
			v.addf("%s: name and namespace are required", at)
		}
		if len(w.Addresses) == 0 {
			v.addf("%s.addresses: at least one address is required", at)
		}
		for j, a := range w.Addresses {
			v.uniqueAddress(fmt.Sprintf("%s.addresses[%d]", at, j), a, addresses)
		}
		v.spiffeID(at+".identity", w.Identity)
		if w.Identity != "" && w.ServiceAccount != "" && !strings.HasSuffix(w.Identity, "/ns/"+w.Namespace+"/sa/"+w.ServiceAccount) {
			v.addf("%s.identity: %q is not the identity of service account %s/%s", at, w.Identity, w.Namespace, w.ServiceAccount)
		}
		switch w.Protocol {
		case TunnelHBONE, TunnelTCP:
		case "":
			v.addf("%s.protocol: required (HBONE or TCP)", at)
		default:
			v.addf("%s.protocol: unknown %q; use HBONE or TCP", at, w.Protocol)
		}
		if w.Captured && (w.Protocol != TunnelHBONE || w.Node == "") {
			v.addf("%s.captured: a captured workload runs on a node (node) and is reached over HBONE (protocol)", at)
		}
		if w.Waypoint != "" && !waypoints[w.Waypoint] {
			v.addf("%s.waypoint: no waypoint %q in waypoints", at, w.Waypoint)
		}
		for j, p := range w.Policies {
			if !policies[p] {
				v.addf("%s.policies[%d]: no policy %q in policies", at, j, p)
			}
		}
		if len(w.Policies) > 0 && !w.Captured {
			v.addf("%s.policies: only captured workloads have policies (ztunnel enforces them only for those)", at)
		}
	}
	for i, w := range z.Waypoints {
		for j, uid := range w.Instances {
			if !workloads[uid] {
				v.addf("waypoints[%d].instances[%d]: no workload %q in workloads", i, j, uid)
			}
		}
	}
	hostnames := map[string]bool{}
	vips := map[netip.Addr]string{}
	for i, s := range z.Services {
		at := fmt.Sprintf("services[%d]", i)
		if s.Name == "" || s.Namespace == "" {
			v.addf("%s: name and namespace are required", at)
		}
		key := s.Namespace + "/" + s.Hostname
		switch {
		case s.Hostname == "":
			v.addf("%s.hostname: required", at)
		case hostnames[key]:
			v.addf("%s.hostname: %s is listed twice in namespace %s", at, s.Hostname, s.Namespace)
		}
		hostnames[key] = true
		for j, a := range s.Addresses {
			v.uniqueAddress(fmt.Sprintf("%s.addresses[%d]", at, j), a, vips)
		}
		ports := map[uint16]bool{}
		for j, p := range s.Ports {
			pat := fmt.Sprintf("%s.ports[%d]", at, j)
			switch {
			case p.Port == 0:
				v.addf("%s.port: required (1-65535)", pat)
			case ports[p.Port]:
				v.addf("%s.port: %d is listed twice", pat, p.Port)
			}
			ports[p.Port] = true
		}
		for j, e := range s.Endpoints {
			eat := fmt.Sprintf("%s.endpoints[%d]", at, j)
			if !workloads[e.Workload] {
				v.addf("%s.workload: no workload %q in workloads", eat, e.Workload)
			}
			if len(e.Ports) == 0 {
				v.addf("%s.ports: at least one port is required", eat)
			}
			for k, p := range e.Ports {
				if !ports[p.Port] {
					v.addf("%s.ports[%d].port: %d is not a port of the service", eat, k, p.Port)
				}
				if p.TargetPort == 0 {
					v.addf("%s.ports[%d].targetPort: required (1-65535)", eat, k)
				}
			}
		}
		if s.Waypoint != "" && !waypoints[s.Waypoint] {
			v.addf("%s.waypoint: no waypoint %q in waypoints", at, s.Waypoint)
		}
		if s.IngressUseWaypoint && s.Waypoint == "" {
			v.addf("%s.ingressUseWaypoint: set without a waypoint", at)
		}
	}
	return v.err()
}

// uniqueAddress checks that a is an IP address no other entry in seen has.
func (v *validator) uniqueAddress(at, a string, seen map[netip.Addr]string) {
	ip, err := netip.ParseAddr(a)
	if err != nil {
		v.addf("%s: %q is not an IP address", at, a)
		return
	}
	if prev, ok := seen[ip]; ok {
		v.addf("%s: %s is also %s", at, a, prev)
		return
	}
	seen[ip] = at
}

// spiffeID checks that id, if set, is a SPIFFE ID.
func (v *validator) spiffeID(at, id string) {
	if id != "" && !strings.HasPrefix(id, "spiffe://") {
		v.addf("%s: %q is not a spiffe:// ID", at, id)
	}
}
