# Set-up and checks. `make demo` and `make test` install everything they need themselves.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests and the demo need (the xmlsec1 command line is the independent signer).
APT_PACKAGES := xmlsec1 openssl postgresql clamav-daemon docker-compose chromium fonts-noto-cjk nftables iproute2
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
SHINSEI_VAR_DIR ?= ./var

.PHONY: help install apt lint test demo smoke bench clean

help:
	@echo "make demo   - install, then run portal_sim -> relay -> intake on this machine and show the outcome"
	@echo "make smoke  - the same flow headless: check the outcome, exit 0/1"
	@echo "make test   - install, then ruff, mypy, import contracts and the whole pytest suite"
	@echo "make bench  - verification and CRL benchmarks (writes bench/results.json)"

install: apt $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# pip warns about configured local index folders that do not exist on every machine: keep it quiet.
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	@rm -f $(VENV)/.installed-* && touch $@

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages: $$missing (run as root or install them)"; exit 1; fi; \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest

demo: install
	SHINSEI_VAR_DIR=$(SHINSEI_VAR_DIR) $(PY) -m demo

smoke: install
	SHINSEI_VAR_DIR=$(SHINSEI_VAR_DIR) $(PY) -m demo --headless

bench: install
	$(PY) bench/bench_verify.py --json bench/results-verify.json
	$(PY) bench/bench_revocation.py --json bench/results-revocation.json
	$(PY) bench/bench_intake.py --json bench/results-intake.json
	$(PY) bench/bench_portal_generate.py
	$(PY) bench/bench_relay.py --json bench/results-relay.json
	$(PY) bench/bench_ui.py --json bench/results-ui.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(SHINSEI_VAR_DIR) .bench-cache
