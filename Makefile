# routeplane: the only entry point. `make demo` and `make test` install what a fresh
# Debian machine lacks (as root), then run; both are idempotent.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the project runs: etcd for the multi-host store and its tests; the
# host dataplane and its namespace lab: ip (iproute2), nft, conntrack, ping, sysctl
# (procps) and nsenter (util-linux); BIRD 2 for BGP on the hosts and the lab's access node;
# keepalived for the failover benchmark's VRRP comparison; the DHCP clients the DHCP tests
# run in VM namespaces (busybox's udhcpc, ISC dhclient, dhcpcd); QEMU guests (issue #15): QEMU,
# busybox-static (also the namespace VMs' udhcpc: it replaces Debian's busybox, so only
# one of the two may be listed) and dropbear-bin copied into the guest image, cpio to pack it, the ssh
# client their test logs in with (the guest kernel is fetched by `apt-get download`); systemd
# for systemd-analyze, which checks the service units in deploy/systemd/; prometheus, which
# the metrics tests start.
DEB_PACKAGES := etcd-server python3-venv iproute2 nftables conntrack iputils-ping procps util-linux \
	bird2 keepalived isc-dhcp-client dhcpcd-base cloud-init qemu-system-x86 busybox-static \
	dropbear-bin cpio openssh-client curl systemd prometheus \
	mmdebstrap e2fsprogs rabbitmq-server erlang-base
PYTEST_ARGS ?=

.PHONY: demo test check lint fmt typecheck imports unit contract kernel bench system-deps venv clean

demo: system-deps venv
	$(BIN)/routeplane demo

# every tier, with a coverage report of src/routeplane; below the floor in pyproject.toml
# ([tool.coverage.report] fail_under) the target fails
test: system-deps venv check
	$(BIN)/pytest --cov --cov-report=term --durations=25 $(PYTEST_ARGS)

# --- installation -------------------------------------------------------------------
system-deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "run as root to install: $$missing" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check pip==26.3
	$(BIN)/python -m pip install -q --disable-pip-version-check --group dev -e .
	touch $@

# --- checks -------------------------------------------------------------------------
check: lint typecheck imports

lint: venv
	$(BIN)/ruff check --output-format concise src tests bench
	$(BIN)/ruff format --check src tests bench

fmt: venv
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

typecheck: venv
	$(BIN)/mypy

imports: venv
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

contract: system-deps venv
	$(BIN)/pytest -m contract $(PYTEST_ARGS)

# real network namespaces (rp-…); the Linux cases skip unless run as root
kernel: system-deps venv
	$(BIN)/pytest -m kernel $(PYTEST_ARGS)

bench: system-deps venv
	$(BIN)/python bench/store.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/agent.py --plot bench/out
	$(BIN)/python bench/scale.py --quick --plot bench/out
	$(BIN)/python bench/dataplane.py
	$(BIN)/python bench/convergence.py --plot bench/out
	$(BIN)/python bench/convergence.py --qemu --plot bench/out
	$(BIN)/python bench/failover.py --plot bench/out
	$(BIN)/python bench/dhcp.py
	$(BIN)/python bench/nova_boot.py --plot bench/out

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage .coverage.*
