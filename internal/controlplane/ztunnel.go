package controlplane

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/internal/push"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/translate"
)

// The ztunnels' configuration (translate.ZtunnelTranslation: every
// workload, service, waypoint and L4 policy of the mesh) is kept up to
// date incrementally: a change to objects of one namespace (a pod's
// label) is translated from that namespace's objects, on Run's goroutine
// after the waypoints' push, in about a millisecond, and only the pieces
// it changed are pushed. A full translation costs what the whole mesh
// does (0.2–0.4 s of CPU and 80 MB of allocations for 50,000 pods), so it
// runs in the background, one at a time: the first, and those that
// changes reaching across namespaces need (Namespaces, Gateways,
// GatewayClasses, the root namespace's L4 policies). Changes made while
// one runs are applied to its result when it is in; the next full
// translation starts no sooner than the last one took after it ended, so
// that a stream of such changes keeps at most half a CPU busy. A
// waypoint's change → ACK never waits for any of it.

// ztunnels is the controller's ztunnel side. Its fields are Run's
// goroutine's, but for the counters.
type ztunnels struct {
	// state is the translation pushed last; nil until the first full
	// translation is in. A full translation in the background reads it
	// (to find what changed); Run's goroutine changes it only when none
	// runs.
	state   *translate.ZtunnelTranslation
	running bool
	// backlog are the changes made since the running full translation's
	// inputs were taken.
	backlog []translate.Change
	// fullOwed: a full translation is to start when rest ends.
	fullOwed bool
	rest     <-chan time.Time
	results  chan ztunnelFull
	wg       sync.WaitGroup
	warned   map[string]bool
	// For tests and /debug: pushes that changed a resource; full and
	// incremental translations.
	pushes, fulls, updates atomic.Int64
}

// ztunnelFull is a full translation's report.
type ztunnelFull struct {
	state   *translate.ZtunnelTranslation
	changed int
	took    time.Duration
	err     error
}

func newZtunnels() ztunnels {
	return ztunnels{results: make(chan ztunnelFull, 1), warned: map[string]bool{}}
}

// ztunnelChanges brings the ztunnels' configuration up to date with the
// changes a sync translated (all of the inputs on the first). Run's
// goroutine only.
func (c *Controller) ztunnelChanges(changes []translate.Change, first bool) {
	if !c.o.Ztunnels {
		return
	}
	z := &c.zt
	changes = slices.DeleteFunc(slices.Clone(changes), func(ch translate.Change) bool { return !translate.AffectsZtunnels(ch) })
	switch {
	case z.running:
		z.backlog = append(z.backlog, changes...)
	case z.fullOwed:
		// The full translation owed takes the inputs as they are when
		// it starts.
	case first || z.state == nil || z.state.Global(changes):
		c.ztunnelsFull()
	case len(changes) > 0:
		c.ztunnelsUpdate(changes)
	}
}

// ztunnelsUpdate translates changes incrementally and pushes what they
// changed.
func (c *Controller) ztunnelsUpdate(changes []translate.Change) {
	z := &c.zt
	began := time.Now()
	delta := z.state.Update(c.inputs, changes)
	z.updates.Add(1)
	n, err := pushZtunnelDelta(c.o.Push, &delta, false)
	if err != nil {
		c.o.Logf("push: ztunnel resources: %v", err)
		return
	}
	if n > 0 {
		z.pushes.Add(1)
		c.o.Logf("push: %d ztunnel resource(s) changed (translated and pushed in %s)", n, time.Since(began).Round(10*time.Microsecond))
	}
}

// ztunnelsFull starts a full translation in the background, or owes one
// until the last one's pause ends.
func (c *Controller) ztunnelsFull() {
	z := &c.zt
	if z.rest != nil {
		z.fullOwed = true
		return
	}
	z.running, z.fullOwed, z.backlog = true, false, nil
	in, last, first := c.inputs.Inputs(), z.state, z.state == nil
	logf, srv := c.o.Logf, c.o.Push
	z.wg.Go(func() {
		began := time.Now()
		next := translate.TranslateZtunnels(in)
		translated := time.Since(began)
		delta := last.Diff(next)
		r := ztunnelFull{state: next}
		r.changed, r.err = pushZtunnelDelta(srv, &delta, first)
		r.took = time.Since(began)
		if r.changed > 0 {
			logf("push: %d ztunnel resource(s) changed, %d in all (full translation in %s, pushed in %s)",
				r.changed, next.Pieces(), translated.Round(time.Millisecond), (r.took - translated).Round(time.Millisecond))
		}
		z.results <- r
	})
}

// ztunnelsDone takes a full translation's report: its result becomes the
// state, and the changes made meanwhile are applied to it. Run's
// goroutine only.
func (c *Controller) ztunnelsDone(r ztunnelFull) {
	z := &c.zt
	z.running = false
	z.fulls.Add(1)
	c.logZtunnelWarnings(r.state.Warnings)
	if r.err != nil {
		// What was pushed is unknown: the next full translation pushes
		// whatever differs from the state before this one.
		c.o.Logf("push: ztunnel resources: %v", r.err)
		z.fullOwed = true
	} else {
		z.state = r.state
		if r.changed > 0 {
			z.pushes.Add(1)
		}
	}
	z.rest = time.After(r.took)
	backlog := z.backlog
	z.backlog = nil
	if z.fullOwed || len(backlog) == 0 {
		return
	}
	if z.state.Global(backlog) {
		z.fullOwed = true
		return
	}
	c.ztunnelsUpdate(backlog)
}

