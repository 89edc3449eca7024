package wire

import "github.com/meshway/meshway/api/meshpb"

// WaypointType is the xDS type URL of a waypoint's configuration; the
// resource's name is the waypoint Gateway's "namespace/name".
var WaypointType = "type.googleapis.com/" + string((&meshpb.WaypointConfig{}).ProtoReflect().Descriptor().FullName())

// ZtunnelType is the xDS type URL of a node's ztunnel configuration; the
// resource's name is "node/<node name>".
var ZtunnelType = "type.googleapis.com/" + string((&meshpb.ZtunnelConfig{}).ProtoReflect().Descriptor().FullName())
