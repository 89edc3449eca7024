package wire

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/internal/model"
)

// ZtunnelState is the ztunnel's side of ZtunnelResources: the resources of
// the four ztunnel types it has accepted, converted to the model, from
// which it assembles its node's configuration (Assemble). The types arrive
// independently (each in its own responses, acknowledged on its own), so
// the state may for a while hold a reference to a piece of another type
// that has not arrived yet; Assemble says so with an *IncompleteError.
// It is not safe for concurrent use.
type ZtunnelState struct {
	workloads map[string]model.ZtunnelWorkload
	services  map[string]model.ZtunnelService
	waypoints map[string]model.ZtunnelWaypoint
	policies  map[string]model.AuthorizationPolicy
}

// NewZtunnelState returns an empty state.
func NewZtunnelState() *ZtunnelState {
	return &ZtunnelState{
		workloads: map[string]model.ZtunnelWorkload{},
		services:  map[string]model.ZtunnelService{},
		waypoints: map[string]model.ZtunnelWaypoint{},
		policies:  map[string]model.AuthorizationPolicy{},
	}
}

// Len is how many resources of a type the state holds.
func (s *ZtunnelState) Len(typeURL string) int {
	switch typeURL {
	case ZtunnelWorkloadType:
		return len(s.workloads)
	case ZtunnelServiceType:
		return len(s.services)
	case ZtunnelWaypointType:
		return len(s.waypoints)
	case ZtunnelPolicyType:
		return len(s.policies)
	}
	return 0
}

// Apply applies one response of a type: the resources updated (added or
// changed) and the names removed. It is all or nothing: when a resource
// does not convert (a port out of range, a name its content contradicts,
// a message of another type), nothing changes and the error names each bad
// resource. undo puts back what Apply changed, for a caller that finds
// the assembled result invalid and rejects the response; it must be
// called before the next Apply, if at all.
func (s *ZtunnelState) Apply(typeURL string, updated map[string]proto.Message, removed []string) (undo func(), err error) {
	pieces := make(map[string]any, len(updated))
	var errs []string
	for _, name := range slices.Sorted(maps.Keys(updated)) {
		p, err := ztunnelPiece(typeURL, name, updated[name])
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		pieces[name] = p
	}
	if len(errs) > 0 {
		return func() {}, errors.New(strings.Join(errs, "; "))
	}
	switch typeURL {
	case ZtunnelWorkloadType:
		return apply(s.workloads, pieces, removed), nil
	case ZtunnelServiceType:
		return apply(s.services, pieces, removed), nil
	case ZtunnelWaypointType:
		return apply(s.waypoints, pieces, removed), nil
	case ZtunnelPolicyType:
		return apply(s.policies, pieces, removed), nil
	}
	// Only reached with nothing updated: ztunnelPiece refuses the type.
	return func() {}, fmt.Errorf("%q is not a ztunnel resource type", typeURL)
}

// apply sets the pieces and deletes the removed names in m, remembering
// what it replaced so that the returned function restores it.
func apply[T any](m map[string]T, pieces map[string]any, removed []string) (undo func()) {
	type prev struct {
		v  T
		ok bool
	}
	before := make(map[string]prev, len(pieces)+len(removed))
	keep := func(name string) {
		if _, seen := before[name]; !seen {
			v, ok := m[name]
			before[name] = prev{v, ok}
		}
	}
	for name, p := range pieces {
		keep(name)
		m[name] = p.(T)
	}
	for _, name := range removed {
		keep(name)
		delete(m, name)
	}
	return func() {
		for name, p := range before {
			if p.ok {
				m[name] = p.v
			} else {
				delete(m, name)
			}
		}
	}
}

// IncompleteError is Assemble's answer when a piece refers to another the
// state does not hold: not (necessarily) an invalid configuration, but
// one whose other parts have not arrived yet. A ztunnel keeps serving the
// configuration it had until they do.
type IncompleteError struct {
	// Missing lists each dangling reference, e.g.
	// "workload Kubernetes//Pod/ns/a: waypoint ns/wp".
	Missing []string
}

func (e *IncompleteError) Error() string {
	const shown = 5
	s := fmt.Sprintf("the configuration refers to %d piece(s) not received: %s", len(e.Missing), strings.Join(e.Missing[:min(shown, len(e.Missing))], "; "))
	if len(e.Missing) > shown {
		s += fmt.Sprintf("; and %d more", len(e.Missing)-shown)
	}
	return s
}

// Assemble builds the configuration of node's ztunnel from the state, in
// the order translation sorts it (so that it equals
// translate.ZtunnelConfigs' for the node when the state holds the
// control plane's resources), and validates it. It returns an
// *IncompleteError, before validating, if a reference has no piece.
func (s *ZtunnelState) Assemble(node string) (*model.Ztunnel, error) {
	z := &model.Ztunnel{
		Node:      node,
		Workloads: sortedValues(s.workloads, func(a, b model.ZtunnelWorkload) int { return strings.Compare(a.UID, b.UID) }),
		Services: sortedValues(s.services, func(a, b model.ZtunnelService) int {
			return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Hostname, b.Hostname))
		}),
		Waypoints: sortedValues(s.waypoints, func(a, b model.ZtunnelWaypoint) int {
			return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
		}),
		Policies: sortedValues(s.policies, func(a, b model.AuthorizationPolicy) int {
			return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
		}),
	}
	if missing := s.dangling(z); len(missing) > 0 {
		return nil, &IncompleteError{Missing: missing}
	}
	if err := z.Validate(); err != nil {
		return nil, fmt.Errorf("ztunnel configuration of node %s: %w", node, err)
	}
	return z, nil
}

// sortedValues lists m's values sorted by compare; nil when m is empty,
// as translation leaves an empty list.
func sortedValues[T any](m map[string]T, compare func(a, b T) int) []T {
	if len(m) == 0 {
		return nil
	}
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, compare)
	return out
}

// dangling lists the references of z's pieces to pieces the state does
// not hold, sorted.
func (s *ZtunnelState) dangling(z *model.Ztunnel) []string {
	var out []string
	ref := func(from, kind, name string, ok bool) {
		if !ok {
			out = append(out, from+": "+kind+" "+name)
		}
	}
	for i := range z.Workloads {
		w := &z.Workloads[i]
		if w.Waypoint != "" {
			_, ok := s.waypoints[w.Waypoint]
			ref("workload "+w.UID, "waypoint", w.Waypoint, ok)
		}
		for _, p := range w.Policies {
			_, ok := s.policies[p]
			ref("workload "+w.UID, "policy", p, ok)
		}
	}
	for i := range z.Waypoints {
		w := &z.Waypoints[i]
		for _, uid := range w.Instances {
			_, ok := s.workloads[uid]
			ref("waypoint "+ZtunnelWaypointName(w), "workload", uid, ok)
		}
	}
	for i := range z.Services {
		sv := &z.Services[i]
		if sv.Waypoint != "" {
			_, ok := s.waypoints[sv.Waypoint]
			ref("service "+ZtunnelServiceName(sv), "waypoint", sv.Waypoint, ok)
		}
		for _, e := range sv.Endpoints {
			_, ok := s.workloads[e.Workload]
			ref("service "+ZtunnelServiceName(sv), "workload", e.Workload, ok)
		}
	}
	return out
}
