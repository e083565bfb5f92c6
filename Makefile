# Two commands set everything up on a fresh Debian machine with the Swift toolchain:
#   make run    build iprotod (release) and start it on its defaults (ARGS="--listen 0.0.0.0:3301 ..." to change)
#   make test   unit, end-to-end, netcat fixture, restart, crash and deploy tests
#   make bench  iprotod against a bare epoll responder and Redis; writes docs/benchmarks.md
SHELL := /bin/bash
SWIFT ?= swift
ARGS ?=

.PHONY: all build-deps test-deps bench-deps build run test unit-test fixture-test restart-test crash-test deploy-check bench clean

all: build

# scripts/install-deps.sh lists the Debian packages (and pinned versions) in one place;
# it installs what is missing when run as root, and otherwise prints the apt-get line.
build-deps:
	@command -v $(SWIFT) >/dev/null || { echo "swift not found: install the Swift 6 toolchain (see README)"; exit 1; }
	@scripts/install-deps.sh build

test-deps: build-deps
	@scripts/install-deps.sh test

bench-deps: build-deps
	@scripts/install-deps.sh bench

build: build-deps
	$(SWIFT) build -c release --product iprotod

run: build
	"$$($(SWIFT) build -c release --show-bin-path)/iprotod" $(ARGS)

test: unit-test fixture-test restart-test crash-test deploy-check

unit-test: test-deps
	$(SWIFT) build --build-tests
	IPROTOD_BIN="$$($(SWIFT) build --show-bin-path)/iprotod" $(SWIFT) test --skip-build

fixture-test: test-deps
	$(SWIFT) build --product iprotod
	Tests/Fixtures/run.sh "$$($(SWIFT) build --show-bin-path)/iprotod"

restart-test: test-deps
	$(SWIFT) build --product iprotod
	python3 Tests/Restart/restart_test.py "$$($(SWIFT) build --show-bin-path)/iprotod"

# kill -9 under write load, 10 times; CRASH_KILLS=200 for a long run.
crash-test: test-deps
	$(SWIFT) build --product iprotod
	python3 Tests/Crash/crash_test.py "$$($(SWIFT) build --show-bin-path)/iprotod" --kills $${CRASH_KILLS:-10}

deploy-check: test-deps
	$(SWIFT) build --product iprotod
	deploy/check.sh "$$($(SWIFT) build --show-bin-path)/iprotod"

# Not part of make test: minutes of load on every core.
bench: bench-deps
	bench/run.sh

clean:
	rm -rf .build
