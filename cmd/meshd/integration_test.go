package main_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/meshway/meshway/internal/cli"
	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
)

// The integration test runs the real binaries: meshd on an embedded store,
// a waypoint taking its configuration from meshd over xDS and serving HBONE,
// and the reviews pods, each an HTTP server behind an HBONE node on its own
// loopback address. A client tunnels to the waypoint as
// spiffe://cluster.local/ns/default/sa/productpage.

const td = "cluster.local"

type mesh struct {
	t        *testing.T
	bin      string
	storeDir string
	caDir    string
	xds      string // meshd's xDS address
	secure   string // meshd's secure address (xDS and CA over TLS)
	monitor  string // meshd's monitoring address
	waypoint string // the waypoint's HBONE address
	meshd    *exec.Cmd
	client   *http.Client

	mu        sync.Mutex
	forbidden []string // lines of the processes' logs where the API server refused a request
}

func build(t *testing.T, dir string, pkgs ...string) {
	t.Helper()
	for _, p := range pkgs {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(p)), p).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", p, err, out)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (m *mesh) meshctl(args ...string) string {
	m.t.Helper()
	var out, errOut bytes.Buffer
	env := cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	if code := cli.Run(context.Background(), append(args, "--store", m.storeDir), env); code != 0 {
		m.t.Fatalf("meshctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	}
	return out.String()
}

// logLines copies a process's output to the test log, line by line,
// keeping the lines that say the API server refused a request for want of
// a permission (its "... is forbidden: User ... cannot ..."), for
// checkPermissions.
func (m *mesh) logLines(name string, r io.Reader) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := s.Text()
		m.t.Logf("%s: %s", name, line)
		if strings.Contains(line, " is forbidden: ") {
			m.mu.Lock()
			m.forbidden = append(m.forbidden, name+": "+line)
			m.mu.Unlock()
		}
	}
}

// checkPermissions fails the test if a process was refused a request for
// want of a permission: with manifests/meshd-rbac.yaml's permissions meshd
// must be refused nothing.
func (m *mesh) checkPermissions() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, line := range m.forbidden {
		m.t.Errorf("refused for want of a permission (manifests/meshd-rbac.yaml): %s", line)
	}
}

func (m *mesh) start(name string, args ...string) *exec.Cmd {
	m.t.Helper()
	return m.startEnv(name, nil, args...)
}

// startEnv starts a binary with env added to the test's environment (a
// pod's downward API variables).
func (m *mesh) startEnv(name string, env []string, args ...string) *exec.Cmd {
	m.t.Helper()
	cmd := exec.Command(filepath.Join(m.bin, name), args...)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("starting %s: %v", name, err)
	}
	go m.logLines(name, pr)
	go func() { _ = cmd.Wait(); pw.Close() }()
	m.t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd
}

