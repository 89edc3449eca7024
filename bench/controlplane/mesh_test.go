package main

import (
	"context"
	"testing"

	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/translate"
)

var smallMesh = meshSize{namespaces: 3, services: 6, podsPerService: 2}

// TestGeneratedMeshTranslates keeps the generated mesh what the bench says
// it is: every namespace's services on its own waypoint, with endpoints,
// routes and policies, and nothing translation warns about.
func TestGeneratedMeshTranslates(t *testing.T) {
	var in translate.ConfigInputs
	generate(smallMesh, func(o manifest.Object) { in.Add(o) })
	wps, warnings := translate.WaypointConfigs(in)
	for _, w := range warnings {
		t.Errorf("warning: %s", w)
	}
	if len(wps) != smallMesh.namespaces {
		t.Fatalf("%d waypoints, want %d", len(wps), smallMesh.namespaces)
	}
	for _, w := range wps {
		if len(w.Services) != smallMesh.services || len(w.Policies) != 1 || len(w.Clusters) < 2*smallMesh.services {
			t.Errorf("%s/%s: %d services, %d policies, %d clusters", w.Namespace, w.Name, len(w.Services), len(w.Policies), len(w.Clusters))
		}
		if n := len(w.Clusters[0].Endpoints); n != smallMesh.podsPerService {
			t.Errorf("%s/%s: cluster %s has %d endpoints, want %d", w.Namespace, w.Name, w.Clusters[0].Name, n, smallMesh.podsPerService)
		}
	}
}

// TestGeneratedMeshZtunnels: the ztunnels' shared configuration holds
// every pod and service, with nothing to warn about; a pod change changes
// its workload.
func TestGeneratedMeshZtunnels(t *testing.T) {
	var in translate.ConfigInputs
	generate(smallMesh, func(o manifest.Object) { in.Add(o) })
	mesh, nodes, warnings := translate.ZtunnelMesh(in)
	for _, w := range warnings {
		t.Errorf("warning: %s", w)
	}
	pods := smallMesh.namespaces * smallMesh.services * smallMesh.podsPerService
	if len(mesh.Workloads) != pods || len(mesh.Services) != smallMesh.namespaces*smallMesh.services || len(mesh.Waypoints) != smallMesh.namespaces || len(nodes) == 0 {
		t.Fatalf("%d workloads, %d services, %d waypoints, %d nodes", len(mesh.Workloads), len(mesh.Services), len(mesh.Waypoints), len(nodes))
	}
	c := change{kind: "pod", ns: 1, value: 7}
	uid := changedUID(smallMesh, c)
	found := false
	for _, w := range mesh.Workloads {
		found = found || w.UID == uid
	}
	if !found {
		t.Errorf("no workload %s: a pod change would reach no ztunnel", uid)
	}
}

// TestStoreDirReadsBack checks that the directory store reads every file
// the bench writes (status included), and that the changes apply to it.
func TestStoreDirReadsBack(t *testing.T) {
	root := t.TempDir()
	if _, err := writeStoreDir(root, smallMesh); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenDir(root, store.Options{Warn: func(err error) { t.Errorf("store: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := checkStore(ctx, st, smallMesh); err != nil {
		t.Fatal(err)
	}
	for _, c := range changes(smallMesh, 8) {
		if err := applyChange(ctx, st, smallMesh, c); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
}

// TestChangesChangeSomething: a change that sets what is already there
// would push nothing and leave the bench waiting.
func TestChangesChangeSomething(t *testing.T) {
	weights := map[int]int{}
	for _, c := range changes(meshSize{namespaces: 2, services: 10, podsPerService: 1}, 50) {
		if c.kind != "route" {
			continue
		}
		if w, ok := weights[c.ns]; c.value == w || !ok && c.value == 90 || c.value < 0 || c.value > 100 {
			t.Fatalf("%s: weight was %d", c, w)
		}
		weights[c.ns] = c.value
	}
}
