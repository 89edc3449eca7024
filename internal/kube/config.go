package kube

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Target says which cluster to use: a kubeconfig file and context, or — when
// InCluster — the service account of the pod meshway runs in.
type Target struct {
	// Kubeconfig is a kubeconfig path; empty means $KUBECONFIG, then ~/.kube/config.
	Kubeconfig string
	// Context is the kubeconfig context; empty means the current context.
	Context string
	// InCluster uses the pod's service account and the cluster's service host.
	InCluster bool
}

// Connect resolves the target to a client configuration and a description for
// `meshctl version`, e.g. "cluster https://127.0.0.1:6443 (context kind-dev)".
func Connect(t Target) (*rest.Config, string, error) {
	if t.InCluster {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, "", fmt.Errorf("in-cluster configuration: %w", err)
		}
		return withUserAgent(cfg), "cluster " + cfg.Host + " (in-cluster service account)", nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = t.Kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: t.Context})
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, "", fmt.Errorf("reading kubeconfig: %w", err)
	}
	ctxName := t.Context
	if ctxName == "" {
		ctxName = raw.CurrentContext
	}
	if _, ok := raw.Contexts[ctxName]; !ok {
		if ctxName == "" {
			return nil, "", fmt.Errorf("kubeconfig %s has no current context; pass --context", describePath(rules))
		}
		return nil, "", fmt.Errorf("context %q not found in kubeconfig %s", ctxName, describePath(rules))
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig context %q: %w", ctxName, err)
	}
	return withUserAgent(cfg), fmt.Sprintf("cluster %s (context %s)", cfg.Host, ctxName), nil
}

func describePath(rules *clientcmd.ClientConfigLoadingRules) string {
	if rules.ExplicitPath != "" {
		return rules.ExplicitPath
	}
	if len(rules.Precedence) > 0 {
		return rules.Precedence[0]
	}
	return "(none)"
}

func withUserAgent(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "meshway"
	// The CLI and control plane read whole kinds at a time; the defaults (5 qps)
	// would make `meshctl waypoint explain` on a large cluster crawl.
	cfg.QPS, cfg.Burst = 50, 100
	return cfg
}
