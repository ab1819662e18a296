# Two set-up commands on a fresh machine: `make run` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: install system run test lint bench soak clean lock

# The dependencies come from the lock files (exact versions, hashes checked), never from
# pyproject.toml's ranges directly: requirements-dev.lock here (the runtime set of
# requirements.lock plus the test and lint tools, at the same versions), requirements.lock in
# the image (Dockerfile). pyproject.toml stays the one place versions are chosen from; after
# changing a range there, `make lock` writes both files again (commit them together).
$(STAMP): pyproject.toml requirements-dev.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The Ethereum side of anchoring (issue 17) is npm packages pinned in anchor/chain/package-lock.json:
# the solc compiler that checks the committed contract artifact, and Hardhat's dev node for the
# tests. Installed with `npm ci` when Node.js is present; without it the chain tests skip.
CHAIN := anchor/chain
NODE_STAMP := $(CHAIN)/node_modules/.installed-stamp
$(NODE_STAMP): $(CHAIN)/package.json $(CHAIN)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(CHAIN) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	else echo "npm not found: skipping $(CHAIN)'s npm packages (the Ethereum anchoring tests will skip)"; fi

# Debian packages the certificate and dashboard tests use (issue 18): Chromium, driven by Playwright
# as the system browser (Playwright's own browser download is not reachable), and poppler's
# pdftotext/pdftoppm to read certificates back. Installed with apt-get when missing and we may
# (root, apt-get present); otherwise those tests skip and say why.
SYSTEM_PACKAGES := chromium poppler-utils fonts-dejavu-core
system:
	@if command -v chromium >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages: $(SYSTEM_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	else echo "chromium/pdftotext missing and apt-get unavailable (or not root): the browser and PDF tests will skip"; fi

install: $(STAMP) $(NODE_STAMP) system

run: $(STAMP)
	$(VENV)/bin/packproof run $(ARGS)

# Two pytest workers (pytest-xdist): the suite mostly waits on brokers, nodes and browsers, so on
# two cores it took 21 minutes instead of 37 (2026-12-02). Each test starts its own services on free
# ports and its own PostgreSQL schema, so workers share nothing. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: $(STAMP) $(NODE_STAMP) system
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) $(ARGS)

# mypy cannot follow setuptools' package-dir map (the editable install's import hook is not a
# path it reads), so it checks a view of the tree laid out as installed: build/typecheck/packproof/
# holds links to the kernel's files and to each mapped folder (edge/ as packproof/edge, ...).
TYPECHECK := build/typecheck
MAPPED := simulators broker edge anchor api app
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/packproof
	ln -s $(CURDIR)/packproof/* $(TYPECHECK)/packproof/
	for d in $(MAPPED) benchmarks; do ln -s $(CURDIR)/$$d $(TYPECHECK)/$$( [ $$d = benchmarks ] || echo packproof/)$$d; done
	cd $(TYPECHECK) && $(CURDIR)/$(VENV)/bin/mypy --config-file $(CURDIR)/pyproject.toml --cache-dir $(CURDIR)/.mypy_cache \
		packproof benchmarks

bench: $(STAMP)
	$(PY) benchmarks/pipeline.py $(ARGS)

soak: $(STAMP)
	$(PY) benchmarks/soak.py $(ARGS)

# uv (PyPI) resolves the ranges for every platform (--universal: the image's Linux and a Mac
# alike) on Python 3.11, with the hashes of every file of each version. It runs from a
# throwaway venv, so it is needed only here, never for install.
UV_VERSION ?= 0.13.9
LOCK_TOOL := $(VENV)-lock
lock:
	python3 -m venv $(LOCK_TOOL)
	$(LOCK_TOOL)/bin/pip install --quiet uv==$(UV_VERSION)
	$(LOCK_TOOL)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
		--upgrade --quiet -o requirements.lock
	$(LOCK_TOOL)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --upgrade --quiet -c requirements.lock -o requirements-dev.lock
	rm -rf $(LOCK_TOOL)

clean:
	rm -rf $(VENV) data *.egg-info $(CHAIN)/node_modules
