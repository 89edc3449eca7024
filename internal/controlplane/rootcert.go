package controlplane

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// The ConfigMap holding the mesh's roots in every namespace, under Istio's
// name, key and label, so that pod templates written for Istio (its
// waypoint template mounts istio-ca-root-cert at /var/run/secrets/istio)
// work unchanged.
const (
	RootCertConfigMap = "istio-ca-root-cert"
	RootCertKey       = "root-cert.pem"
	rootCertLabel     = "istio.io/config"
)

// rootCertSkipped are the namespaces Istio leaves without the ConfigMap
// (its injector's ignored namespaces): no mesh pod runs there.
var rootCertSkipped = []string{"kube-system", "kube-public", "kube-node-lease", "local-path-storage"}

// RootCertWriter keeps ConfigMap istio-ca-root-cert (root-cert.pem: every
// root the mesh trusts, PEM) in every namespace but rootCertSkipped, as
// istiod does, so that a pod can verify the control plane's serving
// certificate before it holds any certificate of its own. Every
// namespace, not only those with a waypoint: a pod's ConfigMap volume
// must resolve before the pod can start, so the ConfigMap has to be there
// before the first waypoint of a new namespace is scheduled, and any
// other mesh workload may mount it too. It writes only ConfigMaps whose
// content differs from the roots' (so a rotation rewrites each once, and a
// Sync with nothing changed writes nothing), and never deletes one: a
// namespace's deletion takes its ConfigMap with it.
type RootCertWriter struct {
	st    store.Store
	roots func() []byte
	logf  func(format string, args ...any)

	mu sync.Mutex // serializes Syncs
	// written is the resourceVersion of the last write per namespace: a
	// snapshot taken before the store reported that write makes the next
	// Sync write the same content again, which changes nothing and is not
	// logged.
	written map[string]string
}

// NewRootCertWriter returns a writer of roots()'s PEM (e.g. the CA's
// Bundle().PEM) to st. Run it as a Writer of the Controller, which calls
// it while this replica leads; call Controller.Rewrite when the roots
// change.
func NewRootCertWriter(st store.Store, roots func() []byte, logf func(format string, args ...any)) *RootCertWriter {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &RootCertWriter{st: st, roots: roots, logf: logf, written: map[string]string{}}
}

// Sync implements Writer.
func (w *RootCertWriter) Sync(ctx context.Context, objs []manifest.Object) error {
	return w.syncIndexed(ctx, newStoredObjects(objs))
}

func (w *RootCertWriter) syncIndexed(ctx context.Context, x *storedObjects) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	pem := string(w.roots())
	if pem == "" {
		return errors.New("the CA has no root certificate to publish in ConfigMap " + RootCertConfigMap)
	}
	var errs []error
	for _, ns := range storedOfKind[*corev1.Namespace](x, manifest.Namespace) {
		if slices.Contains(rootCertSkipped, ns.Name) || ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating {
			continue
		}
		cur, _ := x.get(manifest.ConfigMap, ns.Name, RootCertConfigMap).(*corev1.ConfigMap)
		if cur != nil && cur.Data[RootCertKey] == pem && cur.Labels[rootCertLabel] == "true" {
			continue
		}
		cm := &corev1.ConfigMap{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{
				Name: RootCertConfigMap, Namespace: ns.Name,
				Labels: map[string]string{rootCertLabel: "true"},
			},
			Data: map[string]string{RootCertKey: pem},
		}
		stored, err := w.st.Apply(ctx, cm, store.ApplyOptions{FieldManager: deployFieldManager, Force: true})
		if err != nil {
			if apierrors.IsNotFound(err) {
				continue // the namespace went meanwhile
			}
			hint := ""
			if apierrors.IsForbidden(err) {
				hint = " (meshd's ServiceAccount needs RBAC get, create and patch on configmaps in every namespace)"
			}
			errs = append(errs, fmt.Errorf("writing ConfigMap %s/%s: %w%s", ns.Name, RootCertConfigMap, err, hint))
			continue
		}
		if rv := stored.GetResourceVersion(); rv != w.written[ns.Name] {
			w.written[ns.Name] = rv
			w.logf("ConfigMap %s/%s written with the mesh's root certificates", ns.Name, RootCertConfigMap)
		}
	}
	return errors.Join(errs...)
}
