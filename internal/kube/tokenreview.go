package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshway/meshway/internal/identity"
)

// CAAudience is the audience of the ServiceAccount tokens proxies present
// to the control plane, as Istio's: a pod's projected token for istio-ca
// is good for nothing else, and a token meant for another service is not
// accepted here.
const CAAudience = "istio-ca"

// TokenReviewAuthenticator is an [identity.Authenticator] for the control
// plane's secure port on Kubernetes: the caller's bearer token (gRPC
// metadata "authorization: Bearer <token>") must be a ServiceAccount token
// for one of the audiences, which the API server confirms through the
// TokenReview API — as istiod does. The caller is then that ServiceAccount
// ([identity.ServiceAccountCaller]). The control plane's own ServiceAccount
// needs RBAC permission to create tokenreviews.authentication.k8s.io.
type TokenReviewAuthenticator struct {
	client    kubernetes.Interface
	audiences []string
}

// NewTokenReviewAuthenticator reviews tokens with the cluster of cfg;
// audiences empty means [CAAudience].
func NewTokenReviewAuthenticator(cfg *rest.Config, audiences ...string) (*TokenReviewAuthenticator, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the Kubernetes client for TokenReview: %w", err)
	}
	if len(audiences) == 0 {
		audiences = []string{CAAudience}
	}
	return &TokenReviewAuthenticator{client: cs, audiences: slices.Clone(audiences)}, nil
}

// Authenticate implements [identity.Authenticator]. A token the API server
// does not accept (expired, revoked, for another audience, its pod or
// ServiceAccount deleted) or that is not a ServiceAccount's is an error
// wrapping identity.ErrUnauthenticated; a TokenReview that could not be
// made (the API server is away, RBAC is missing) is not, so the caller is
// told to retry rather than that its token is bad.
func (a *TokenReviewAuthenticator) Authenticate(ctx context.Context) (identity.Caller, error) {
	tok, err := identity.BearerToken(ctx)
	if err != nil {
		return identity.Caller{}, err
	}
	review, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: tok, Audiences: a.audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return identity.Caller{}, fmt.Errorf("reviewing the caller's token: %w (the control plane's ServiceAccount needs RBAC permission to create tokenreviews.authentication.k8s.io)", err)
		}
		return identity.Caller{}, fmt.Errorf("reviewing the caller's token with the TokenReview API: %w", err)
	}
	st := review.Status
	if !st.Authenticated {
		why := st.Error
		if why == "" {
			why = "the API server does not accept it"
		}
		return identity.Caller{}, fmt.Errorf("%w: token rejected: %s (a proxy presents its pod's projected ServiceAccount token with audience %s)", identity.ErrUnauthenticated, why, strings.Join(a.audiences, ", "))
	}
	// The API server returns the audiences the token is valid for among
	// those asked; an empty list from an old server means it did not
	// check, and is refused rather than trusted.
	if !slices.ContainsFunc(st.Audiences, func(aud string) bool { return slices.Contains(a.audiences, aud) }) {
		return identity.Caller{}, fmt.Errorf("%w: token is not for audience %s (it is for %v)", identity.ErrUnauthenticated, strings.Join(a.audiences, ", "), st.Audiences)
	}
	ns, sa, err := identity.ParseServiceAccountUser(st.User.Username)
	if err != nil {
		return identity.Caller{}, fmt.Errorf("%w: %w; only ServiceAccount tokens are accepted", identity.ErrUnauthenticated, err)
	}
	return identity.ServiceAccountCaller(ns, sa), nil
}
