package wire

import (
	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

func clusterPB(c *model.Cluster) *meshpb.Cluster {
	pb := &meshpb.Cluster{
		Name:      c.Name,
		Endpoints: pbList(c.Endpoints, endpointPB),
		Protocol:  string(c.Protocol),
	}
	if lb := c.LoadBalancer; lb != nil {
		pb.LoadBalancer = &meshpb.LoadBalancer{
			Policy:       lb.Policy,
			HashHeader:   lb.HashHeader,
			HashCookie:   lb.HashCookie,
			HashSourceIp: lb.HashSourceIP,
		}
	}
	if p := c.ConnectionPool; p != nil {
		pb.ConnectionPool = &meshpb.ConnectionPool{
			MaxConnections:           int64(p.MaxConnections),
			Http1MaxPendingRequests:  int64(p.HTTP1MaxPendingRequests),
			Http2MaxRequests:         int64(p.HTTP2MaxRequests),
			MaxRetries:               int64(p.MaxRetries),
			MaxRequestsPerConnection: int64(p.MaxRequestsPerConnection),
		}
	}
	if o := c.OutlierDetection; o != nil {
		pb.OutlierDetection = &meshpb.OutlierDetection{
			Consecutive5XxErrors:     int64(o.Consecutive5xxErrors),
			ConsecutiveGatewayErrors: int64(o.ConsecutiveGatewayErrors),
			Interval:                 durationPB(o.Interval),
			BaseEjectionTime:         durationPB(o.BaseEjectionTime),
			MaxEjectionPercent:       int64(o.MaxEjectionPercent),
		}
	}
	return pb
}

func clusterModel(pb *meshpb.Cluster) (model.Cluster, error) {
	c := model.Cluster{
		Name:      pb.GetName(),
		Endpoints: modelList(pb.GetEndpoints(), endpointModel),
		Protocol:  model.Protocol(pb.GetProtocol()),
	}
	if lb := pb.GetLoadBalancer(); lb != nil {
		c.LoadBalancer = &model.LoadBalancer{
			Policy:       lb.GetPolicy(),
			HashHeader:   lb.GetHashHeader(),
			HashCookie:   lb.GetHashCookie(),
			HashSourceIP: lb.GetHashSourceIp(),
		}
	}
	var ck checker
	if p := pb.GetConnectionPool(); p != nil {
		c.ConnectionPool = &model.ConnectionPool{
			MaxConnections:           ck.int("connectionPool.maxConnections", p.GetMaxConnections()),
			HTTP1MaxPendingRequests:  ck.int("connectionPool.http1MaxPendingRequests", p.GetHttp1MaxPendingRequests()),
			HTTP2MaxRequests:         ck.int("connectionPool.http2MaxRequests", p.GetHttp2MaxRequests()),
			MaxRetries:               ck.int("connectionPool.maxRetries", p.GetMaxRetries()),
			MaxRequestsPerConnection: ck.int("connectionPool.maxRequestsPerConnection", p.GetMaxRequestsPerConnection()),
		}
	}
	if o := pb.GetOutlierDetection(); o != nil {
		c.OutlierDetection = &model.OutlierDetection{
			Consecutive5xxErrors:     ck.int("outlierDetection.consecutive5xxErrors", o.GetConsecutive5XxErrors()),
			ConsecutiveGatewayErrors: ck.int("outlierDetection.consecutiveGatewayErrors", o.GetConsecutiveGatewayErrors()),
			Interval:                 ck.duration("outlierDetection.interval", o.GetInterval()),
			BaseEjectionTime:         ck.duration("outlierDetection.baseEjectionTime", o.GetBaseEjectionTime()),
			MaxEjectionPercent:       ck.int("outlierDetection.maxEjectionPercent", o.GetMaxEjectionPercent()),
		}
	}
	return c, ck.err
}

func endpointPB(e *model.Endpoint) *meshpb.Endpoint {
	return &meshpb.Endpoint{
		Address:   e.Address,
		Identity:  e.Identity,
		Labels:    labels(e.Labels),
		Workload:  e.Workload,
		Namespace: e.Namespace,
		Weight:    e.Weight,
		Unhealthy: e.Unhealthy,
	}
}

func endpointModel(pb *meshpb.Endpoint) model.Endpoint {
	return model.Endpoint{
		Address:   pb.GetAddress(),
		Identity:  pb.GetIdentity(),
		Labels:    labels(pb.GetLabels()),
		Workload:  pb.GetWorkload(),
		Namespace: pb.GetNamespace(),
		Weight:    pb.GetWeight(),
		Unhealthy: pb.GetUnhealthy(),
	}
}
