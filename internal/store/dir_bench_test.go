package store_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	securityv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	istiosecurityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/store/storetest"
)

// BenchmarkDirFirstRead measures what a process pays to read a directory
// store for the first time (meshd's start, every meshctl command): a fresh
// Dir lists every kind, parsing every file, and checking the custom resources
// written by hand against their CRDs. The store holds 20 namespaces of 10
// Services, 20 Pods, a waypoint Gateway, 2 HTTPRoutes and 2
// AuthorizationPolicies. (CRDs are read and their rules compiled once per
// process: the first iteration pays for that.)
func BenchmarkDirFirstRead(b *testing.B) {
	root := b.TempDir()
	d, err := store.OpenDir(root, store.Options{InitialNamespaces: []string{"default"}})
	if err != nil {
		b.Fatal(err)
	}
	objects := 0
	create := func(obj manifest.Object) {
		if _, err := d.Create(b.Context(), obj); err != nil {
			b.Fatal(err)
		}
		objects++
	}
	for n := range 20 {
		ns := fmt.Sprintf("ns-%d", n)
		create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		create(storetest.Gateway(ns, "waypoint"))
		for s := range 10 {
			create(storetest.Service(ns, fmt.Sprintf("svc-%d", s), map[string]string{"app": "x"}))
		}
		for p := range 20 {
			create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("pod-%d", p), Labels: map[string]string{"app": "x"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}})
		}
		for r := range 2 {
			port := gwv1.PortNumber(80)
			group, kind := gwv1.Group(""), gwv1.Kind("Service")
			w := int32(50)
			create(&gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("route-%d", r)},
				Spec: gwv1.HTTPRouteSpec{
					CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Group: &group, Kind: &kind, Name: "svc-0", Port: &port}}},
					Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "svc-1", Port: &port}, Weight: &w}},
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "svc-2", Port: &port}, Weight: &w}},
					}}},
				}})
			ap := &istiosecurityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("ap-%d", r)}}
			ap.Spec.TargetRefs = []*typev1beta1.PolicyTargetReference{{Kind: "Service", Name: "svc-0"}}
			ap.Spec.Rules = []*securityv1beta1.Rule{{To: []*securityv1beta1.Rule_To{{Operation: &securityv1beta1.Operation{Methods: []string{"GET"}}}}}}
			create(ap)
		}
	}
	objects++ // the initial namespace
	b.Run("written-by-store", func(b *testing.B) { benchmarkFirstRead(b, root, objects) })
	// The same files without the line saying the store wrote them: every
	// custom resource is checked against its CRD when read.
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(data, []byte("# Written by meshway")) {
			_, rest, _ := bytes.Cut(data, []byte("\n"))
			return os.WriteFile(path, rest, 0o644)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("written-by-hand", func(b *testing.B) { benchmarkFirstRead(b, root, objects) })
}

func benchmarkFirstRead(b *testing.B, root string, objects int) {
	// The machines this runs on are shared: CPU time says more than the
	// wall clock about the work a read does.
	cpuBefore := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		fresh, err := store.OpenDir(root, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		read := 0
		for _, k := range manifest.All {
			list, err := fresh.List(b.Context(), k, store.ListOptions{})
			if err != nil {
				b.Fatal(err)
			}
			read += len(list)
		}
		if read != objects {
			b.Fatalf("read %d objects, want %d", read, objects)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpuBefore)/float64(b.N)/1e6, "cpu-ms/op")
	b.ReportMetric(float64(objects), "objects")
}

// cpuTime is the process's user and system CPU time so far, in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
