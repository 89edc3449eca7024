package kube

import (
	"os"
	"testing"

	"github.com/meshway/meshway/internal/kube/kubetest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/store/storetest"
)

var env *kubetest.Env

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &env)) }

// TestContract runs the store contract suite, unchanged, against a real
// kube-apiserver: the suite the embedded backends pass.
func TestContract(t *testing.T) {
	kubetest.Require(t, env)
	s, err := New(env.Config, "cluster envtest")
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		env.Reset(t, "other")
		return s
	}, storetest.IgnoreObjects(kubetest.ClusterMade))
}
