# skewless: `make run` serves the model locally, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
export TF_CPP_MIN_LOG_LEVEL ?= 2
# The SAM CLI has its own venv: its boto3 pin conflicts with ours.
SAM_VENV ?= .venv-sam
SAM := $(SAM_VENV)/bin/sam
export SAM_CLI_TELEMETRY := 0
# Client libraries written by others (Triton's, KServe's) have their own venv too: tritonclient pins an older ml-dtypes.
CLIENTS_VENV ?= .venv-clients
CLIENTS := $(CLIENTS_VENV)/.installed
# checkov (make lint) has its own venv too: it pins boto3 1.35 and packaging 23.
CHECKOV_VENV ?= .venv-checkov
CHECKOV := $(CHECKOV_VENV)/.installed
BASE_IMAGE ?= public.ecr.aws/lambda/python:3.11
RUNTIME ?= tensorflow
IMAGE ?= skewless:$(RUNTIME)
# The exported model(s) the image serves: an artifact folder, or a folder of them, anywhere; staged into the build.
MODEL_DIR ?= model_artifacts
STAGED_MODELS := build-inputs/models
# More `sam build` options for `make sam-build` (-t TEMPLATE, --build-dir DIR, --use-container, ...).
SAM_BUILD_ARGS ?=

.PHONY: install clients checkov mutation run test test-fast verify artifacts lint bench bench-images audit clean clean-test-state sam-cli validate test-sam image wheelhouse stage-model sam-build

$(STAMP): pyproject.toml
	@echo "installing Python dependencies into $(VENV) (first run or a changed pyproject.toml; about 1-2 minutes)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

$(SAM): scripts/requirements-sam.txt
	@echo "installing the SAM CLI into $(SAM_VENV) (first run only, about 40 s)"
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q -r scripts/requirements-sam.txt
	touch $@

sam-cli: $(SAM)

$(CLIENTS): scripts/requirements-clients.txt
	@echo "installing the client libraries the tests use (tritonclient, the KServe SDK) into $(CLIENTS_VENV) (first run only, about 40 s)"
	test -x $(CLIENTS_VENV)/bin/python || $(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/python -m pip install -q -r scripts/requirements-clients.txt
	touch $@

clients: $(CLIENTS)

$(CHECKOV): scripts/requirements-checkov.txt
	@echo "installing checkov into $(CHECKOV_VENV) (first run only, about a minute)"
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -r scripts/requirements-checkov.txt
	touch $@

checkov: $(CHECKOV)

run: install  ## serve the model on http://127.0.0.1:3000 (no AWS account, no Docker)
	$(PY) -m handler serve

test: install sam-cli clients  ## every test, as CI runs them (the sam ones start their own Docker engine)
	$(PY) -m pytest

test-sam: install sam-cli  ## only the `sam build` / `sam local` tests
	$(PY) -m pytest -m sam tests/env/sam

validate: sam-cli  ## sam validate --lint
	$(SAM) validate --lint

stage-model: install  ## copy MODEL_DIR (an exported model, or a folder of them, from anywhere) into build-inputs/models
	$(PY) scripts/stage_model.py $(MODEL_DIR) $(STAGED_MODELS)

image: stage-model  ## the Lambda container image of MODEL_DIR's model(s); BASE_IMAGE=..., RUNTIME=litert (no TensorFlow)
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg RUNTIME=$(RUNTIME) \
		--build-arg MODEL_DIR=$(STAGED_MODELS) -t $(IMAGE) .

sam-build: install sam-cli  ## sam build with MODEL_DIR's model (anywhere); prints the parameters for sam deploy
	@set -e; staged="$$($(PY) scripts/stage_model.py $(MODEL_DIR) $(STAGED_MODELS))"; echo "$$staged"; \
	set -- $$staged; params="ModelDir=$(STAGED_MODELS)"; \
	if [ $$# -eq 2 ]; then params="$$params ModelName=$$1 ModelDigest=$$2"; fi; \
	$(SAM) build $(SAM_BUILD_ARGS) --parameter-overrides $$params; \
	echo "built; deploy with: $(SAM) deploy --guided --parameter-overrides $$params"

wheelhouse: install  ## fill build-inputs/wheelhouse/ so that `make image` installs offline
	mkdir -p .work && $(PY) scripts/serving_requirements.py pyproject.toml --with awslambdaric > .work/requirements-serve.txt
	$(PY) -m pip download -q --only-binary=:all: -d build-inputs/wheelhouse -r .work/requirements-serve.txt

test-fast: install clients  ## skip the slow ones while iterating
	$(PY) -m pytest -m "not slow and not sam"

verify: install  ## replay every model's golden cases through the serving path, on both runtimes
	@for dir in model_artifacts/*/; do \
	  for runtime in tensorflow litert; do MODEL_DIR=$$dir $(PY) -m handler verify --runtime $$runtime || exit 1; done; \
	done

artifacts: install  ## retrain the reference models; a golden output that changed keeps the committed one (ACCEPT=1 takes it)
	$(PY) -m training.train --out model_artifacts $(if $(ACCEPT),--accept-changes)
	$(MAKE) --no-print-directory verify

bench: install  ## cold start, warm latency, S3 throughput: writes benchmarks/RESULTS.md
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks.run

bench-images: install  ## cold starts in both images, capped as Lambda at 1,024 MB, under the emulator (Docker; ~3 min)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks.run --only image_cold

mutation: install  ## plant each realistic bug of scripts/mutants.py in a copy of the tree; every one must be caught
	$(PY) scripts/mutation_check.py --json .work/mutation.json

lint: install sam-cli checkov  ## ruff, mypy, and checkov on SAM's transformed template (skips justified in .checkov.yaml)
	$(VENV)/bin/ruff check handler training tests benchmarks scripts
	$(VENV)/bin/mypy handler training benchmarks scripts
	mkdir -p .work && $(SAM_VENV)/bin/python tests/support/translate_template.py template.yaml > .work/template.transformed.json
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml -f .work/template.transformed.json

audit: install  ## known vulnerabilities in the pinned dependencies (runtime and dev), from PyPI's advisory data
	$(PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
		print("\n".join(p["dependencies"] + p["optional-dependencies"]["dev"]))' > $(VENV)/audit-requirements.txt
	$(VENV)/bin/pip-audit --requirement $(VENV)/audit-requirements.txt --no-deps --disable-pip --strict --progress-spinner off

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The stdlib-only module runs on the system Python: the venvs go last.
clean-test-state:  ## undo what the tests installed and started: their dockerd, its data, docker0, the apt packages they added, the venvs
	$(PYTHON) -m tests.support.docker_engine clean
	rm -rf $(VENV) $(SAM_VENV) $(CLIENTS_VENV) $(CHECKOV_VENV)
