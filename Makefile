# Every target creates and uses the local virtualenv in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo run test lint format typecheck check bench bench-growth bench-large bench-agent clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make demo PORT=8001` (or `make run PORT=8001`) when something else already listens on 8000.
PORT_FLAG := $(if $(PORT),--port $(PORT))

demo: $(STAMP)  ## the product: server + demo tenant + simulated fleet
	$(BIN)/haltless demo $(PORT_FLAG)

run: $(STAMP)  ## the server alone
	$(BIN)/haltless serve $(PORT_FLAG)

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

typecheck: $(STAMP)  ## mypy --strict on src, tests and bench (pyproject.toml [tool.mypy] files)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)  ## every benchmark but `large` (under 10 minutes on 2 cores); Bun comes from npm when it is there
	$(BIN)/python -m bench

bench-growth: $(STAMP)  ## the cost-growth table alone (also part of `make bench`)
	$(BIN)/python -m bench growth

bench-large: $(STAMP)  ## history, start-up and RSS at 1M and 10M stored readings (about a minute, 2.6 GB of temp disk)
	$(BIN)/python -m bench large

bench-agent: $(STAMP)  ## OPC UA latency and Modbus polling through the edge agent (about 3 minutes)
	$(BIN)/python -m bench agent

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
