package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/internal/manifest"

	"github.com/meshway/meshway/internal/store"
	"github.com/meshway/meshway/internal/store/storetest"
)

// warnRecorder collects Options.Warn reports.
type warnRecorder struct {
	mu   sync.Mutex
	errs []error
}

func (w *warnRecorder) warn(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs = append(w.errs, err)
}

func (w *warnRecorder) all() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]error(nil), w.errs...)
}

func openDir(t *testing.T, dir string, warns *warnRecorder) *store.Dir {
	t.Helper()
	opts := store.Options{InitialNamespaces: []string{"default", "other"}}
	if warns != nil {
		opts.Warn = warns.warn
	}
	d, err := store.OpenDir(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDir(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		warns := &warnRecorder{}
		t.Cleanup(func() {
			for _, err := range warns.all() {
				t.Errorf("unexpected warning: %v", err)
			}
		})
		return openDir(t, t.TempDir(), warns)
	})
}

// writeByHand replaces a file the way an editor does: a temp file renamed over it.
func writeByHand(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// editFile applies a textual replacement to a file, in place or as an editor would.
func editFile(t *testing.T, path, old, new string, inPlace bool) {
	t.Helper()
	content := readFile(t, path)
	if !strings.Contains(content, old) {
		t.Fatalf("%s does not contain %q:\n%s", path, old, content)
	}
	content = strings.Replace(content, old, new, 1)
	if inPlace {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	writeByHand(t, path, content)
}

func TestDirLayout(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	if want := "directory " + root; d.Describe() != want {
		t.Errorf("Describe() = %q, want %q", d.Describe(), want)
	}
	gw := storetest.Gateway("default", "waypoint")
	storetest.MustCreate(t, d, gw)
	storetest.MustCreate(t, d, storetest.Service("other", "web", nil))
	for _, rel := range []string{
		"_cluster/namespaces/default.yaml",
		"_cluster/namespaces/other.yaml",
		".status/_cluster/namespaces/default.yaml",
		"default/gateways.gateway.networking.k8s.io/waypoint.yaml",
		"other/services/web.yaml",
	} {
		if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
			t.Errorf("expected file: %v", err)
		}
	}
	spec := readFile(t, filepath.Join(root, "default/gateways.gateway.networking.k8s.io/waypoint.yaml"))
	for _, absent := range []string{"resourceVersion", "status"} {
		if strings.Contains(spec, absent) {
			t.Errorf("spec file holds %s:\n%s", absent, spec)
		}
	}
	// A Gateway starts with its CRD's default (Pending) status; a Service with none.
	if _, err := os.Stat(filepath.Join(root, ".status/default/gateways.gateway.networking.k8s.io/waypoint.yaml")); err != nil {
		t.Errorf("no status file for the Gateway's default status: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, ".status/other/services/web.yaml")); !os.IsNotExist(err) {
		t.Errorf("a status file was written for an empty status (%v)", err)
	}
}

func TestDirHandEditIsSeen(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	created := storetest.MustCreate(t, d, storetest.Service("default", "web", map[string]string{"app": "web"}))
	w := storetest.StartWatch(t, d, manifest.Service, store.ListOptions{})
	w.ExpectInitial(t, "default/web")
	path := filepath.Join(root, "default/services/web.yaml")

	for i, inPlace := range []bool{false, true} {
		label := fmt.Sprintf("edit%d", i)
		editFile(t, path, "app: ", "app: "+label+"-", inPlace)
		got := storetest.MustGet(t, d, manifest.Service, "default", "web")
		if !strings.HasPrefix(got.GetLabels()["app"], label) {
			t.Fatalf("Get after hand edit: labels %v", got.GetLabels())
		}
		if got.GetResourceVersion() == created.GetResourceVersion() {
			t.Errorf("hand edit did not change the resourceVersion")
		}
		ev := w.Expect(t, store.Modified, "default/web")
		if ev.Object.GetResourceVersion() != got.GetResourceVersion() {
			t.Errorf("watch saw resourceVersion %s, Get %s", ev.Object.GetResourceVersion(), got.GetResourceVersion())
		}
		if ev.Object.GetUID() != created.GetUID() {
			t.Errorf("hand edit changed the uid")
		}
	}

	// A writer that read before the edits must not overwrite them.
	stale := created.DeepCopyObject().(*corev1.Service)
	stale.Labels["app"] = "stale"
	if _, err := d.Update(t.Context(), stale); !apierrors.IsConflict(err) {
		t.Errorf("Update holding the resourceVersion from before a hand edit: got %v, want Conflict", err)
	}
	if err := d.Delete(t.Context(), manifest.Service, "default", "web", store.DeleteOptions{ResourceVersion: created.GetResourceVersion()}); !apierrors.IsConflict(err) {
		t.Errorf("Delete holding the resourceVersion from before a hand edit: got %v, want Conflict", err)
	}

	// A file removed by hand is Deleted; one created by hand (in a new
	// directory, which the watch must start following) is Added.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	w.Expect(t, store.Deleted, "default/web")
	storetest.MustCreate(t, d, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}})
	writeByHand(t, filepath.Join(root, "team/services/api.yaml"), "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  ports:\n  - port: 80\n")
	w.Expect(t, store.Added, "team/api")
}

