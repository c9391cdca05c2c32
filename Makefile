# Every target creates and uses the local virtualenv in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo run test lint format typecheck check bench bench-agent clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## the product: server + demo tenant + simulated fleet
	$(BIN)/haltless demo

run: $(STAMP)  ## the server alone
	$(BIN)/haltless serve

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m bench

bench-agent: $(STAMP)  ## OPC UA latency and Modbus polling through the edge agent (about 3 minutes)
	$(BIN)/python -m bench agent

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
