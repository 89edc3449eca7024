package controlplane

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/push"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/translate"
)

// Options configure a Controller.
type Options struct {
	Store store.Store
	// Push receives every waypoint's configuration, of type wire.WaypointType.
	Push *push.Server
	// Writers write to the store (waypoint deployments, status) while this
	// replica leads, each on the newest snapshot of every object.
	Writers []Writer
	// DebounceAfter is how long the store must be quiet before changes are
	// translated and pushed — except a change after such a quiet spell,
	// which is pushed at once (see Run); DebounceMax bounds the wait under
	// a steady stream of changes. 0 means 10ms and 100ms (Istio: 100ms and 10s; a
	// shorter wait keeps a change's time to ACK low, and translation is
	// cheap enough to run more often).
	DebounceAfter, DebounceMax time.Duration
	// Ztunnels: push the ztunnels' configuration too, as the resources of
	// wire.ZtunnelTypes, which Push must serve (see ztunnel.go).
	Ztunnels bool
	// ReconcileAfter is how long the store must be quiet before a full
	// translation follows incremental ones (see reconcileAfter); 0 means 5s.
	ReconcileAfter time.Duration
	Logf           func(format string, args ...any)
}

// Writer brings the store in line with a snapshot of every object. It is
// called again on each change, so it must be idempotent and cheap when
// nothing changed.
type Writer interface {
	Sync(ctx context.Context, objs []manifest.Object) error
}

// Controller runs the loop. It is created following no leader; SetLeader
// tells it when this replica may write.
type Controller struct {
	o Options

	leader atomic.Bool
	kick   chan struct{} // capacity 1: "sync now" (leadership gained)
	pushes atomic.Int64  // translations pushed, for tests and /debug
	synced chan struct{} // closed after the first push
	once   sync.Once
	// writesDue (capacity 1) tells writeLoop a round is due; it then asks
	// Run for the objects (snapshots), so one copy is made per round, when
	// the writers are ready for it, however many changes came meanwhile.
	writesDue chan struct{}
	snapshots chan chan map[objectKey]manifest.Object
	warned    map[string]bool
	lastErr   string
	// writeFailed: the writers' last round failed, so the next change of
	// any kind hands them a snapshot again (they retry on changes).
	writeFailed atomic.Bool

	// Owned by Run's goroutine: the inputs of translation, the translation
	// pushed last, and the changes since.
	inputs  *translate.Objects
	tr      *translate.Translation
	pending []translate.Change
	// writesOwed: changes the writers read (writersRead) came since they
	// were last handed a snapshot.
	writesOwed bool
	// gen counts syncs, so that a full translation made in the background
	// (reconcile) is only used if nothing was pushed since it started.
	gen int

	// zt is the ztunnels' side (ztunnel.go).
	zt ztunnels
}

// A sync that translated part of the waypoints (see translate.Update) owes
// a full translation: it logs the warnings, which only a full translation
// computes, and checks the incremental result. It runs in the background
// once the store has been quiet for reconcileAfter, or reconcileMax after
// the first sync that owed it under a steady stream of changes. It costs
// what a full translation does (0.5 s of CPU for 500 waypoints and 58,000
// objects), so it waits long enough to follow a burst of changes once.
const (
	reconcileAfter = 5 * time.Second
	reconcileMax   = time.Minute
)

// reconciled is a background full translation's result.
type reconciled struct {
	gen  int
	tr   *translate.Translation
	diff []translate.Ref // waypoints whose configuration the incremental path got wrong
	// zt is the ztunnels' full translation (with Options.Ztunnels).
	zt *translate.ZtunnelTranslation
}