// TestDirScanReadsOnlyChangedFiles: a scan reads no file whose stamp (size,
// change time, inode) is the one it was read with, unless the stamp is too
// recent to vouch for the content; it reads any file that changed.
func TestDirScanReadsOnlyChangedFiles(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	storetest.MustCreate(t, d, storetest.Service("default", "web", map[string]string{"app": "web"}))
	storetest.MustCreate(t, d, storetest.Service("default", "api", map[string]string{"app": "api"}))
	path := filepath.Join(root, "default/services/web.yaml")
	list := func() map[string]string {
		t.Helper()
		objs, err := d.List(t.Context(), manifest.Service, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, o := range objs {
			out[o.GetName()] = o.GetLabels()["app"]
		}
		return out
	}
	list()

	// A file rewritten in place at the same size within one tick of the
	// file clock keeps its stamp: while the stamp is recent, it is read.
	editFile(t, path, "app: web", "app: we1", true)
	if got := list()["web"]; got != "we1" {
		t.Fatalf("after an in-place edit right after the last read: app=%q, want we1", got)
	}

	// An hour later, nothing changed: nothing is read.
	later := time.Now().Add(time.Hour)
	store.SetClock(d, func() time.Time { return later })
	list()
	before := store.FilesRead(d)
	if got := list(); got["web"] != "we1" || got["api"] != "api" {
		t.Fatalf("listed %v", got)
	}
	if n := store.FilesRead(d) - before; n != 0 {
		t.Errorf("a scan of unchanged files read %d of them, want 0", n)
	}

	// An in-place edit at the same size changes the change time (once the
	// file clock has ticked): it is read.
	time.Sleep(50 * time.Millisecond)
	editFile(t, path, "app: we1", "app: we2", true)
	before = store.FilesRead(d)
	if got := list()["web"]; got != "we2" {
		t.Fatalf("after an in-place edit: app=%q, want we2", got)
	}
	if n := store.FilesRead(d) - before; n != 1 {
		t.Errorf("a scan after one edit read %d files, want 1", n)
	}
}

// TestDirWatchRescansOnlyChangedDirectories: a change to one file makes the
// watch look at the objects of its directory, not at the whole tree, for a
// write of this process, a hand edit and a status file alike.
func TestDirWatchRescansOnlyChangedDirectories(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	store.SetRescanInterval(d, time.Hour)
	initial := []string{"default/api", "default/web"}
	for i := range 20 {
		storetest.MustCreate(t, d, storetest.Service("other", fmt.Sprintf("svc%d", i), nil))
		initial = append(initial, fmt.Sprintf("other/svc%d", i))
	}
	storetest.MustCreate(t, d, storetest.Service("default", "web", map[string]string{"app": "web"}))
	storetest.MustCreate(t, d, storetest.Service("default", "api", map[string]string{"app": "api"}))
	w := storetest.StartWatch(t, d, manifest.Service, store.ListOptions{})
	w.ExpectInitial(t, initial...)

	check := func(what string, change func()) {
		t.Helper()
		before := store.ObjectsScanned(d)
		change()
		w.Expect(t, store.Modified, "default/web")
		// At most two rescans of default/services (the events of one write
		// may straddle the debounce): 2 objects each.
		if n := store.ObjectsScanned(d) - before; n > 4 {
			t.Errorf("%s: the watch looked at %d objects, want at most 4 (default/services only)", what, n)
		}
	}
	web := storetest.MustGet(t, d, manifest.Service, "default", "web")
	check("a write", func() {
		web.SetLabels(map[string]string{"app": "web2"})
		if _, err := d.Update(t.Context(), web); err != nil {
			t.Fatal(err)
		}
	})
	check("a hand edit", func() {
		editFile(t, filepath.Join(root, "default/services/web.yaml"), "app: web2", "app: web3", false)
	})
	// The first status file makes its directory, which only a full scan
	// starts watching; the next one is a file event like the others.
	status := func(ip string) {
		writeByHand(t, filepath.Join(root, ".status/default/services/web.yaml"),
			"uid: "+string(web.GetUID())+"\nstatus:\n  loadBalancer:\n    ingress:\n    - ip: "+ip+"\n")
	}
	status("10.0.0.9")
	w.Expect(t, store.Modified, "default/web")
	check("a status file", func() { status("10.0.0.10") })
}

func TestDirHandWrittenFileGetsStableDefaults(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	path := filepath.Join(root, "default/services/api.yaml")
	content := "# written by hand\napiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  namespace: default\nspec:\n  ports:\n  - port: 80\n"
	writeByHand(t, path, content)
	mtime := time.Unix(1700000000, 0)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	first := storetest.MustGet(t, d, manifest.Service, "default", "api")
	second := storetest.MustGet(t, openDir(t, root, nil), manifest.Service, "default", "api")
	if first.GetUID() == "" || first.GetUID() != second.GetUID() {
		t.Errorf("uid of a hand-written file: %q then (another process) %q; want one stable uid", first.GetUID(), second.GetUID())
	}
	if ts := first.GetCreationTimestamp(); !ts.Time.Equal(mtime) {
		t.Errorf("creationTimestamp %v, want the file's mtime %v", ts, mtime)
	}
	if first.GetGeneration() != 0 {
		t.Errorf("generation %d, want 0 (Services have none)", first.GetGeneration())
	}
	if got := readFile(t, path); got != content {
		t.Errorf("reading rewrote the file:\n%s", got)
	}
	first.SetLabels(map[string]string{"a": "b"})
	if _, err := d.Update(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); !strings.Contains(got, string(first.GetUID())) || !strings.Contains(got, "creationTimestamp") {
		t.Errorf("the next write did not persist uid and creationTimestamp:\n%s", got)
	}
	after := storetest.MustGet(t, d, manifest.Service, "default", "api")
	if after.GetUID() != first.GetUID() {
		t.Errorf("uid changed when persisted: %s -> %s", first.GetUID(), after.GetUID())
	}
}

// TestDirHandWrittenCustomResourceIsAdmitted: a custom resource written by
// hand is read as an API server would have stored it — defaulted, or, when
// its CRD refuses it, reported (naming the file and every field) and skipped
// like a file that does not parse.
func TestDirHandWrittenCustomResourceIsAdmitted(t *testing.T) {
	root := t.TempDir()
	warns := &warnRecorder{}
	d := openDir(t, root, warns)
	route := "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: %s\n  namespace: default\n" +
		"spec:\n  parentRefs: [{group: \"\", kind: Service, name: reviews, port: 9080}]\n" +
		"  rules:\n  - backendRefs:\n    - {name: reviews-v1, port: %s}\n"
	good := filepath.Join(root, "default/httproutes.gateway.networking.k8s.io/good.yaml")
	bad := filepath.Join(root, "default/httproutes.gateway.networking.k8s.io/bad.yaml")
	writeByHand(t, good, fmt.Sprintf(route, "good", "9080"))
	writeByHand(t, bad, fmt.Sprintf(route, "bad", "99999"))
	list, err := d.List(t.Context(), manifest.HTTPRoute, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].GetName() != "good" {
		t.Fatalf("List = %v, want just the valid route", list)
	}
	if w := list[0].(*gwv1.HTTPRoute).Spec.Rules[0].BackendRefs[0].Weight; w == nil || *w != 1 {
		t.Errorf("weight of a hand-written backendRef: %v, want the CRD's default 1", w)
	}
	reported := warns.all()
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), bad) ||
		!strings.Contains(reported[0].Error(), "spec.rules[0].backendRefs[0].port: Invalid value: 99999") {
		t.Errorf("warnings %v, want one naming %s and the port", reported, bad)
	}
	if _, err := d.Get(t.Context(), manifest.HTTPRoute, "default", "bad"); !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "is invalid") {
		t.Errorf("Get of the invalid file: %v, want NotFound saying why", err)
	}

	// A file the store wrote says so in its first line, with a hash of the
	// rest: read as it is while the hash matches, checked once edited.
	storetest.MustCreate(t, d, storetest.HTTPRoute("default", "written"))
	written := filepath.Join(root, "default/httproutes.gateway.networking.k8s.io/written.yaml")
	if first, _, _ := strings.Cut(readFile(t, written), "\n"); !strings.HasPrefix(first, "# Written by meshway, valid for its CRD as written. sha256:") {
		t.Errorf("first line of a file the store wrote: %q", first)
	}
	storetest.MustGet(t, d, manifest.HTTPRoute, "default", "written")
	editFile(t, written, "weight: 90", "weight: -90", false)
	if _, err := d.Get(t.Context(), manifest.HTTPRoute, "default", "written"); !apierrors.IsNotFound(err) ||
		!strings.Contains(err.Error(), "spec.rules[0].backendRefs[0].weight: Invalid value: -90") {
		t.Errorf("Get after an invalid edit of a file the store wrote: %v, want NotFound naming the weight", err)
	}
}

