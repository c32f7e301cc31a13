# Set-up and checks. `make demo` and `make test` install everything they need themselves.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests and the demo need (the xmlsec1 command line is the independent signer;
# pango for WeasyPrint's PDF of an application, poppler-utils for the tests that look at its pages).
APT_PACKAGES := xmlsec1 openssl postgresql clamav-daemon docker-compose docker.io mmdebstrap chromium fonts-noto-cjk nftables iproute2 systemd poppler-utils libpango-1.0-0 libpangoft2-1.0-0
# uv installs exactly uv.lock (every package pinned, every file hashed); uv itself comes from
# tools/uv-requirements.txt, pinned with hashes too. docs/decisions.md: "Locked dependencies".
UV_DIR := .uv
UV := $(UV_DIR)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(PYTHON)
# No uv-managed Python downloads: the venv is made from the machine's interpreter.
export UV_PYTHON_DOWNLOADS := never
# The install stamp follows the lock (and uv's own pin), not pyproject.toml alone.
STAMP := $(VENV)/.installed-$(shell cat uv.lock tools/uv-requirements.txt | sha256sum | cut -c1-12)
SHINSEI_VAR_DIR ?= ./var

.PHONY: help install apt lockcheck lock upgrade audit lint test demo smoke bench bench-quick clean wheelhouse deploy-check

help:
	@echo "make demo   - install, then run portal_sim -> relay -> intake on this machine and show the outcome"
	@echo "make smoke  - the same flow headless: check the outcome, exit 0/1"
	@echo "make test   - install, then ruff, mypy, import contracts and the whole pytest suite"
	@echo "make bench  - every benchmark (minutes; idle machine): one table beside the aims, bench/results-<time>-<commit>.json"
	@echo "make bench-quick - the same with small counts: checks the harness only (BENCH_ARGS='--only intake,relay' for a subset)"
	@echo "              compare two runs: .venv/bin/python bench/compare.py A.json B.json"
	@echo "make lock   - re-resolve uv.lock after a deliberate change of pyproject.toml (then make test)"
	@echo "make upgrade - move every dependency (and uv) to the newest allowed release, then run the suite"
	@echo "make audit  - known vulnerabilities of the locked set (needs the vulnerability service; not in make test)"

install: apt $(STAMP)

$(UV): tools/uv-requirements.txt
	@rm -rf $(UV_DIR)
	@# pip warns about configured local index folders that do not exist on every machine: keep it quiet.
	@$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --require-hashes --no-deps --only-binary :all: \
	  --target $(UV_DIR) -r tools/uv-requirements.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
	@test -x $(UV)

# --locked: install exactly uv.lock, and stop if pyproject.toml no longer agrees with it.
$(STAMP): uv.lock pyproject.toml $(UV)
	@echo "installing the locked dependencies (uv.lock) into $(VENV)"
	@$(UV) sync --locked --extra dev --quiet
	@rm -f $(VENV)/.installed-* && touch $@

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages: $$missing (run as root or install them)"; exit 1; fi; \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The lock must describe pyproject.toml exactly (tests/test_lock.py shows this check failing).
lockcheck: $(UV)
	@$(UV) lock --check --quiet || { echo "uv.lock does not match pyproject.toml: run 'make lock', then 'make test', and commit both" >&2; exit 1; }

lock: $(UV)
	$(UV) lock

# Newest allowed releases of everything, uv included, with the whole suite as the gate.
upgrade: $(UV)
	$(UV) pip compile tools/uv.in --generate-hashes --universal --python-version 3.11 --upgrade --quiet -o tools/uv-requirements.txt
	$(UV) lock --upgrade
	$(MAKE) test
	@echo "upgrade passed the suite: review 'git diff uv.lock tools/uv-requirements.txt' and commit it"

audit: install
	$(PY) tools/audit.py $(AUDIT_ARGS)

lint: install lockcheck
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Both cores: two pytest workers; each test file runs whole on one, the machine-wide ones together (tests/support/parallel.py).
# PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= 2
test: lint wheelhouse
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile

# The locked runtime wheels (and uv), hashes checked, for offline image builds (docker/python-service.Dockerfile).
wheelhouse: install
	@mkdir -p wheelhouse
	@$(UV) export --frozen --no-emit-project --format requirements-txt -o wheelhouse/requirements.txt --quiet
	@$(PY) -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps --only-binary :all: \
	  -d wheelhouse -r wheelhouse/requirements.txt -r tools/uv-requirements.txt 2>&1 | { grep -v '^WARNING: Location' || true; }

# The container deployment, built and run for real (tests/deploy/): starts its own dockerd, leaves nothing behind.
deploy-check: install wheelhouse
	SHINSEI_SCREENSHOT_DIR=docs/screenshots $(VENV)/bin/pytest tests/deploy

demo: install
	SHINSEI_VAR_DIR=$(SHINSEI_VAR_DIR) $(PY) -m demo

smoke: install
	SHINSEI_VAR_DIR=$(SHINSEI_VAR_DIR) $(PY) -m demo --headless

# Every benchmark in turn (bench/run.py), then one table beside the aims and one results file,
# bench/results-<UTC time>-<commit>.json; `bench/compare.py A B` sets two runs side by side.
bench: install
	$(PY) bench/run.py $(BENCH_ARGS)

# The same with small counts (a few minutes): checks the harness, says nothing about speed.
bench-quick: install
	$(PY) bench/run.py --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(UV_DIR) .mypy_cache .pytest_cache .ruff_cache $(SHINSEI_VAR_DIR) .bench-cache bench/out
