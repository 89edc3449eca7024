package kubetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

// ApplyRBAC creates the objects of an RBAC manifest — Namespaces,
// ServiceAccounts, ClusterRoles, Roles and their bindings — as an admin. A
// Namespace that exists already is left as it is; any other object of the
// file that exists, or of another kind, is an error naming the file.
func (e *Env) ApplyRBAC(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	docs := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for n := 1; ; n++ {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := createRBAC(ctx, cs, doc); err != nil {
			return fmt.Errorf("%s, document %d: %w", path, n, err)
		}
	}
}

func createRBAC(ctx context.Context, cs kubernetes.Interface, doc []byte) error {
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
	if err != nil {
		return err
	}
	opts := metav1.CreateOptions{}
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = cs.CoreV1().Namespaces().Create(ctx, o, opts)
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	case *corev1.ServiceAccount:
		_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.ClusterRole:
		_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, opts)
	case *rbacv1.ClusterRoleBinding:
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
	case *rbacv1.Role:
		_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.RoleBinding:
		_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
	default:
		err = fmt.Errorf("%T is not an RBAC object", obj)
	}
	return err
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as
// ServiceAccount namespace/name — a client certificate with the account's
// user name and groups, which RBAC treats as the account — and returns its
// path.
func (e *Env) ServiceAccountKubeconfig(namespace, name string) (string, error) {
	return e.writeKubeconfig("system:serviceaccount:"+namespace+":"+name,
		[]string{"system:serviceaccounts", "system:serviceaccounts:" + namespace})
}
