# skewless: `make run` serves the model locally, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install run test test-fast verify artifacts lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install  ## serve the model on http://127.0.0.1:3000 (no AWS account, no Docker)
	$(PY) -m handler serve

test: install  ## every test, as CI runs them
	$(PY) -m pytest

test-fast: install  ## skip the slow ones while iterating
	$(PY) -m pytest -m "not slow and not sam"

verify: install  ## replay the golden cases through the serving path
	$(PY) -m handler verify

artifacts: install  ## retrain the reference model and rewrite model_artifacts/
	$(PY) -m training.train --out model_artifacts
	$(PY) -m handler verify

bench: install  ## cold start, warm latency, S3 throughput: writes benchmarks/RESULTS.md
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks.run

lint: install
	$(VENV)/bin/ruff check handler training tests
	$(VENV)/bin/mypy handler training

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
