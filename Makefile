# clickfleet — the two commands that matter:
#   make demo   start the local stack, create the resources, generate clicks and read them back
#   make test   start a separate test stack, run every test against it, stop it
SHELL := /bin/bash
GO ?= go
STACK := deploy/local/stack

# The test stack has its own directory and ports, so it never meets the demo stack.
TEST_STACK := CLICKFLEET_STACK_DIR=$(CURDIR)/.stack-test CLICKFLEET_KINESIS_PORT=14568 \
	CLICKFLEET_DYNAMODB_PORT=14569 CLICKFLEET_REDIS_PORT=16390 CLICKFLEET_PG_PORT=15439 \
	CLICKFLEET_S3_PORT=14570
# Extra flags for go test, e.g. make test TESTFLAGS='-run Lease -v'.
TESTFLAGS ?=

.PHONY: all build test demo stack-up stack-down stack-status vet

all: build

build:
	$(GO) build -o bin/clickfleet ./cmd/clickfleet

vet:
	$(GO) vet ./...

test:
	@$(TEST_STACK) $(STACK) up
	@set -o pipefail; rc=0; \
	eval "$$($(TEST_STACK) $(STACK) env)"; \
	CLICKFLEET_REQUIRE_STACK=1 $(GO) test -race -count=1 -timeout 15m $(TESTFLAGS) ./... || rc=$$?; \
	if [ -z "$$KEEP_STACK" ]; then $(TEST_STACK) $(STACK) down; fi; \
	exit $$rc

demo: build
	@deploy/local/demo

stack-up:
	@$(STACK) up
stack-down:
	@$(STACK) down
stack-status:
	@$(STACK) status
