# clickfleet — the two commands that matter:
#   make demo   start the local stack, create the resources, generate clicks and read them back
#   make test   start a separate test stack, run every test against it, stop it
SHELL := /bin/bash
GO ?= go
STACK := deploy/local/stack

# The test stacks have their own directories and ports, so they never meet the demo stack. The packages
# whose tests run fleets of worker processes (FLEET_PKGS) load the emulators heavily: they get a stack of
# their own and run one package at a time, before the others, so that no timing-sensitive test shares an
# emulator (or the CPU) with a fleet's load. The fleet stack serves Kinesis within AWS's limits (the
# stack's --aws-limits layer, on port 14581): the fleets and the benchmarks' tests must read and write as
# they could on AWS. The other stack runs without it.
TEST_STACK := CLICKFLEET_STACK_DIR=$(CURDIR)/.stack-test CLICKFLEET_KINESIS_PORT=14568 \
	CLICKFLEET_DYNAMODB_PORT=14569 CLICKFLEET_REDIS_PORT=16390 CLICKFLEET_PG_PORT=15439 \
	CLICKFLEET_S3_PORT=14570 CLICKFLEET_KINESIS_TLS_PORT=14567 CLICKFLEET_KINESIS_EFO_PORT=14573 CLICKFLEET_AWS_LIMITS=0
FLEET_STACK := CLICKFLEET_STACK_DIR=$(CURDIR)/.stack-test-fleet CLICKFLEET_KINESIS_PORT=14578 \
	CLICKFLEET_DYNAMODB_PORT=14579 CLICKFLEET_REDIS_PORT=16391 CLICKFLEET_PG_PORT=15440 \
	CLICKFLEET_S3_PORT=14580 CLICKFLEET_KINESIS_TLS_PORT=14577 CLICKFLEET_KINESIS_EFO_PORT=14583 \
	CLICKFLEET_AWS_LIMITS=1 CLICKFLEET_KINESIS_LIMITS_PORT=14581
FLEET_PKGS := consumer|actors|bench|archive|dashboard|scale
# Extra flags for go test, e.g. make test TESTFLAGS='-run Lease -v'.
TESTFLAGS ?=
# The clickfleet binary the process tests run (internal/testenv.Binary: race detector, crash points), built
# once for the whole run instead of linked again by every test that starts workers.
TEST_BIN := $(CURDIR)/bin/clickfleet-test
GOTEST := CLICKFLEET_REQUIRE_STACK=1 CLICKFLEET_TEST_BINARY=$(TEST_BIN) $(GO) test -race -count=1 -timeout 15m $(TESTFLAGS)

.PHONY: all build test demo demo-down stack-up stack-down stack-status vet assets

all: build

build:
	$(GO) build -o bin/clickfleet ./cmd/clickfleet

vet:
	$(GO) vet ./...

test:
	@$(GO) build -race -tags clickfleet_crashpoints -o $(TEST_BIN) ./cmd/clickfleet
	@$(FLEET_STACK) $(STACK) up
	@$(TEST_STACK) $(STACK) up
	@set -o pipefail; rc=0; \
	fleet=$$($(GO) list ./... | grep -E '/($(FLEET_PKGS))$$'); \
	rest=$$($(GO) list ./... | grep -vE '/($(FLEET_PKGS))$$'); \
	(eval "$$($(FLEET_STACK) $(STACK) env)"; $(GOTEST) -p 1 $$fleet) || rc=$$?; \
	(eval "$$($(TEST_STACK) $(STACK) env)"; $(GOTEST) $$rest) || rc=$$?; \
	if [ -z "$$KEEP_STACK" ]; then \
		purge=; [ $$rc = 0 ] && purge=--purge; \
		$(FLEET_STACK) $(STACK) down $$purge; $(TEST_STACK) $(STACK) down $$purge; \
	fi; \
	exit $$rc

demo: build
	@deploy/local/demo
# Stops what make demo left serving (the dashboard, the workers, the generator), then the stack.
demo-down:
	@deploy/local/demo-down

# The dashboard's embedded chart library and maps (lake/dashboard/static/vendor/, checked in) from the npm packages
# pinned in deploy/local/package.json; only needed after changing those pins.
assets:
	cd deploy/local && npm ci --no-audit --no-fund --loglevel=error
	$(GO) generate ./dashboard

stack-up:
	@$(STACK) up
stack-down:
	@$(STACK) down
stack-status:
	@$(STACK) status
