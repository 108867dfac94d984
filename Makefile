# pinnace: one entry point for building, testing and the demo.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTO_SRC := $(wildcard protos/*.proto)

.PHONY: venv protos lint typecheck unit test images demo demo-down bench clean

$(BIN)/pinnace: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/pinnace

# Generated code is committed; tests/unit/test_protos_fresh.py fails when it is stale.
protos: venv
	$(BIN)/python -m protos.generate

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy master agent tests

unit: venv
	$(BIN)/pytest -q tests/unit