// TestDirStatusWriteDoesNotParseTheSpecAgain: a hand-written custom
// resource is parsed and admitted against its CRD once per version of its
// spec file: a status write (meshd writes the status of thousands of
// objects) takes the spec part from the parse cache, and gives the object a
// fresh read would.
func TestDirStatusWriteDoesNotParseTheSpecAgain(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	path := filepath.Join(root, "default/httproutes.gateway.networking.k8s.io/reviews.yaml")
	writeByHand(t, path, "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: reviews\n  namespace: default\n"+
		"spec:\n  parentRefs: [{group: \"\", kind: Service, name: reviews, port: 9080}]\n"+
		"  rules:\n  - backendRefs:\n    - {name: reviews-v1, port: 9080}\n")
	route := storetest.MustGet(t, d, manifest.HTTPRoute, "default", "reviews").(*gwv1.HTTPRoute)
	before := store.SpecsDecoded(d)
	for i := range 3 {
		route.Status.Parents = []gwv1.RouteParentStatus{{
			ParentRef:      route.Spec.ParentRefs[0],
			ControllerName: "istio.io/gateway-controller",
			Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted",
				LastTransitionTime: metav1.Unix(int64(i+1), 0), Message: fmt.Sprint("accepted ", i)}},
		}}
		updated, err := d.UpdateStatus(t.Context(), route)
		if err != nil {
			t.Fatal(err)
		}
		route = updated.(*gwv1.HTTPRoute)
	}
	if n := store.SpecsDecoded(d) - before; n != 0 {
		t.Errorf("3 status writes parsed the unchanged spec file %d times, want 0", n)
	}
	// What a process reading the files for the first time gets.
	fresh := storetest.MustGet(t, openDir(t, root, nil), manifest.HTTPRoute, "default", "reviews")
	if diff := cmp.Diff(fresh, storetest.MustGet(t, d, manifest.HTTPRoute, "default", "reviews")); diff != "" {
		t.Errorf("after status writes, the object differs from a fresh read's (-fresh +got):\n%s", diff)
	}
	// A spec edit is parsed (and admitted) again.
	editFile(t, path, "port: 9080}\n", "port: 9081}\n", false)
	if got := storetest.MustGet(t, d, manifest.HTTPRoute, "default", "reviews").(*gwv1.HTTPRoute); got.Spec.Rules[0].BackendRefs[0].Port == nil ||
		*got.Spec.Rules[0].BackendRefs[0].Port != 9081 || len(got.Status.Parents) != 1 {
		t.Errorf("after a spec edit: rules %+v, status %+v", got.Spec.Rules, got.Status)
	}
	if n := store.SpecsDecoded(d) - before; n != 1 {
		t.Errorf("a spec edit parsed the spec file %d times, want 1", n)
	}
}

