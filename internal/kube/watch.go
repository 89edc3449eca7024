package kube

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// resyncPeriod re-delivers every object as Modified now and then, so a consumer
// that dropped an event heals. The informer's reflector already relists after a
// watch restart (a compacted or expired resourceVersion), so no change is missed.
const resyncPeriod = 10 * time.Minute

// Watch implements store.Store with one client-go informer per kind: objects that
// exist come first as Added, then Synced once every informer has delivered its
// initial list, then changes until ctx is done.
func (s *Store) Watch(ctx context.Context, kind *manifest.Kind, opts store.ListOptions) (<-chan store.Event, error) {
	kinds := manifest.All
	if kind != nil {
		if _, err := s.resource(kind); err != nil {
			return nil, err
		}
		kinds = []*manifest.Kind{kind}
	}
	ctx, cancel := context.WithCancel(ctx)
	queue := store.NewEventQueue()
	var synced []cache.InformerSynced
	for _, k := range kinds {
		inf := s.informer(k, opts)
		reg, err := inf.AddEventHandler(handler(k, queue))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("watching %s: %w", k.Resource, err)
		}
		synced = append(synced, reg.HasSynced)
		go inf.RunWithContext(ctx)
	}
	out := make(chan store.Event)
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), synced...) {
			queue.Push(store.Event{Type: store.Synced, Kind: kind})
		}
	}()
	go queue.Run(ctx, out, cancel)
	return out, nil
}

func (s *Store) informer(kind *manifest.Kind, opts store.ListOptions) cache.SharedIndexInformer {
	r := s.resources[kind]
	ns := namespaceFor(kind, opts.Namespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
			lo.LabelSelector = listOptions(opts).LabelSelector
			items, rv, err := r.list(ctx, ns, lo)
			if err != nil {
				return nil, err
			}
			// The reflector reads the items and the list's resourceVersion, where its watch starts.
			list := &metav1.List{ListMeta: metav1.ListMeta{ResourceVersion: rv}, Items: make([]runtime.RawExtension, len(items))}
			for i, o := range items {
				list.Items[i].Object = o
			}
			return list, nil
		},
		WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
			lo.LabelSelector = listOptions(opts).LabelSelector
			return r.watch(ctx, ns, lo)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, kind.New(), resyncPeriod, cache.Indexers{})
	// Fill in TypeMeta (a typed client's watch leaves it empty) once, as
	// the object enters the informer's cache: handlers then hand the
	// cache's object on as it is, without a copy (see store.Event).
	// Before Run, SetTransform cannot fail.
	_ = inf.SetTransform(func(obj any) (any, error) {
		if o, ok := obj.(manifest.Object); ok {
			setKind(kind, o)
		}
		return obj, nil
	})
	return inf
}

// handler turns informer notifications into store events.
func handler(kind *manifest.Kind, queue *store.EventQueue) cache.ResourceEventHandler {
	push := func(t store.EventType, obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		o, ok := obj.(manifest.Object)
		if !ok {
			return
		}
		// The informer's cache's object, shared read-only, as store.Event
		// says; its kind was set by the informer's transform.
		queue.Push(store.Event{Type: t, Kind: kind, Object: o})
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { push(store.Added, obj) },
		UpdateFunc: func(_, obj any) { push(store.Modified, obj) },
		DeleteFunc: func(obj any) { push(store.Deleted, obj) },
	}
}
