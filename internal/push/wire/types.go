package wire

import "github.com/meshway/meshway/api/meshpb"

// WaypointType is the xDS type URL of a waypoint's configuration; the
// resource's name is the waypoint Gateway's "namespace/name".
var WaypointType = "type.googleapis.com/" + string((&meshpb.WaypointConfig{}).ProtoReflect().Descriptor().FullName())
