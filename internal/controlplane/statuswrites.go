package controlplane

import (
	"context"
	"sync"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// StatusWrites is the store as the writers use it: it remembers each status
// they write (UpdateStatus) until the store's event for it comes back, so
// the controller can tell its own status writes from anyone else's. Each
// status write comes back as a change, and a change gives the writers a
// round, which reads the whole mesh to find they have nothing to write: a
// round after every route change's status write, and thousands at
// start-up. A status written by someone else (kubectl editing the status
// subresource) still gives them a round, so meshd's status is restored.
type StatusWrites struct {
	store.Store

	mu      sync.Mutex
	written map[storedKey]string // → the resourceVersion the write stored
}

// NewStatusWrites wraps st; the writers write through the result, and
// Options.StatusWrites is it.
func NewStatusWrites(st store.Store) *StatusWrites {
	return &StatusWrites{Store: st, written: map[storedKey]string{}}
}

// UpdateStatus implements store.Store, remembering what it stored.
func (s *StatusWrites) UpdateStatus(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
	out, err := s.Store.UpdateStatus(ctx, obj)
	if err != nil {
		return out, err
	}
	if k, ok := storedKeyOf(out); ok {
		s.mu.Lock()
		s.written[k] = out.GetResourceVersion()
		s.mu.Unlock()
	}
	return out, nil
}

// echo reports whether obj, from the store's watch, is what a status write
// through s stored. The write is forgotten once any event for its object
// comes (the watch may have folded it into a later change).
func (s *StatusWrites) echo(obj manifest.Object) bool {
	if s == nil {
		return false
	}
	k, ok := storedKeyOf(obj)
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rv, found := s.written[k]
	if !found {
		return false
	}
	delete(s.written, k)
	return rv != "" && rv == obj.GetResourceVersion()
}
