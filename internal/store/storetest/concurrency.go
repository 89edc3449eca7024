package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// testNoLostUpdate runs concurrent read-modify-write increments; with
// resourceVersion preconditions and retries, none may be lost.
func testNoLostUpdate(t *testing.T, s store.Store) {
	MustCreate(t, s, Service("default", "counter", map[string]string{"count": "0"}))
	Increment(t, s, 8, 25)
	got := MustGet(t, s, manifest.Service, "default", "counter")
	if got.GetLabels()["count"] != "200" {
		t.Errorf("count = %s after 8×25 increments, want 200", got.GetLabels()["count"])
	}
}

// Increment adds workers×times to the "count" label of Service default/counter
// with read-modify-write retried on Conflict, from workers goroutines.
func Increment(t testing.TB, s store.Store, workers, times int) {
	t.Helper()
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range times {
				if err := incrementOnce(ctx, s); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func incrementOnce(ctx context.Context, s store.Store) error {
	for attempt := 0; attempt < 10000; attempt++ {
		obj, err := s.Get(ctx, manifest.Service, "default", "counter")
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(obj.GetLabels()["count"])
		if err != nil {
			return fmt.Errorf("count label: %w", err)
		}
		obj.GetLabels()["count"] = strconv.Itoa(n + 1)
		_, err = s.Update(ctx, obj)
		if apierrors.IsConflict(err) {
			continue
		}
		return err
	}
	return errors.New("gave up after 10000 conflicts")
}
