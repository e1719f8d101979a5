# vigie — one entry point for newcomers and CI. Everything a target needs is installed by it.
#   make demo    set up .venv/ and run the live demo (sidecar + simulated gateways)
#   make test    set up, then run every test (lint, types, Python, Java)
#   make bench   set up, then run the benchmarks (results in benchmarks/results/)
#   make proto   regenerate the Python code of proto/ into sidecar/vigie/v1/
#   make backends  build the real OTLP backends of the export tests into .cache/ (once)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PROTOS := $(wildcard proto/vigie/v1/*.proto)

.PHONY: setup demo test test-python lint typecheck bench proto clean backends backend-paths

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

test-python: setup backends
	$(PY) -m pytest -q

test: lint typecheck test-python

bench: setup
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Real OTLP backends for the export tests (tests/test_export_backends.py), built once from the
# Go module proxy into .cache/ (gitignored) and reused: Prometheus with its OTLP receiver, and a
# minimal OpenTelemetry Collector (tests/backends/otelcol) for OTLP over gRPC.
CACHE              := $(CURDIR)/.cache
GO_ENV             := GOMODCACHE=$(CACHE)/go/mod GOCACHE=$(CACHE)/go/build GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
PROMETHEUS_VERSION := v0.316.0
PROMETHEUS         := $(CACHE)/bin/prometheus-$(PROMETHEUS_VERSION)
OTELCOL_SRC        := tests/backends/otelcol
OTELCOL            := $(CACHE)/bin/vigie-otelcol

backends: $(PROMETHEUS) $(OTELCOL)

$(PROMETHEUS):
	mkdir -p $(CACHE)/bin $(CACHE)/gobin
	$(GO_ENV) GOBIN=$(CACHE)/gobin go install -tags remove_all_sd \
		github.com/prometheus/prometheus/cmd/prometheus@$(PROMETHEUS_VERSION)
	mv $(CACHE)/gobin/prometheus $@

$(OTELCOL): $(OTELCOL_SRC)/go.mod $(OTELCOL_SRC)/go.sum $(OTELCOL_SRC)/main.go
	mkdir -p $(CACHE)/bin
	cd $(OTELCOL_SRC) && $(GO_ENV) go build -mod=readonly -o $@ .

backend-paths: backends
	@echo $(PROMETHEUS)
	@echo $(OTELCOL)
