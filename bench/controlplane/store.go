package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// writeStoreDir writes the mesh into root in the directory store's on-disk
// format (see internal/store/dir.go): <ns>/<resource>/<name>.yaml for each
// object and .status/<same path> for the status of Pods and Gateways, with
// the object's uid, as the store writes them. Going through store.Dir would
// fsync every one of the ~110,000 files (minutes); the files written here
// are what the store reads back either way, and meshd reads them as
// hand-written files (the bench checks the counts first).
func writeStoreDir(root string, size meshSize) (files int, err error) {
	// Encoding is most of the cost: one writer per CPU.
	objs := make(chan manifest.Object, 256)
	counts := make([]int, runtime.GOMAXPROCS(0))
	errs := make([]error, len(counts))
	var wg sync.WaitGroup
	for w := range counts {
		wg.Go(func() {
			for obj := range objs {
				if errs[w] == nil {
					var n int
					n, errs[w] = writeObjectFiles(root, obj)
					counts[w] += n
				}
			}
		})
	}
	generate(size, func(obj manifest.Object) { objs <- obj })
	close(objs)
	wg.Wait()
	for w := range counts {
		files += counts[w]
	}
	return files, errors.Join(errs...)
}

// writeObjectFiles writes obj's spec file and, for Pods and Gateways, its
// status file; it returns how many files it wrote.
func writeObjectFiles(root string, obj manifest.Object) (int, error) {
	kind := manifest.MustKindOf(obj)
	m, err := manifest.ToMap(obj)
	if err != nil {
		return 0, err
	}
	status := m["status"]
	delete(m, "status")
	spec, err := sigsyaml.Marshal(m)
	if err != nil {
		return 0, err
	}
	dir := obj.GetNamespace()
	if !kind.Namespaced {
		dir = "_cluster"
	}
	rel := dir + "/" + kind.QualifiedResource() + "/" + obj.GetName() + ".yaml"
	write := func(rel string, data []byte) error {
		path := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, data, 0o644)
	}
	if err := write(rel, spec); err != nil {
		return 0, err
	}
	if kind != manifest.Pod && kind != manifest.Gateway {
		return 1, nil // no status worth keeping
	}
	body, err := sigsyaml.Marshal(map[string]any{"uid": obj.GetUID(), "status": status})
	if err != nil {
		return 1, err
	}
	return 2, write(".status/"+rel, append([]byte("# Status written by the control plane benchmark.\n"), body...))
}

// checkStore checks that a store holds what generate wrote — every
// namespace, every Gateway with its status, and the pods of one namespace
// with theirs — to catch files the directory store would skip. (Listing
// every pod of the directory store would take the bench half a minute and
// a copy of each in memory.)
func checkStore(ctx context.Context, st store.Store, size meshSize) error {
	count := func(kind *manifest.Kind, ns string, want int) ([]manifest.Object, error) {
		objs, err := st.List(ctx, kind, store.ListOptions{Namespace: ns})
		if err == nil && len(objs) != want {
			err = fmt.Errorf("%s: %s holds %d %s, want %d", st.Describe(), kind.Kind, len(objs), kind.Resource, want)
		}
		return objs, err
	}
	if _, err := count(manifest.Namespace, "", size.namespaces+2); err != nil {
		return err
	}
	gws, err := count(manifest.Gateway, "", size.namespaces)
	if err != nil {
		return err
	}
	pods, err := count(manifest.Pod, nsName(0), size.services*size.podsPerService)
	if err != nil {
		return err
	}
	if len(gws[0].(*gwv1.Gateway).Status.Addresses) == 0 || pods[0].(*corev1.Pod).Status.PodIP == "" {
		return fmt.Errorf("%s: Gateway %s and pod %s/%s should have a status: the status files were not read",
			st.Describe(), gws[0].GetName(), pods[0].GetNamespace(), pods[0].GetName())
	}
	return nil
}

// change is one of the measured changes, in namespace ns (so that it
// affects that namespace's waypoint only).
type change struct {
	kind  string // "pod" (a label on a pod) or "route" (an HTTPRoute weight)
	ns    int
	value int // the label's value, or svc-0's weight
}

func (c change) String() string { return fmt.Sprintf("%s %d %d", c.kind, c.ns, c.value) }

func parseChange(s string) (change, error) {
	var c change
	_, err := fmt.Sscanf(s, "%s %d %d", &c.kind, &c.ns, &c.value)
	return c, err
}

// changeLabel is the label a pod change sets: the waypoint's configuration
// holds every label of its endpoints, and the ztunnels' the workload's
// canonical revision, so that both see the change.
const changeLabel = "service.istio.io/canonical-revision"

// changePod is the pod whose label pod changes set: one endpoint of svc-1.
func changePod(size meshSize) string { return podName(min(1, size.services-1), 0) }

// applyChange makes c in st, as `meshctl label` or `meshctl apply` would.
func applyChange(ctx context.Context, st store.Store, size meshSize, c change) error {
	switch c.kind {
	case "pod":
		obj, err := st.Get(ctx, manifest.Pod, nsName(c.ns), changePod(size))
		if err != nil {
			return err
		}
		lbls := obj.GetLabels()
		lbls[changeLabel] = strconv.Itoa(c.value)
		obj.SetLabels(lbls)
		_, err = st.Update(ctx, obj)
		return err
	case "route":
		r := splitRoute(c.ns, c.value)
		r.UID = "" // the memory store gave it another; empty means "whichever"
		_, err := st.Update(ctx, r)
		return err
	}
	return fmt.Errorf("unknown change %q", c.kind)
}

// changes are the measured changes: pod labels and route weights in turn,
// spread over the namespaces (each in a namespace no earlier change touched,
// while there are enough). Every one changes one waypoint's configuration:
// a new label value, or a weight other than the route's current one.
func changes(size meshSize, n int) []change {
	weights := map[int]int{}
	var out []change
	for k := range n {
		c := change{kind: "pod", ns: (k*37 + 11) % size.namespaces, value: k + 1}
		if k%2 == 1 {
			w, ok := weights[c.ns]
			if !ok {
				w = 90 // as generated
			}
			c.kind, c.value = "route", w-7
			if c.value < 1 {
				c.value += 98
			}
			weights[c.ns] = c.value
		}
		out = append(out, c)
	}
	return out
}
