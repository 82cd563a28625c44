# Amphora: build, test and demo entry points.
# `make test` installs everything the suite needs on a fresh Debian 12 host
# (as root) and runs every tier; nothing that needs root is skipped.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps

APT_PACKAGES := haproxy keepalived iproute2 socat openssl nftables procps curl python3-venv wrk postgresql \
	nghttp2-client
# image builder (elements, image-create.sh, boot test)
APT_PACKAGES += sudo debootstrap qemu-system-x86 qemu-utils shellcheck kpartx fdisk gdisk \
	dosfstools e2fsprogs squashfs-tools rsync git genisoimage file util-linux

.PHONY: test test-unit test-integration test-image lint deps apt venv demo bench clean \
	.venv-dib .venv-glance .venv-octavia .venv-keystone .venv-osc

# Every tier, the default image's build and qemu boot included (docs/image.md); the
# newer-HAProxy image variants (a build each) run in test-image only.
test: deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/pytest -m "not image_variant" tests

# The unit tier runs the real haproxy/openssl/shellcheck (apt) and dib-lint (.venv-dib).
test-unit: apt venv .venv-dib
	$(BIN)/pytest tests/unit

test-integration: deps
	$(BIN)/pytest -m "not image_variant" tests/integration tests/e2e

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo

deps: apt venv .venv-dib .venv-glance .venv-octavia .venv-keystone .venv-osc

# The image tests alone: the default build + qemu boot (about 4 minutes here; `make test`
# runs it too), the capability check per release, and the trixie and --haproxy-source
# variants (a build and a boot each; the source build compiles HAProxy).
test-image: deps
	$(BIN)/pytest -m image tests/integration/image

# diskimage-builder in its own virtualenv (its pins are not ours).
.venv-dib: $(STAMPS)/venv-dib
$(STAMPS)/venv-dib:
	@mkdir -p $(STAMPS)
	test -x .venv-dib/bin/python || $(PYTHON) -m venv .venv-dib
	.venv-dib/bin/pip install -q --upgrade pip
	.venv-dib/bin/pip install -q 'diskimage-builder>=3.40'
	@touch $@

# A real Glance for the image tests (run under gunicorn by tests/integration/glance_fixture.py).
.venv-glance: $(STAMPS)/venv-glance
$(STAMPS)/venv-glance:
	@mkdir -p $(STAMPS)
	test -x .venv-glance/bin/python || $(PYTHON) -m venv .venv-glance
	.venv-glance/bin/pip install -q --upgrade pip
	.venv-glance/bin/pip install -q 'glance==33.0.0' 'gunicorn>=22'
	@touch $@

# A real Keystone for the API's keystone auth test (tests/integration/api/keystone_fixture.py).
.venv-keystone: $(STAMPS)/venv-keystone
$(STAMPS)/venv-keystone:
	@mkdir -p $(STAMPS)
	test -x .venv-keystone/bin/python || $(PYTHON) -m venv .venv-keystone
	.venv-keystone/bin/pip install -q --upgrade pip
	.venv-keystone/bin/pip install -q 'keystone==30.0.0'
	@touch $@

# The `openstack loadbalancer` command line the API tests drive.
.venv-osc: $(STAMPS)/venv-osc
$(STAMPS)/venv-osc:
	@mkdir -p $(STAMPS)
	test -x .venv-osc/bin/python || $(PYTHON) -m venv .venv-osc
	.venv-osc/bin/pip install -q --upgrade pip
	.venv-osc/bin/pip install -q 'python-openstackclient>=7' 'python-octaviaclient>=3.8'
	@touch $@

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
	$(BIN)/pip install -q -e '.[test,image,keystone]'
	@touch $@

demo: apt venv
	$(BIN)/python -m controller_stub.demo

# OpenStack Octavia's own code, a compatibility oracle and baseline: its amphora agent
# (bench/agent_api.py), its controller driver (tests/integration/keepalived/test_ka_octavia.py)
# and its heartbeat code (bench/heartbeat.py, tests/integration/health/test_octavia_compat.py).
.venv-octavia: $(STAMPS)/venv-octavia
$(STAMPS)/venv-octavia:
	@mkdir -p $(STAMPS)
	test -x .venv-octavia/bin/python || $(PYTHON) -m venv .venv-octavia
	.venv-octavia/bin/pip install -q octavia pyroute2 'gunicorn<23' flask distro webob psutil
	@touch $@

BENCHES := agent_api plug reload dataplane render image controller heartbeat failover
bench: deps .venv-octavia
	for b in $(BENCHES); do $(BIN)/python bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .venv-dib .venv-glance .venv-octavia $(STAMPS) build *.egg-info
