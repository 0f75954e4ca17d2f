# Yummi backend. `make help` lists the targets; `make run` and `make test` are the two to know.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := libs/protos libs/common libs/devstack services/gateway services/catalog services/orders \
	services/payments services/ai
PYPROJECTS := $(wildcard $(addsuffix /pyproject.toml,$(PACKAGES)))
TEST_PATHS := $(wildcard services/*/tests libs/*/tests) tests
# -c: the root config (plugin, import mode, markers) even when a package carries its own pytest section
PYTEST := $(BIN)/pytest -c pyproject.toml
SAMPLE_CATALOG := data/sample-catalog.json

.PHONY: help venv protos check-protos openapi check-openapi sample-data migrate run infra stop test test-unit \
	test-integration test-e2e lint format typecheck clean clean-state bench bench-orders bench-catalog

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv with every package editable (re-runs when a pyproject.toml or requirements-dev.txt changes)

$(STAMP): $(PYPROJECTS) requirements-dev.txt
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (make PY=python3.11 ...)")'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python $(addprefix -e ,$(PACKAGES)) -r requirements-dev.txt
	@touch $@

protos: venv ## regenerate libs/protos from protos/
	$(BIN)/python scripts/gen_protos.py

check-protos: venv ## fail when libs/protos is stale against protos/
	$(BIN)/python scripts/gen_protos.py --check

openapi: venv ## regenerate openapi.json (the gateway's OpenAPI document) from the code
	$(BIN)/python scripts/export_openapi.py

check-openapi: venv ## fail when openapi.json is stale against the gateway's code
	$(BIN)/python scripts/export_openapi.py --check

sample-data: venv ## (re)generate data/sample-catalog.json
	$(BIN)/python scripts/generate_sample_catalog.py --out $(SAMPLE_CATALOG)

migrate: venv ## migrate every service (embedded servers when DATABASE_URL/REDIS_URL/NATS_URL are not set)
	$(BIN)/python -m yummi_devstack migrate

run: venv ## run everything on http://localhost:8000 (embedded servers unless URLs are given); Ctrl-C stops
	$(BIN)/python -m yummi_devstack run

infra: venv ## start the embedded servers and print `export ...` lines (eval "$(make -s infra)")
	@$(BIN)/python -m yummi_devstack infra

stop: ## stop the embedded servers of .state/ (or $YUMMI_STATE_DIR)
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m yummi_devstack stop; fi

test: venv ## the full suite: unit, integration and e2e (given URLs, else embedded servers)
	$(PYTEST) $(TEST_PATHS)

test-unit: venv ## unit tests only, no infrastructure
	YUMMI_TEST_INFRA=off $(PYTEST) $(TEST_PATHS) -m "not integration and not e2e"

test-integration: venv ## integration tests (real Postgres/Redis/NATS)
	$(PYTEST) $(TEST_PATHS) -m integration

test-e2e: venv ## end-to-end tests through the gateway, services as processes
	$(PYTEST) tests/e2e -m e2e

BENCH_ARGS ?= --duration 30 --concurrency 64
bench: venv ## load mix + price of the gateway hop, on a stack of its own (BENCH_ARGS="--gateway URL ...")
	$(BIN)/python bench/load_mix.py $(BENCH_ARGS)

BENCH_ORDERS_ARGS ?= --duration 30 --clients 32
bench-orders: venv ## POST /v1/orders at 32 clients + placed→queued time, own stack (BENCH_ORDERS_ARGS="...")
	$(BIN)/python bench/orders_load.py $(BENCH_ORDERS_ARGS)

BENCH_CATALOG_ARGS ?=
bench-catalog: venv ## 100k catalog import (vs a naive ORM insert) and catalog reads at 64 connections, own stack
	$(BIN)/python bench/catalog_import.py $(BENCH_CATALOG_ARGS)
	$(BIN)/python bench/catalog_read.py $(BENCH_CATALOG_ARGS)

lint: venv ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv ## ruff format and ruff check --fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv ## mypy (strict) on libs/common
	$(BIN)/mypy libs/common/src

clean: stop ## remove .venv and caches (keeps .state/; see clean-state)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find . -path ./.git -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0 rm -rf

clean-state: stop ## stop the embedded servers and delete their data (.state/)
	rm -rf .state
