package controlplane

import (
	"reflect"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/internal/model"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/translate"
)

// The ztunnels' configuration is translated from the whole mesh
// (translate.ZtunnelMesh: every workload, service, waypoint and L4 policy),
// which costs more than an incremental waypoint translation: about 0.3 s
// of CPU for 50,000 pods. So it runs off Run's goroutine, after the
// waypoints' push, one translation at a time: changes that come while one
// runs are taken together by the next, from the newest inputs. A
// waypoint's change → ACK never waits for it.

// ztunnelResult is what a ztunnel translation reports back to Run's
// goroutine.
type ztunnelResult struct {
	warnings []translate.Warning
	changed  int
	total    int
	err      error
}

// ztunnelPusher translates the ztunnels' shared configuration and pushes
// what changed. Only one of its run calls is ever in progress (Run's
// goroutine starts the next after the last reported back), so it needs no
// lock.
type ztunnelPusher struct {
	c *Controller
	// last is the mesh pushed last, nil before the first push.
	last *model.Ztunnel
}

// run translates in and pushes the resources whose content differs from
// the last push's. It compares the model's pieces (reflect.DeepEqual: 35
// ms for 55,000 pieces) rather than encoding and hashing every resource
// again, which the push server would otherwise do to find the changes
// (150 ms); the server still drops an update whose bytes did not change.
func (p *ztunnelPusher) run(in translate.ConfigInputs) ztunnelResult {
	began := time.Now()
	mesh, _, warnings := translate.ZtunnelMesh(in)
	translated := time.Since(began)
	r := ztunnelResult{warnings: warnings, total: len(mesh.Workloads) + len(mesh.Services) + len(mesh.Waypoints) + len(mesh.Policies)}
	diffs := ztunnelDiff(p.last, mesh)
	push := p.c.o.Push
	first := p.last == nil
	// Additions and updates first, in wire.ZtunnelTypes' order (what is
	// referred to before what refers to it, as far as the types allow),
	// then removals in the reverse order: a ztunnel meanwhile assembles
	// fewer configurations with a reference to a piece it lacks.
	for _, t := range wire.ZtunnelTypes {
		d := diffs[t]
		var n int
		var err error
		if first {
			n, err = push.SetResources(t, d.set)
		} else if len(d.set) > 0 {
			n, err = push.UpdateResources(t, d.set, nil)
		}
		if err != nil {
			r.err = err
			return r
		}
		r.changed += n
	}
	for _, t := range slices.Backward(wire.ZtunnelTypes) {
		if d := diffs[t]; len(d.remove) > 0 {
			n, err := push.UpdateResources(t, nil, d.remove)
			if err != nil {
				r.err = err
				return r
			}
			r.changed += n
		}
	}
	p.last = mesh
	if r.changed > 0 {
		p.c.o.Logf("push: %d ztunnel resource(s) changed, %d in all (translated in %s, pushed in %s)",
			r.changed, r.total, translated.Round(100*time.Microsecond), (time.Since(began) - translated).Round(100*time.Microsecond))
	}
	return r
}

// typeDiff is one ztunnel type's changes.
type typeDiff struct {
	set    map[string]proto.Message
	remove []string
}

// ztunnelDiff lists, per type, the resources of next that last does not
// have or has with other content, and the names of those next no longer
// has. With last nil, every resource of next.
func ztunnelDiff(last, next *model.Ztunnel) map[string]typeDiff {
	if last == nil {
		last = &model.Ztunnel{}
	}
	out := map[string]typeDiff{}
	out[wire.ZtunnelWorkloadType] = diffPieces(last.Workloads, next.Workloads, wire.ZtunnelWorkloadName, wire.ZtunnelWorkloadResource)
	out[wire.ZtunnelServiceType] = diffPieces(last.Services, next.Services, wire.ZtunnelServiceName, wire.ZtunnelServiceResource)
	out[wire.ZtunnelWaypointType] = diffPieces(last.Waypoints, next.Waypoints, wire.ZtunnelWaypointName, wire.ZtunnelWaypointResource)
	out[wire.ZtunnelPolicyType] = diffPieces(last.Policies, next.Policies, wire.ZtunnelPolicyName, wire.ZtunnelPolicyResource)
	return out
}

func diffPieces[T any](last, next []T, name func(*T) string, toPB func(*T) proto.Message) typeDiff {
	before := make(map[string]*T, len(last))
	for i := range last {
		before[name(&last[i])] = &last[i]
	}
	d := typeDiff{set: map[string]proto.Message{}}
	for i := range next {
		p := &next[i]
		n := name(p)
		if old, ok := before[n]; !ok || !reflect.DeepEqual(old, p) {
			d.set[n] = toPB(p)
		}
		delete(before, n)
	}
	for n := range before {
		d.remove = append(d.remove, n)
	}
	return d
}

// logZtunnelWarnings logs each ztunnel translation warning once, when it
// first appears (apart from the waypoints', which are other warnings
// about the same objects).
func (c *Controller) logZtunnelWarnings(ws []translate.Warning) {
	now := make(map[string]bool, len(ws))
	for _, w := range ws {
		s := w.String()
		now[s] = true
		if !c.ztWarned[s] {
			c.o.Logf("translate (ztunnel): %s", s)
		}
	}
	c.ztWarned = now
}

// ztunnelsDue starts a ztunnel translation of the current inputs, or, if
// one is running, has the next start when it reports back. Run's
// goroutine only.
func (c *Controller) ztunnelsDue() {
	if !c.o.Ztunnels {
		return
	}
	if c.ztRunning {
		c.ztOwed = true
		return
	}
	c.ztRunning, c.ztOwed = true, false
	in := c.inputs.Inputs()
	c.ztWG.Go(func() { c.ztResults <- c.zt.run(in) })
}

// ztunnelsDone takes a ztunnel translation's report and starts the one
// owed, if any. Run's goroutine only.
func (c *Controller) ztunnelsDone(r ztunnelResult) {
	c.ztRunning = false
	c.logZtunnelWarnings(r.warnings)
	if r.err != nil {
		c.o.Logf("push: ztunnel resources: %v", r.err)
	}
	if r.changed > 0 {
		c.ztPushes.Add(1)
	}
	if c.ztOwed {
		c.ztunnelsDue()
	}
}

// ZtunnelPushes counts ztunnel translations that changed at least one
// resource, for tests and /debug.
func (c *Controller) ZtunnelPushes() int64 { return c.ztPushes.Load() }