func TestDirBadFileIsReportedAndKept(t *testing.T) {
	root := t.TempDir()
	warns := &warnRecorder{}
	d := openDir(t, root, warns)
	storetest.MustCreate(t, d, storetest.Service("default", "good", nil))
	files := map[string]string{
		"other/services/broken.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\n  labels: [oops\n",
		"other/services/two.yaml":    "apiVersion: v1\nkind: Service\nmetadata:\n  name: two\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: three\n",
		"other/services/typo.yaml":   "apiVersion: v1\nkind: Service\nmetadata:\n  name: typo\nspec:\n  portz: []\n",
	}
	ignored := map[string]string{
		"other/services/README.md":      "notes",
		"other/services/.web.yaml.swp":  "binary junk",
		"other/services/web.yaml~":      "backup",
		"other/services/.hidden.yaml":   "{not: [yaml",
		".git/config":                   "[core]",
		"_cluster/namespaces/notes.txt": "x",
		"other/services/sub/README.txt": "x",
	}
	for rel, content := range files {
		writeByHand(t, filepath.Join(root, rel), content)
	}
	for rel, content := range ignored {
		writeByHand(t, filepath.Join(root, rel), content)
	}
	for range 3 {
		list, err := d.List(t.Context(), manifest.Service, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].GetName() != "good" {
			t.Fatalf("List = %v, want just the good service", list)
		}
	}
	reported := warns.all()
	for _, err := range reported {
		t.Log(err)
	}
	if len(reported) != len(files) {
		t.Errorf("%d warnings after 3 Lists, want one per bad file (%d):\n%v", len(reported), len(files), reported)
	}
	for rel := range files {
		path := filepath.Join(root, rel)
		found := false
		for _, err := range reported {
			var fe *store.FileError
			if errors.As(err, &fe) && fe.Path == path && strings.Contains(err.Error(), path) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning naming %s; got %v", path, reported)
		}
	}
	// Reads and writes that meet a bad file leave it byte for byte.
	_, err := d.Get(t.Context(), manifest.Service, "other", "broken")
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "broken.yaml") {
		t.Errorf("Get of a broken file: got %v, want NotFound naming the file", err)
	}
	if _, err := d.Create(t.Context(), storetest.Service("other", "broken", nil)); !apierrors.IsAlreadyExists(err) {
		t.Errorf("Create over a broken file: got %v, want AlreadyExists", err)
	}
	if err := d.Delete(t.Context(), manifest.Service, "other", "broken", store.DeleteOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Delete of a broken file: got %v, want NotFound", err)
	}
	if err := d.Delete(t.Context(), manifest.Namespace, "", "other", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for rel, content := range files {
		if got := readFile(t, filepath.Join(root, rel)); got != content {
			t.Errorf("%s changed:\n%s", rel, got)
		}
	}
	for rel, content := range ignored {
		if got := readFile(t, filepath.Join(root, rel)); got != content {
			t.Errorf("%s changed:\n%s", rel, got)
		}
	}
	if len(warns.all()) != len(files) {
		t.Errorf("bad files reported again: %v", warns.all()[len(files):])
	}
}

