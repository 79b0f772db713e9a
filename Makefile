SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

GO ?= go
# fluxo is pure Go: every build and test runs without cgo, except the race
# detector, which needs it.
export CGO_ENABLED := 0

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

CHAOS_KILLS ?= 10
# End-to-end tests mostly wait on processes and timers: run this many at once.
E2E_PARALLEL ?= 4
RACE_PKGS  ?= ./core/... ./bridge/... ./edge/... ./devices/...
FUZZ_PKGS  ?= ./...
FUZZTIME   ?= 30s
BENCH_PKGS ?= ./...
BENCH      ?= .
DEMO_ARGS  ?=
LINK_ARGS  ?=
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
SOAK_DURATION ?= 30m
# Every Go module in the tree: the root, deploy/, benchmarks/peers/ and
# third_party/mochi-mqtt-server/ (each its own module).
MODULES    := . deploy benchmarks/peers third_party/mochi-mqtt-server

.PHONY: help build demo test e2e chaos nemesis fuzz bench bench-link lint pi tidy-check clean console-screenshots soak soak-check bench-peers peers-test

help: ## show this help
	@echo "Usage: make TARGET [VAR=value ...]"
	@echo
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-11s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: RACE_PKGS=$(RACE_PKGS) FUZZTIME=$(FUZZTIME) FUZZ_PKGS=$(FUZZ_PKGS)"
	@echo "           BENCH_PKGS=$(BENCH_PKGS) BENCH=$(BENCH) DEMO_ARGS=$(DEMO_ARGS) SOAK_DURATION=$(SOAK_DURATION)"

build: ## build bin/fluxo for this machine, stamped with version, commit and date
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/fluxo ./cmd/fluxo

demo: ## run the demo: simulated devices → edge → core → consumer, live view (DEMO_ARGS=--duration 0 runs until Ctrl-C)
	$(GO) run ./cmd/fluxo demo $(DEMO_ARGS)

test: ## go vet, then every package's tests once: RACE_PKGS and the vendored mochi under the race detector (when a C compiler is present), the rest without
	$(GO) vet ./...
	@race_pkgs=$$($(GO) list $(RACE_PKGS)); \
	if command -v "$$(CGO_ENABLED=1 $(GO) env CC)" >/dev/null; then \
		other_pkgs=$$($(GO) list ./... | grep -vxF -f <(echo "$$race_pkgs") || true); \
		echo "$(GO) test -count=1 (every package outside RACE_PKGS)"; \
		$(GO) test -count=1 $$other_pkgs; \
		echo "CGO_ENABLED=1 $(GO) test -race -count=1 $(RACE_PKGS)"; \
		CGO_ENABLED=1 $(GO) test -race -count=1 $$race_pkgs; \
		echo "CGO_ENABLED=1 $(GO) test -race -count=1 ./... (in third_party/mochi-mqtt-server, its own module)"; \
		cd third_party/mochi-mqtt-server && CGO_ENABLED=1 $(GO) test -race -count=1 ./...; \
	else \
		echo "make test: no C compiler (apt-get install gcc): RACE_PKGS run without the race detector"; \
		$(GO) test -count=1 ./...; \
		cd third_party/mochi-mqtt-server && $(GO) test -count=1 ./...; \
	fi

e2e: ## end-to-end tests (build tag e2e); need the Debian packages .ci/run installs
	$(GO) vet -tags e2e ./e2e/...
	$(GO) test -count=1 -tags e2e -parallel $(E2E_PARALLEL) -timeout 30m ./e2e/...

console-screenshots: ## run the console's browser tests (needs chromium) and copy their screenshots to docs/console-*.png
	mkdir -p docs
	FLUXO_CONSOLE_SCREENSHOTS=$(CURDIR)/docs $(GO) test -count=1 -tags e2e -run 'TestConsole' -v ./e2e/

chaos: ## kill cluster leaders with SIGKILL under acks=all load, CHAOS_KILLS times (default 10), and count loss
	FLUXO_CHAOS_KILLS=$(CHAOS_KILLS) $(GO) test -count=1 -tags e2e -run 'TestChaos' -v ./e2e/

nemesis: ## as root: every network partition scenario (namespaces, iptables) under acks=all load; prints the results table
	FLUXO_NEMESIS=full FLUXO_NEMESIS_REPORT=$(CURDIR)/nemesis-results.md $(GO) test -count=1 -timeout 60m -tags e2e -run 'TestNemesis' -v ./e2e/
	@echo; echo "Network partitions (also in nemesis-results.md):"; cat nemesis-results.md