// New returns a controller; Run starts it.
func New(o Options) *Controller {
	if o.DebounceAfter <= 0 {
		o.DebounceAfter = 10 * time.Millisecond
	}
	if o.DebounceMax <= 0 {
		o.DebounceMax = 100 * time.Millisecond
	}
	if o.ReconcileAfter <= 0 {
		o.ReconcileAfter = reconcileAfter
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return &Controller{
		o: o, kick: make(chan struct{}, 1), synced: make(chan struct{}),
		writesDue: make(chan struct{}, 1), snapshots: make(chan chan map[objectKey]manifest.Object), warned: map[string]bool{},
		zt: newZtunnels(), writesOwed: true,
	}
}

// SetLeader says whether this replica leads (may write deployment objects
// and status). Gaining leadership writes at once.
func (c *Controller) SetLeader(v bool) {
	if c.leader.Swap(v) != v && v {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// Rewrite has the writers run again on the current objects, while this
// replica leads: for a change they depend on outside the store, such as
// the CA's roots that RootCertWriter publishes.
func (c *Controller) Rewrite() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Synced is closed once the store's initial content has been pushed.
func (c *Controller) Synced() <-chan struct{} { return c.synced }

// Pushes counts translations that changed at least one proxy's configuration.
func (c *Controller) Pushes() int64 { return c.pushes.Load() }

// objectKey names an object of the loop's.
type objectKey = storedKey

// Run watches the store until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	events, err := c.o.Store.Watch(ctx, nil, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watching %s: %w", c.o.Store.Describe(), err)
	}
	// Once ctx ends, wait for the watch to close its channel: its
	// goroutines (the directory store's scans, which open the store's lock
	// file) are gone then, so a caller may remove the store when Run
	// returns.
	defer func() {
		if ctx.Err() != nil {
			for range events {
			}
		}
	}()
	// The write loop ends with Run, whatever ends it (a watch that fails
	// as well as ctx).
	var wg sync.WaitGroup
	writeCtx, stopWrites := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); c.writeLoop(writeCtx) }()
	defer wg.Wait()
	defer stopWrites()
	// A ztunnel translation in progress finishes (it does not block): what
	// it pushes goes to a server the caller stops after Run returns.
	defer c.zt.wg.Wait()

	objects := map[objectKey]manifest.Object{}
	c.inputs = translate.NewObjects(translate.ConfigInputs{})
	synced := false
	var quiet, deadline <-chan time.Time // debounce timers; nil while nothing is pending
	// Reconciliation: timers while one is owed, results while one runs.
	var reconcileQuiet, reconcileDeadline <-chan time.Time
	results := make(chan reconciled, 1)
	reconciling := false
	reconcile := func() {
		reconcileQuiet, reconcileDeadline = nil, nil
		if reconciling {
			return // owed again once the running one is in
		}
		reconciling = true
		go c.reconcile(c.gen, c.inputs.Inputs(), c.tr, c.o.Ztunnels, results)
	}
	afterSync := func() {
		quiet, deadline = nil, nil
		if c.tr.Full && (c.zt.state == nil || c.zt.state.Full) {
			reconcileQuiet, reconcileDeadline = nil, nil
			return
		}
		reconcileQuiet = time.After(c.o.ReconcileAfter)
		if reconcileDeadline == nil {
			reconcileDeadline = time.After(reconcileMax)
		}
	}
	// take records one event; it reports whether the initial content is
	// complete (store.Synced).
	take := func(ev store.Event) bool {
		switch ev.Type {
		case store.Synced:
			return true
		case store.Deleted:
			k := keyOf(ev)
			ch := translate.Change{Old: objects[k]}
			c.pending = append(c.pending, ch)
			c.writesOwed = c.writesOwed || writersRead(ch)
			delete(objects, k)
			c.inputs.Delete(ev.Object)
		default:
			k := keyOf(ev)
			ch := translate.Change{New: ev.Object}
			if old, ok := objects[k]; ok {
				ch.Old = old
			}
			if !statusOnly(ch.Old, ch.New) {
				c.pending = append(c.pending, ch)
			}
			c.writesOwed = c.writesOwed || writersRead(ch)
			objects[k] = ev.Object
			c.inputs.Set(ev.Object)
		}
		return false
	}
	// The debounce has a leading edge: a change that comes after the store
	// has been quiet for DebounceAfter is pushed at once, with whatever
	// events are already queued behind it, rather than after waiting
	// DebounceAfter for more: an isolated edit reaches the proxies sooner.
	// Changes that follow within DebounceAfter are batched as before, and
	// the writers (deployments, status) run only on the trailing edge, so
	// a burst's first object alone never shows in status.
	var lastEvent time.Time
	pushedEarly := false // the pending debounce follows a leading-edge push
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watch on %s ended", c.o.Store.Describe())
			}
			if take(ev) {
				synced = true
				c.sync(ctx, true)
				afterSync()
				continue
			}
			if !synced {
				continue
			}
			now := time.Now()
			isolated := quiet == nil && now.Sub(lastEvent) >= c.o.DebounceAfter
			lastEvent = now
			if isolated {
				if closed := c.drain(events, take); closed {
					continue // the next receive reports it
				}
				c.sync(ctx, false)
				pushedEarly = true
			}
			quiet = time.After(c.o.DebounceAfter)
			if deadline == nil {
				deadline = time.After(c.o.DebounceMax)
			}
		case <-quiet:
			c.debounced(ctx, pushedEarly)
			pushedEarly = false
			afterSync()
		case <-deadline:
			c.debounced(ctx, pushedEarly)
			pushedEarly = false
			afterSync()
		case <-reconcileQuiet:
			reconcile()
		case <-reconcileDeadline:
			reconcile()
		case r := <-results:
			reconciling = false
			c.useReconciled(r)
			if c.gen != r.gen && (!c.tr.Full || c.zt.state != nil && !c.zt.state.Full) && reconcileQuiet == nil {
				// Changes came meanwhile and their reconciliation fell
				// due while this one ran.
				reconcileQuiet = time.After(c.o.ReconcileAfter)
			}
		case r := <-c.zt.results:
			c.ztunnelsDone(r)
		case <-c.zt.rest:
			c.ztunnelsRested()
		case <-c.kick:
			if synced && c.leader.Load() {
				c.writesOwed = true
				c.queueWritesIfLeading(ctx)
			}
		case reply := <-c.snapshots:
			c.writesOwed = false
			reply <- snapshot(objects)
		}
	}
}

