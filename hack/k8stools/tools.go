//go:build tools

// Package tools pins the Kubernetes control plane that integration tests run
// against, built from the Go module proxy by hack/k8s-test-bins.sh.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
