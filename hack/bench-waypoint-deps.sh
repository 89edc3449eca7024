#!/usr/bin/env bash
# Installs the peers `make bench-waypoint` compares the waypoint with —
# Debian's nginx and haproxy — when they are missing; does nothing when both
# are there. The benchmark runs them itself, in the foreground, with its own
# configuration files in a temporary directory: the packages' system
# services are not started (a policy-rc.d denies it during the install).
set -euo pipefail

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bench-waypoint: installing ${missing[*]} with apt-get" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

log="$(mktemp)"
policy=/usr/sbin/policy-rc.d
own_policy=""
cleanup() {
	rm -f "$log"
	if [ -n "$own_policy" ]; then $sudo rm -f "$policy"; fi
}
trap cleanup EXIT

# Keep the packages' postinst from starting nginx/haproxy as services.
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
	own_policy=1
fi

# Quiet unless something fails: then apt-get's output is shown.
if ! { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
	cat "$log" >&2
	echo "bench-waypoint: installing ${missing[*]} failed" >&2
	exit 1
fi
