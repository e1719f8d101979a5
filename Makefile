# vigie — one entry point for newcomers and CI. Everything a target needs is installed by it.
#   make demo    set up .venv/ and run the live demo (sidecar + simulated gateways)
#   make test    set up, then run every test (lint, types, Python, Java)
#   make bench   set up, then run the benchmarks (results in benchmarks/results/)
#   make proto   regenerate the Python code of proto/ into sidecar/vigie/v1/

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PROTOS := $(wildcard proto/vigie/v1/*.proto)

.PHONY: setup demo test test-python lint typecheck bench proto clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/vigie demo

proto: setup
	$(PY) -m vigie.wire.codegen sidecar

lint: setup
	$(VENV)/bin/ruff check sidecar tests benchmarks
	$(VENV)/bin/ruff format --check sidecar tests benchmarks

typecheck: setup
	$(VENV)/bin/mypy

# the rollup tests run a real ClickHouse server: Debian's package, installed when missing
CLICKHOUSE := /usr/sbin/clickhouse-server
$(CLICKHOUSE):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server

test-python: setup $(CLICKHOUSE)
	$(PY) -m pytest -q

test: lint typecheck test-python

bench: setup
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
