package controlplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

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
	// DebounceAfter is how long the store must be quiet before a change is
	// translated and pushed; DebounceMax bounds the wait under a steady
	// stream of changes. 0 means 10ms and 100ms (Istio: 100ms and 10s; a
	// shorter wait keeps a change's time to ACK low, and translation is
	// cheap enough to run more often).
	DebounceAfter, DebounceMax time.Duration
	Logf                       func(format string, args ...any)
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

	leader  atomic.Bool
	kick    chan struct{} // capacity 1: "sync now" (leadership gained)
	pushes  atomic.Int64  // translations pushed, for tests and /debug
	synced  chan struct{} // closed after the first push
	once    sync.Once
	writes  chan []manifest.Object // capacity 1: the newest snapshot to write
	warned  map[string]bool
	lastErr string
}

// New returns a controller; Run starts it.
func New(o Options) *Controller {
	if o.DebounceAfter <= 0 {
		o.DebounceAfter = 10 * time.Millisecond
	}
	if o.DebounceMax <= 0 {
		o.DebounceMax = 100 * time.Millisecond
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return &Controller{
		o: o, kick: make(chan struct{}, 1), synced: make(chan struct{}),
		writes: make(chan []manifest.Object, 1), warned: map[string]bool{},
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

// Synced is closed once the store's initial content has been pushed.
func (c *Controller) Synced() <-chan struct{} { return c.synced }

// Pushes counts translations that changed at least one proxy's configuration.
func (c *Controller) Pushes() int64 { return c.pushes.Load() }

type objectKey struct {
	kind            *manifest.Kind
	namespace, name string
}

// Run watches the store until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	events, err := c.o.Store.Watch(ctx, nil, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("watching %s: %w", c.o.Store.Describe(), err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.writeLoop(ctx) }()
	defer wg.Wait()

	objects := map[objectKey]manifest.Object{}
	synced := false
	var quiet, deadline <-chan time.Time // debounce timers; nil while nothing is pending
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
			switch ev.Type {
			case store.Synced:
				synced = true
				c.sync(ctx, objects)
				quiet, deadline = nil, nil
				continue
			case store.Deleted:
				delete(objects, keyOf(ev))
			default:
				objects[keyOf(ev)] = ev.Object
			}
			if !synced {
				continue
			}
			quiet = time.After(c.o.DebounceAfter)
			if deadline == nil {
				deadline = time.After(c.o.DebounceMax)
			}
		case <-quiet:
			c.sync(ctx, objects)
			quiet, deadline = nil, nil
		case <-deadline:
			c.sync(ctx, objects)
			quiet, deadline = nil, nil
		case <-c.kick:
			if synced {
				c.queueWrites(snapshot(objects))
			}
		}
	}
}

func keyOf(ev store.Event) objectKey {
	return objectKey{ev.Kind, ev.Object.GetNamespace(), ev.Object.GetName()}
}

// snapshot lists the objects in a stable order (kind, namespace, name).
func snapshot(objects map[objectKey]manifest.Object) []manifest.Object {
	keys := make([]objectKey, 0, len(objects))
	for k := range objects {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b objectKey) int {
		return cmp.Or(cmp.Compare(a.kind.Kind, b.kind.Kind), cmp.Compare(a.kind.Group, b.kind.Group),
			cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.name, b.name))
	})
	out := make([]manifest.Object, len(keys))
	for i, k := range keys {
		out[i] = objects[k]
	}
	return out
}

// sync translates the current objects, pushes what changed and hands the
// snapshot to the writer.
func (c *Controller) sync(ctx context.Context, objects map[objectKey]manifest.Object) {
	objs := snapshot(objects)
	var in translate.ConfigInputs
	for _, o := range objs {
		in.Add(o)
	}
	waypoints, warnings := translate.WaypointConfigs(in)
	c.logWarnings(warnings)
	res := make(map[string]proto.Message, len(waypoints))
	for _, w := range waypoints {
		res[w.Namespace+"/"+w.Name] = wire.Waypoint(w)
	}
	changed, err := c.o.Push.SetResources(wire.WaypointType, res)
	switch {
	case err != nil:
		c.o.Logf("push: %v", err)
	case changed > 0:
		c.pushes.Add(1)
		c.o.Logf("push: %d waypoint configuration(s) changed, %d in all", changed, len(res))
	}
	c.once.Do(func() { close(c.synced) })
	if ctx.Err() == nil {
		c.queueWrites(objs)
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

// queueWrites replaces any snapshot still waiting with objs.
func (c *Controller) queueWrites(objs []manifest.Object) {
	if !c.leader.Load() || len(c.o.Writers) == 0 {
		return
	}
	select {
	case <-c.writes:
	default:
	}
	c.writes <- objs
}

func (c *Controller) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case objs := <-c.writes:
			if !c.leader.Load() {
				continue
			}
			var errs []error
			for _, w := range c.o.Writers {
				if err := w.Sync(ctx, objs); err != nil && ctx.Err() == nil {
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
		}
	}
}
