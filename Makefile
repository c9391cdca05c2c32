# Every target creates and uses the local virtualenv in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NATIVE := $(VENV)/.native
NATIVE_MODULE := src/haltless/core/anomaly.py
NATIVE_BUILT := src/haltless/core/anomaly.*.so src/haltless/core/anomaly__mypyc.*.so

.PHONY: install demo run test lint format typecheck check bench bench-growth bench-large bench-agent clean

install: $(STAMP) $(NATIVE)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The anomaly detector's module compiled in place with mypyc (docs/anomaly-detection.md, "The compiled
# detector"): the extension sits beside core/anomaly.py and is imported in its stead. Rebuilt whenever the module
# changes; where it cannot be built (no C compiler), the stale extension is removed and the module runs as pure
# Python.
$(NATIVE): $(NATIVE_MODULE) $(STAMP)
	rm -f $(NATIVE_BUILT)
	if (cd src && ../$(BIN)/mypyc haltless/core/anomaly.py) > $(VENV)/mypyc.log 2>&1; then \
		echo "compiled $(NATIVE_MODULE) with mypyc"; \
	else \
		rm -f $(NATIVE_BUILT); \
		echo "warning: $(NATIVE_MODULE) not compiled (see $(VENV)/mypyc.log); it runs as pure Python" >&2; \
	fi
	rm -rf src/build src/.mypy_cache
	touch $(NATIVE)

# `make demo PORT=8001` (or `make run PORT=8001`) when something else already listens on 8000.
PORT_FLAG := $(if $(PORT),--port $(PORT))

demo: $(NATIVE)  ## the product: server + demo tenant + simulated fleet
	$(BIN)/haltless demo $(PORT_FLAG)

run: $(NATIVE)  ## the server alone
	$(BIN)/haltless serve $(PORT_FLAG)

test: $(NATIVE)
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

bench: $(NATIVE)  ## every benchmark but `large` (under 10 minutes on 2 cores); Bun comes from npm when it is there
	$(BIN)/python -m bench

bench-growth: $(NATIVE)  ## the cost-growth table alone (also part of `make bench`)
	$(BIN)/python -m bench growth

bench-large: $(NATIVE)  ## history, start-up and RSS at 1M and 10M stored readings (about a minute, 2.6 GB of temp disk)
	$(BIN)/python -m bench large

bench-agent: $(NATIVE)  ## OPC UA latency and Modbus polling through the edge agent (about 3 minutes)
	$(BIN)/python -m bench agent

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	rm -f $(NATIVE_BUILT)
