// Package wire converts the waypoint configuration between the model and the
// protobuf pushed over xDS: Waypoint on the control plane's side, ToModel on
// the proxy's. The two are inverses: a model.Waypoint survives the round trip
// through meshpb.WaypointConfig and its wire encoding unchanged, except that
// an empty list or map comes back as nil (proto3 cannot tell them apart, and
// the model treats them alike).
//
// ToModel rejects what the model cannot hold (a port above 65535, a duration
// beyond time.Duration's range, a malformed timestamp), naming the field by
// its path in the configuration, e.g. services[0].ports[1].port. It does not
// validate the result: the caller runs model.Waypoint.Validate, as for a
// configuration loaded from a file.
package wire
