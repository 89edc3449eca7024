package wire

import (
	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

// Authorization policies: every field is a string or a list of strings,
// so their conversion cannot fail.

func policyPB(p *model.AuthorizationPolicy) *meshpb.AuthorizationPolicy {
	return &meshpb.AuthorizationPolicy{
		Name:      p.Name,
		Namespace: p.Namespace,
		Action:    string(p.Action),
		Rules:     pbList(p.Rules, authzRulePB),
	}
}

func policyModel(pb *meshpb.AuthorizationPolicy) model.AuthorizationPolicy {
	return model.AuthorizationPolicy{
		Name:      pb.GetName(),
		Namespace: pb.GetNamespace(),
		Action:    model.Action(pb.GetAction()),
		Rules:     modelList(pb.GetRules(), authzRuleModel),
	}
}

func authzRulePB(r *model.Rule) *meshpb.AuthorizationRule {
	return &meshpb.AuthorizationRule{
		From: pbList(r.From, sourcePB),
		To:   pbList(r.To, operationPB),
		When: pbList(r.When, conditionPB),
	}
}

func authzRuleModel(pb *meshpb.AuthorizationRule) model.Rule {
	return model.Rule{
		From: modelList(pb.GetFrom(), sourceModel),
		To:   modelList(pb.GetTo(), operationModel),
		When: modelList(pb.GetWhen(), conditionModel),
	}
}

func sourcePB(s *model.Source) *meshpb.AuthorizationSource {
	return &meshpb.AuthorizationSource{
		Principals:        stringList(s.Principals),
		NotPrincipals:     stringList(s.NotPrincipals),
		Namespaces:        stringList(s.Namespaces),
		NotNamespaces:     stringList(s.NotNamespaces),
		IpBlocks:          stringList(s.IPBlocks),
		NotIpBlocks:       stringList(s.NotIPBlocks),
		RemoteIpBlocks:    stringList(s.RemoteIPBlocks),
		NotRemoteIpBlocks: stringList(s.NotRemoteIPBlocks),
	}
}

func sourceModel(pb *meshpb.AuthorizationSource) model.Source {
	return model.Source{
		Principals:        stringList(pb.GetPrincipals()),
		NotPrincipals:     stringList(pb.GetNotPrincipals()),
		Namespaces:        stringList(pb.GetNamespaces()),
		NotNamespaces:     stringList(pb.GetNotNamespaces()),
		IPBlocks:          stringList(pb.GetIpBlocks()),
		NotIPBlocks:       stringList(pb.GetNotIpBlocks()),
		RemoteIPBlocks:    stringList(pb.GetRemoteIpBlocks()),
		NotRemoteIPBlocks: stringList(pb.GetNotRemoteIpBlocks()),
	}
}

func operationPB(o *model.Operation) *meshpb.AuthorizationOperation {
	return &meshpb.AuthorizationOperation{
		Hosts:      stringList(o.Hosts),
		NotHosts:   stringList(o.NotHosts),
		Ports:      stringList(o.Ports),
		NotPorts:   stringList(o.NotPorts),
		Methods:    stringList(o.Methods),
		NotMethods: stringList(o.NotMethods),
		Paths:      stringList(o.Paths),
		NotPaths:   stringList(o.NotPaths),
	}
}

func operationModel(pb *meshpb.AuthorizationOperation) model.Operation {
	return model.Operation{
		Hosts:      stringList(pb.GetHosts()),
		NotHosts:   stringList(pb.GetNotHosts()),
		Ports:      stringList(pb.GetPorts()),
		NotPorts:   stringList(pb.GetNotPorts()),
		Methods:    stringList(pb.GetMethods()),
		NotMethods: stringList(pb.GetNotMethods()),
		Paths:      stringList(pb.GetPaths()),
		NotPaths:   stringList(pb.GetNotPaths()),
	}
}

func conditionPB(c *model.Condition) *meshpb.AuthorizationCondition {
	return &meshpb.AuthorizationCondition{
		Key:       c.Key,
		Values:    stringList(c.Values),
		NotValues: stringList(c.NotValues),
	}
}

func conditionModel(pb *meshpb.AuthorizationCondition) model.Condition {
	return model.Condition{
		Key:       pb.GetKey(),
		Values:    stringList(pb.GetValues()),
		NotValues: stringList(pb.GetNotValues()),
	}
}
