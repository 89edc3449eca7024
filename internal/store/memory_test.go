package store_test

import (
	"testing"

	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return store.NewMemory(store.Options{InitialNamespaces: []string{"default", "other"}})
	})
}
