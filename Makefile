# Amphora: build, test and demo entry points.
# `make test` installs everything the suite needs on a fresh Debian 12 host
# (as root) and runs every tier; nothing that needs root is skipped.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps

APT_PACKAGES := haproxy keepalived iproute2 socat openssl nftables procps curl

.PHONY: test test-unit test-integration lint deps apt venv demo bench clean

test: deps
	$(BIN)/ruff check .
	$(BIN)/pytest tests

test-unit: venv
	$(BIN)/pytest tests/unit

test-integration: deps
	$(BIN)/pytest tests/integration tests/e2e

lint: venv
	$(BIN)/ruff check .

deps: apt venv

apt: $(STAMPS)/apt
$(STAMPS)/apt: Makefile
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

venv: $(STAMPS)/venv
$(STAMPS)/venv: setup.cfg pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,image]'
	@touch $@

demo: deps
	$(BIN)/python -m controller_stub.demo

bench: deps
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(STAMPS) build *.egg-info
