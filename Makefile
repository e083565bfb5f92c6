# Two commands set everything up on a fresh Debian machine with the Swift toolchain:
#   make run    build iprotod (release) and start it on its defaults (ARGS="--listen 0.0.0.0:3301 ..." to change)
#   make test   unit, end-to-end and netcat fixture tests
SHELL := /bin/bash
SWIFT ?= swift
ARGS ?=

# Debian packages the build and the tests need (libev and msgpuck headers and libraries; nc for fixtures).
DEBIAN_PACKAGES := libev-dev libmsgpuck-dev netcat-openbsd xxd

.PHONY: all deps build run test unit-test fixture-test clean

all: build

# Installs missing packages when run as root; otherwise prints the exact command and stops.
deps:
	@command -v $(SWIFT) >/dev/null || { echo "swift not found: install the Swift 6 toolchain (see README)"; exit 1; }
	@missing=""; \
	for package in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

build: deps
	$(SWIFT) build -c release --product iprotod

run: build
	"$$($(SWIFT) build -c release --show-bin-path)/iprotod" $(ARGS)

test: unit-test fixture-test

unit-test: deps
	$(SWIFT) build --build-tests
	IPROTOD_BIN="$$($(SWIFT) build --show-bin-path)/iprotod" $(SWIFT) test --skip-build

fixture-test: deps
	$(SWIFT) build --product iprotod
	Tests/Fixtures/run.sh "$$($(SWIFT) build --show-bin-path)/iprotod"

clean:
	rm -rf .build