func TestDirMisplacedFileIsReported(t *testing.T) {
	root := t.TempDir()
	warns := &warnRecorder{}
	d := openDir(t, root, warns)
	svc := "apiVersion: v1\nkind: Service\nmetadata:\n  name: bar\n  namespace: default\nspec:\n  ports:\n  - port: 80\n"
	misplaced := map[string]string{
		"default/services/foo.yaml":   filepath.Join(root, "default/services/bar.yaml"),
		"other/services/bar.yaml":     filepath.Join(root, "default/services/bar.yaml"),
		"default/configmaps/bar.yaml": filepath.Join(root, "default/services/bar.yaml"),
		"stray.yaml":                  filepath.Join(root, "default/services/bar.yaml"),
		"default/services/bar.json":   filepath.Join(root, "default/services/bar.yaml"),
	}
	for rel := range misplaced {
		writeByHand(t, filepath.Join(root, rel), svc)
	}
	// A watch of every kind scans the whole tree, so it finds them all.
	w := storetest.StartWatch(t, d, nil, store.ListOptions{})
	w.ExpectInitial(t, "default", "other")
	if n := len(warns.all()); n != len(misplaced) {
		t.Errorf("%d warnings, want one per misplaced file (%d): %v", n, len(misplaced), warns.all())
	}
	for rel, want := range misplaced {
		path := filepath.Join(root, rel)
		var msg string
		for _, err := range warns.all() {
			if strings.HasPrefix(err.Error(), path+":") {
				msg = err.Error()
			}
		}
		if !strings.Contains(msg, "move it to "+want) || !strings.Contains(msg, "meshctl apply -f "+path) {
			t.Errorf("warning for %s = %q; want it to say: move it to %s, or meshctl apply -f", rel, msg, want)
		}
		if got := readFile(t, path); got != svc {
			t.Errorf("%s was changed", rel)
		}
	}
}

