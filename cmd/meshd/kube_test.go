package main_test

import (
	"context"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/kube"
	"github.com/meshway/meshway/internal/kube/kubetest"
	"github.com/meshway/meshway/internal/manifest"
)

// TestMeshdOnKubernetes runs the meshd binary against a real
// kube-apiserver through a kubeconfig, as on a cluster, with the
// permissions of manifests/meshd-rbac.yaml: it wins the leader election
// Lease, deploys a waypoint Gateway's objects and writes its status.
func TestMeshdOnKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds meshd and starts a Kubernetes control plane: skipped with -short")
	}
	if reason := kubetest.Missing(); reason != "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the tests against a real kube-apiserver: " + reason)
		}
		t.Skip("no Kubernetes control plane: " + reason)
	}
	env, err := kubetest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig := meshdKubeconfig(t, env)
	st, err := kube.New(env.Config, "cluster envtest")
	if err != nil {
		t.Fatal(err)
	}

	m := &mesh{t: t, bin: t.TempDir()}
	build(t, m.bin, "github.com/meshway/meshway/cmd/meshd")
	m.xds, m.monitor = freeAddr(t), freeAddr(t)
	m.meshd = m.start("meshd", "--kubeconfig", kubeconfig, "-xds-address", m.xds, "-secure-address", freeAddr(t), "-monitoring-address", m.monitor)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gw := &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "waypoint"},
		Spec: gwv1.GatewaySpec{
			GatewayClassName: "istio-waypoint",
			Listeners:        []gwv1.Listener{{Name: "mesh", Port: 15008, Protocol: "HBONE"}},
		},
	}
	if _, err := st.Create(ctx, gw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "meshd (the leader) to deploy the waypoint", func() bool {
		_, err := st.Get(ctx, manifest.MustKindOf(&appsv1.Deployment{}), "default", "waypoint")
		return err == nil
	})
	// The CRD's default status says Accepted Unknown (Pending) until a
	// controller writes its own.
	waitFor(t, 30*time.Second, "meshd to write the Gateway's status (Accepted True)", func() bool {
		obj, err := st.Get(ctx, manifest.MustKindOf(&gwv1.Gateway{}), "default", "waypoint")
		return err == nil && meta.IsStatusConditionTrue(obj.(*gwv1.Gateway).Status.Conditions, string(gwv1.GatewayConditionAccepted))
	})
	m.checkPermissions()
}

// meshdKubeconfig applies manifests/meshd-rbac.yaml to env's cluster and
// returns a kubeconfig for its ServiceAccount istio-system/meshd: meshd run
// with it has the manifest's permissions and no others.
func meshdKubeconfig(t *testing.T, env *kubetest.Env) string {
	t.Helper()
	if err := env.ApplyRBAC("../../manifests/meshd-rbac.yaml"); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := env.ServiceAccountKubeconfig("istio-system", "meshd")
	if err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}
