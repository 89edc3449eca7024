package kubetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/meshway/meshway/internal/manifest"
)

// systemNamespaces exist in every cluster and are never deleted.
var systemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease", "istio-system"}

// ClusterMade reports objects every cluster holds without anyone applying them:
// the system namespaces (and istio-system, which the mesh's installation makes),
// the API server's "kubernetes" Service, and each namespace's default
// ServiceAccount and root CA ConfigMap.
func ClusterMade(k *manifest.Kind, obj manifest.Object) bool {
	ns, name := obj.GetNamespace(), obj.GetName()
	return k == manifest.Namespace && slices.Contains(systemNamespaces, name) && name != "default" ||
		k == manifest.ServiceAccount && name == "default" ||
		k == manifest.ConfigMap && name == "kube-root-ca.crt" ||
		k == manifest.Service && ns == "default" && name == "kubernetes"
}

// Reset returns the cluster to a fresh state between tests: it deletes every
// object of the kinds meshway reads (except what the cluster makes itself) and
// every namespace but the system ones and keep, waits until the namespace
// controller has removed them, and makes sure the namespaces in keep exist.
func (e *Env) Reset(t testing.TB, keep ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.reset(ctx, keep); err != nil {
		t.Fatalf("resetting the cluster: %v", err)
	}
}

func (e *Env) reset(ctx context.Context, keep []string) error {
	dyn, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	kept := append(slices.Clone(systemNamespaces), keep...)
	for _, k := range manifest.All {
		if k == manifest.Namespace {
			continue
		}
		gvr := schema.GroupVersionResource{Group: k.Group, Version: k.Version, Resource: k.Resource}
		list, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing %s: %w", k.Resource, err)
		}
		for _, o := range list.Items {
			if ClusterMade(k, &o) {
				continue
			}
			var rc dynamic.ResourceInterface = dyn.Resource(gvr)
			if k.Namespaced {
				rc = dyn.Resource(gvr).Namespace(o.GetNamespace())
			}
			if err := rc.Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting %s %s/%s: %w", k.Kind, o.GetNamespace(), o.GetName(), err)
			}
		}
	}
	if err := resetRBAC(ctx, dyn); err != nil {
		return err
	}
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, ns := range nss.Items {
		if !slices.Contains(kept, ns.Name) && ns.DeletionTimestamp == nil {
			if err := cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting namespace %s: %w", ns.Name, err)
			}
		}
	}
	for {
		nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		pending := ""
		for _, ns := range nss.Items {
			if !slices.Contains(kept, ns.Name) || ns.DeletionTimestamp != nil {
				pending = ns.Name // a kept namespace being deleted is re-created once gone
			}
		}
		if pending == "" {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s is still being deleted: %w", pending, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, n := range keep {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating namespace %s: %w", n, err)
		}
	}
	// The system namespaces lose any labels a test put on them.
	for _, n := range []string{"default", "istio-system"} {
		ns, err := cs.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(ns.Labels) > 1 {
			ns.Labels = map[string]string{corev1.LabelMetadataName: n}
			if _, err := cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("clearing labels of namespace %s: %w", n, err)
			}
		}
	}
	return nil
}

// resetRBAC deletes the roles and bindings tests made (the cluster-scoped
// ones, and those in the namespaces Reset keeps, outlive their namespace's
// deletion), leaving the API server's own.
func resetRBAC(ctx context.Context, dyn dynamic.Interface) error {
	for _, resource := range []string{"clusterroles", "clusterrolebindings", "roles", "rolebindings"} {
		gvr := schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: resource}
		list, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("listing %s: %w", resource, err)
		}
		for _, o := range list.Items {
			if o.GetLabels()["kubernetes.io/bootstrapping"] == "rbac-defaults" { // the API server's own
				continue
			}
			var rc dynamic.ResourceInterface = dyn.Resource(gvr)
			if ns := o.GetNamespace(); ns != "" {
				rc = dyn.Resource(gvr).Namespace(ns)
			}
			if err := rc.Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting %s %s/%s: %w", resource, o.GetNamespace(), o.GetName(), err)
			}
		}
	}
	return nil
}
