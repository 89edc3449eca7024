package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

// The Secrets, in the control plane's namespace, that hold its CA — the
// names istiod uses, so that a cluster moving from istiod keeps its CA and
// every certificate already issued stays trusted.
const (
	// PluggedCASecret is an operator's CA (Istio's "plug in CA
	// certificates": ca-cert.pem, ca-key.pem, root-cert.pem,
	// cert-chain.pem). It wins over the self-signed one; meshd never
	// writes it.
	PluggedCASecret = "cacerts"
	// SelfSignedCASecret is the CA meshd generates on its first start
	// when there is no plugged one, shared by every replica.
	SelfSignedCASecret = "istio-ca-secret"
	// caSecretType is the type istiod gives istio-ca-secret.
	caSecretType corev1.SecretType = "istio.io/ca-root"
)

// CASecret is the Secret the control plane's CA comes from.
type CASecret struct {
	// Name is PluggedCASecret or SelfSignedCASecret.
	Name string
	// Data holds the CA files by their cacerts names (ca-cert.pem, …).
	Data map[string][]byte
	// ResourceVersion changes whenever the Secret does.
	ResourceVersion string
}

// CASecrets reads and creates the CA Secrets of one namespace. The control
// plane's ServiceAccount needs RBAC get and create on secrets there.
type CASecrets struct {
	ns      string
	secrets corev1client.SecretInterface
}

// NewCASecrets returns the CA Secrets of namespace in the cluster of cfg.
func NewCASecrets(cfg *rest.Config, namespace string) (*CASecrets, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the Kubernetes client for the CA Secret: %w", err)
	}
	return &CASecrets{ns: namespace, secrets: cs.CoreV1().Secrets(namespace)}, nil
}

// Load returns the Secret to take the CA from: PluggedCASecret if it
// exists, else SelfSignedCASecret. When neither exists and generate is
// not nil, it creates SelfSignedCASecret from generate's data; if another
// replica created it meanwhile, that one is returned instead, so that all
// replicas sign with one CA.
func (c *CASecrets) Load(ctx context.Context, generate func() (map[string][]byte, error)) (CASecret, error) {
	for _, name := range []string{PluggedCASecret, SelfSignedCASecret} {
		s, err := c.secrets.Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			return CASecret{Name: name, Data: s.Data, ResourceVersion: s.ResourceVersion}, nil
		case !apierrors.IsNotFound(err):
			return CASecret{}, c.explain("reading", name, err)
		}
	}
	if generate == nil {
		return CASecret{}, fmt.Errorf("neither Secret %s/%s nor %s/%s exists: the control plane's CA is gone; restart meshd to generate a new one (every proxy then needs new certificates)",
			c.ns, PluggedCASecret, c.ns, SelfSignedCASecret)
	}
	data, err := generate()
	if err != nil {
		return CASecret{}, err
	}
	created, err := c.secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: SelfSignedCASecret, Namespace: c.ns},
		Type:       caSecretType,
		Data:       data,
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return c.Load(ctx, nil)
	}
	if err != nil {
		return CASecret{}, c.explain("creating", SelfSignedCASecret, err)
	}
	return CASecret{Name: SelfSignedCASecret, Data: created.Data, ResourceVersion: created.ResourceVersion}, nil
}

func (c *CASecrets) explain(verb, name string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%s the CA Secret %s/%s: %w (meshd's ServiceAccount needs RBAC get and create on secrets in %s; or give meshd -ca-dir with the CA's files)", verb, c.ns, name, err, c.ns)
	}
	return fmt.Errorf("%s the CA Secret %s/%s: %w", verb, c.ns, name, err)
}
