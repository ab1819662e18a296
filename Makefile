# Two set-up commands on a fresh machine: `make run` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: install run test lint bench soak clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/packproof run $(ARGS)

test: $(STAMP)
	$(VENV)/bin/pytest -q $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy packproof edge anchor api broker simulators benchmarks

bench: $(STAMP)
	$(PY) benchmarks/pipeline.py $(ARGS)

soak: $(STAMP)
	$(PY) benchmarks/soak.py $(ARGS)

clean:
	rm -rf $(VENV) data *.egg-info
