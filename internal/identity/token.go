package identity

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// ServiceAccountUserPrefix starts the user name Kubernetes gives a
// ServiceAccount token: system:serviceaccount:<namespace>:<name>.
const ServiceAccountUserPrefix = "system:serviceaccount:"

// ParseServiceAccountUser splits a ServiceAccount's user name,
// system:serviceaccount:<namespace>:<name>.
func ParseServiceAccountUser(user string) (namespace, name string, err error) {
	rest, ok := strings.CutPrefix(user, ServiceAccountUserPrefix)
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || sa == "" || strings.Contains(sa, ":") {
		return "", "", fmt.Errorf("user %q is not a ServiceAccount (want %s<namespace>:<name>)", user, ServiceAccountUserPrefix)
	}
	return ns, sa, nil
}

// TokenServiceAccount reads the namespace and ServiceAccount a Kubernetes
// ServiceAccount token (a JWT) claims to be for, from its "kubernetes.io"
// claim or else its subject. The signature is NOT checked: a proxy uses
// this only to know which identity to ask the CA for when its pod's
// environment does not say; the control plane verifies the token (with
// the TokenReview API) before it issues anything.
func TokenServiceAccount(token string) (namespace, serviceAccount string, err error) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return "", "", fmt.Errorf("not a JWT: want three dot-separated parts, got %d", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", "", fmt.Errorf("JWT payload: %w", err)
	}
	var claims struct {
		Sub  string `json:"sub"`
		Kube struct {
			Namespace      string `json:"namespace"`
			ServiceAccount struct {
				Name string `json:"name"`
			} `json:"serviceaccount"`
		} `json:"kubernetes.io"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", "", fmt.Errorf("JWT payload: %w", err)
	}
	if ns, sa := claims.Kube.Namespace, claims.Kube.ServiceAccount.Name; ns != "" && sa != "" {
		return ns, sa, nil
	}
	ns, sa, err := ParseServiceAccountUser(claims.Sub)
	if err != nil {
		return "", "", fmt.Errorf("JWT names no ServiceAccount (no kubernetes.io claim, and subject: %w)", err)
	}
	return ns, sa, nil
}
