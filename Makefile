# meshway — `make help` lists the targets.
SHELL := /usr/bin/env bash
GO ?= go
BIN := bin
GOLANGCI_VERSION := v2.15.0
TOOLS_CACHE ?= $(HOME)/.cache/meshway-tools
GOLANGCI := $(TOOLS_CACHE)/golangci-lint-$(GOLANGCI_VERSION)

.PHONY: help build test test-short k8s-bins lint fmt vet testdata fuzz demo clean ci

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the binaries into bin/.
	$(GO) build -o $(BIN)/ ./cmd/...

test: ## Run the whole test suite, incl. against a real kube-apiserver (built once, ~12 min, into ~/.cache); the proxies' chaos tests once more on one thread.
	KUBEBUILDER_ASSETS="$$(bash hack/k8s-test-bins.sh)" $(GO) test -race -count=1 ./...
	@# A waypoint under light load runs on one thread (internal/maxprocs).
	$(GO) test -race -count=1 -cpu 1 -run '^TestChaos' ./internal/waypoint/ ./internal/hbone/

test-short: ## Run the tests without the race detector and without Kubernetes (those skip, saying why).
	$(GO) test -count=1 ./...

k8s-bins: ## Build kube-apiserver, etcd, kube-controller-manager and kubectl for the tests, if missing.
	bash hack/k8s-test-bins.sh

vet: ## go vet.
	$(GO) vet ./...

fmt: ## Format the code.
	gofmt -w $$(git ls-files '*.go')

$(GOLANGCI):
	mkdir -p $(TOOLS_CACHE)
	cd hack/tools && $(GO) build -o $(GOLANGCI) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

lint: $(GOLANGCI) ## gofmt, go vet and golangci-lint (built once from hack/tools into $(TOOLS_CACHE)).
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: run make fmt"; exit 1; }
	$(GO) vet ./...
	$(GOLANGCI) run ./...

testdata: ## Regenerate golden files (testdata/*) from the current code; review the diff.
	KUBEBUILDER_ASSETS="$$(bash hack/k8s-test-bins.sh)" $(GO) test ./internal/cli/ ./internal/translate/ ./internal/deploy/ -run 'Golden|Script|Explain' -update

# Fuzzing budgets are counts by default, not durations: with a duration, Go 1.26's fuzzing
# coordinator can fail a run with "context deadline exceeded" at the deadline when a worker is
# slow to stop on a loaded machine (go.dev/issue/75804, fixed in Go 1.27). FUZZTIME=30s (or
# 10000x) sets one budget for every target instead.
FUZZTIME ?=
fuzz: ## Fuzz the manifest loader, the HBONE header parsers, the HBONE server's frame handling, the waypoint's HTTP/1.1 parsers (against net/http's), authorization, the traceparent parser and the translators (about 2 min; FUZZTIME overrides each budget).
	$(GO) test ./internal/manifest -run '^$$' -fuzz FuzzDecode -fuzztime $(or $(FUZZTIME),20000x)
	$(GO) test ./internal/hbone -run '^$$' -fuzz '^FuzzParseAuthority$$' -fuzztime $(or $(FUZZTIME),50000x)
	$(GO) test ./internal/hbone -run '^$$' -fuzz '^FuzzParseBaggage$$' -fuzztime $(or $(FUZZTIME),50000x)
	$(GO) test ./internal/hbone -run '^$$' -fuzz '^FuzzServerFrames$$' -fuzztime $(or $(FUZZTIME),300x)
	$(GO) test ./internal/waypoint -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(or $(FUZZTIME),50000x)
	$(GO) test ./internal/waypoint -run '^$$' -fuzz '^FuzzParseResponse$$' -fuzztime $(or $(FUZZTIME),50000x)
	$(GO) test ./internal/authz -run '^$$' -fuzz '^FuzzCompileEvaluate$$' -fuzztime $(or $(FUZZTIME),20000x)
	$(GO) test ./internal/telemetry -run '^$$' -fuzz '^FuzzParseTraceparent$$' -fuzztime $(or $(FUZZTIME),50000x)
	$(GO) test ./internal/translate -run '^$$' -fuzz '^FuzzWaypointConfigs$$' -fuzztime $(or $(FUZZTIME),2000x)
	$(GO) test ./internal/translate -run '^$$' -fuzz '^FuzzZtunnelConfigs$$' -fuzztime $(or $(FUZZTIME),2000x)

demo: build ## Walk through the guide's configuration steps against a temporary store.
	./scripts/walkthrough.sh

ci: lint test demo ## What CI runs.

clean: ## Remove build output.
	rm -rf $(BIN)

.PHONY: gen gen-check bench-hbone bench-waypoint bench-controlplane

gen: ## Regenerate protobuf code in api/meshpb (installs protoc and the pinned plugins if missing) and the CRDs in internal/crd/crds.
	./hack/gen.sh

# Untracked files count too: a new .proto whose generated code was never added
# would otherwise pass, and so would a CRD of a new kind.
GENERATED := api/meshpb internal/crd/crds
gen-check: ## Regenerate api/meshpb and internal/crd/crds and fail if the committed generated files differ (stale or missing).
	./hack/gen.sh
	@changed="$$(git diff --name-only -- $(GENERATED); git ls-files --others --exclude-standard -- $(GENERATED))"; \
	if [ -n "$$changed" ]; then \
		echo "gen-check: after regenerating, these generated files differ from git (changed or untracked):"; \
		echo "$$changed" | sed 's/^/  /'; \
		echo "gen-check: run make gen and commit the result"; \
		exit 1; \
	fi

bench-hbone: ## Benchmark raw TCP vs TLS 1.3 vs HBONE on loopback and print a table (~1-2 min).
	$(GO) run ./bench/hbone

bench-waypoint: ## Benchmark the waypoint against nginx and HAProxy (installs them if missing) and print a table (3 rounds, ~12 min, longer when the hypervisor steals CPU; -rounds via go run ./bench/waypoint).
	bash hack/bench-waypoint-deps.sh && $(GO) run ./bench/waypoint

bench-controlplane: ## Benchmark meshd on a generated mesh of 500 waypoints, 5,000 services, 50,000 pods and print a table (~3-4 min).
	$(GO) run ./bench/controlplane
