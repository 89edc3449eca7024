package kube

import (
	"fmt"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/kube/kubetest"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/store/storetest"
)

// TestWatchSurvivesRestarts changes an object again and again for longer than the
// API server keeps a watch open (kubetest sets 5-10 s), and requires every
// change to be delivered: the informer relists and resumes across each restart.
func TestWatchSurvivesRestarts(t *testing.T) {
	kubetest.Require(t, env)
	if testing.Short() {
		t.Skip("takes about 15 s")
	}
	env.Reset(t, "churn")
	s, err := New(env.Config, "cluster envtest")
	if err != nil {
		t.Fatal(err)
	}
	svc := storetest.MustCreate(t, s, storetest.Service("churn", "churn", nil))
	w := storetest.StartWatch(t, s, manifest.Service, store.ListOptions{Namespace: "churn"})
	w.ExpectInitial(t, "churn/churn")
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		want := fmt.Sprint(i)
		svc.SetLabels(map[string]string{"step": want})
		if svc, err = s.Update(t.Context(), svc); err != nil {
			t.Fatal(err)
		}
		ev := w.Expect(t, store.Modified, "churn/churn")
		if got := ev.Object.GetLabels()["step"]; got != want {
			t.Fatalf("step %d: event carries step %q", i, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
