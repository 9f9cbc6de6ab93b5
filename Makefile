# The two Quickstart commands are `make quickstart` and `make test`; see README.md.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: install quickstart up down test unit lint bench

install: $(VENV)/.installed

PLUGINS := $(wildcard plugins/*/pyproject.toml)

SERVICES := services/api/pyproject.toml services/worker/pyproject.toml services/plugin-registry/pyproject.toml

# One distribution per audience (see pyproject.toml): the SDK, the client with the CLI, the
# server core and the development tooling.
SHARED := shared/sdk/pyproject.toml shared/client/pyproject.toml shared/core/pyproject.toml shared/devtools/pyproject.toml

$(VENV)/.installed: pyproject.toml $(SHARED) $(SERVICES) $(PLUGINS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip setuptools wheel
	$(PIP_INSTALL) -e shared/sdk -e shared/client -e "shared/core[graphs,web]" -e "shared/devtools[test]" \
		-e services/api -e "services/worker[ml,conda]" -e services/plugin-registry \
		$(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $@

## Install, start the local stack, run digits-evasion and leave the stack running.
quickstart: up
	$(VENV)/bin/theodolite demo examples/digits-evasion

up: install
	$(VENV)/bin/theodolite stack up

down:
	$(VENV)/bin/theodolite stack down

## The whole test suite: unit tests, then integration tests against a private real stack.
test: install
	$(PY) -m pytest

unit: install
	$(PY) -m pytest tests/unit

# What mypy checks: the four shared distributions and the three services (mypy_path in
# pyproject.toml lists their source roots). import-linter reads the namespace package
# `theodolite` from the folders on PYTHONPATH: the editable installs hide them behind import
# hooks it cannot follow.
TYPED := $(wildcard shared/*/theodolite) $(filter-out %.egg-info,$(wildcard services/*/theodolite_*))
SHARED_ROOTS := shared/sdk:shared/client:shared/core:shared/devtools
LINTED := shared services tests bench examples plugins

## ruff (lint, then format), mypy, then the import-linter contracts; the first that fails stops.
lint: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy $(TYPED)
	PYTHONPATH=$(SHARED_ROOTS) $(VENV)/bin/lint-imports --no-logo

.PHONY: typecheck
## mypy alone (the slow step of `make lint`).
typecheck: install
	$(VENV)/bin/mypy $(TYPED)

bench: install
	$(PY) bench/submit_latency.py --jobs 200 --burst 50

## The client's generated modules: sync.py from aio.py (unasync; not committed: the client's build
## hook writes it, this target again after a change to aio.py in an editable install), the wire
## models from the api's OpenAPI document (datamodel-codegen). tests/unit/test_client_generated.py
## says when to run them.
.PHONY: client-sync client-models
client-sync: install
	$(PY) shared/client/scripts/generate_client.py sync

client-models: install
	$(PY) shared/client/scripts/generate_client.py models

## The images' locks (deploy/locks/*.txt, with hashes) from their requirement sets (*.in), for
## Python 3.11 on linux x86_64: uv resolves and hashes; the Dockerfiles install exactly these.
## The CPU locks take torch 2.13.0+cpu from the PyTorch CPU index, or from pip's find-links where
## one is set (PIP_FIND_LINKS or pip's configuration: these machines keep the same wheel there
## and cannot reach that index).
.PHONY: locks
LOCAL_DISTRIBUTIONS := sdk client core devtools api worker plugin-registry \
	$(foreach p,$(PLUGINS),plugin-$(notdir $(patsubst %/,%,$(dir $(p)))))
PIP_FIND_LINKS ?= $(shell $(PY) -m pip config get global.find-links 2>/dev/null)
TORCH_CPU_SOURCE ?= $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS),--extra-index-url https://download.pytorch.org/whl/cpu)
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make locks" \
	$(foreach d,$(LOCAL_DISTRIBUTIONS),--no-emit-package theodolite-$(d))
locks: install
	$(UV_COMPILE) deploy/locks/api.in -o deploy/locks/api.txt
	$(UV_COMPILE) $(TORCH_CPU_SOURCE) deploy/locks/registry.in -o deploy/locks/registry.txt
	$(UV_COMPILE) $(TORCH_CPU_SOURCE) deploy/locks/worker-cpu.in -o deploy/locks/worker-cpu.txt
	$(UV_COMPILE) deploy/locks/worker-cuda.in -o deploy/locks/worker-cuda.txt