func keyOf(ev store.Event) objectKey {
	return objectKey{ev.Kind, ev.Object.GetNamespace(), ev.Object.GetName()}
}

// snapshot is the objects for the writers, indexed as they read them: a
// copy of the loop's map (the writers update it with what they write),
// which copies the map's tables whole rather than hashing 58,000 keys
// again each round.
func snapshot(objects map[objectKey]manifest.Object) map[objectKey]manifest.Object {
	return maps.Clone(objects)
}

// drain takes the events already queued, without waiting for more. It
// reports whether the channel closed (or the initial content completed,
// which cannot happen after it has).
func (c *Controller) drain(events <-chan store.Event, take func(store.Event) bool) (closed bool) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return true
			}
			take(ev)
		default:
			return false
		}
	}
}

// debounced ends a debounce: it translates and pushes the pending changes
// and tells the writers a round is due. After a leading-edge push with
// nothing pending since, only the writers are owed.
func (c *Controller) debounced(ctx context.Context, pushedEarly bool) {
	if pushedEarly && len(c.pending) == 0 {
		c.queueWritesIfLeading(ctx)
		return
	}
	c.sync(ctx, true)
}

// queueWritesIfLeading tells the writers a round is due while this replica
// leads and they have something to read (or their last round failed).
func (c *Controller) queueWritesIfLeading(ctx context.Context) {
	if ctx.Err() == nil && c.leader.Load() && len(c.o.Writers) > 0 && (c.writesOwed || c.writeFailed.Load()) {
		select {
		case c.writesDue <- struct{}{}:
		default: // already due
		}
	}
}

// writersRead reports whether the writers (deployments, status) may write
// something else after ch: every change but one to a Pod that is not a
// waypoint's. Pod churn is most of what a cluster changes, and a round of
// the writers reads the whole mesh (tens of ms at 50,000 pods); they read
// pods only to count a waypoint's ready pods for its Gateway's status and
// to find its service accounts, and a waypoint's pods carry the
// gateway-name label (the Deployer renders it into their template).
func writersRead(ch translate.Change) bool {
	for _, obj := range []any{ch.Old, ch.New} {
		if obj == nil {
			continue
		}
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Labels[translate.LabelGatewayName] != "" {
			return true
		}
	}
	return false
}

// sync translates what the pending changes can affect (everything the
// first time), pushes the configurations translated again and, if write,
// tells the writers a round is due.
func (c *Controller) sync(ctx context.Context, write bool) {
	var changed []translate.Ref
	first := c.tr == nil
	if c.tr == nil {
		c.tr = translate.Translate(c.inputs.Inputs())
		for _, w := range c.tr.Waypoints() {
			changed = append(changed, translate.Ref{Namespace: w.Namespace, Name: w.Name})
		}
	} else {
		c.tr, changed = c.tr.Update(c.inputs, c.pending)
	}
	pending := c.pending
	c.pending = nil
	c.gen++
	if c.tr.Full {
		c.logWarnings(c.tr.Warnings)
	}
	c.push(changed, c.gen == 1)
	c.ztunnelChanges(pending, first)
	c.once.Do(func() { close(c.synced) })
	if write {
		c.queueWritesIfLeading(ctx)
	}
}

// push sends the configurations of the waypoints named (removing those
// c.tr no longer has). The first push sets every resource, so that the
// push server holds exactly c.tr's.
func (c *Controller) push(refs []translate.Ref, first bool) {
	var remove []string
	for _, ref := range refs {
		if c.tr.Waypoint(ref) == nil {
			remove = append(remove, ref.String())
		}
	}
	// Each configuration is converted as the push server encodes it: 500
	// of them decoded at once were 50 MB more at meshd's peak.
	set := func(yield func(string, proto.Message) bool) {
		for _, ref := range refs {
			if w := c.tr.Waypoint(ref); w != nil && !yield(ref.String(), wire.Waypoint(w)) {
				return
			}
		}
	}
	var changed int
	var err error
	if first {
		changed, err = c.o.Push.SetResources(wire.WaypointType, set)
	} else {
		changed, err = c.o.Push.UpdateResources(wire.WaypointType, set, remove)
	}
	switch {
	case err != nil:
		c.o.Logf("push: %v", err)
	case changed > 0:
		c.pushes.Add(1)
		c.o.Logf("push: %d waypoint configuration(s) changed, %d in all", changed, len(c.tr.Waypoints()))
	}
}

