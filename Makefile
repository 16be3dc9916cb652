# olric-raft — build, run, test.
#
#   make run    start a single-node dev cluster in the foreground
#   make test   the full test suite with the race detector
#
# Everything else: build, lint, bench, stress, fuzz, docs, clean, ui-deps.

GO          ?= go
BIN         := bin/olric-raft
PKGS        := ./...
# How many times make stress repeats the replication/failover tests.
STRESS_REPLICATION ?= 3
STATICCHECK_VERSION := v0.8.2
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
FUZZTIME    ?= 10s

.PHONY: all build run test race lint bench bench-compare bench-cluster stress fuzz clean tools jepsen jepsen-ci jepsen-test ui-deps docs soak test-olric-client

all: build

build:
	$(GO) build -o $(BIN) ./cmd/olric-raft

# A single-node cluster in a temporary data dir (removed on exit), HTTP API
# on 127.0.0.1:3380. Try: bin/olric-raft routing
run: build
	$(BIN) server --dev

# Every package, race detector on. Long suites have their own targets: the
# Jepsen harness's tests (five processes in network namespaces, root only)
# run in `make jepsen-test`, which CI runs too.
test:
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list $(PKGS) | grep -v /integration/jepsen)

race: test

# Olric's official Go client (github.com/olric-data/olric v0.6.1) against
# real olric-raft processes: a module of its own (integration/olricclient,
# so the main module does not depend on Olric); go fetches its modules
# through the module proxy on first use. The test builds cmd/olric-raft
# itself (go build from the repository root).
test-olric-client:
	cd integration/olricclient && $(GO) test -race -count=1 -timeout 10m ./...

# The soak test at length: 3 members over HTTP with more clients than
# their connection limits admit (integration/soak; make test runs it for
# 10s). Prints ops/s, answers by status, peak heap and RSS.
SOAK_DURATION ?= 3m
soak:
	OLRIC_RAFT_SOAK_DURATION=$(SOAK_DURATION) $(GO) test -count=1 -timeout 30m -v -run TestSoak ./integration/soak/ 2>&1 | grep -v 'testcluster.go'

# Regenerate docs/configuration.md from the server's flags and the config
# structs (a test in make test fails while it is out of date).
docs:
	$(GO) test ./cmd/olric-raft/internal/cli -run TestConfigurationReferenceIsCurrent -count=1 -rewrite-docs

$(STATICCHECK):
	GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

tools: $(STATICCHECK)

lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

# Chromium, for the headless-browser test of the /ui/ page
# (integration/ui_test.go, which fails instead of skipping under CI=true).
# Idempotent: installs only when no chromium is in PATH (Debian, root).
ui-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update && apt-get install -y chromium; \
	else echo "chromium: $$(command -v chromium)"; fi

# Go benchmarks: placement, RPC, the FSM, cluster convergence and routing
# propagation. Numbers in the README come from these commands.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./metadata ./fsm ./transport
	$(GO) test -run '^$$' -bench 'Engine(Get|Put)' -benchmem ./dataplane
	$(GO) test -run '^$$' -bench EngineMemory1M -benchtime 1x ./dataplane
	$(GO) test -run '^$$' -bench MemberRSS1M -benchtime 1x ./embedded
	$(GO) test -run '^$$' -bench FiveMembersConverge -benchtime 10x ./integration
	$(GO) test -run '^$$' -bench RoutingProposalApplied -benchtime 500x ./integration

# redis-server vs olric-raft over RESP with redis-benchmark, same flags,
# servers on CPU 0 and the client on CPU 1 (scripts/bench-compare.sh; N=
# requests per run, default 200000). Installs redis-server if missing.
bench-compare:
	N=$(N) scripts/bench-compare.sh

# Three members (replicas=2) and redis-benchmark against one of them, all
# on this machine (scripts/bench-cluster.sh; N, P, RUNS).
bench-cluster:
	scripts/bench-cluster.sh

# The seed's scenario, repeated: five members started concurrently converge
# on one identical, balanced routing version, race detector on.
stress:
	$(GO) test -race -count=20 -run 'TestFiveMembersStartedConcurrentlyConverge' ./integration
	$(GO) test -race -count=$(STRESS_REPLICATION) -run 'TestReplication|TestDataPlaneWritesSurviveJoinAndLeave|TestPausedPrimary' ./integration
	$(GO) test -race -count=20 -run 'Concurren|Subscribe|WaitApplied' ./fsm

# Every Fuzz target for FUZZTIME each: a duration (10s) or a count (10000x, as CI does).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Jepsen-style partition tests (integration/jepsen, root only): five real
# members in network namespaces, a nemesis, concurrent clients, checked
# histories; a run folder per pass under JEPSEN_OUT. Exit 1 on any anomaly.
#   make jepsen JEPSEN_ARGS='--time-limit 60s --nemesis partition-halves --workload register --seed 7'
# or the variables JEPSEN_TIME_LIMIT, JEPSEN_NEMESIS, JEPSEN_WORKLOAD, JEPSEN_SEED.
JEPSEN_TIME_LIMIT ?= 60s
JEPSEN_NEMESIS    ?= partition-halves
JEPSEN_WORKLOAD   ?= register
JEPSEN_SEED       ?= 0
JEPSEN_OUT        ?= /tmp/olric-raft-jepsen
JEPSEN_ARGS       ?=
jepsen:
	$(GO) build -o bin/jepsen ./integration/jepsen/cmd/jepsen
	bin/jepsen --time-limit $(JEPSEN_TIME_LIMIT) --nemesis $(JEPSEN_NEMESIS) --workload $(JEPSEN_WORKLOAD) --seed $(JEPSEN_SEED) --out $(JEPSEN_OUT) $(JEPSEN_ARGS)

# A bounded pass for CI: every nemesis once (those bin/jepsen --list-nemeses
# prints) with every workload (about 12 minutes on 2 cores); see
# scripts/jepsen-ci.sh.
jepsen-ci:
	scripts/jepsen-ci.sh

# The harness's own tests: its checkers catch a deliberately broken cluster
# (--unsafe-test-fault ack-before-replication) and pass a correct one.
jepsen-test:
	$(GO) test -count=1 -v -timeout 15m ./integration/jepsen

clean:
	rm -rf bin
