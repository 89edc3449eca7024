package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshway/meshway/internal/kube/kubetest"
	"github.com/meshway/meshway/internal/manifest"
	"github.com/meshway/meshway/internal/store"
)

// kubeEnv is the package's Kubernetes control plane, nil when the binaries are missing.
var kubeEnv *kubetest.Env

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &kubeEnv)) }

// harness runs meshctl in-process against one directory store, with a fixed clock
// and UIDs numbered in creation order, so outputs are stable.
type harness struct {
	t    *testing.T
	dir  string
	uids int
	// kube, when set, is the cluster commands run against instead of dir; its
	// objects have real ages, uids and resource versions, so output is normalized.
	kube  *kubetest.Env
	users map[string]string // kubeconfig path per user, for meshctl@USER
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, dir: t.TempDir()}
}

func newKubeHarness(t *testing.T, env *kubetest.Env) *harness {
	return &harness{t: t, dir: t.TempDir(), kube: env, users: map[string]string{"": env.Kubeconfig}}
}

// kubeconfigFor returns the kubeconfig of user ("" is the admin), creating a
// user without any RBAC permission on first use.
func (h *harness) kubeconfigFor(user string) string {
	h.t.Helper()
	if path, ok := h.users[user]; ok {
		return path
	}
	path, err := h.kube.UserKubeconfig(user)
	if err != nil {
		h.t.Fatal(err)
	}
	h.users[user] = path
	return path
}

// On a cluster, ages ("0s", "12s", "3m4s") differ run to run, and with them the
// width of table columns: ages are replaced and the gaps between columns made even.
var (
	ageRE       = regexp.MustCompile(`\b(\d+[smhd])+\b`)
	columnGapRE = regexp.MustCompile(`(\S) {2,}`)
	apiserverRE = regexp.MustCompile(`https://127\.0\.0\.1:\d+`)
)

func (h *harness) normalize(out string) string {
	out = strings.ReplaceAll(out, h.dir, "$STORE")
	if h.kube != nil {
		for user, path := range h.users {
			out = strings.ReplaceAll(out, path, "$KUBECONFIG"+user)
		}
		out = apiserverRE.ReplaceAllString(out, "https://$$APISERVER")
		out = ageRE.ReplaceAllString(out, "<age>")
		out = columnGapRE.ReplaceAllString(out, "$1   ")
	}
	return out
}

