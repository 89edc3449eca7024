package wire

import (
	"errors"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

// Ztunnel converts a node's ztunnel configuration to the message the
// control plane pushes. The message shares no memory with z.
func Ztunnel(z *model.Ztunnel) *meshpb.ZtunnelConfig {
	if z == nil {
		return nil
	}
	return &meshpb.ZtunnelConfig{
		Node:      z.Node,
		Workloads: pbList(z.Workloads, ztunnelWorkloadPB),
		Services:  pbList(z.Services, ztunnelServicePB),
		Waypoints: pbList(z.Waypoints, ztunnelWaypointPB),
		Policies:  pbList(z.Policies, policyPB),
	}
}

// ZtunnelToModel converts a pushed message back to the model. It fails,
// naming the field, on values the model cannot hold (a port above 65535);
// it does not run Validate.
func ZtunnelToModel(pb *meshpb.ZtunnelConfig) (*model.Ztunnel, error) {
	if pb == nil {
		return nil, errors.New("no ztunnel configuration (nil message)")
	}
	z := &model.Ztunnel{
		Node:      pb.GetNode(),
		Workloads: modelList(pb.GetWorkloads(), ztunnelWorkloadModel),
		Policies:  modelList(pb.GetPolicies(), policyModel),
	}
	var err error
	if z.Services, err = checkedModelList("services", pb.GetServices(), ztunnelServiceModel); err != nil {
		return nil, err
	}
	if z.Waypoints, err = checkedModelList("waypoints", pb.GetWaypoints(), ztunnelWaypointModel); err != nil {
		return nil, err
	}
	return z, nil
}

func ztunnelWorkloadPB(w *model.ZtunnelWorkload) *meshpb.ZtunnelWorkload {
	return &meshpb.ZtunnelWorkload{
		Uid:               w.UID,
		Name:              w.Name,
		Namespace:         w.Namespace,
		Addresses:         stringList(w.Addresses),
		Node:              w.Node,
		ServiceAccount:    w.ServiceAccount,
		Identity:          w.Identity,
		Protocol:          string(w.Protocol),
		Captured:          w.Captured,
		Waypoint:          w.Waypoint,
		CanonicalName:     w.CanonicalName,
		CanonicalRevision: w.CanonicalRevision,
		Unhealthy:         w.Unhealthy,
		Policies:          stringList(w.Policies),
	}
}

// ztunnelWorkloadModel cannot fail: a workload holds only strings and
// flags.
func ztunnelWorkloadModel(pb *meshpb.ZtunnelWorkload) model.ZtunnelWorkload {
	return model.ZtunnelWorkload{
		UID:               pb.GetUid(),
		Name:              pb.GetName(),
		Namespace:         pb.GetNamespace(),
		Addresses:         stringList(pb.GetAddresses()),
		Node:              pb.GetNode(),
		ServiceAccount:    pb.GetServiceAccount(),
		Identity:          pb.GetIdentity(),
		Protocol:          model.TunnelProtocol(pb.GetProtocol()),
		Captured:          pb.GetCaptured(),
		Waypoint:          pb.GetWaypoint(),
		CanonicalName:     pb.GetCanonicalName(),
		CanonicalRevision: pb.GetCanonicalRevision(),
		Unhealthy:         pb.GetUnhealthy(),
		Policies:          stringList(pb.GetPolicies()),
	}
}

func ztunnelServicePB(s *model.ZtunnelService) *meshpb.ZtunnelService {
	return &meshpb.ZtunnelService{
		Name:               s.Name,
		Namespace:          s.Namespace,
		Hostname:           s.Hostname,
		Addresses:          stringList(s.Addresses),
		Ports:              pbList(s.Ports, portMappingPB),
		Endpoints:          pbList(s.Endpoints, ztunnelEndpointPB),
		Waypoint:           s.Waypoint,
		IngressUseWaypoint: s.IngressUseWaypoint,
	}
}

func ztunnelServiceModel(pb *meshpb.ZtunnelService) (model.ZtunnelService, error) {
	s := model.ZtunnelService{
		Name:               pb.GetName(),
		Namespace:          pb.GetNamespace(),
		Hostname:           pb.GetHostname(),
		Addresses:          stringList(pb.GetAddresses()),
		Waypoint:           pb.GetWaypoint(),
		IngressUseWaypoint: pb.GetIngressUseWaypoint(),
	}
	var err error
	if s.Ports, err = checkedModelList("ports", pb.GetPorts(), portMappingModel); err != nil {
		return s, err
	}
	s.Endpoints, err = checkedModelList("endpoints", pb.GetEndpoints(), ztunnelEndpointModel)
	return s, err
}

func portMappingPB(p *model.PortMapping) *meshpb.PortMapping {
	return &meshpb.PortMapping{Port: uint32(p.Port), TargetPort: uint32(p.TargetPort)}
}

func portMappingModel(pb *meshpb.PortMapping) (model.PortMapping, error) {
	var c checker
	p := model.PortMapping{
		Port:       c.port("port", pb.GetPort()),
		TargetPort: c.port("targetPort", pb.GetTargetPort()),
	}
	return p, c.err
}

func ztunnelEndpointPB(e *model.ZtunnelEndpoint) *meshpb.ZtunnelEndpoint {
	return &meshpb.ZtunnelEndpoint{Workload: e.Workload, Ports: pbList(e.Ports, portMappingPB)}
}

func ztunnelEndpointModel(pb *meshpb.ZtunnelEndpoint) (model.ZtunnelEndpoint, error) {
	e := model.ZtunnelEndpoint{Workload: pb.GetWorkload()}
	var err error
	e.Ports, err = checkedModelList("ports", pb.GetPorts(), portMappingModel)
	return e, err
}

func ztunnelWaypointPB(w *model.ZtunnelWaypoint) *meshpb.ZtunnelWaypoint {
	return &meshpb.ZtunnelWaypoint{
		Name:       w.Name,
		Namespace:  w.Namespace,
		Address:    w.Address,
		HbonePort:  uint32(w.HBONEPort),
		Instances:  stringList(w.Instances),
		Identities: stringList(w.Identities),
	}
}

func ztunnelWaypointModel(pb *meshpb.ZtunnelWaypoint) (model.ZtunnelWaypoint, error) {
	var c checker
	w := model.ZtunnelWaypoint{
		Name:       pb.GetName(),
		Namespace:  pb.GetNamespace(),
		Address:    pb.GetAddress(),
		HBONEPort:  c.port("hbonePort", pb.GetHbonePort()),
		Instances:  stringList(pb.GetInstances()),
		Identities: stringList(pb.GetIdentities()),
	}
	return w, c.err
}
