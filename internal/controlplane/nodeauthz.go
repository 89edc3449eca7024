package controlplane

import (
	"cmp"
	"context"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// PodsOnNode is the CSR service's Authorizer on the embedded store, where
// callers authenticate with node tokens (identity.NodeTokenAuthenticator):
// a node may obtain the identity of a ServiceAccount one of its pods
// (spec.nodeName) runs as. It reads the store on each request — requests
// are rare, and the answer is never stale.
type PodsOnNode struct {
	Store store.Store
}

// Authorize implements identity.Authorizer.
func (p PodsOnNode) Authorize(ctx context.Context, caller identity.Caller, id spiffeid.ID) error {
	if caller.Kind != identity.CallerNode {
		return fmt.Errorf("%w: %s is not a node; on the embedded store certificates are issued to nodes", identity.ErrPermissionDenied, caller)
	}
	ns, sa, err := identity.SplitID(id)
	if err != nil {
		return fmt.Errorf("%w: %w", identity.ErrPermissionDenied, err)
	}
	pods, err := p.Store.List(ctx, manifest.Pod, store.ListOptions{Namespace: ns})
	if err != nil {
		return fmt.Errorf("listing the pods of namespace %s: %w", ns, err)
	}
	for _, obj := range pods {
		pod, ok := obj.(*corev1.Pod)
		if ok && pod.Spec.NodeName == caller.Name && cmp.Or(pod.Spec.ServiceAccountName, "default") == sa {
			return nil
		}
	}
	return fmt.Errorf("%w: no pod on node %s runs as ServiceAccount %s/%s (spec.nodeName, spec.serviceAccountName)", identity.ErrPermissionDenied, caller.Name, ns, sa)
}
