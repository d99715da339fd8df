# reautod developer entry points. `make demo` and `make test` set everything up themselves on a
# fresh Debian/Ubuntu machine with Python >= 3.11 (as root they also install the apt packages).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
# Re-synced whenever the lock or the project metadata change; otherwise `make venv` is a no-op.
STAMP := $(VENV)/.reautod-synced
# Building the .deb (make deb) and testing it and the playbook in a Debian 12 chroot
# (tests/packaging, tests/ansible); pg_dump/pg_restore for backups.
PACKAGING_APT_PACKAGES := debhelper dpkg-dev lintian debootstrap python3.11-dev git \
	postgresql-client
# Build deps of systemd-python and llama-cpp-python, PortAudio for sounddevice, speech tools,
# headless Chromium for the browser call page's test (tests/conversation/test_without_twilio.py)
# (defined after PACKAGING_APT_PACKAGES: `:=` expands it here and now).
APT_PACKAGES := libsystemd-dev pkg-config gcc g++ cmake libportaudio2 espeak-ng sox chromium \
	$(PACKAGING_APT_PACKAGES)
# make deb VARIANT=cuda builds reautod-cuda (needs the CUDA toolkit's nvcc, not a GPU).
VARIANT ?= cpu
PYTEST_ARGS ?=
PYTEST_TIMEOUT ?= 300
PYTEST_WORKERS ?= 3

# Nothing may prompt: no tty in CI.
export CI ?= true
export DEBIAN_FRONTEND := noninteractive
export PIP_NO_INPUT := 1
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: help
help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

.PHONY: system-deps
system-deps: ## Install missing apt packages (as root; otherwise say what is missing)
	@command -v dpkg-query >/dev/null || { echo "system-deps: not Debian/Ubuntu, skipped"; exit 0; }
	missing=""
	for pkg in $(APT_PACKAGES); do
		status=$$(dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null || true)
		[ "$$status" = "install ok installed" ] || missing="$$missing $$pkg"
	done
	# uv is installed with pip; Debian ships python3 without it.
	command -v uv >/dev/null || $(PYTHON) -m pip --version >/dev/null 2>&1 \
		|| missing="$$missing python3-pip"
	# Test services: a reachable server or the binaries for a throwaway one (tests/fixtures).
	reachable() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$$1" 2>/dev/null; }
	if [ -z "$${REAUTOD_TEST_DATABASE_URL:-}" ] && ! reachable 5432 \
		&& ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
		missing="$$missing postgresql"
	fi
	if [ -z "$${REAUTOD_TEST_REDIS_URL:-}" ] && ! reachable 6379 && ! command -v redis-server >/dev/null; then
		missing="$$missing redis-server"
	fi
	if [ -z "$$missing" ]; then exit 0; fi
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "system-deps: installing$$missing"
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends $$missing
	else
		echo "system-deps: missing apt packages:$$missing (run as root or: sudo apt-get install$$missing)" >&2
	fi

.PHONY: venv
venv: $(STAMP) ## Create/refresh .venv from uv.lock (uv sync --frozen)

$(STAMP): pyproject.toml uv.lock
	$(MAKE) system-deps
	if ! command -v uv >/dev/null; then
		echo "venv: installing uv with pip --user"
		# Debian marks its Python externally managed (PEP 668); a --user uv does not touch it.
		PIP_BREAK_SYSTEM_PACKAGES=1 $(PYTHON) -m pip install --user --quiet uv
	fi
	if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
		echo "venv: $(PYTHON) is missing or older than 3.11; uv will provide a Python 3.11" >&2
		# llama-cpp-python builds from source: a portable build, not -march=native.
		CMAKE_ARGS="-DGGML_NATIVE=OFF" uv sync --frozen --no-progress --python 3.11
	else
		python=$$($(PYTHON) -c 'import sys; print(sys.executable)')
		# llama-cpp-python's portable CPU wheel, compiled once per machine into the cache the
		# .deb build (packaging/build-venv) takes it from: the test suite builds the .deb.
		wheel=$$(packaging/build-venv --variant cpu --wheel-only --python "$$python" | tail -n 1)
		uv sync --frozen --no-progress --python "$$python" --no-install-package llama-cpp-python
		uv pip install --no-deps --quiet --python $(VENV)/bin/python "$$wheel"
	fi
	touch $@

.PHONY: lint
lint: venv ## ruff check + mypy (config in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

.PHONY: test
test: venv lint ## Lint, then the whole test suite
	# Line coverage of reautod and tui, daemon subprocesses included ([tool.coverage] in
	# pyproject.toml); below 90 % the target fails. Three workers (PYTEST_WORKERS) on 2 cores:
	# with two, a fifth of the CPU sat idle while tests waited on real-time audio, daemons and
	# servers (23 min instead of 32 on the 2-core box). A module's tests stay in one worker
	# (loadscope), the longest modules first (tests/conftest.py, SLOW_MODULES_FIRST); the .deb
	# is built once per run (tests/packaging/fixtures.py).
	$(VENV)/bin/python -m pytest -q --timeout=$(PYTEST_TIMEOUT) --durations=15 \
		-n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder \
		--cov --cov-report=term $(PYTEST_ARGS)

.PHONY: deb
deb: ## Build the Debian package into build/deb/ (VARIANT=cpu or cuda)
	$(MAKE) system-deps
	packaging/build-deb --variant $(VARIANT)

.PHONY: demo
demo: venv ## Start the daemon on the embedded default, show status, stop it
	$(VENV)/bin/python -m reautod.demo

.PHONY: bench
bench: venv ## Run every benchmark in bench/ (prints percentiles and ratios)
	@shopt -s nullglob
	benches=(bench/*.py)
	if [ $${#benches[@]} -eq 0 ]; then echo "bench: no benchmarks in bench/"; exit 0; fi
	for bench in "$${benches[@]}"; do
		echo "== $$bench"
		$(VENV)/bin/python "$$bench"
	done

.PHONY: clean
clean: ## Remove caches (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: distclean
distclean: clean ## Remove caches and .venv
	rm -rf $(VENV)

.ONESHELL:
