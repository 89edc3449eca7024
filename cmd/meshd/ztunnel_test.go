package main_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshway/meshway/internal/model"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
)

// ztunnel is a ztunnel's xDS side, in the test's process, connected to
// meshd: it assembles its node's configuration from what meshd pushes and
// records what each response carried.
type ztunnel struct {
	*pushclient.ZtunnelConfig
	client *pushclient.Client

	mu       sync.Mutex
	received []pushclient.Resource // with their type in Name: "type name"
	removed  int
}

func (z *ztunnel) Apply(d pushclient.Delta) error {
	if err := z.ZtunnelConfig.Apply(d); err != nil {
		return err
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, rs := range [][]pushclient.Resource{d.Added, d.Updated} {
		for _, r := range rs {
			r.Name = d.TypeURL + " " + r.Name
			z.received = append(z.received, r)
		}
	}
	z.removed += len(d.Removed)
	return nil
}

// since returns the resources received after the first n, and how many
// removals in all.
func (z *ztunnel) since(n int) ([]pushclient.Resource, int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]pushclient.Resource(nil), z.received[n:]...), z.removed
}

func (z *ztunnel) count() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return len(z.received)
}

// versions snapshots what the client holds, as "type name" → version.
func (z *ztunnel) versions() map[string]string {
	out := map[string]string{}
	for _, t := range wire.ZtunnelTypes {
		for n, v := range z.client.Versions(t) {
			out[t+" "+n] = v
		}
	}
	return out
}

func startZtunnel(t *testing.T, xds, node string) *ztunnel {
	t.Helper()
	z := &ztunnel{ZtunnelConfig: pushclient.NewZtunnelConfig(node, nil, t.Logf)}
	z.client = pushclient.New(pushclient.Options{
		Address: xds, Subscriptions: pushclient.ZtunnelSubscriptions(z), Logf: func(f string, a ...any) { t.Logf("ztunnel: "+f, a...) },
		Node:       pushclient.NodeInfo{Kind: pushclient.KindZtunnel, Namespace: "istio-system", Name: "ztunnel", Instance: "ztunnel-" + node, Node: node},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = z.client.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return z
}

// has says whether the configuration holds workloads of these names.
func has(cfg *model.Ztunnel, names ...string) bool {
	if cfg == nil {
		return false
	}
	found := 0
	for _, n := range names {
		for _, w := range cfg.Workloads {
			if w.Name == n {
				found++
				break
			}
		}
	}
	return found == len(names)
}

// ztunnelSynced says whether proxy-status lists the ztunnel SYNCED on
// every type.
func ztunnelSynced(out, node string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 7 && f[1] == node {
			return f[2] == "SYNCED" && f[3] == "SYNCED" && f[4] == "SYNCED" && f[5] == "SYNCED"
		}
	}
	return false
}
