package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
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
	write := func(rel string, data []byte) {
		if err != nil {
			return
		}
		path := filepath.Join(root, filepath.FromSlash(rel))
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return
		}
		err = os.WriteFile(path, data, 0o644)
		files++
	}
	generate(size, func(obj manifest.Object) {
		if err != nil {
			return
		}
		kind := manifest.MustKindOf(obj)
		m, e := manifest.ToMap(obj)
		if e != nil {
			err = e
			return
		}
		status := m["status"]
		delete(m, "status")
		spec, e := sigsyaml.Marshal(m)
		if e != nil {
			err = e
			return
		}
		dir := obj.GetNamespace()
		if !kind.Namespaced {
			dir = "_cluster"
		}
		rel := dir + "/" + kind.QualifiedResource() + "/" + obj.GetName() + ".yaml"
		write(rel, spec)
		if kind != manifest.Pod && kind != manifest.Gateway {
			return // no status worth keeping
		}
		body, e := sigsyaml.Marshal(map[string]any{"uid": obj.GetUID(), "status": status})
		if e != nil {
			err = e
			return
		}
		write(".status/"+rel, append([]byte("# Status written by the control plane benchmark.\n"), body...))
	})
	return files, err
}

// checkStore counts what a store holds of each kind the mesh has, to catch
// files the directory store would skip.
func checkStore(ctx context.Context, st store.Store, size meshSize) error {
	want := map[*manifest.Kind]int{
		manifest.Namespace: size.namespaces + 2,
		manifest.Pod:       size.namespaces * size.services * size.podsPerService,
	}
	for kind, n := range want {
		objs, err := st.List(ctx, kind, store.ListOptions{})
		if err != nil {
			return err
		}
		if len(objs) != n {
			return fmt.Errorf("%s: %s holds %d %s, want %d", st.Describe(), kind.Kind, len(objs), kind.Resource, n)
		}
		if kind == manifest.Pod && objs[0].(*corev1.Pod).Status.PodIP == "" {
			return fmt.Errorf("%s: pod %s/%s has no status.podIP: the status files were not read", st.Describe(), objs[0].GetNamespace(), objs[0].GetName())
		}
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

// changeLabel is the label a pod change sets.
const changeLabel = "bench.meshway.io/rev"

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
