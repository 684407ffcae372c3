SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -euc
.DEFAULT_GOAL := help

GO          ?= go
BIN         := bin/rbnode
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -buildid= -X github.com/rbnode/rbnode/cli.version=$(VERSION)
FUZZTIME    ?= 10s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
export CGO_ENABLED ?= 0

.PHONY: help build dist demo test e2e property attack fuzz bench pgo lint tidy unit clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build bin/rbnode (reproducible: -trimpath, no build id, no VCS stamp)
	$(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/rbnode

PLATFORM    := $(shell $(GO) env GOOS)-$(shell $(GO) env GOARCH)
OUT_DIR     ?= dist

dist: ## release artifact OUT_DIR/rbnode-VERSION-OS-ARCH and its SHA256SUMS (rbnode build --pipeline 'make dist')
	mkdir -p $(OUT_DIR)
	$(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' -o $(OUT_DIR)/rbnode-$(VERSION)-$(PLATFORM) ./cmd/rbnode
	cd $(OUT_DIR) && sha256sum rbnode-$(VERSION)-$(PLATFORM) > SHA256SUMS

demo: build ## real guix.sigs data judged, then a live network of three builders that agree, then diverge
	cmd/rbnode/demo.sh

test: ## run the unit and integration tests (needs gpg)
	$(GO) test -count=1 ./...

e2e: ## run the end-to-end tests with real rbnode processes
	$(GO) test -count=1 -tags e2e -run '^TestE2E' ./cmd/rbnode/

SEED        ?= 0
property: ## the long order-independence property test (SEED=N replays a run)
	$(GO) test -count=1 -run '^TestVerdictIsOrderIndependent$$' ./node/ -property.long -property.seed=$(SEED) -v 2>&1 | grep -v '"level"'

attack: ## the hostile-peer harness at full size, one process per attack (make test runs it small); figures in docs/threat-model.md
	@rc=0; for t in $$($(GO) test -list '^TestAttack' ./node/ | grep '^TestAttack'); do \
	  RBNODE_ATTACK=long $(GO) test -count=1 -v -timeout 30m -run "^$$t$$" ./node/ 2>&1 | grep -E '^(--- |FAIL|panic)|ATTACK|attack_test' || rc=1; \
	done; exit $$rc

fuzz: ## run every fuzz target for FUZZTIME (default 10s) each
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

BENCH       ?= .
BENCHTIME   ?= 1x
bench: ## run the benchmarks one package at a time (BENCH=regexp selects), tee them to bench.out, end with the table of targets (docs/performance.md)
	@rc=0; $(GO) test -p 1 -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -timeout 60m ./... 2>&1 | tee bench.out || rc=1; \
	echo; $(GO) run ./contrib/benchtable -notes contrib/benchtable/notes.txt bench.out || rc=1; \
	exit $$rc

pgo: build ## refresh cmd/rbnode/default.pgo (profile-guided optimisation) from guix.sigs imports
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; tree=../shared/testdata/guix.sigs; [ -d $$tree ] || tree=testdata/guix.sigs; \
	for i in 1 2 3 4 5 6 7 8; do RBNODE_CPUPROFILE=$$tmp/$$i.prof $(BIN) --home $$tmp/home$$i import $$tree >/dev/null; done; \
	$(GO) tool pprof -proto $$tmp/*.prof > cmd/rbnode/default.pgo; echo "wrote cmd/rbnode/default.pgo"

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./cmd/rbnode/
	$(GO) run $(STATICCHECK) ./...

unit: build ## check contrib/systemd/rbnode.service with systemd-analyze verify, any warning failing (skipped where it is missing)
	@if ! command -v systemd-analyze >/dev/null; then echo "systemd-analyze not found: unit check skipped"; exit 0; fi; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	sed "s#/usr/local/bin/rbnode#$(CURDIR)/$(BIN)#" contrib/systemd/rbnode.service > "$$tmp/rbnode.service"; \
	out=$$(systemd-analyze verify "$$tmp/rbnode.service" 2>&1); \
	if [ -n "$$out" ]; then echo "$$out"; echo "contrib/systemd/rbnode.service: systemd-analyze verify complained"; exit 1; fi; \
	echo "contrib/systemd/rbnode.service: systemd-analyze verify passed"

tidy: ## fail if go.mod or go.sum would change
	$(GO) mod tidy -diff

clean: ## remove build output
	rm -rf bin
