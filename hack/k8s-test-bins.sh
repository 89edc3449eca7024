#!/usr/bin/env bash
# Builds the Kubernetes control plane the integration tests run against —
# kube-apiserver, etcd, kube-controller-manager, and kubectl for the read-back
# tests — from the Go module proxy into a cache outside the repository, only what
# is missing, and prints the directory (for KUBEBUILDER_ASSETS).
# A cold build takes about 10 minutes on 2 cores; later runs take no time.
set -euo pipefail
V=v1.37.2
OUT="${K8S_TEST_BINDIR:-$HOME/.cache/meshway-k8s-test-bins/$V}"
mkdir -p "$OUT"
cd "$(dirname "$0")/k8stools"
LD="-s -w -X k8s.io/component-base/version.gitVersion=$V -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/client-go/pkg/version.gitVersion=$V -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=37"
declare -A pkg=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [etcd]=./cmd/etcd
)
missing=()
for bin in kube-apiserver etcd kube-controller-manager kubectl; do
  if [ ! -x "$OUT/$bin" ]; then missing+=("${pkg[$bin]}"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "building ${missing[*]} ($V) into $OUT (first time only; several minutes)" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "$LD" -o "$OUT/" "${missing[@]}" >&2
fi
echo "$OUT"
