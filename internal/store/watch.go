package store

import (
	"context"
	"sync"

	"github.com/meshway/meshway/internal/manifest"
)

// watchFilter is what one Watch selects: a kind (nil: every kind) and options.
type watchFilter struct {
	kind *manifest.Kind
	opts ListOptions
}

func (f watchFilter) matches(key objectKey, obj manifest.Object) bool {
	if f.kind != nil && key.kind != f.kind {
		return false
	}
	return f.opts.Matches(key.kind, obj)
}

// changeEvent is the event a watch with filter f sees when the object at key
// goes from old to new (nil for absent). An object that starts or stops
// matching a label selector is Added or Deleted for that watch, as the
// Kubernetes watch cache reports it. The event carries the store's own
// object, which the store never modifies (a write stores a new one): see
// Event.
func (f watchFilter) changeEvent(key objectKey, old, new manifest.Object) (Event, bool) {
	oldIn := old != nil && f.matches(key, old)
	newIn := new != nil && f.matches(key, new)
	switch {
	case oldIn && newIn:
		return Event{Type: Modified, Kind: key.kind, Object: new}, true
	case newIn:
		return Event{Type: Added, Kind: key.kind, Object: new}, true
	case oldIn:
		return Event{Type: Deleted, Kind: key.kind, Object: old}, true
	}
	return Event{}, false
}

// EventQueue buffers one watch's events without bound, so a writer that pushes
// never waits for a slow reader; a goroutine (Run) hands them to the reader.
// Backends use it to implement Watch.
type EventQueue struct {
	mu      sync.Mutex
	pending []Event
	wake    chan struct{} // capacity 1: "pending is not empty"
}

// NewEventQueue returns an empty queue.
func NewEventQueue() *EventQueue {
	return &EventQueue{wake: make(chan struct{}, 1)}
}

// Push appends events; it never blocks.
func (q *EventQueue) Push(events ...Event) {
	if len(events) == 0 {
		return
	}
	q.mu.Lock()
	q.pending = append(q.pending, events...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run delivers events to out until ctx is done, then calls stop (which must
// unregister the queue so nothing more is pushed) and closes out.
func (q *EventQueue) Run(ctx context.Context, out chan<- Event, stop func()) {
	defer close(out)
	defer stop()
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		q.mu.Unlock()
		for _, ev := range batch {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return
		}
	}
}
