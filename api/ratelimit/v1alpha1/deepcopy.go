package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Deep copies, as deepcopy-gen would write them (written by hand: meshway
// runs no code generator for this package; TestDeepCopy checks that every
// field is copied and nothing is shared).

// DeepCopyInto copies in into out.
func (in *LocalRateLimitPolicy) DeepCopyInto(out *LocalRateLimitPolicy) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	in.Spec.DeepCopyInto(&out.Spec)
	in.Status.DeepCopyInto(&out.Status)
}

// DeepCopy returns a deep copy of in.
func (in *LocalRateLimitPolicy) DeepCopy() *LocalRateLimitPolicy {
	if in == nil {
		return nil
	}
	out := new(LocalRateLimitPolicy)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *LocalRateLimitPolicy) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyInto copies in into out.
func (in *LocalRateLimitPolicyList) DeepCopyInto(out *LocalRateLimitPolicyList) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]LocalRateLimitPolicy, len(in.Items))
		for i := range in.Items {
			in.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopy returns a deep copy of in.
func (in *LocalRateLimitPolicyList) DeepCopy() *LocalRateLimitPolicyList {
	if in == nil {
		return nil
	}
	out := new(LocalRateLimitPolicyList)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *LocalRateLimitPolicyList) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyInto copies in into out.
func (in *LocalRateLimitPolicySpec) DeepCopyInto(out *LocalRateLimitPolicySpec) {
	*out = *in
	if in.TargetRefs != nil {
		out.TargetRefs = make([]gwv1.LocalPolicyTargetReferenceWithSectionName, len(in.TargetRefs))
		for i := range in.TargetRefs {
			in.TargetRefs[i].DeepCopyInto(&out.TargetRefs[i])
		}
	}
	if in.Rules != nil {
		out.Rules = make([]RateLimitRule, len(in.Rules))
		for i := range in.Rules {
			in.Rules[i].DeepCopyInto(&out.Rules[i])
		}
	}
}

// DeepCopy returns a deep copy of in.
func (in *LocalRateLimitPolicySpec) DeepCopy() *LocalRateLimitPolicySpec {
	if in == nil {
		return nil
	}
	out := new(LocalRateLimitPolicySpec)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies in into out.
func (in *RateLimitRule) DeepCopyInto(out *RateLimitRule) {
	*out = *in
	if in.ClientSelectors != nil {
		out.ClientSelectors = make([]RateLimitSelectCondition, len(in.ClientSelectors))
		for i := range in.ClientSelectors {
			in.ClientSelectors[i].DeepCopyInto(&out.ClientSelectors[i])
		}
	}
	if in.Route != nil {
		out.Route = in.Route.DeepCopy()
	}
	out.Limit = in.Limit
	if in.Burst != nil {
		out.Burst = new(*in.Burst)
	}
}

// DeepCopy returns a deep copy of in.
func (in *RateLimitRule) DeepCopy() *RateLimitRule {
	if in == nil {
		return nil
	}
	out := new(RateLimitRule)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies in into out.
func (in *RateLimitSelectCondition) DeepCopyInto(out *RateLimitSelectCondition) {
	*out = *in
	if in.Headers != nil {
		out.Headers = make([]HeaderMatch, len(in.Headers))
		for i := range in.Headers {
			in.Headers[i].DeepCopyInto(&out.Headers[i])
		}
	}
	if in.SourceCIDR != nil {
		out.SourceCIDR = in.SourceCIDR.DeepCopy()
	}
	if in.SourcePrincipal != nil {
		out.SourcePrincipal = in.SourcePrincipal.DeepCopy()
	}
}

// DeepCopy returns a deep copy of in.
func (in *RateLimitSelectCondition) DeepCopy() *RateLimitSelectCondition {
	if in == nil {
		return nil
	}
	out := new(RateLimitSelectCondition)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies in into out.
func (in *HeaderMatch) DeepCopyInto(out *HeaderMatch) {
	*out = *in
	if in.Type != nil {
		out.Type = new(*in.Type)
	}
	if in.Value != nil {
		out.Value = new(*in.Value)
	}
}

// DeepCopy returns a deep copy of in.
func (in *HeaderMatch) DeepCopy() *HeaderMatch {
	if in == nil {
		return nil
	}
	out := new(HeaderMatch)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies in into out.
func (in *SourceMatch) DeepCopyInto(out *SourceMatch) {
	*out = *in
	if in.Type != nil {
		out.Type = new(*in.Type)
	}
}

// DeepCopy returns a deep copy of in.
func (in *SourceMatch) DeepCopy() *SourceMatch {
	if in == nil {
		return nil
	}
	out := new(SourceMatch)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies in into out.
func (in *PrincipalMatch) DeepCopyInto(out *PrincipalMatch) {
	*out = *in
	if in.Type != nil {
		out.Type = new(*in.Type)
	}
	if in.Value != nil {
		out.Value = new(*in.Value)
	}
}

// DeepCopy returns a deep copy of in.
func (in *PrincipalMatch) DeepCopy() *PrincipalMatch {
	if in == nil {
		return nil
	}
	out := new(PrincipalMatch)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies in into out.
func (in *RouteRef) DeepCopyInto(out *RouteRef) {
	*out = *in
	if in.Kind != nil {
		out.Kind = new(*in.Kind)
	}
	if in.RuleName != nil {
		out.RuleName = new(*in.RuleName)
	}
}

// DeepCopy returns a deep copy of in.
func (in *RouteRef) DeepCopy() *RouteRef {
	if in == nil {
		return nil
	}
	out := new(RouteRef)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies in into out.
func (in *RateLimitValue) DeepCopyInto(out *RateLimitValue) { *out = *in }

// DeepCopy returns a deep copy of in.
func (in *RateLimitValue) DeepCopy() *RateLimitValue {
	if in == nil {
		return nil
	}
	out := new(RateLimitValue)
	in.DeepCopyInto(out)
	return out
}
