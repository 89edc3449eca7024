package store

import (
	"context"
	"slices"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/meshway/meshway/internal/manifest"
)

// Memory is a Store that keeps objects in memory, for tests and for tools that
// need a scratch store. Its resourceVersion is a store-wide counter.
type Memory struct {
	opts Options

	mu       sync.Mutex
	objects  map[objectKey]manifest.Object // private copies, resourceVersion set
	revision uint64
	watchers map[*memoryWatcher]struct{}
}

type memoryWatcher struct {
	filter watchFilter
	queue  *EventQueue
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty memory store holding opts.InitialNamespaces. It
// panics if one of them is not a valid namespace name: the names are the
// caller's constants, not input.
func NewMemory(opts Options) *Memory {
	m := &Memory{
		opts:     opts.withDefaults(),
		objects:  map[objectKey]manifest.Object{},
		watchers: map[*memoryWatcher]struct{}{},
	}
	for _, name := range opts.InitialNamespaces {
		ns := &corev1.Namespace{}
		ns.Name = name
		if _, err := m.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
			// Only an invalid name can fail here: a programming error of the caller.
			panic("store.NewMemory: initial namespace: " + err.Error())
		}
	}
	return m
}

// Describe implements Store.
func (m *Memory) Describe() string { return "memory" }

// Get implements Store.
func (m *Memory) Get(ctx context.Context, kind *manifest.Kind, namespace, name string) (manifest.Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, err := lookupKey(kind, namespace, name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	obj, ok := m.objects[key]
	if !ok {
		return nil, NotFound(kind, name)
	}
	return copyObject(obj), nil
}

// List implements Store.
func (m *Memory) List(ctx context.Context, kind *manifest.Kind, opts ListOptions) ([]manifest.Object, error) {
	if err := checkListArgs(ctx, kind, opts); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []manifest.Object
	for _, key := range m.sortedKeysLocked() {
		if obj := m.objects[key]; key.kind == kind && opts.Matches(kind, obj) {
			out = append(out, copyObject(obj))
		}
	}
	return out, nil
}

func (m *Memory) sortedKeysLocked() []objectKey {
	keys := make([]objectKey, 0, len(m.objects))
	for k := range m.objects {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

// Create implements Store.
func (m *Memory) Create(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kind, key, obj, err := prepareCreate(ctx, obj)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, exists := m.objects[key]; exists {
		return nil, AlreadyExists(kind, key.name)
	}
	if kind.Namespaced {
		if _, ok := m.objects[objectKey{kind: manifest.Namespace, name: key.namespace}]; !ok {
			return nil, NamespaceNotFound(key.namespace)
		}
	}
	m.opts.newObject(kind, obj)
	return m.storeLocked(key, nil, obj), nil
}

// Update implements Store.
func (m *Memory) Update(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
	return m.replace(ctx, obj, updatedObject)
}

// UpdateStatus implements Store.
func (m *Memory) UpdateStatus(ctx context.Context, obj manifest.Object) (manifest.Object, error) {
	return m.replace(ctx, obj, statusUpdatedObject)
}

// replace is Update and UpdateStatus: merge builds the stored object from the
// current one and the one the caller gave.
func (m *Memory) replace(ctx context.Context, obj manifest.Object, merge func(ctx context.Context, kind *manifest.Kind, current, desired manifest.Object) (manifest.Object, error)) (manifest.Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kind, key, desired, err := prepareWrite(obj)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	current, ok := m.objects[key]
	if !ok {
		return nil, NotFound(kind, key.name)
	}
	if err := checkResourceVersion(kind, key.name, desired.GetResourceVersion(), current.GetResourceVersion()); err != nil {
		return nil, err
	}
	next, err := merge(ctx, kind, current, desired)
	if err != nil {
		return nil, err
	}
	if same, err := sameContent(current, next); err != nil {
		return nil, err
	} else if same {
		return copyObject(current), nil
	}
	return m.storeLocked(key, current, next), nil
}

// storeLocked saves obj (owned by the store from now on) under a new
// resourceVersion, tells the watchers and returns a copy for the caller.
func (m *Memory) storeLocked(key objectKey, old, obj manifest.Object) manifest.Object {
	m.revision++
	obj.SetResourceVersion(strconv.FormatUint(m.revision, 10))
	m.objects[key] = obj
	m.notifyLocked(key, old, obj)
	return copyObject(obj)
}

func (m *Memory) notifyLocked(key objectKey, old, new manifest.Object) {
	for w := range m.watchers {
		if ev, ok := w.filter.changeEvent(key, old, new); ok {
			w.queue.Push(ev)
		}
	}
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, kind *manifest.Kind, namespace, name string, opts DeleteOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key, err := lookupKey(kind, namespace, name)
	if err != nil {
		return err
	}
	if err := checkDeletable(key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	current, ok := m.objects[key]
	if !ok {
		return NotFound(kind, name)
	}
	if err := checkResourceVersion(kind, name, opts.ResourceVersion, current.GetResourceVersion()); err != nil {
		return err
	}
	if kind == manifest.Namespace {
		// Contents go first, so a watcher never sees an object outlive its namespace.
		for _, k := range m.sortedKeysLocked() {
			if k.kind.Namespaced && k.namespace == name {
				m.deleteLocked(k)
			}
		}
	}
	m.deleteLocked(key)
	return nil
}

func (m *Memory) deleteLocked(key objectKey) {
	old := m.objects[key]
	delete(m.objects, key)
	m.revision++
	m.notifyLocked(key, old, nil)
}

// Watch implements Store.
func (m *Memory) Watch(ctx context.Context, kind *manifest.Kind, opts ListOptions) (<-chan Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkNamespaceArg(opts); err != nil {
		return nil, err
	}
	w := &memoryWatcher{filter: watchFilter{kind: kind, opts: opts}, queue: NewEventQueue()}
	m.mu.Lock()
	// The initial events and the registration happen under one lock, so no
	// change falls between the snapshot and the first live event.
	var initial []Event
	for _, key := range m.sortedKeysLocked() {
		if ev, ok := w.filter.changeEvent(key, nil, m.objects[key]); ok {
			initial = append(initial, ev)
		}
	}
	w.queue.Push(append(initial, Event{Type: Synced, Kind: kind})...)
	m.watchers[w] = struct{}{}
	m.mu.Unlock()

	out := make(chan Event)
	go w.queue.Run(ctx, out, func() {
		m.mu.Lock()
		delete(m.watchers, w)
		m.mu.Unlock()
	})
	return out, nil
}
