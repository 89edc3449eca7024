package push

import (
	"fmt"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Proxy kinds, as a proxy names itself to the control plane.
const (
	KindWaypoint = "waypoint"
	KindZtunnel  = "ztunnel"
)

// NodeInfo is how a proxy identifies itself on its xDS stream.
type NodeInfo struct {
	Kind      string // KindWaypoint or KindZtunnel
	Namespace string // the waypoint Gateway's namespace (waypoints)
	Name      string // the waypoint Gateway's name (waypoints)
	// Instance tells replicas apart: the pod name, or host and process id.
	Instance string
	// Node is the host (Kubernetes node) the proxy runs on.
	Node string
}

// ID is the xDS node id: kind~namespace~name~instance, in the spirit of
// Istio's "type~ip~id~domain", so that two replicas never share one.
func (n NodeInfo) ID() string {
	return strings.Join([]string{n.Kind, n.Namespace, n.Name, n.Instance}, "~")
}

// String names the proxy as proxy-status lists it: instance.namespace.
func (n NodeInfo) String() string {
	if n.Instance == "" {
		return n.Namespace + "/" + n.Name
	}
	return n.Instance + "." + n.Namespace
}

// core converts to the xDS Node sent on the first request of a stream.
func (n NodeInfo) core() *core.Node {
	md, _ := structpb.NewStruct(map[string]any{
		"kind": n.Kind, "namespace": n.Namespace, "name": n.Name,
		"instance": n.Instance, "node": n.Node,
	})
	return &core.Node{Id: n.ID(), Metadata: md, UserAgentName: "meshway-" + n.Kind}
}

// nodeInfo reads what a proxy said about itself. It fails when the proxy
// left out what the server needs to decide what to send it.
func nodeInfo(node *core.Node) (NodeInfo, error) {
	if node == nil {
		return NodeInfo{}, fmt.Errorf("the first request carries no node: a proxy must identify itself")
	}
	f := node.GetMetadata().GetFields()
	str := func(k string) string { return f[k].GetStringValue() }
	n := NodeInfo{Kind: str("kind"), Namespace: str("namespace"), Name: str("name"), Instance: str("instance"), Node: str("node")}
	switch {
	case n.Kind == "":
		return n, fmt.Errorf("node %q: metadata.kind is empty (want %q or %q)", node.GetId(), KindWaypoint, KindZtunnel)
	case n.Kind == KindWaypoint && (n.Namespace == "" || n.Name == ""):
		return n, fmt.Errorf("node %q: a waypoint must give metadata.namespace and metadata.name (its Gateway)", node.GetId())
	}
	if n.Instance == "" {
		n.Instance = node.GetId()
	}
	return n, nil
}