// ztunnelsRested ends the pause after a full translation, starting the
// one owed.
func (c *Controller) ztunnelsRested() {
	z := &c.zt
	z.rest = nil
	if z.fullOwed {
		c.ztunnelsFull()
	}
}

// ztunnelsReconciled takes the full translation a reconciliation made of
// the current inputs (nothing was synced since it started): it logs its
// warnings and pushes what the incremental translations got wrong, if
// anything; or, when a full translation is owed, it is that one. Run's
// goroutine only.
func (c *Controller) ztunnelsReconciled(full *translate.ZtunnelTranslation) {
	z := &c.zt
	if full == nil || z.running {
		return
	}
	c.logZtunnelWarnings(full.Warnings)
	delta := z.state.Diff(full)
	behind := z.fullOwed || z.state == nil
	if delta.Empty() && !behind {
		return
	}
	if !behind {
		c.o.Logf("translate: the incremental ztunnel translation differs from a full translation; pushing the full one (a bug: please report it)")
	}
	n, err := pushZtunnelDelta(c.o.Push, &delta, z.state == nil)
	if err != nil {
		c.o.Logf("push: ztunnel resources: %v", err)
		return
	}
	if n > 0 {
		z.pushes.Add(1)
	}
	z.state, z.fullOwed = full, false
}

// pushZtunnelDelta hands the pieces a translation changed to the push
// server: additions and changes first, type by type in wire.ZtunnelTypes'
// order (what is referred to before what refers to it, as far as the
// types allow), then removals in the reverse order, so that a ztunnel
// meanwhile assembles fewer configurations with a reference to a piece it
// lacks. all: the first push, which sets each type whole (the server's
// subscribers wait for it). It reports how many resources changed.
func pushZtunnelDelta(srv *push.Server, d *translate.ZtunnelDelta, all bool) (int, error) {
	// Each type's resources are converted as the push server encodes them,
	// one at a time: the first push's 55,000 decoded at once were most of
	// meshd's peak memory.
	type typeDelta struct {
		set    push.Resources
		n      int
		remove []string
	}
	deltas := map[string]typeDelta{
		wire.ZtunnelWorkloadType: {resources(d.Workloads.Set, wire.ZtunnelWorkloadName, wire.ZtunnelWorkloadResource), len(d.Workloads.Set), names(d.Workloads.Removed, wire.ZtunnelWorkloadName)},
		wire.ZtunnelServiceType:  {resources(d.Services.Set, wire.ZtunnelServiceName, wire.ZtunnelServiceResource), len(d.Services.Set), names(d.Services.Removed, wire.ZtunnelServiceName)},
		wire.ZtunnelWaypointType: {resources(d.Waypoints.Set, wire.ZtunnelWaypointName, wire.ZtunnelWaypointResource), len(d.Waypoints.Set), names(d.Waypoints.Removed, wire.ZtunnelWaypointName)},
		wire.ZtunnelPolicyType:   {resources(d.Policies.Set, wire.ZtunnelPolicyName, wire.ZtunnelPolicyResource), len(d.Policies.Set), names(d.Policies.Removed, wire.ZtunnelPolicyName)},
	}
	changed := 0
	for _, t := range wire.ZtunnelTypes {
		var n int
		var err error
		switch {
		case all:
			n, err = srv.SetResources(t, deltas[t].set)
		case deltas[t].n > 0:
			n, err = srv.UpdateResources(t, deltas[t].set, nil)
		}
		if err != nil {
			return changed, err
		}
		changed += n
	}
	for _, t := range slices.Backward(wire.ZtunnelTypes) {
		if len(deltas[t].remove) > 0 && !all {
			n, err := srv.UpdateResources(t, nil, deltas[t].remove)
			if err != nil {
				return changed, err
			}
			changed += n
		}
	}
	return changed, nil
}

// resources yields each piece as its message, converted when asked for.
func resources[T any](pieces []*T, name func(*T) string, toPB func(*T) proto.Message) push.Resources {
	return func(yield func(string, proto.Message) bool) {
		for _, p := range pieces {
			if !yield(name(p), toPB(p)) {
				return
			}
		}
	}
}

func names[T any](pieces []*T, name func(*T) string) []string {
	out := make([]string, 0, len(pieces))
	for _, p := range pieces {
		out = append(out, name(p))
	}
	return out
}

// logZtunnelWarnings logs each ztunnel translation warning once, when it
// first appears, unless the waypoints' translation logged it (both read
// the MeshConfig, for one).
func (c *Controller) logZtunnelWarnings(ws []translate.Warning) {
	now := make(map[string]bool, len(ws))
	for _, w := range ws {
		s := w.String()
		now[s] = true
		if !c.zt.warned[s] && !c.warned[s] {
			c.o.Logf("translate (ztunnel): %s", s)
		}
	}
	c.zt.warned = now
}

// ZtunnelPushes counts the ztunnel translations that changed at least one
// resource, for tests and /debug.
func (c *Controller) ZtunnelPushes() int64 { return c.zt.pushes.Load() }

// ZtunnelTranslations counts the ztunnel translations, full and
// incremental, for tests and /debug.
func (c *Controller) ZtunnelTranslations() (full, incremental int64) {
	return c.zt.fulls.Load(), c.zt.updates.Load()
}
