package kube

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Election names the Lease replicas compete for.
type Election struct {
	Namespace, Name string
	// Identity is this replica's name in the Lease (e.g. the pod name).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod default to 15s, 10s and
	// 2s, client-go's usual values.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Lead takes part in the election until ctx ends, calling lead(true) when
// this replica becomes the leader and lead(false) when it stops being one,
// so that two replicas never both write. Losing the lease is not final: the
// replica stands again.
func Lead(ctx context.Context, cfg *rest.Config, e Election, lead func(bool)) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("leader election client: %w", err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(e),
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	cfgLE := leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   or(e.LeaseDuration, 15*time.Second),
		RenewDeadline:   or(e.RenewDeadline, 10*time.Second),
		RetryPeriod:     or(e.RetryPeriod, 2*time.Second),
		ReleaseOnCancel: true,
		Name:            e.Namespace + "/" + e.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { lead(true) },
			OnStoppedLeading: func() { lead(false) },
		},
	}
	le, err := leaderelection.NewLeaderElector(cfgLE)
	if err != nil {
		return fmt.Errorf("leader election %s/%s: %w", e.Namespace, e.Name, err)
	}
	for ctx.Err() == nil {
		le.Run(ctx) // returns when leadership is lost or ctx ends
	}
	return nil
}

func metaFor(e Election) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name}
}
