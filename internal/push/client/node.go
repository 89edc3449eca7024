package client

import (
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshway/meshway/api/meshpb"
)

// Proxy kinds, as a proxy names itself to the control plane.
const (
	KindWaypoint = "waypoint"
	KindZtunnel  = "ztunnel"
)

// NodeInfo is how a proxy identifies itself on its xDS stream.
type NodeInfo struct {
	Kind      string `json:"kind"`                // KindWaypoint or KindZtunnel
	Namespace string `json:"namespace,omitempty"` // the waypoint Gateway's namespace (waypoints); the pod's (ztunnels)
	Name      string `json:"name,omitempty"`      // the waypoint Gateway's name (waypoints); the DaemonSet's (ztunnels)
	// Instance tells replicas apart: the pod name, or host and process id.
	Instance string `json:"instance,omitempty"`
	// Node is the host (Kubernetes node) the proxy runs on; a ztunnel must
	// give it.
	Node string `json:"node,omitempty"`
}

// ID is the xDS node id: kind~namespace~name~instance, in the spirit of
// Istio's "type~ip~id~domain", so that two replicas never share one.
func (n NodeInfo) ID() string {
	return strings.Join([]string{n.Kind, n.Namespace, n.Name, n.Instance}, "~")
}

// String names the proxy as proxy-status lists it: instance.namespace
// (the instance alone outside a namespace, e.g. a ztunnel on a host).
func (n NodeInfo) String() string {
	switch {
	case n.Instance == "":
		return n.Namespace + "/" + n.Name
	case n.Namespace == "":
		return n.Instance
	}
	return n.Instance + "." + n.Namespace
}

// Metadata keys of the node, which the server reads back.
const (
	MetaKind      = "kind"
	MetaNamespace = "namespace"
	MetaName      = "name"
	MetaInstance  = "instance"
	MetaNode      = "node"
)

// XDS is the node sent on the first request of a stream.
func (n NodeInfo) XDS() *meshpb.XdsNode {
	md, _ := structpb.NewStruct(map[string]any{
		MetaKind: n.Kind, MetaNamespace: n.Namespace, MetaName: n.Name,
		MetaInstance: n.Instance, MetaNode: n.Node,
	})
	return &meshpb.XdsNode{Id: n.ID(), Metadata: md, UserAgentName: "meshway-" + n.Kind}
}

// ShortVersion abbreviates a version (a SHA-256 in hex) for display.
func ShortVersion(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}
