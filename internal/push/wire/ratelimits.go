package wire

import (
	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

func rateLimitPB(l *model.LocalRateLimit) *meshpb.LocalRateLimit {
	return &meshpb.LocalRateLimit{
		Name:      l.Name,
		Namespace: l.Namespace,
		Rules:     pbList(l.Rules, rateLimitRulePB),
	}
}

func rateLimitModel(pb *meshpb.LocalRateLimit) (model.LocalRateLimit, error) {
	l := model.LocalRateLimit{Name: pb.GetName(), Namespace: pb.GetNamespace()}
	var err error
	l.Rules, err = checkedModelList("rules", pb.GetRules(), rateLimitRuleModel)
	return l, err
}

func rateLimitRulePB(r *model.RateLimitRule) *meshpb.RateLimitRule {
	pb := &meshpb.RateLimitRule{
		ClientSelectors: pbList(r.ClientSelectors, selectorPB),
		Limit: &meshpb.RateLimitValue{
			Requests: int64(r.Limit.Requests),
			Unit:     string(r.Limit.Unit),
		},
		Burst: int64(r.Burst),
	}
	if rt := r.Route; rt != nil {
		pb.Route = &meshpb.RateLimitRoute{
			Kind:      string(rt.Kind),
			Namespace: rt.Namespace,
			Name:      rt.Name,
			RuleName:  rt.RuleName,
		}
	}
	return pb
}

func rateLimitRuleModel(pb *meshpb.RateLimitRule) (model.RateLimitRule, error) {
	var c checker
	r := model.RateLimitRule{
		ClientSelectors: modelList(pb.GetClientSelectors(), selectorModel),
		Limit: model.RateLimitValue{
			Requests: c.int("limit.requests", pb.GetLimit().GetRequests()),
			Unit:     model.RateLimitUnit(pb.GetLimit().GetUnit()),
		},
		Burst: c.int("burst", pb.GetBurst()),
	}
	if rt := pb.GetRoute(); rt != nil {
		r.Route = &model.RateLimitRoute{
			Kind:      model.RouteKind(rt.GetKind()),
			Namespace: rt.GetNamespace(),
			Name:      rt.GetName(),
			RuleName:  rt.GetRuleName(),
		}
	}
	return r, c.err
}

func selectorPB(s *model.RateLimitSelector) *meshpb.RateLimitSelector {
	pb := &meshpb.RateLimitSelector{Headers: pbList(s.Headers, headerMatchPB)}
	if m := s.SourceCIDR; m != nil {
		pb.SourceCidr = &meshpb.RateLimitSourceMatch{Type: m.Type, Value: m.Value}
	}
	if m := s.SourcePrincipal; m != nil {
		pb.SourcePrincipal = &meshpb.RateLimitPrincipalMatch{Type: m.Type, Value: m.Value}
	}
	return pb
}

func selectorModel(pb *meshpb.RateLimitSelector) model.RateLimitSelector {
	s := model.RateLimitSelector{Headers: modelList(pb.GetHeaders(), headerMatchModel)}
	if m := pb.GetSourceCidr(); m != nil {
		s.SourceCIDR = &model.RateLimitSourceMatch{Type: m.GetType(), Value: m.GetValue()}
	}
	if m := pb.GetSourcePrincipal(); m != nil {
		s.SourcePrincipal = &model.RateLimitPrincipalMatch{Type: m.GetType(), Value: m.GetValue()}
	}
	return s
}

func headerMatchPB(h *model.RateLimitHeaderMatch) *meshpb.RateLimitHeaderMatch {
	return &meshpb.RateLimitHeaderMatch{Type: h.Type, Name: h.Name, Value: h.Value}
}

func headerMatchModel(pb *meshpb.RateLimitHeaderMatch) model.RateLimitHeaderMatch {
	return model.RateLimitHeaderMatch{Type: pb.GetType(), Name: pb.GetName(), Value: pb.GetValue()}
}
