package wire

import (
	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/api/meshpb"
)

// typeURL is the xDS type URL of a message: what the Any holding it names.
func typeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// WaypointType is the xDS type URL of a waypoint's configuration; the
// resource's name is the waypoint Gateway's "namespace/name".
var WaypointType = typeURL(&meshpb.WaypointConfig{})

// The ztunnel configuration is pushed as resources shared by every
// ztunnel, as Istio's WDS pushes it, one type per kind of piece; a ztunnel
// subscribes to every resource of each (the wildcard, "*") and assembles
// its node's model.Ztunnel from them (ZtunnelState). Resource names:
var (
	// ZtunnelWorkloadType: one meshpb.ZtunnelWorkload per workload, named
	// by its UID (Istio's Workload.uid).
	ZtunnelWorkloadType = typeURL(&meshpb.ZtunnelWorkload{})
	// ZtunnelServiceType: one meshpb.ZtunnelService per service, named
	// "namespace/hostname" (Istio's Service resource name).
	ZtunnelServiceType = typeURL(&meshpb.ZtunnelService{})
	// ZtunnelWaypointType: one meshpb.ZtunnelWaypoint per waypoint, named
	// "namespace/name" of its Gateway.
	ZtunnelWaypointType = typeURL(&meshpb.ZtunnelWaypoint{})
	// ZtunnelPolicyType: one meshpb.AuthorizationPolicy per L4
	// AuthorizationPolicy, named "namespace/name".
	ZtunnelPolicyType = typeURL(&meshpb.AuthorizationPolicy{})
)

// ZtunnelTypes are the four ztunnel resource types, in the order the
// control plane updates them (see ZtunnelResources).
var ZtunnelTypes = []string{ZtunnelPolicyType, ZtunnelWaypointType, ZtunnelWorkloadType, ZtunnelServiceType}
