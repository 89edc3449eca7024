package wire

import (
	"errors"
	"fmt"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

// Waypoint converts a waypoint's configuration to the message the control
// plane pushes. The message shares no memory with w. Strings go as they
// are: protobuf requires them to be valid UTF-8, which configurations
// translated from Kubernetes objects (JSON) always are.
func Waypoint(w *model.Waypoint) *meshpb.WaypointConfig {
	if w == nil {
		return nil
	}
	return &meshpb.WaypointConfig{
		Name:         w.Name,
		Namespace:    w.Namespace,
		Services:     pbList(w.Services, servicePB),
		Workloads:    pbList(w.Workloads, workloadPB),
		Clusters:     pbList(w.Clusters, clusterPB),
		Policies:     pbList(w.Policies, policyPB),
		Telemetry:    telemetryPB(&w.Telemetry),
		RateLimits:   pbList(w.RateLimits, rateLimitPB),
		DefaultRetry: retryPB(w.DefaultRetry),
	}
}

// ToModel converts a pushed message back to the model. It fails, naming the
// field, on values the model cannot hold; it does not run Validate.
func ToModel(pb *meshpb.WaypointConfig) (*model.Waypoint, error) {
	if pb == nil {
		return nil, errors.New("no waypoint configuration (nil message)")
	}
	w := &model.Waypoint{
		Name:      pb.GetName(),
		Namespace: pb.GetNamespace(),
		Policies:  modelList(pb.GetPolicies(), policyModel),
		Telemetry: telemetryModel(pb.GetTelemetry()),
	}
	var err error
	if w.Services, err = checkedModelList("services", pb.GetServices(), serviceModel); err != nil {
		return nil, err
	}
	if w.Workloads, err = checkedModelList("workloads", pb.GetWorkloads(), workloadModel); err != nil {
		return nil, err
	}
	if w.Clusters, err = checkedModelList("clusters", pb.GetClusters(), clusterModel); err != nil {
		return nil, err
	}
	if w.RateLimits, err = checkedModelList("rateLimits", pb.GetRateLimits(), rateLimitModel); err != nil {
		return nil, err
	}
	if w.DefaultRetry, err = retryModel(pb.GetDefaultRetry()); err != nil {
		return nil, fmt.Errorf("defaultRetry.%w", err)
	}
	return w, nil
}

func telemetryPB(t *model.Telemetry) *meshpb.Telemetry {
	return &meshpb.Telemetry{
		AccessLog:       t.AccessLog,
		TracingPercent:  ptr(t.TracingPercent),
		TracingEndpoint: t.TracingEndpoint,
		TracingProtocol: string(t.TracingProtocol),
		TracingPath:     t.TracingPath,
	}
}

// telemetryModel: an absent message is the zero Telemetry.
func telemetryModel(pb *meshpb.Telemetry) model.Telemetry {
	if pb == nil {
		return model.Telemetry{}
	}
	return model.Telemetry{
		AccessLog:       pb.GetAccessLog(),
		TracingPercent:  ptr(pb.TracingPercent),
		TracingEndpoint: pb.GetTracingEndpoint(),
		TracingProtocol: model.TracingProtocol(pb.GetTracingProtocol()),
		TracingPath:     pb.GetTracingPath(),
	}
}

func servicePB(s *model.Service) *meshpb.Service {
	return &meshpb.Service{
		Name:       s.Name,
		Namespace:  s.Namespace,
		Hostname:   s.Hostname,
		Addresses:  stringList(s.Addresses),
		Ports:      pbList(s.Ports, servicePortPB),
		Policies:   pbList(s.Policies, policyPB),
		RateLimits: pbList(s.RateLimits, rateLimitPB),
	}
}

func serviceModel(pb *meshpb.Service) (model.Service, error) {
	s := model.Service{
		Name:      pb.GetName(),
		Namespace: pb.GetNamespace(),
		Hostname:  pb.GetHostname(),
		Addresses: stringList(pb.GetAddresses()),
		Policies:  modelList(pb.GetPolicies(), policyModel),
	}
	var err error
	if s.Ports, err = checkedModelList("ports", pb.GetPorts(), servicePortModel); err != nil {
		return s, err
	}
	if s.RateLimits, err = checkedModelList("rateLimits", pb.GetRateLimits(), rateLimitModel); err != nil {
		return s, err
	}
	return s, nil
}

func servicePortPB(p *model.ServicePort) *meshpb.ServicePort {
	return &meshpb.ServicePort{
		Name:     p.Name,
		Port:     uint32(p.Port),
		Protocol: string(p.Protocol),
		Cluster:  p.Cluster,
		Routes:   pbList(p.Routes, routePB),
	}
}

func servicePortModel(pb *meshpb.ServicePort) (model.ServicePort, error) {
	var c checker
	p := model.ServicePort{
		Name:     pb.GetName(),
		Port:     c.port("port", pb.GetPort()),
		Protocol: model.Protocol(pb.GetProtocol()),
		Cluster:  pb.GetCluster(),
	}
	if c.err != nil {
		return p, c.err
	}
	var err error
	p.Routes, err = checkedModelList("routes", pb.GetRoutes(), routeModel)
	return p, err
}

func workloadPB(w *model.Workload) *meshpb.Workload {
	return &meshpb.Workload{
		Name:      w.Name,
		Namespace: w.Namespace,
		Addresses: stringList(w.Addresses),
		Ports:     pbList(w.Ports, workloadPortPB),
		Identity:  w.Identity,
	}
}

func workloadModel(pb *meshpb.Workload) (model.Workload, error) {
	w := model.Workload{
		Name:      pb.GetName(),
		Namespace: pb.GetNamespace(),
		Addresses: stringList(pb.GetAddresses()),
		Identity:  pb.GetIdentity(),
	}
	var err error
	w.Ports, err = checkedModelList("ports", pb.GetPorts(), workloadPortModel)
	return w, err
}

func workloadPortPB(p *model.WorkloadPort) *meshpb.WorkloadPort {
	return &meshpb.WorkloadPort{Port: uint32(p.Port), Protocol: string(p.Protocol)}
}

func workloadPortModel(pb *meshpb.WorkloadPort) (model.WorkloadPort, error) {
	var c checker
	p := model.WorkloadPort{
		Port:     c.port("port", pb.GetPort()),
		Protocol: model.Protocol(pb.GetProtocol()),
	}
	return p, c.err
}
