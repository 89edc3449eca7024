package wire

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/model"
)

// Resources are xDS resources by type URL, then by name.
type Resources map[string]map[string]proto.Message

// ZtunnelWorkloadName, ZtunnelServiceName, ZtunnelWaypointName and
// ZtunnelPolicyName name each piece's resource (see ZtunnelTypes): what a
// ztunnel's other pieces call it by, so that the resource of a reference
// is found by name.
func ZtunnelWorkloadName(w *model.ZtunnelWorkload) string { return w.UID }

// ZtunnelServiceName: see ZtunnelWorkloadName.
func ZtunnelServiceName(s *model.ZtunnelService) string { return s.Namespace + "/" + s.Hostname }

// ZtunnelWaypointName: see ZtunnelWorkloadName.
func ZtunnelWaypointName(w *model.ZtunnelWaypoint) string { return w.Namespace + "/" + w.Name }

// ZtunnelPolicyName: see ZtunnelWorkloadName.
func ZtunnelPolicyName(p *model.AuthorizationPolicy) string { return p.Namespace + "/" + p.Name }

// ZtunnelResources converts the pieces every ztunnel shares (a
// translate.ZtunnelMesh; z.Node is not sent: each ztunnel knows its own)
// to the four resource types, each keyed by name. The messages share no
// memory with z. Two pieces of one name (which Validate refuses) keep the
// last.
func ZtunnelResources(z *model.Ztunnel) Resources {
	out := Resources{
		ZtunnelWorkloadType: make(map[string]proto.Message, len(z.Workloads)),
		ZtunnelServiceType:  make(map[string]proto.Message, len(z.Services)),
		ZtunnelWaypointType: make(map[string]proto.Message, len(z.Waypoints)),
		ZtunnelPolicyType:   make(map[string]proto.Message, len(z.Policies)),
	}
	for i := range z.Workloads {
		w := &z.Workloads[i]
		out[ZtunnelWorkloadType][ZtunnelWorkloadName(w)] = ZtunnelWorkloadResource(w)
	}
	for i := range z.Services {
		s := &z.Services[i]
		out[ZtunnelServiceType][ZtunnelServiceName(s)] = ZtunnelServiceResource(s)
	}
	for i := range z.Waypoints {
		w := &z.Waypoints[i]
		out[ZtunnelWaypointType][ZtunnelWaypointName(w)] = ZtunnelWaypointResource(w)
	}
	for i := range z.Policies {
		p := &z.Policies[i]
		out[ZtunnelPolicyType][ZtunnelPolicyName(p)] = ZtunnelPolicyResource(p)
	}
	return out
}

// ZtunnelWorkloadResource, ZtunnelServiceResource, ZtunnelWaypointResource
// and ZtunnelPolicyResource convert one piece to its resource's message
// (for a caller that pushes only the pieces that changed).
func ZtunnelWorkloadResource(w *model.ZtunnelWorkload) proto.Message { return ztunnelWorkloadPB(w) }

// ZtunnelServiceResource: see ZtunnelWorkloadResource.
func ZtunnelServiceResource(s *model.ZtunnelService) proto.Message { return ztunnelServicePB(s) }

// ZtunnelWaypointResource: see ZtunnelWorkloadResource.
func ZtunnelWaypointResource(w *model.ZtunnelWaypoint) proto.Message { return ztunnelWaypointPB(w) }

// ZtunnelPolicyResource: see ZtunnelWorkloadResource.
func ZtunnelPolicyResource(p *model.AuthorizationPolicy) proto.Message { return policyPB(p) }

// ztunnelPiece converts one resource of a ztunnel type to the model and
// checks that its name is the one its content gives it (a resource under
// another name would be found by no reference, and two could then hold
// one workload).
func ztunnelPiece(typeURL, name string, msg proto.Message) (any, error) {
	var piece any
	var want string
	switch typeURL {
	case ZtunnelWorkloadType:
		pb, ok := msg.(*meshpb.ZtunnelWorkload)
		if !ok {
			return nil, fmt.Errorf("a %T, not a ZtunnelWorkload", msg)
		}
		w := ztunnelWorkloadModel(pb)
		piece, want = w, ZtunnelWorkloadName(&w)
	case ZtunnelServiceType:
		pb, ok := msg.(*meshpb.ZtunnelService)
		if !ok {
			return nil, fmt.Errorf("a %T, not a ZtunnelService", msg)
		}
		s, err := ztunnelServiceModel(pb)
		if err != nil {
			return nil, err
		}
		piece, want = s, ZtunnelServiceName(&s)
	case ZtunnelWaypointType:
		pb, ok := msg.(*meshpb.ZtunnelWaypoint)
		if !ok {
			return nil, fmt.Errorf("a %T, not a ZtunnelWaypoint", msg)
		}
		w, err := ztunnelWaypointModel(pb)
		if err != nil {
			return nil, err
		}
		piece, want = w, ZtunnelWaypointName(&w)
	case ZtunnelPolicyType:
		pb, ok := msg.(*meshpb.AuthorizationPolicy)
		if !ok {
			return nil, fmt.Errorf("a %T, not an AuthorizationPolicy", msg)
		}
		p := policyModel(pb)
		piece, want = p, ZtunnelPolicyName(&p)
	default:
		return nil, fmt.Errorf("%q is not a ztunnel resource type", typeURL)
	}
	if name != want {
		return nil, fmt.Errorf("the resource is named %q but its content names it %q", name, want)
	}
	return piece, nil
}