// kubectl runs the real kubectl against the harness's cluster.
func (h *harness) kubectl(stdin string, args ...string) (string, int) {
	h.t.Helper()
	if h.kube == nil {
		h.t.Fatal("kubectl steps need a cluster")
	}
	cmd := exec.Command(filepath.Join(os.Getenv(kubetest.AssetsEnv), "kubectl"), append([]string{"--kubeconfig", h.kube.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			h.t.Fatalf("running kubectl: %v", err)
		}
		code = exit.ExitCode()
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n') // e.g. -o jsonpath: keep the transcript line-based
	}
	return h.normalize(string(out)), code
}

// run executes one meshctl command and returns its combined output and exit code.
func (h *harness) run(stdin string, args ...string) (string, int) {
	return h.runAs("", stdin, args...)
}

// runAs executes a meshctl command as user (on a cluster; "" is the admin).
func (h *harness) runAs(user, stdin string, args ...string) (string, int) {
	h.t.Helper()
	if h.kube != nil {
		args = append([]string{"--kubeconfig", h.kubeconfigFor(user)}, args...)
	}
	var out bytes.Buffer
	env := Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out,
		InCluster:    func() bool { return false },
		Getenv:       func(k string) string { return map[string]string{EnvStore: h.dir}[k] },
		Now:          func() time.Time { return storeEpoch.Add(24 * time.Hour) },
		PollInterval: 10 * time.Millisecond,
		OpenStore: func(d string, opts store.Options) (store.Store, error) {
			opts.Now = func() time.Time { return storeEpoch }
			opts.NewUID = func() types.UID {
				h.uids++
				return types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", h.uids))
			}
			return store.OpenDir(d, opts)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if h.kube != nil {
		env.Getenv = func(string) string { return "" }
		env.Now = time.Now
	}
	code := Run(ctx, args, env)
	return h.normalize(out.String()), code
}

// must runs a command that has to succeed.
func (h *harness) must(stdin string, args ...string) string {
	h.t.Helper()
	out, code := h.run(stdin, args...)
	if code != 0 {
		h.t.Fatalf("meshctl %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// snapshot hashes every file under the store directory, lock file aside.
func (h *harness) snapshot() map[string][32]byte {
	h.t.Helper()
	files := map[string][32]byte{}
	err := filepath.WalkDir(h.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".lock" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(p, h.dir)] = sha256.Sum256(data)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return files
}

const labelTableFixture = `apiVersion: v1
kind: Service
metadata: {name: reviews, labels: {app: reviews}}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
spec: {containers: [{name: reviews, image: reviews}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, labels: {app: ratings}}
spec: {selector: {app: ratings}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-v1, labels: {app: ratings}}
spec: {containers: [{name: ratings, image: ratings}]}
`

const waypointReady = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: default}
status:
  addresses: [{type: IPAddress, value: 10.96.0.20}]
  conditions:
  - {type: Programmed, status: "True", reason: Programmed, message: ok, lastTransitionTime: "2026-01-01T00:00:00Z"}
`

// TestGuideLabelTableCLI does each row of the guide's label table with meshctl
// commands only, and reads the result from `meshctl waypoint explain -o json`.
func TestGuideLabelTableCLI(t *testing.T) {
	type reach struct{ reviewsSvc, reviewsPod, ratingsSvc, ratingsPod bool }
	for _, tc := range []struct {
		waypointFor, target string
		want                reach
	}{
		{"none", "namespace", reach{}},
		{"none", "service", reach{}},
		{"none", "pod", reach{}},
		{"service", "namespace", reach{reviewsSvc: true, ratingsSvc: true}},
		{"service", "service", reach{reviewsSvc: true}},
		{"service", "pod", reach{}},
		{"workload", "namespace", reach{reviewsPod: true, ratingsPod: true}},
		{"workload", "service", reach{}},
		{"workload", "pod", reach{reviewsPod: true}},
		{"all", "namespace", reach{reviewsSvc: true, reviewsPod: true, ratingsSvc: true, ratingsPod: true}},
		{"all", "service", reach{reviewsSvc: true}},
		{"all", "pod", reach{reviewsPod: true}},
	} {
		t.Run(tc.waypointFor+"_on_"+tc.target, func(t *testing.T) {
			h := newHarness(t)
			h.must(labelTableFixture, "apply", "-f", "-")
			h.must("", "label", "ns", "default", "istio.io/dataplane-mode=ambient")
			h.must("", "waypoint", "apply", "-n", "default", "--for", tc.waypointFor)
			h.must(waypointReady, "apply", "--subresource=status", "-f", "-")
			switch tc.target {
			case "namespace":
				h.must("", "label", "ns", "default", "istio.io/use-waypoint=waypoint")
			case "service":
				h.must("", "label", "svc", "reviews", "istio.io/use-waypoint=waypoint")
			case "pod":
				h.must("", "label", "pod", "-l", "app=reviews", "istio.io/use-waypoint=waypoint")
			}
			got := reach{
				reviewsSvc: h.serviceWaypoint("reviews"),
				reviewsPod: h.podWaypoint("reviews-v1"),
				ratingsSvc: h.serviceWaypoint("ratings"),
				ratingsPod: h.podWaypoint("ratings-v1"),
			}
			if got != tc.want {
				t.Errorf("through the waypoint: got %+v, want %+v", got, tc.want)
			}
		})
	}
}

type explainJSON struct {
	Target  string `json:"target"`
	Service *struct {
		Waypoint *string `json:"waypoint"`
	} `json:"service"`
	Workloads []struct {
		Name     string  `json:"name"`
		Waypoint *string `json:"waypoint"`
	} `json:"workloads"`
	Warnings []string `json:"warnings"`
}

func (h *harness) explain(target string) explainJSON {
	h.t.Helper()
	out := h.must("", "waypoint", "explain", target, "-o", "json")
	var e explainJSON
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		h.t.Fatalf("explain %s -o json is not JSON: %v\n%s", target, err, out)
	}
	return e
}

func isWaypoint(w *string) bool { return w != nil && *w == "default/waypoint" }

func (h *harness) serviceWaypoint(name string) bool {
	e := h.explain("svc/" + name)
	if e.Service == nil {
		h.t.Fatalf("explain svc/%s: service is null", name)
	}
	return isWaypoint(e.Service.Waypoint)
}

func (h *harness) podWaypoint(name string) bool {
	e := h.explain("pod/" + name)
	if e.Service != nil || len(e.Workloads) != 1 || e.Workloads[0].Name != "Pod/default/"+name {
		h.t.Fatalf("explain pod/%s: want service null and the pod as the only workload, got %+v", name, e)
	}
	return isWaypoint(e.Workloads[0].Waypoint)
}

// TestMalformedManifestLeavesStoreUnchanged: a bad document anywhere in the input
// fails the whole apply before any write, whatever came before it.
func TestMalformedManifestLeavesStoreUnchanged(t *testing.T) {
	h := newHarness(t)
	h.must(labelTableFixture, "apply", "-f", "-")
	before := h.snapshot()
	good := "apiVersion: v1\nkind: Service\nmetadata: {name: new-svc}\nspec: {ports: [{port: 80}]}\n---\n" +
		"apiVersion: v1\nkind: Service\nmetadata: {name: reviews, labels: {changed: \"yes\"}}\n---\n"
	for name, bad := range map[string]string{
		"malformed YAML":    "apiVersion: v1\nkind: Service\nmetadata: {name: [x\n",
		"unknown kind":      "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n",
		"unknown version":   "apiVersion: networking.istio.io/v9\nkind: ServiceEntry\nmetadata: {name: x}\n",
		"missing name":      "apiVersion: v1\nkind: Service\nmetadata: {}\n",
		"bad label key":     "apiVersion: v1\nkind: Service\nmetadata: {name: x, labels: {'a b': c}}\n",
		"bad label value":   "apiVersion: v1\nkind: Service\nmetadata: {name: x, labels: {a: 'b c'}}\n",
		"unknown field":     "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {portz: []}\n",
		"missing namespace": "apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: nowhere}\n",
	} {
		t.Run(name, func(t *testing.T) {
			out, code := h.run(good+bad, "apply", "-f", "-")
			if code == 0 {
				t.Fatalf("apply succeeded:\n%s", out)
			}
			if !strings.Contains(out, "<stdin>") || !strings.Contains(out, "document 3") {
				t.Errorf("error does not name the source and document 3:\n%s", out)
			}
			after := h.snapshot()
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("the store changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestBrokenStoreFileIsReportedAndKept: a hand-edited file that no longer parses
// is named in a warning, skipped, and left exactly as it is.
func TestBrokenStoreFileIsReportedAndKept(t *testing.T) {
	h := newHarness(t)
	h.must(labelTableFixture, "apply", "-f", "-")
	path := filepath.Join(h.dir, "default", "services", "reviews.yaml")
	broken := []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\nspec: [\n")
	if err := os.WriteFile(path, broken, 0o644); err != nil {
		t.Fatal(err)
	}
	out := h.must("", "get", "svc")
	for _, want := range []string{"Warning: $STORE/default/services/reviews.yaml:5", "malformed YAML", "ratings"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\nreviews ") {
		t.Errorf("the broken object was listed:\n%s", out)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, broken) {
		t.Errorf("the broken file changed or vanished: %q, %v", got, err)
	}
}

// TestMissingGatewayCRDs: on a cluster without the Gateway API, meshctl says what
// is missing in istioctl's and kubectl's words.
func TestMissingGatewayCRDs(t *testing.T) {
	kubetest.Require(t, kubeEnv)
	bare, err := kubetest.Start(kubetest.WithoutCRDs())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bare.Stop() })
	h := newKubeHarness(t, bare)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"waypoint", "apply", "-n", "default"}, "Error: missing Kubernetes Gateway CRDs need to be installed before applying a waypoint: "},
		{[]string{"get", "gtw"}, `Error: the server doesn't have a resource type "gateways"`},
		{[]string{"waypoint", "list"}, `Error: the server doesn't have a resource type "gateways"`},
	} {
		out, code := h.run("", tc.args...)
		if code == 0 || !strings.HasPrefix(out, tc.want) {
			t.Errorf("meshctl %s: exit %d\n%s\nwant it to start with %q", strings.Join(tc.args, " "), code, out, tc.want)
		}
	}
}

// TestManagedFieldsHidden: -o yaml leaves metadata.managedFields out unless
// --show-managed-fields, as kubectl does.
func TestManagedFieldsHidden(t *testing.T) {
	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: "waypoint", Namespace: "default", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "meshd", Operation: metav1.ManagedFieldsOperationApply}}},
	}
	for _, show := range []bool{false, true} {
		var out bytes.Buffer
		if err := printStructured(&out, "yaml", []manifest.Object{sa}, false, show); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(out.String(), "managedFields"); got != show {
			t.Errorf("show-managed-fields=%v: managedFields printed: %v\n%s", show, got, out.String())
		}
	}
}