func TestDirStatusFileSeparation(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	gw := storetest.MustCreate(t, d, storetest.Gateway("default", "waypoint")).(*gwv1.Gateway)
	ipType := gwv1.IPAddressType
	gw.Status.Addresses = []gwv1.GatewayStatusAddress{{Type: &ipType, Value: "10.0.0.7"}}
	if _, err := d.UpdateStatus(t.Context(), gw); err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(root, "default/gateways.gateway.networking.k8s.io/waypoint.yaml")
	statusPath := filepath.Join(root, ".status/default/gateways.gateway.networking.k8s.io/waypoint.yaml")
	if !strings.Contains(readFile(t, statusPath), "10.0.0.7") {
		t.Fatalf("status file lacks the address:\n%s", readFile(t, statusPath))
	}
	editFile(t, specPath, "port: 15008", "port: 15009", false)
	got := storetest.MustGet(t, d, manifest.Gateway, "default", "waypoint").(*gwv1.Gateway)
	if got.Spec.Listeners[0].Port != 15009 || len(got.Status.Addresses) != 1 {
		t.Fatalf("after a hand edit of the spec: port %d, status %v; want both kept", got.Spec.Listeners[0].Port, got.Status.Addresses)
	}
	// A status write from a controller that saw the edit keeps the edit.
	got.Status.Addresses[0].Value = "10.0.0.8"
	if _, err := d.UpdateStatus(t.Context(), got); err != nil {
		t.Fatal(err)
	}
	if spec := readFile(t, specPath); !strings.Contains(spec, "port: 15009") {
		t.Errorf("status write clobbered the hand-edited spec file:\n%s", spec)
	}
	// A status file left by an earlier object of the same name does not apply.
	if err := os.Remove(specPath); err != nil {
		t.Fatal(err)
	}
	writeByHand(t, statusPath, readFile(t, statusPath)) // as if it outlived the spec file
	writeByHand(t, specPath, "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: waypoint\nspec:\n  gatewayClassName: istio-waypoint\n  listeners:\n  - name: mesh\n    port: 15008\n    protocol: HBONE\n")
	again := storetest.MustGet(t, d, manifest.Gateway, "default", "waypoint").(*gwv1.Gateway)
	if len(again.Status.Addresses) != 0 {
		t.Errorf("a new object inherited the status of a deleted one: %v", again.Status.Addresses)
	}
}

func TestDirInterruptedWriteKeepsOldFile(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	created := storetest.MustCreate(t, d, storetest.Service("default", "web", map[string]string{"v": "1"}))
	path := filepath.Join(root, "default/services/web.yaml")
	before := readFile(t, path)
	store.SetFailTempWrite(d, func(tmp string) error {
		if _, err := os.Stat(tmp); err != nil {
			t.Errorf("hook called without a temp file: %v", err)
		}
		return errors.New("no space left on device (injected)")
	})
	created.SetLabels(map[string]string{"v": "2"})
	if _, err := d.Update(t.Context(), created); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Update with a failing write: got %v, want an error naming %s", err, path)
	}
	if _, err := d.Create(t.Context(), storetest.Service("default", "new", nil)); err == nil {
		t.Fatal("Create with a failing write succeeded")
	}
	if got := readFile(t, path); got != before {
		t.Errorf("a failed write changed the file:\n%s", got)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
	if _, err := d.Get(t.Context(), manifest.Service, "default", "new"); !apierrors.IsNotFound(err) {
		t.Errorf("a failed Create left an object: %v", err)
	}
	store.SetFailTempWrite(d, nil)
	if _, err := d.Update(t.Context(), created); err != nil {
		t.Errorf("Update after the failure cleared (same resourceVersion still current): %v", err)
	}
}

