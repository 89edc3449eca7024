#!/usr/bin/env bash
# Walks through the configuration steps of "Configure waypoint proxies" with meshctl
# against a temporary embedded store, printing each command and its output.
# Run it with `make demo` (which builds bin/meshctl first).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
meshctl="${MESHCTL:-$here/bin/meshctl}"
export MESHWAY_STORE
MESHWAY_STORE=$(mktemp -d "${TMPDIR:-/tmp}/meshway-walkthrough.XXXXXX")
trap 'rm -rf "$MESHWAY_STORE"' EXIT
samples="$here/examples/bookinfo"

step() { printf '\n## %s\n' "$*"; }
run() {
  printf '$ meshctl %s\n' "$*"
  "$meshctl" "$@" 2>&1 || { rc=$?; printf '[exit %d]\n' "$rc"; return 0; }
}
# expect_fail runs a command that must fail, and stops the walkthrough if it does not.
expect_fail() {
  printf '$ meshctl %s\n' "$*"
  if "$meshctl" "$@" 2>&1; then echo "walkthrough: expected this command to fail" >&2; exit 1; fi
  printf '[exit 1, as intended]\n'
}

echo "meshway walkthrough: store $MESHWAY_STORE"
step "Deploy the sample application and enroll the namespace in ambient mode"
run apply -f "$samples/bookinfo.yaml"
run label ns default istio.io/dataplane-mode=ambient
step "Confirm workloads in the mesh"
run get ns -L istio.io/dataplane-mode
step "Generate a waypoint config"
run waypoint generate --for all -n default
step "Deploy the waypoint proxy and enroll the namespace"
run waypoint apply -n default --enroll-namespace
run waypoint list -n default
run waypoint status -n default
step "No control plane runs yet: mark the waypoint ready as meshd will (status.addresses, Programmed)"
run apply --subresource=status -f "$samples/waypoint-ready.yaml"
run waypoint list -n default
run waypoint status -n default
run waypoint explain svc/reviews -n default
step "A second enrollment without --overwrite is refused (istioctl would exit 0 having done nothing)"
expect_fail waypoint apply -n default --name other --enroll-namespace
step "Configure a service to use a specific waypoint"
run waypoint apply -n default --name reviews-svc-waypoint
run label service reviews istio.io/use-waypoint=reviews-svc-waypoint
run waypoint explain svc/reviews -n default
step "Configure a pod to use a specific waypoint"
run waypoint apply -n default --name reviews-v2-pod-waypoint --for workload
run label pod -l version=v2,app=reviews istio.io/use-waypoint=reviews-v2-pod-waypoint
run apply --subresource=status -f "$samples/waypoints-ready.yaml"
run waypoint list -n default
run waypoint explain pod/reviews-v2 -n default -o json
step "Attach policies and routes"
run apply -f "$samples/policies.yaml"
run get ap,httproute -n default
step "Use waypoints from other namespaces"
run apply -f "$samples/cross-namespace.yaml"
run apply --subresource=status -f "$samples/egress-ready.yaml"
run label serviceentry istio-site istio.io/use-waypoint=egress-gateway -n cross-namespace-waypoint-consumer
run label serviceentry istio-site istio.io/use-waypoint-namespace=common-infrastructure -n cross-namespace-waypoint-consumer
run waypoint explain se/istio-site -n cross-namespace-waypoint-consumer
step "Remove waypoints"
run waypoint delete --all -n default
run label ns default istio.io/use-waypoint-
run waypoint list -n default
run waypoint explain svc/reviews -n default
echo
echo "walkthrough complete"
