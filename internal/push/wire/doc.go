// Package wire converts the proxies' configurations between the model and
// the protobuf pushed over xDS: a waypoint's with Waypoint on the control
// plane's side and ToModel on the proxy's, a node's ztunnel's with Ztunnel
// and ZtunnelToModel. Each pair are inverses: a model.Waypoint (or
// model.Ztunnel) survives the round trip through meshpb.WaypointConfig (or
// meshpb.ZtunnelConfig) and its wire encoding unchanged, except that an
// empty list or map comes back as nil (proto3 cannot tell them apart, and
// the model treats them alike).
//
// The ztunnels' configuration is pushed in pieces every ztunnel shares
// (types.go): ZtunnelResources splits the mesh-wide part
// (translate.ZtunnelMesh) into resources of the four ztunnel types, and on
// the proxy's side a ZtunnelState holds the resources received and
// assembles a node's model.Ztunnel from them (equal to what
// translate.ZtunnelConfigs builds for the node, which the translate tests
// check), then validates it.
//
// ToModel, ZtunnelToModel and ZtunnelState reject what the model cannot
// hold (a port above 65535, a duration beyond time.Duration's range, a
// malformed timestamp), naming the field by its path in the configuration,
// e.g. services[0].ports[1].port. ToModel and ZtunnelToModel do not
// validate the result: the caller runs Validate, as for a configuration
// loaded from a file.
package wire