func TestDirTwoInstancesLoseNoUpdate(t *testing.T) {
	root := t.TempDir()
	a, b := openDir(t, root, nil), openDir(t, root, nil)
	storetest.MustCreate(t, a, storetest.Service("default", "counter", map[string]string{"count": "0"}))
	var wg sync.WaitGroup
	for _, s := range []store.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			storetest.Increment(t, s, 4, 25)
		}()
	}
	wg.Wait()
	if got := storetest.MustGet(t, b, manifest.Service, "default", "counter").GetLabels()["count"]; got != "200" {
		t.Errorf("count = %s after 2 stores × 4 goroutines × 25 increments, want 200", got)
	}
}

// childStoreEnv, when set, makes TestDirChildProcessIncrements increment the
// counter in the store directory it names: a separate process for
// TestDirSeparateProcessesLoseNoUpdate.
const childStoreEnv = "MESHWAY_STORE_TEST_CHILD_DIR"

func TestDirChildProcessIncrements(t *testing.T) {
	dir := os.Getenv(childStoreEnv)
	if dir == "" {
		t.Skip("run by TestDirSeparateProcessesLoseNoUpdate")
	}
	storetest.Increment(t, openDir(t, dir, nil), 2, 25)
}

func TestDirSeparateProcessesLoseNoUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	root := t.TempDir()
	d := openDir(t, root, nil)
	storetest.MustCreate(t, d, storetest.Service("default", "counter", map[string]string{"count": "0"}))
	const processes = 3
	var cmds []*exec.Cmd
	for range processes {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestDirChildProcessIncrements$", "-test.count=1")
		cmd.Env = append(os.Environ(), childStoreEnv+"="+root)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("child output:\n%s", out.String())
			}
		})
		cmds = append(cmds, cmd)
	}
	storetest.Increment(t, d, 2, 25)
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("child process: %v", err)
		}
	}
	want := strconv.Itoa((processes + 1) * 2 * 25)
	if got := storetest.MustGet(t, d, manifest.Service, "default", "counter").GetLabels()["count"]; got != want {
		t.Errorf("count = %s, want %s", got, want)
	}
}

func TestOpenDirCreatesInitialNamespacesOnlyWhenNew(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	if err := d.Delete(t.Context(), manifest.Namespace, "", "other", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again := openDir(t, root, nil)
	list, err := again.List(t.Context(), manifest.Namespace, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].GetName() != "default" {
		t.Errorf("reopening recreated deleted namespaces: %d namespaces", len(list))
	}
}

func TestDirWatchStopsItsGoroutines(t *testing.T) {
	d := openDir(t, t.TempDir(), nil)
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(t.Context())
	var chans []<-chan store.Event
	for _, kind := range []*manifest.Kind{nil, manifest.Service, manifest.Gateway} {
		ch, err := d.Watch(ctx, kind, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	storetest.MustCreate(t, d, storetest.Service("default", "web", nil))
	cancel()
	for _, ch := range chans {
		for range ch { // until closed
		}
	}
	// The last watch's channel closes only after the shared loop has stopped;
	// allow a moment for the goroutines to return after their last send.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after all watches closed, %d before", n, before)
	}
}

// TestDirWatchNewKindDirectoryIsNotAFullScan: a namespace's first object
// of a kind makes its directory; the watch starts watching it and reads it
// alone, not the whole tree (meshd writes a ConfigMap, a Deployment and a
// ServiceAccount into every namespace with a waypoint, and a full scan per
// new directory made a big store crawl).
func TestDirWatchNewKindDirectoryIsNotAFullScan(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, nil)
	store.SetRescanInterval(d, time.Hour)
	for i := range 30 {
		storetest.MustCreate(t, d, storetest.Service("other", fmt.Sprintf("svc%d", i), nil))
	}
	w := storetest.StartWatch(t, d, manifest.ConfigMap, store.ListOptions{})
	w.ExpectInitial(t)
	before := store.ObjectsScanned(d)
	storetest.MustCreate(t, d, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "istio-ca-root-cert"}})
	w.Expect(t, store.Added, "other/istio-ca-root-cert")
	if n := store.ObjectsScanned(d) - before; n > 2 {
		t.Errorf("the watch looked at %d objects for a new directory of one file, want at most 2 (no full scan)", n)
	}
	// Files written into it afterwards are file events of a watched directory.
	before = store.ObjectsScanned(d)
	storetest.MustCreate(t, d, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "second"}})
	w.Expect(t, store.Added, "other/second")
	if n := store.ObjectsScanned(d) - before; n > 4 {
		t.Errorf("the watch looked at %d objects for a second file, want at most 4", n)
	}
}
