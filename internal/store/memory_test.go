package store_test

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return store.NewMemory(store.Options{InitialNamespaces: []string{"default", "other"}})
	})
}

// TestOlderVersionIsStoredAsCurrent: an object whose TypeMeta names an older
// version the CRD serves is validated by that version's schema and stored in
// the kind's version, as an API server converts it.
func TestOlderVersionIsStoredAsCurrent(t *testing.T) {
	m := store.NewMemory(store.Options{InitialNamespaces: []string{"default"}})
	r := storetest.HTTPRoute("default", "reviews")
	r.APIVersion, r.Kind = "gateway.networking.k8s.io/v1beta1", "HTTPRoute"
	created := storetest.MustCreate(t, m, r)
	if got := created.GetObjectKind().GroupVersionKind(); got != manifest.HTTPRoute.GroupVersionKind() {
		t.Errorf("stored as %v, want %v", got, manifest.HTTPRoute.GroupVersionKind())
	}
	neg := int32(-1)
	r.Spec.Rules[0].BackendRefs[0].Weight = &neg
	r.ResourceVersion = created.GetResourceVersion()
	if _, err := m.Update(t.Context(), r); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "weight") {
		t.Errorf("Update in v1beta1 with a negative weight: %v, want Invalid", err)
	}
}
