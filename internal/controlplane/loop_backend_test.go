package controlplane

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"google.golang.org/protobuf/proto"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/deploy"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/push"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/store"
)

var controllerCases = []backendCase{
	{"ControllerDeploysAndPushes", testControllerDeploysAndPushes},
}

// lastConfig keeps the newest configuration a waypoint client accepted.
type lastConfig struct {
	mu  sync.Mutex
	cfg *meshpb.WaypointConfig
}

func (l *lastConfig) Update(_, _ string, msg proto.Message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = msg.(*meshpb.WaypointConfig)
	return nil
}

func (l *lastConfig) Remove(string) {}

func (l *lastConfig) get() *meshpb.WaypointConfig {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg
}

// testControllerDeploysAndPushes is meshd's loop on a backend: a waypoint
// Gateway is deployed by the leader's writers; once its pod is ready the
// Gateway is programmed, the bound service is captured and its
// configuration reaches a subscribed waypoint.
func testControllerDeploysAndPushes(t *testing.T, st store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	srv := push.NewServer(push.ServerOptions{Types: []string{wire.WaypointType}, Logf: t.Logf})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	ctl := New(Options{
		Store: st, Push: srv, Logf: t.Logf,
		Writers: []Writer{NewDeployer(st, deploy.Options{}, t.Logf), NewStatusWriter(st, t.Logf)},
	})
	ctl.SetLeader(true)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = ctl.Run(ctx) }()
	got := &lastConfig{}
	go func() {
		defer wg.Done()
		_ = pushclient.New(pushclient.Options{
			Address: ln.Addr().String(), TypeURL: wire.WaypointType, Names: []string{"default/waypoint"}, Handler: got,
			Node: pushclient.NodeInfo{Kind: pushclient.KindWaypoint, Namespace: "default", Name: "waypoint", Instance: "test"},
		}).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); srv.Stop(); wg.Wait() })

	ns := get[*corev1.Namespace](t, st, manifest.MustKindOf(&corev1.Namespace{}), "", "default")
	ns.Labels = map[string]string{"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"}
	if _, err := st.Update(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	create(t, st, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "reviews"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "reviews"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 9080}},
		},
	})
	create(t, st, guideWaypoint("waypoint"))

	var dep *appsv1.Deployment
	waitUntil(t, "the waypoint's Deployment", func() bool {
		obj, err := st.Get(t.Context(), manifest.MustKindOf(&appsv1.Deployment{}), "default", "waypoint")
		if err == nil {
			dep = obj.(*appsv1.Deployment)
		}
		return err == nil
	})
	if got.get() != nil {
		t.Fatal("a configuration was pushed before the waypoint was ready")
	}
	readyPod(t, st, "waypoint-5d8f9c7b6-x2x9z", dep)
	waitUntil(t, "the Gateway programmed", func() bool {
		gw := get[*gwv1.Gateway](t, st, manifest.MustKindOf(&gwv1.Gateway{}), "default", "waypoint")
		c := findCondition(gw.Status.Conditions, "Programmed")
		return c != nil && c.Status == metav1.ConditionTrue
	})
	waitUntil(t, "reviews pushed to the waypoint", func() bool {
		// (On Kubernetes the default namespace's "kubernetes" Service is bound too.)
		for _, s := range got.get().GetServices() {
			if s.GetName() == "reviews" {
				return true
			}
		}
		return false
	})
	waitUntil(t, "reviews bound in its status", func() bool {
		svc := get[*corev1.Service](t, st, manifest.MustKindOf(&corev1.Service{}), "default", "reviews")
		c := findCondition(svc.Status.Conditions, "istio.io/WaypointBound")
		return c != nil && c.Status == metav1.ConditionTrue
	})
	waitUntil(t, "the waypoint SYNCED", func() bool {
		for _, p := range srv.Status() {
			for _, r := range p.Resources {
				if r.State == push.Synced {
					return true
				}
			}
		}
		return false
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