// reconcile translates in fully, off Run's goroutine, and compares the
// result with cur, the translation pushed at generation gen; with
// ztunnels, the ztunnels' too (compared on Run's goroutine, which owns
// their state).
func (c *Controller) reconcile(gen int, in translate.ConfigInputs, cur *translate.Translation, ztunnels bool, out chan<- reconciled) {
	full := translate.Translate(in)
	r := reconciled{gen: gen, tr: full}
	if ztunnels {
		r.zt = translate.TranslateZtunnels(in)
	}
	for _, w := range full.Waypoints() {
		ref := translate.Ref{Namespace: w.Namespace, Name: w.Name}
		if !reflect.DeepEqual(w, cur.Waypoint(ref)) {
			r.diff = append(r.diff, ref)
		}
	}
	for _, w := range cur.Waypoints() {
		ref := translate.Ref{Namespace: w.Namespace, Name: w.Name}
		if full.Waypoint(ref) == nil {
			r.diff = append(r.diff, ref)
		}
	}
	out <- r
}

// useReconciled logs a background full translation's warnings and, if
// nothing was pushed since it started, makes it the current translation,
// pushing what the incremental path got wrong (which TestUpdateEqualsTranslate
// in translate says it does not).
func (c *Controller) useReconciled(r reconciled) {
	c.logWarnings(r.tr.Warnings)
	if r.gen != c.gen {
		return
	}
	c.ztunnelsReconciled(r.zt)
	c.tr = r.tr
	if len(r.diff) > 0 {
		c.o.Logf("translate: the incremental translation of %v differs from a full translation; pushing the full one (a bug: please report it)", r.diff)
		c.push(r.diff, false)
	}
}

// logWarnings logs each translation warning once, when it first appears.
func (c *Controller) logWarnings(ws []translate.Warning) {
	now := make(map[string]bool, len(ws))
	for _, w := range ws {
		s := w.String()
		now[s] = true
		if !c.warned[s] {
			c.o.Logf("translate: %s", s)
		}
	}
	c.warned = now
}

// writerPause is how long writeLoop rests after a round of the writers,
// as a multiple of the round's time, between minWriterPause and
// maxWriterPause. Each round reads the whole mesh (0.1 s of CPU at 50,000
// pods) while the pushes that follow a change need the CPUs more: under a
// steady stream of changes the writers take at most a fifth of one, and
// the snapshot written next is the newest, so no change is left out. The
// cap keeps status at most a second behind after a round that took long
// because it wrote much (start-up: every waypoint deployed).
const (
	writerPause    = 4
	minWriterPause = 100 * time.Millisecond
	maxWriterPause = time.Second
)

func (c *Controller) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.writesDue:
			if !c.leader.Load() {
				continue
			}
			reply := make(chan map[objectKey]manifest.Object, 1)
			select {
			case c.snapshots <- reply:
			case <-ctx.Done():
				return
			}
			objs := <-reply
			began := time.Now()
			var errs []error
			x := &storedObjects{objs: objs} // one index for all the writers
			for _, w := range c.o.Writers {
				var err error
				if iw, ok := w.(indexedWriter); ok {
					err = iw.syncIndexed(ctx, x)
				} else {
					err = w.Sync(ctx, slices.Collect(maps.Values(x.objs)))
				}
				if err != nil && ctx.Err() == nil {
					errs = append(errs, err)
				}
			}
			// Log an error once, not on every change while it lasts.
			msg := ""
			if err := errors.Join(errs...); err != nil {
				msg = err.Error()
			}
			if msg != c.lastErr && msg != "" {
				c.o.Logf("writing to %s: %s", c.o.Store.Describe(), msg)
			}
			c.lastErr = msg
			c.writeFailed.Store(msg != "")
			pause := time.NewTimer(min(max(writerPause*time.Since(began), minWriterPause), maxWriterPause))
			select {
			case <-ctx.Done():
				pause.Stop()
				return
			case <-pause.C:
			}
		}
	}
}

// indexedWriter is a Writer that takes the snapshot as the loop indexes it,
// sparing each writer an index of its own.
type indexedWriter interface {
	syncIndexed(ctx context.Context, x *storedObjects) error
}