func (m *mesh) startMeshd() {
	m.meshd = m.start("meshd", "-store", m.storeDir, "-xds-address", m.xds, "-secure-address", m.secure, "-monitoring-address", m.monitor)
	waitFor(m.t, 20*time.Second, "meshd ready", func() bool {
		resp, err := http.Get("http://" + m.monitor + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pod runs a reviews pod: an HTTP server answering with the pod's name on
// ip:9080, behind an HBONE node on ip:15008. It returns the IP, the first
// free one from 127.0.1.2 (other packages' tests use 127.0.0.x).
func pod(t *testing.T, m *identity.Manager, name string) string {
	t.Helper()
	src, err := m.Source(context.Background(), identity.MustWorkloadID(td, "default", "bookinfo-reviews"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 250; i++ {
		ip := fmt.Sprintf("127.0.1.%d", i)
		node, err := net.Listen("tcp", ip+":15008")
		if err != nil {
			continue
		}
		app, err := net.Listen("tcp", ip+":9080")
		if err != nil {
			node.Close()
			continue
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, name)
		}), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = hs.Serve(app) }()
		srv := &hbone.Server{
			TLSConfig: identity.ServerTLSConfig(src, m.Bundle(), nil),
			Handler: hbone.HandlerFunc(func(_ context.Context, s *hbone.Stream) {
				up, err := net.Dial("tcp", s.Authority.String())
				if err != nil {
					s.Reject(http.StatusServiceUnavailable, err.Error())
					return
				}
				defer up.Close()
				hbone.Splice(s, up)
			}),
		}
		go func() { _ = srv.Serve(node) }()
		t.Cleanup(func() { srv.Close(); hs.Close() })
		return ip
	}
	t.Fatal("no free 127.0.1.x with ports 15008 and 9080")
	return ""
}

func TestMeshdWaypointGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs meshd and a waypoint: skipped with -short")
	}
	m := &mesh{t: t, bin: t.TempDir(), storeDir: t.TempDir(), caDir: t.TempDir()}
	build(t, m.bin, "github.com/meshway/meshway/cmd/meshd", "github.com/meshway/meshway/cmd/waypoint")
	ca, err := identity.NewCA(m.caDir, identity.CAOptions{TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	ids := identity.NewManager(identity.ManagerOptions{
		Issuer: identity.CAIssuer{CA: ca},
		Bundle: identity.NewBundle(ca.TrustDomain(), ca.Bundle().Roots()...),
	})
	t.Cleanup(ids.Close)

	// The mesh: reviews-v1, reviews-v2 and the reviews service.
	type version struct{ Name, VIP, PodIP string }
	data := struct {
		VIP      string
		Versions []version
	}{VIP: "10.96.0.13", Versions: []version{
		{"v1", "10.96.0.14", pod(t, ids, "reviews-v1")},
		{"v2", "10.96.0.15", pod(t, ids, "reviews-v2")},
	}}
	tmpl := template.Must(template.ParseFiles("testdata/mesh.yaml.tmpl"))
	var manifests bytes.Buffer
	if err := tmpl.Execute(&manifests, data); err != nil {
		t.Fatal(err)
	}
	meshFile := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(meshFile, manifests.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	m.meshctl("apply", "-f", meshFile)

	m.xds, m.secure, m.monitor, m.waypoint = freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	m.startMeshd()
	m.start("waypoint", "-xds-address", m.xds, "-waypoint", "default/default",
		"-hbone", m.waypoint, "-ca-dir", m.caDir, "-identity", identity.MustWorkloadID(td, "default", "waypoint").String(),
		"-admin", "", "-ready", "", "-metrics", "")

	// The client: productpage, tunnelling each connection to the waypoint
	// with the reviews VIP as :authority.
	pool := &hbone.Pool{Bundle: ids.Bundle()}
	t.Cleanup(func() { pool.Close() })
	src, err := ids.Source(context.Background(), identity.MustWorkloadID(td, "default", "productpage"))
	if err != nil {
		t.Fatal(err)
	}
	wpID := identity.MustWorkloadID(td, "default", "waypoint")
	m.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return pool.Dial(ctx, hbone.Request{Source: src, Addr: m.waypoint, Authority: data.VIP + ":9080", Expected: []spiffeid.ID{wpID}})
		},
		MaxIdleConnsPerHost: 8,
	}}

	// Before any route: the waypoint serves reviews from both pods.
	waitFor(t, 20*time.Second, "the waypoint serving reviews", func() bool {
		code, _ := m.do(http.MethodGet)
		return code == http.StatusOK
	})
	if out := m.meshctlProxyStatus(); !strings.Contains(out, "SYNCED") {
		t.Errorf("proxy-status does not show the waypoint SYNCED:\n%s", out)
	}
	// A ztunnel gets the mesh's workloads, services, waypoints and L4
	// policies from meshd, and proxy-status lists it by node.
	zt := startZtunnel(t, m.xds, "node-1")
	waitFor(t, 20*time.Second, "the ztunnel's configuration", func() bool { return has(zt.Current(), "reviews-v1", "reviews-v2") })
	waitFor(t, 10*time.Second, "the ztunnel SYNCED in proxy-status", func() bool { return ztunnelSynced(m.meshctlProxyStatus(), "node-1") })
	// meshd deployed the waypoint and reports it programmed, and reviews bound to it.
	want := "deployment.apps/default\nservice/default\nserviceaccount/default\n"
	if out := m.meshctl("get", "deploy/default", "svc/default", "sa/default", "-o", "name"); out != want {
		t.Errorf("meshd's waypoint workload objects: got\n%swant\n%s", out, want)
	}
	m.expectCondition("gtw", "default", "Programmed", "True")
	m.expectCondition("svc", "reviews", "istio.io/WaypointBound", "True")

	// The guide's HTTPRoute: 90% to reviews-v1, 10% to reviews-v2.
	m.meshctl("apply", "-f", "testdata/reviews-route.yaml")
	waitFor(t, 10*time.Second, "the route applied (only v1 and v2, some v2)", func() bool {
		counts := m.count(200, http.MethodGet)
		return counts["reviews-v2"] > 0 && counts["reviews-v1"] > counts["reviews-v2"]
	})
	counts := m.count(2000, http.MethodGet)
	if counts["fail"] > 0 {
		t.Fatalf("%d of 2000 requests failed: %v", counts["fail"], counts)
	}
	if v2 := float64(counts["reviews-v2"]) / 2000; v2 < 0.075 || v2 > 0.125 {
		// 10% ± 2.5%: more than 3.7 standard deviations of 2,000 draws.
		t.Errorf("reviews-v2 got %.1f%% of 2000 requests, want 10%% ± 2.5%% (%v)", 100*v2, counts)
	}

	// The guide's view-only policy: GET from namespace default passes, POST is refused.
	m.expectCondition("httproute", "reviews", "Accepted", "True")
	m.meshctl("apply", "-f", "testdata/view-only.yaml")
	m.expectCondition("authorizationpolicy", "view-only", "WaypointAccepted", "True")
	waitFor(t, 10*time.Second, "POST refused", func() bool {
		code, body := m.do(http.MethodPost)
		return code == http.StatusForbidden && strings.Contains(body, "RBAC: access denied")
	})
	if code, body := m.do(http.MethodGet); code != http.StatusOK {
		t.Errorf("GET under view-only: %d %s, want 200", code, body)
	}
	m.meshctl("delete", "-f", "testdata/view-only.yaml")
	waitFor(t, 10*time.Second, "POST allowed again", func() bool {
		code, _ := m.do(http.MethodPost)
		return code == http.StatusOK
	})

	// Kill meshd (SIGKILL) and start it again under steady traffic: the
	// waypoint keeps serving its last configuration, then resyncs.
	var sent, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body := m.do(http.MethodGet)
				sent.Add(1)
				if code != http.StatusOK {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %s", code, body))
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	ztHeld, ztCount := zt.versions(), zt.count()
	if err := m.meshd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	m.startMeshd()
	waitFor(t, 20*time.Second, "the waypoint SYNCED with the new meshd", func() bool {
		return strings.Contains(m.meshctlProxyStatus(), "SYNCED")
	})
	// The ztunnel kept its configuration and, reconnecting with the
	// versions it holds, is sent nothing it already had and told of no
	// removal.
	waitFor(t, 20*time.Second, "the ztunnel SYNCED with the new meshd", func() bool { return ztunnelSynced(m.meshctlProxyStatus(), "node-1") })
	if !has(zt.Current(), "reviews-v1", "reviews-v2") {
		t.Errorf("the ztunnel lost its configuration across the meshd restart")
	}
	again, removed := zt.since(ztCount)
	for _, r := range again {
		if ztHeld[r.Name] == r.Version {
			t.Errorf("after the restart meshd sent %s again at the version the ztunnel held", r.Name)
		}
	}
	if removed != 0 {
		t.Errorf("the ztunnel was told of %d removals across the restart", removed)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || sent.Load() < 100 {
		t.Errorf("across the meshd restart: %d of %d requests failed (first: %v)", failed.Load(), sent.Load(), firstFailure.Load())
	}
	t.Logf("across the meshd restart: %d requests, none failed", sent.Load())
	// And the new meshd pushes: removing the route sends traffic to all reviews pods again.
	m.meshctl("delete", "-f", "testdata/reviews-route.yaml")
	waitFor(t, 10*time.Second, "the route removed (reviews-v1 and v2 evenly)", func() bool {
		c := m.count(200, http.MethodGet)
		return c["reviews-v2"] > 60
	})
}

// count sends n requests and counts the answers by body ("fail" for the rest).
func (m *mesh) count(n int, method string) map[string]int {
	counts := map[string]int{}
	for range n {
		code, body := m.do(method)
		if code != http.StatusOK {
			counts["fail"]++
			continue
		}
		counts[body]++
	}
	return counts
}

// expectCondition waits until meshd reports the condition on the object
// (any of its conditions lists, as meshctl get -o yaml shows them).
func (m *mesh) expectCondition(kind, name, typ, status string) {
	m.t.Helper()
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out = m.meshctl("get", kind, name, "-o", "yaml")
		if hasCondition(out, typ, status) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.t.Errorf("%s %s: no condition %s=%s after 10s:\n%s", kind, name, typ, status, out)
}

// hasCondition finds a condition {type: typ, status: status} in any
// conditions list of a YAML document (status.conditions, a route's
// status.parents[].conditions).
func hasCondition(doc, typ, status string) bool {
	var v any
	if err := sigsyaml.Unmarshal([]byte(doc), &v); err != nil {
		return false
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case map[string]any:
			if conds, ok := v["conditions"].([]any); ok {
				for _, c := range conds {
					if c, ok := c.(map[string]any); ok && c["type"] == typ && c["status"] == status {
						return true
					}
				}
			}
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		case []any:
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

func (m *mesh) do(method string) (int, string) {
	req, _ := http.NewRequest(method, "http://reviews.default.svc.cluster.local:9080/reviews/1", strings.NewReader(""))
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (m *mesh) meshctlProxyStatus() string {
	var out, errOut bytes.Buffer
	env := cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	if code := cli.Run(context.Background(), []string{"proxy-status", "--meshd-address", m.monitor}, env); code != 0 {
		m.t.Fatalf("meshctl proxy-status: exit %d\n%s", code, errOut.String())
	}
	return out.String()
}
