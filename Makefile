# make run  — set up and run the bundled example through the local Lambda service
# make test — set up, then lint, format check, types and the whole test suite (CI)
# make check — the same as make test
# make bench — the benchmarks against AWS's own emulator and runtime client

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.installed-system
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test check lint bench setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(SYSTEM_STAMP): scripts/system_packages.sh | $(BIN)/python
	sh scripts/system_packages.sh
	touch $@

$(STAMP): pyproject.toml $(SYSTEM_STAMP) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(SYSTEM_STAMP) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python scripts/fetch_rie.py
	touch $@ $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	cd examples && ../$(BIN)/lamina demo

test: lint
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

check: test

bench: $(TEST_STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/coldstart.py
	$(BIN)/python bench/sandbox.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
