// Package kubetest runs a real Kubernetes control plane for integration tests:
// etcd, kube-apiserver with the Gateway API and Istio CRDs installed, and
// kube-controller-manager's namespace and garbage-collector controllers, from
// binaries that hack/k8s-test-bins.sh builds (KUBEBUILDER_ASSETS names them).
package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsEnv names the directory holding etcd, kube-apiserver and kube-controller-manager.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// Env is a running control plane.
type Env struct {
	// Config is an admin client configuration.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig (context "envtest").
	Kubeconfig string

	dir     string
	env     *envtest.Environment
	kcm     *exec.Cmd
	kcmDone chan struct{} // closed when kube-controller-manager has exited, with kcmErr set
	kcmErr  error
}

var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager"}

// Missing says why the control plane cannot start here, or "" when it can.
func Missing() string {
	dir := os.Getenv(AssetsEnv)
	if dir == "" {
		return AssetsEnv + " is not set; run `export " + AssetsEnv + "=$(bash hack/k8s-test-bins.sh)` (builds kube-apiserver, etcd and kube-controller-manager once, several minutes)"
	}
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Sprintf("%s=%s has no %s; rebuild with hack/k8s-test-bins.sh", AssetsEnv, dir, b)
		}
	}
	return ""
}

// Main runs a package's tests against one shared control plane: use it as
// TestMain. Without the binaries the tests are skipped with the reason — except
// under CI (CI set), where that is a failure.
func Main(m *testing.M, env **Env) int {
	if reason := Missing(); reason != "" {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "FAIL: integration tests need a Kubernetes control plane and CI must run them:", reason)
			return 1
		}
		fmt.Fprintln(os.Stderr, "SKIP: integration tests against a real kube-apiserver:", reason)
		return m.Run() // tests see a nil env and skip themselves
	}
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the Kubernetes control plane:", err)
		return 1
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the Kubernetes control plane:", err)
	}
	return code
}

// Require skips the test when the package's control plane is not running.
func Require(t testing.TB, env *Env) {
	t.Helper()
	if env == nil {
		t.Skip("no Kubernetes control plane: " + Missing())
	}
}

// Option changes how Start sets up the control plane.
type Option func(*options)

type options struct{ noCRDs bool }

// WithoutCRDs starts a cluster where neither the Gateway API nor Istio is installed.
func WithoutCRDs() Option { return func(o *options) { o.noCRDs = true } }

// Start starts the control plane and waits until it serves.
func Start(opts ...Option) (*Env, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var crds []string
	if !o.noCRDs {
		var err error
		if crds, err = crdPaths(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "meshway-kubetest-")
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDInstallOptions: envtest.CRDInstallOptions{Paths: crds, ErrorIfPathMissing: true},
	}
	api := env.ControlPlane.GetAPIServer()
	// kube-apiserver 1.37 refuses a loopback advertise address with the default
	// endpoint reconciler; the Bookinfo examples use ClusterIPs in 10.96.0.0/16.
	api.Configure().Set("endpoint-reconciler-type", "none")
	api.Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	// Watches end after a random 5-10 s instead of 30-60 min, so every test's
	// watches go through restarts, where a careless watcher loses events.
	api.Configure().Set("min-request-timeout", "5")
	cfg, err := env.Start()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("envtest: %w", err)
	}
	e := &Env{Config: cfg, dir: dir, env: env}
	if e.Kubeconfig, err = e.writeKubeconfig("admin", []string{"system:masters"}); err != nil {
		_ = e.Stop()
		return nil, err
	}
	if err := e.startControllerManager(); err != nil {
		_ = e.Stop()
		return nil, err
	}
	if err := e.ensureNamespaces("istio-system"); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// UserKubeconfig writes a kubeconfig for a user with the given groups and no
// other permissions (the cluster authorizes with RBAC), and returns its path.
func (e *Env) UserKubeconfig(name string, groups ...string) (string, error) {
	return e.writeKubeconfig(name, groups)
}

func (e *Env) writeKubeconfig(name string, groups []string) (string, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return "", fmt.Errorf("adding user %s: %w", name, err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("kubeconfig for %s: %w", name, err)
	}
	path := filepath.Join(e.dir, name+".kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// startControllerManager runs the controllers a cluster relies on for deletion:
// the namespace controller empties and removes deleted namespaces, and the
// garbage collector removes objects whose owners are gone.
func (e *Env) startControllerManager() error {
	bin := filepath.Join(os.Getenv(AssetsEnv), "kube-controller-manager")
	var logs bytes.Buffer
	cmd := exec.Command(bin,
		"--kubeconfig="+e.Kubeconfig,
		"--controllers=namespace,garbagecollector",
		"--leader-elect=false",
		"--secure-port=0",
		"--concurrent-namespace-syncs=4",
		"--namespace-sync-period=5s",
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	e.kcm, e.kcmDone = cmd, make(chan struct{})
	go func() { e.kcmErr = cmd.Wait(); close(e.kcmDone) }()
	select {
	case <-e.kcmDone:
		e.kcm = nil
		return fmt.Errorf("kube-controller-manager exited: %w\n%s", e.kcmErr, logs.String())
	case <-time.After(2 * time.Second): // still running: it connected and started its controllers
		return nil
	}
}

func (e *Env) ensureNamespaces(names ...string) error {
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range names {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("creating namespace %s: %w", n, err)
		}
	}
	return nil
}

// Stop stops the control plane and removes its files.
func (e *Env) Stop() error {
	if e.kcm != nil {
		_ = e.kcm.Process.Kill() // it may have exited already
		<-e.kcmDone
	}
	err := e.env.Stop()
	_ = os.RemoveAll(e.dir)
	return err
}

// crdPaths finds the CRD manifests: Gateway API's experimental channel and
// Istio's generated CRDs in the module cache, at the versions go.mod pins,
// and meshway's own — the CRDs the embedded store validates with
// (internal/crd, which says why the experimental channel).
func crdPaths() ([]string, error) {
	gw, err := moduleDir("sigs.k8s.io/gateway-api")
	if err != nil {
		return nil, err
	}
	istio, err := moduleDir("istio.io/api")
	if err != nil {
		return nil, err
	}
	own, err := moduleDir("github.com/meshway/meshway")
	if err != nil {
		return nil, err
	}
	return []string{
		filepath.Join(gw, "config", "crd", "experimental"),
		filepath.Join(istio, "kubernetes", "customresourcedefinitions.gen.yaml"),
		filepath.Join(own, "api", "ratelimit", "v1alpha1", "crd.yaml"),
	}, nil
}

func moduleDir(module string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("finding module %s (go list -m): %w", module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("module %s is not in the module cache; run go mod download", module)
	}
	return dir, nil
}

// ServiceAccountToken returns a token of ServiceAccount namespace/name (which
// must exist) from the TokenRequest API, valid for an hour for audience: what
// the kubelet projects into a pod's token volume. Tests run proxies as local
// processes (there is no kubelet here) and hand them such a token.
func (e *Env) ServiceAccountToken(t testing.TB, namespace, name, audience string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for ServiceAccount %s/%s: %v", namespace, name, err)
	}
	return tr.Status.Token
}

// UpdateSecretData replaces the data of Secret namespace/name, as an
// operator replacing a CA Secret would.
func (e *Env) UpdateSecretData(t testing.TB, namespace, name string, data map[string][]byte) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := cs.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data = data
	if _, err := cs.CoreV1().Secrets(namespace).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating Secret %s/%s: %v", namespace, name, err)
	}
}
