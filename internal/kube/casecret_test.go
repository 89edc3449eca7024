package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshway/meshway/internal/kube/kubetest"
)

// TestCASecrets: the first Load creates istio-ca-secret from the generated
// data, later ones (another replica) get that one back without generating,
// and a plugged cacerts Secret wins once it exists.
func TestCASecrets(t *testing.T) {
	kubetest.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "ca-secrets"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	c, err := NewCASecrets(env.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx, nil); err == nil || !strings.Contains(err.Error(), "neither Secret") {
		t.Errorf("Load without a Secret or a generator: %v; want an error naming the Secrets", err)
	}
	generated := 0
	gen := func(v string) func() (map[string][]byte, error) {
		return func() (map[string][]byte, error) {
			generated++
			return map[string][]byte{"ca-cert.pem": []byte(v)}, nil
		}
	}
	first, err := c.Load(ctx, gen("first"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Name != SelfSignedCASecret || string(first.Data["ca-cert.pem"]) != "first" {
		t.Errorf("first Load = %s %q; want %s with the generated data", first.Name, first.Data["ca-cert.pem"], SelfSignedCASecret)
	}
	s, err := cs.CoreV1().Secrets(ns).Get(ctx, SelfSignedCASecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != caSecretType {
		t.Errorf("Secret type %q; want %q, as istiod's", s.Type, caSecretType)
	}
	second, err := c.Load(ctx, gen("second"))
	if err != nil {
		t.Fatal(err)
	}
	if string(second.Data["ca-cert.pem"]) != "first" || generated != 1 {
		t.Errorf("second Load returned %q after %d generations; want the stored CA, generated once", second.Data["ca-cert.pem"], generated)
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: PluggedCASecret},
		Data:       map[string][]byte{"ca-cert.pem": []byte("plugged")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	plugged, err := c.Load(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plugged.Name != PluggedCASecret || string(plugged.Data["ca-cert.pem"]) != "plugged" {
		t.Errorf("with cacerts present Load = %s %q; want the plugged CA", plugged.Name, plugged.Data["ca-cert.pem"])
	}
}
