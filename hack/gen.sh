#!/usr/bin/env bash
# Regenerates the protobuf code under api/meshpb, and copies the CRDs the
# embedded store validates with into internal/crd/crds (hack/crdgen, from the
# modules go.mod pins). The generated files are committed: building and
# testing never need protoc or the module cache.
#
# Installs what it needs: protoc from Debian's protobuf-compiler when it is
# missing, and protoc-gen-go / protoc-gen-go-grpc built from the versions
# pinned in hack/tools/go.mod into TOOLS_CACHE (outside the repository).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${TOOLS_CACHE:-$HOME/.cache/meshway-tools}"
go="${GO:-go}"

if ! command -v protoc >/dev/null 2>&1; then
	echo "gen: protoc not found; installing protobuf-compiler with apt-get" >&2
	sudo=""
	if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq protobuf-compiler
fi

cd "$root/hack/tools"
ver() { "$go" list -m -f '{{.Version}}' "$1"; }
gen_go="$cache/protoc-gen-go-$(ver google.golang.org/protobuf)"
gen_grpc="$cache/protoc-gen-go-grpc-$(ver google.golang.org/grpc/cmd/protoc-gen-go-grpc)"
mkdir -p "$cache"
[ -x "$gen_go" ] || "$go" build -o "$gen_go" google.golang.org/protobuf/cmd/protoc-gen-go
[ -x "$gen_grpc" ] || "$go" build -o "$gen_grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc

# protoc finds plugins by name on PATH: link the pinned builds into a
# private directory so no other installed version is picked up.
bindir="$(mktemp -d)"
trap 'rm -rf "$bindir"' EXIT
ln -s "$gen_go" "$bindir/protoc-gen-go"
ln -s "$gen_grpc" "$bindir/protoc-gen-go-grpc"

cd "$root"
PATH="$bindir:$PATH" protoc \
	--proto_path=api/meshpb \
	--go_out=api/meshpb --go_opt=paths=source_relative \
	--go-grpc_out=api/meshpb --go-grpc_opt=paths=source_relative \
	api/meshpb/*.proto
echo "gen: regenerated $(ls api/meshpb/*.pb.go | tr '\n' ' ')"
"$go" run ./hack/crdgen
