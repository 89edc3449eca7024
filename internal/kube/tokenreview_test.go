package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshway/meshway/internal/identity"
	"github.com/meshway/meshway/internal/kube/kubetest"
)

// serviceAccountToken creates namespace ns and ServiceAccount sa if missing
// and returns a token for it from the TokenRequest API, as the kubelet
// projects one into a pod.
func serviceAccountToken(t *testing.T, cs kubernetes.Interface, ns, sa, audience string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return env.ServiceAccountToken(t, ns, sa, audience)
}

func withToken(tok string) context.Context {
	ctx := context.Background()
	if tok == "" {
		return ctx
	}
	return metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+tok))
}

// TestTokenReviewAuthenticator: a projected-style ServiceAccount token for
// istio-ca authenticates as its ServiceAccount, checked by the real API
// server; other tokens are refused as the caller's fault, and a control
// plane without the RBAC to review tokens says so without blaming the
// caller.
func TestTokenReviewAuthenticator(t *testing.T) {
	kubetest.Require(t, env)
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewTokenReviewAuthenticator(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	good := serviceAccountToken(t, cs, "tokenreview", "waypoint", CAAudience)
	caller, err := a.Authenticate(withToken(good))
	if err != nil {
		t.Fatalf("a ServiceAccount token for %s: %v", CAAudience, err)
	}
	if want := identity.ServiceAccountCaller("tokenreview", "waypoint"); caller != want {
		t.Errorf("caller %v; want %v", caller, want)
	}
	if ns, sa, err := identity.TokenServiceAccount(good); err != nil || ns != "tokenreview" || sa != "waypoint" {
		t.Errorf("TokenServiceAccount of a real token = %q, %q, %v", ns, sa, err)
	}

	for _, tc := range []struct {
		name, token, want string
	}{
		{"wrong audience", serviceAccountToken(t, cs, "tokenreview", "waypoint", "other"), "token rejected"},
		{"not a token", "forged", "token rejected"},
		{"no token", "", "authorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Authenticate(withToken(tc.token))
			if !errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want unauthenticated, mentioning %q", err, tc.want)
			}
		})
	}

	t.Run("ServiceAccount deleted", func(t *testing.T) {
		tok := serviceAccountToken(t, cs, "tokenreview", "gone", CAAudience)
		if err := cs.CoreV1().ServiceAccounts("tokenreview").Delete(context.Background(), "gone", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// The API server looks the ServiceAccount up in its informer's
		// cache, which learns of the delete a moment later: a review
		// made in between still accepts the token. Wait for it, bounded.
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, err := a.Authenticate(withToken(tok))
			if errors.Is(err, identity.ErrUnauthenticated) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("token of a ServiceAccount deleted 15 s ago: %v; want unauthenticated", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("no RBAC to review", func(t *testing.T) {
		path, err := env.UserKubeconfig("no-rbac")
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := Connect(Target{Kubeconfig: path})
		if err != nil {
			t.Fatal(err)
		}
		weak, err := NewTokenReviewAuthenticator(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = weak.Authenticate(withToken(good))
		if err == nil || errors.Is(err, identity.ErrUnauthenticated) || !strings.Contains(err.Error(), "create tokenreviews") {
			t.Errorf("got %v; want an error that is not the caller's fault, naming the missing permission", err)
		}
	})
}
