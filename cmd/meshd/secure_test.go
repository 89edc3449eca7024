package main_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/meshway/meshway/api/meshpb"
	"github.com/meshway/meshway/internal/hbone"
	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/kube"
	"github.com/meshway/meshway/internal/kube/kubetest"
	"github.com/meshway/meshway/internal/manifest"
	pushclient "github.com/meshway/meshway/internal/push/client"
	"github.com/meshway/meshway/internal/push/wire"
	"github.com/meshway/meshway/internal/store"
)

// TestMeshdSecurePortOnKubernetes is a waypoint pod's life on a cluster,
// with the pod played by a local process (envtest has no kubelet): meshd
// (plaintext xDS off, the permissions of manifests/meshd-rbac.yaml) creates
// the mesh CA in Secret istio-ca-secret, deploys the waypoint's
// ServiceAccount and publishes the root in ConfigMap istio-ca-root-cert; the
// waypoint, given a TokenRequest token of that
// ServiceAccount for audience istio-ca and the ConfigMap's root, obtains its
// certificate and its configuration on the secure port and serves HBONE to
// the reviews pods. Tokens of another namespace, for another audience or
// none at all are refused both a certificate and the configuration.
func TestMeshdSecurePortOnKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds meshd and the waypoint and starts a Kubernetes control plane: skipped with -short")
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	m := &mesh{t: t, bin: t.TempDir()}
	build(t, m.bin, "github.com/meshway/meshway/cmd/meshd", "github.com/meshway/meshway/cmd/waypoint")
	m.secure, m.monitor, m.waypoint = freeAddr(t), freeAddr(t), freeAddr(t)
	m.meshd = m.start("meshd", "--kubeconfig", kubeconfig, "-xds-address", "", "-secure-address", m.secure, "-monitoring-address", m.monitor,
		"-ca-check-interval", "200ms")

	// The CA meshd made, as the test's own signer for the reviews pods and
	// the client (they stand for other pods of the mesh).
	var secret kube.CASecret
	secrets, err := kube.NewCASecrets(env.Config, "istio-system")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "meshd to create Secret istio-system/istio-ca-secret", func() bool {
		secret, err = secrets.Load(ctx, nil)
		return err == nil
	})
	if secret.Name != kube.SelfSignedCASecret {
		t.Fatalf("meshd's CA comes from Secret %s; want %s", secret.Name, kube.SelfSignedCASecret)
	}
	caDir := t.TempDir()
	for name, data := range secret.Data {
		if err := os.WriteFile(filepath.Join(caDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := identity.LoadPluggedCA(caDir, identity.CAOptions{TrustDomain: td})
	if err != nil {
		t.Fatalf("the CA in Secret istio-ca-secret: %v", err)
	}
	ids := identity.NewManager(identity.ManagerOptions{Issuer: identity.CAIssuer{CA: ca}, Bundle: identity.NewBundle(ca.TrustDomain(), ca.Bundle().Roots()...)})
	t.Cleanup(ids.Close)

	// The mesh of the guide test, on the cluster.
	type version struct{ Name, VIP, PodIP string }
	data := struct {
		VIP      string
		Versions []version
	}{VIP: "10.96.200.13", Versions: []version{
		{"v1", "10.96.200.14", pod(t, ids, "reviews-v1")},
		{"v2", "10.96.200.15", pod(t, ids, "reviews-v2")},
	}}
	var manifests bytes.Buffer
	if err := template.Must(template.ParseFiles("testdata/mesh.yaml.tmpl")).Execute(&manifests, data); err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Decode("mesh.yaml", &manifests)
	if err != nil {
		t.Fatal(err)
	}
	var gateway manifest.Object
	for _, d := range docs {
		switch obj := d.Object.(type) {
		case *corev1.Namespace:
			if _, err := st.Apply(ctx, obj, store.ApplyOptions{FieldManager: "test"}); err != nil {
				t.Fatal(err)
			}
		case *gwv1.Gateway:
			gateway = obj // last: its Service's cluster IP must not take a VIP above
		default:
			if _, err := st.Create(ctx, obj); err != nil {
				t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
			}
		}
	}
	if _, err := st.Create(ctx, gateway); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "intruder"}}); err != nil {
		t.Fatal(err)
	}

	// What a waypoint pod mounts: the root from the ConfigMap meshd wrote
	// and a token of the ServiceAccount meshd deployed.
	waitFor(t, 30*time.Second, "meshd to deploy ServiceAccount default/default", func() bool {
		_, err := st.Get(ctx, manifest.ServiceAccount, "default", "default")
		return err == nil
	})
	rootFile := filepath.Join(t.TempDir(), "root-cert.pem")
	for _, ns := range []string{"default", "other"} {
		var root string
		waitFor(t, 30*time.Second, "meshd to write ConfigMap "+ns+"/istio-ca-root-cert", func() bool {
			obj, err := st.Get(ctx, manifest.ConfigMap, ns, "istio-ca-root-cert")
			if err != nil {
				return false
			}
			root = obj.(*corev1.ConfigMap).Data["root-cert.pem"]
			return true
		})
		if root != string(ca.Bundle().PEM()) {
			t.Fatalf("ConfigMap %s/istio-ca-root-cert holds\n%s\nwant the root of istio-ca-secret\n%s", ns, root, ca.Bundle().PEM())
		}
		if err := os.WriteFile(rootFile, []byte(root), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tokenFor := func(ns, sa, audience string) string {
		p := filepath.Join(t.TempDir(), "istio-token")
		if err := os.WriteFile(p, []byte(env.ServiceAccountToken(t, ns, sa, audience)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token := tokenFor("default", "default", "istio-ca")

	m.startEnv("waypoint", []string{"POD_NAMESPACE=default", "SERVICE_ACCOUNT=default", "GATEWAY_NAME=default"},
		"-xds-address", m.secure, "-root-cert", rootFile, "-token-file", token,
		"-hbone", m.waypoint, "-admin", "", "-ready", "", "-metrics", "")

	// productpage tunnels to the waypoint, which must present the
	// certificate of its ServiceAccount, issued by meshd.
	pool := &hbone.Pool{Bundle: ids.Bundle()}
	t.Cleanup(func() { pool.Close() })
	src, err := ids.Source(ctx, identity.MustWorkloadID(td, "default", "productpage"))
	if err != nil {
		t.Fatal(err)
	}
	wpID := identity.MustWorkloadID(td, "default", "default")
	m.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return pool.Dial(ctx, hbone.Request{Source: src, Addr: m.waypoint, Authority: data.VIP + ":9080", Expected: []spiffeid.ID{wpID}})
		},
	}}
	waitFor(t, 30*time.Second, "the waypoint serving reviews over HBONE", func() bool {
		code, _ := m.do(http.MethodGet)
		return code == http.StatusOK
	})
	if counts := m.count(50, http.MethodGet); counts["fail"] > 0 || counts["reviews-v1"]+counts["reviews-v2"] != 50 {
		t.Errorf("50 requests through the waypoint: %v", counts)
	}

	// The secure port, asked directly.
	intruder := tokenFor("other", "intruder", "istio-ca")
	wrongAudience := tokenFor("default", "default", "some-other-service")
	dial := func(tokenFile string) *grpc.ClientConn {
		rf, err := identity.NewRootFile(rootFile)
		if err != nil {
			t.Fatal(err)
		}
		opts := []grpc.DialOption{grpc.WithTransportCredentials(rf.TransportCredentials())}
		if tokenFile != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(identity.TokenFileCredentials(tokenFile)))
		}
		conn, err := grpc.NewClient(m.secure, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	csr := func(conn *grpc.ClientConn, id spiffeid.ID) error {
		_, csrPEM := newCSR(t, id)
		_, err := meshpb.NewCertificateServiceClient(conn).CreateCertificate(ctx, &meshpb.CreateCertificateRequest{Csr: string(csrPEM)})
		return err
	}
	node := func(ns string) pushclient.NodeInfo {
		return pushclient.NodeInfo{Kind: pushclient.KindWaypoint, Namespace: ns, Name: "default", Instance: "test"}
	}
	for _, tc := range []struct {
		name     string
		token    string
		call     func(*grpc.ClientConn) error
		want     codes.Code
		wantText string
	}{
		{"own identity", token, func(c *grpc.ClientConn) error { return csr(c, wpID) }, codes.OK, ""},
		{"own namespace's configuration", token, func(c *grpc.ClientConn) error { return subscribe(ctx, c, node("default"), "default/default") }, codes.OK, ""},
		{"another namespace's identity", intruder, func(c *grpc.ClientConn) error { return csr(c, wpID) }, codes.PermissionDenied, "only its own identity"},
		{"another namespace's configuration", intruder, func(c *grpc.ClientConn) error { return subscribe(ctx, c, node("default"), "default/default") }, codes.PermissionDenied, "only its own namespace"},
		{"another namespace's configuration, claiming its own", intruder, func(c *grpc.ClientConn) error { return subscribe(ctx, c, node("other"), "default/default") }, codes.PermissionDenied, "in namespace \"other\" only"},
		{"wrong audience, certificate", wrongAudience, func(c *grpc.ClientConn) error { return csr(c, wpID) }, codes.Unauthenticated, "token rejected"},
		{"wrong audience, configuration", wrongAudience, func(c *grpc.ClientConn) error { return subscribe(ctx, c, node("default"), "default/default") }, codes.Unauthenticated, "token rejected"},
		{"no token, certificate", "", func(c *grpc.ClientConn) error { return csr(c, wpID) }, codes.Unauthenticated, "authorization"},
		{"no token, configuration", "", func(c *grpc.ClientConn) error { return subscribe(ctx, c, node("default"), "default/default") }, codes.Unauthenticated, "authorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(dial(tc.token))
			if status.Code(err) != tc.want || (tc.wantText != "" && !strings.Contains(err.Error(), tc.wantText)) {
				t.Errorf("got %v; want %v mentioning %q", err, tc.want, tc.wantText)
			}
		})
	}

	// An operator replaces the CA in istio-ca-secret: meshd reloads it,
	// republishes the root, and serves with a certificate of the new CA.
	next := t.TempDir()
	if _, err := identity.NewCA(next, identity.CAOptions{TrustDomain: td}); err != nil {
		t.Fatal(err)
	}
	nextData := map[string][]byte{}
	for _, name := range []string{"ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"} {
		b, err := os.ReadFile(filepath.Join(next, name))
		if err != nil {
			t.Fatal(err)
		}
		nextData[name] = b
	}
	env.UpdateSecretData(t, "istio-system", kube.SelfSignedCASecret, nextData)
	waitFor(t, 30*time.Second, "ConfigMap other/istio-ca-root-cert to hold the new root", func() bool {
		obj, err := st.Get(ctx, manifest.ConfigMap, "other", "istio-ca-root-cert")
		return err == nil && obj.(*corev1.ConfigMap).Data["root-cert.pem"] == string(nextData["root-cert.pem"])
	})
	if err := os.WriteFile(rootFile, nextData["root-cert.pem"], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := csr(dial(token), wpID); err != nil {
		t.Errorf("a certificate from meshd verified against the new root: %v", err)
	}
	m.checkPermissions()
}

// subscribe opens a delta xDS stream as node and waits for the first
// response, which must carry the named waypoint configuration.
func subscribe(ctx context.Context, conn *grpc.ClientConn, node pushclient.NodeInfo, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "DeltaAggregatedResources", ServerStreams: true, ClientStreams: true},
		"/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources")
	if err != nil {
		return err
	}
	// A stream the server already ended (it refuses before reading) makes
	// SendMsg return io.EOF; its status comes from RecvMsg.
	if err := s.SendMsg(&meshpb.XdsDeltaRequest{Node: node.XDS(), TypeUrl: wire.WaypointType, ResourceNamesSubscribe: []string{name}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	resp := &meshpb.XdsDeltaResponse{}
	if err := s.RecvMsg(resp); err != nil {
		return err
	}
	for _, r := range resp.GetResources() {
		if r.GetName() == name {
			return nil
		}
	}
	return status.Errorf(codes.NotFound, "the response carries no %s", name)
}

// newCSR returns a P-256 key's PEM certificate request for id.
func newCSR(t *testing.T, id spiffeid.ID) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}