fuzz: ## run every fuzz target in FUZZ_PKGS for FUZZTIME each
	@pkgs=$$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' $(FUZZ_PKGS)); \
	found=0; \
	for pkg in $$pkgs; do \
		list=$$($(GO) test -list '^Fuzz' "$$pkg"); \
		for target in $$(grep '^Fuzz' <<<"$$list" || true); do \
			found=1; \
			echo "==> $$pkg $$target ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
		done; \
	done; \
	if [[ $$found == 0 ]]; then echo "make fuzz: no fuzz targets in $(FUZZ_PKGS)"; fi

bench: ## run the benchmarks in BENCH_PKGS matching BENCH
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCH_PKGS)

bench-link: ## the edge's uplink over a bad link (300 ms, 256 kbit/s, a 10-minute cut): goodput, alarm delay, loss (LINK_ARGS=-phases goodput)
	$(GO) run ./benchmarks/link $(LINK_ARGS)

lint: ## gofmt, go vet (with and without -tags e2e) and staticcheck
	@unformatted=$$(gofmt -l .); \
	if [[ -n $$unformatted ]]; then echo "gofmt: these files need formatting:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...
	$(STATICCHECK) ./...
	cd benchmarks/peers && $(GO) vet ./... && $(GO) vet -tags soak ./... && $(STATICCHECK) ./...

peers-test: ## the unit tests of benchmarks/peers (its own module: go test ./... at the root does not enter it)
	cd benchmarks/peers && $(GO) vet ./... && $(GO) test -count=1 ./...

soak: build ## SOAK_DURATION (30m) of the demo fleet at 1,000 msg/s against an edge and three cores, one restart of each kind; fails on a leak, a loss or a duplicate; files in benchmarks/peers/results/soak
	cd benchmarks/peers && $(GO) run ./soak -duration $(SOAK_DURATION) -fluxo $(CURDIR)/bin/fluxo -out results/soak

soak-check: build ## the soak for two minutes, as a Go test (build tag soak; not part of test or e2e)
	cd benchmarks/peers && FLUXO_BIN=$(CURDIR)/bin/fluxo $(GO) test -count=1 -tags soak -run 'TestSoakCheck' -timeout 15m -v ./soak/

bench-peers: build ## fluxo against bare mochi, Mosquitto, NATS (MQTT + JetStream) and kfake: JSON and PNG plots in benchmarks/peers/results
	cd benchmarks/peers && $(GO) run . -fluxo $(CURDIR)/bin/fluxo -out results

# Release builds: static (no cgo), stripped, stamped like bin/fluxo.
DIST_BUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)'
DIST_BINS  := fluxo-linux-arm64 fluxo-linux-armv7 fluxo-linux-amd64

pi: ## cross-build static binaries for Raspberry Pi: dist/fluxo-linux-arm64, dist/fluxo-linux-armv7
	@rm -f dist/SHA256SUMS # no longer true once a binary is rebuilt; make dist writes it again
	GOOS=linux GOARCH=arm64 $(DIST_BUILD) -o dist/fluxo-linux-arm64 ./cmd/fluxo
	GOOS=linux GOARCH=arm GOARM=7 $(DIST_BUILD) -o dist/fluxo-linux-armv7 ./cmd/fluxo

.PHONY: dist deploy-test
dist: pi ## pi, plus dist/fluxo-linux-amd64 and dist/SHA256SUMS (check with: cd dist && sha256sum -c SHA256SUMS)
	GOOS=linux GOARCH=amd64 $(DIST_BUILD) -o dist/fluxo-linux-amd64 ./cmd/fluxo
	cd dist && sha256sum $(DIST_BINS) > SHA256SUMS
	@cat dist/SHA256SUMS

deploy-test: pi ## test deploy/ (its own module): Pi binaries, units, manifests, dashboards and alerts against real processes
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 ./...

tidy-check: ## fail if go mod tidy would change go.mod or go.sum of any module (the root, deploy/, benchmarks/peers/, third_party/mochi-mqtt-server/); files are left untouched
	@status=0; \
	for dir in $(MODULES); do \
		if ! (cd "$$dir" && $(GO) mod tidy -diff); then \
			echo "tidy-check: $$dir/go.mod or go.sum is not tidy; run 'cd $$dir && go mod tidy' and commit the result"; status=1; \
		fi; \
	done; \
	exit $$status

clean: ## remove bin/ and dist/
	rm -rf bin dist
