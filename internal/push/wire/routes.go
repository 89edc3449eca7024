package wire

import (
	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

func routePB(r *model.HTTPRoute) *meshpb.HTTPRoute {
	return &meshpb.HTTPRoute{
		Kind:      string(r.Kind),
		Name:      r.Name,
		Namespace: r.Namespace,
		Created:   timestampPB(r.Created),
		Rules:     pbList(r.Rules, rulePB),
	}
}

func routeModel(pb *meshpb.HTTPRoute) (model.HTTPRoute, error) {
	var c checker
	r := model.HTTPRoute{
		Kind:      model.RouteKind(pb.GetKind()),
		Name:      pb.GetName(),
		Namespace: pb.GetNamespace(),
		Created:   c.time("created", pb.GetCreated()),
	}
	if c.err != nil {
		return r, c.err
	}
	var err error
	r.Rules, err = checkedModelList("rules", pb.GetRules(), ruleModel)
	return r, err
}

func rulePB(r *model.RouteRule) *meshpb.RouteRule {
	return &meshpb.RouteRule{
		Name:     r.Name,
		Matches:  pbList(r.Matches, matchPB),
		Filters:  pbList(r.Filters, filterPB),
		Backends: pbList(r.Backends, backendPB),
		Timeouts: timeoutsPB(&r.Timeouts),
		Retry:    retryPB(r.Retry),
		Fault:    faultPB(r.Fault),
	}
}

func ruleModel(pb *meshpb.RouteRule) (model.RouteRule, error) {
	r := model.RouteRule{
		Name:    pb.GetName(),
		Matches: modelList(pb.GetMatches(), matchModel),
	}
	var err error
	if r.Filters, err = checkedModelList("filters", pb.GetFilters(), filterModel); err != nil {
		return r, err
	}
	if r.Backends, err = checkedModelList("backends", pb.GetBackends(), backendModel); err != nil {
		return r, err
	}
	if r.Timeouts, err = timeoutsModel(pb.GetTimeouts()); err != nil {
		return r, within("timeouts", err)
	}
	if r.Retry, err = retryModel(pb.GetRetry()); err != nil {
		return r, within("retry", err)
	}
	if r.Fault, err = faultModel(pb.GetFault()); err != nil {
		return r, within("fault", err)
	}
	return r, nil
}

func matchPB(m *model.RouteMatch) *meshpb.RouteMatch {
	pb := &meshpb.RouteMatch{
		Headers:     pbList(m.Headers, valueMatchPB),
		QueryParams: pbList(m.QueryParams, valueMatchPB),
		Method:      m.Method,
	}
	if p := m.Path; p != nil {
		pb.Path = &meshpb.PathMatch{Type: p.Type, Value: p.Value}
	}
	if g := m.GRPC; g != nil {
		pb.Grpc = &meshpb.GRPCMethod{Type: g.Type, Service: g.Service, Method: g.Method}
	}
	return pb
}

func matchModel(pb *meshpb.RouteMatch) model.RouteMatch {
	m := model.RouteMatch{
		Headers:     modelList(pb.GetHeaders(), valueMatchModel),
		QueryParams: modelList(pb.GetQueryParams(), valueMatchModel),
		Method:      pb.GetMethod(),
	}
	if p := pb.GetPath(); p != nil {
		m.Path = &model.PathMatch{Type: p.GetType(), Value: p.GetValue()}
	}
	if g := pb.GetGrpc(); g != nil {
		m.GRPC = &model.GRPCMethod{Type: g.GetType(), Service: g.GetService(), Method: g.GetMethod()}
	}
	return m
}

func valueMatchPB(v *model.ValueMatch) *meshpb.ValueMatch {
	return &meshpb.ValueMatch{Type: v.Type, Name: v.Name, Value: v.Value}
}

func valueMatchModel(pb *meshpb.ValueMatch) model.ValueMatch {
	return model.ValueMatch{Type: pb.GetType(), Name: pb.GetName(), Value: pb.GetValue()}
}

func backendPB(b *model.Backend) *meshpb.Backend {
	return &meshpb.Backend{
		Cluster: b.Cluster,
		Weight:  ptr(b.Weight),
		Filters: pbList(b.Filters, filterPB),
	}
}

func backendModel(pb *meshpb.Backend) (model.Backend, error) {
	b := model.Backend{Cluster: pb.GetCluster()}
	if pb != nil {
		b.Weight = ptr(pb.Weight)
	}
	var err error
	b.Filters, err = checkedModelList("filters", pb.GetFilters(), filterModel)
	return b, err
}

// timeoutsPB leaves out a rule's timeouts when there are none, as most
// rules have.
func timeoutsPB(t *model.Timeouts) *meshpb.Timeouts {
	pb := &meshpb.Timeouts{
		Request:        durationPB(t.Request),
		BackendRequest: durationPB(t.BackendRequest),
	}
	if pb.Request == nil && pb.BackendRequest == nil {
		return nil
	}
	return pb
}

func timeoutsModel(pb *meshpb.Timeouts) (model.Timeouts, error) {
	var c checker
	t := model.Timeouts{
		Request:        c.duration("request", pb.GetRequest()),
		BackendRequest: c.duration("backendRequest", pb.GetBackendRequest()),
	}
	return t, c.err
}

func retryPB(r *model.Retry) *meshpb.Retry {
	if r == nil {
		return nil
	}
	return &meshpb.Retry{
		Attempts:      int64(r.Attempts),
		Codes:         ints(r.Codes),
		On:            stringList(r.On),
		PerTryTimeout: durationPB(r.PerTryTimeout),
		Backoff:       durationPB(r.Backoff),
	}
}

func retryModel(pb *meshpb.Retry) (*model.Retry, error) {
	if pb == nil {
		return nil, nil
	}
	var c checker
	r := &model.Retry{
		Attempts:      c.int("attempts", pb.GetAttempts()),
		Codes:         c.ints("codes", pb.GetCodes()),
		On:            stringList(pb.GetOn()),
		PerTryTimeout: c.duration("perTryTimeout", pb.GetPerTryTimeout()),
		Backoff:       c.duration("backoff", pb.GetBackoff()),
	}
	return r, c.err
}

func faultPB(f *model.Fault) *meshpb.Fault {
	if f == nil {
		return nil
	}
	pb := &meshpb.Fault{}
	if d := f.Delay; d != nil {
		pb.Delay = &meshpb.FaultDelay{Percent: d.Percent, FixedDelay: durationPB(d.Fixed)}
	}
	if a := f.Abort; a != nil {
		pb.Abort = &meshpb.FaultAbort{Percent: a.Percent, HttpStatus: int64(a.HTTPStatus)}
	}
	return pb
}

func faultModel(pb *meshpb.Fault) (*model.Fault, error) {
	if pb == nil {
		return nil, nil
	}
	var c checker
	f := &model.Fault{}
	if d := pb.GetDelay(); d != nil {
		f.Delay = &model.FaultDelay{
			Percent: d.GetPercent(),
			Fixed:   c.duration("delay.fixedDelay", d.GetFixedDelay()),
		}
	}
	if a := pb.GetAbort(); a != nil {
		f.Abort = &model.FaultAbort{
			Percent:    a.GetPercent(),
			HTTPStatus: c.int("abort.httpStatus", a.GetHttpStatus()),
		}
	}
	return f, c.err
}
