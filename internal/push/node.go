package push

import (
	"fmt"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/meshway/meshway/internal/push/client"
)

// nodeInfo reads what a proxy said about itself (client.NodeInfo.XDS). It
// fails when the proxy left out what the server needs to decide what to
// send it.
func nodeInfo(node *core.Node) (client.NodeInfo, error) {
	if node == nil {
		return client.NodeInfo{}, fmt.Errorf("the first request carries no node: a proxy must identify itself")
	}
	f := node.GetMetadata().GetFields()
	str := func(k string) string { return f[k].GetStringValue() }
	n := client.NodeInfo{
		Kind: str(client.MetaKind), Namespace: str(client.MetaNamespace), Name: str(client.MetaName),
		Instance: str(client.MetaInstance), Node: str(client.MetaNode),
	}
	switch {
	case n.Kind == "":
		return n, fmt.Errorf("node %q: metadata.kind is empty (want %q or %q)", node.GetId(), client.KindWaypoint, client.KindZtunnel)
	case n.Kind == client.KindWaypoint && (n.Namespace == "" || n.Name == ""):
		return n, fmt.Errorf("node %q: a waypoint must give metadata.namespace and metadata.name (its Gateway)", node.GetId())
	case n.Kind == client.KindZtunnel && n.Node == "":
		// The resources are the same for every ztunnel, but proxy-status
		// lists ztunnels by node, and a ztunnel without one is misconfigured.
		return n, fmt.Errorf("node %q: a ztunnel must give metadata.node (the node it runs on)", node.GetId())
	}
	if n.Instance == "" {
		n.Instance = node.GetId()
	}
	return n, nil
}
