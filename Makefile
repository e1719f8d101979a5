# vigie — one entry point for newcomers and CI. Everything a target needs is installed by it.
#   make demo    set up .venv/ and run the live demo (sidecar + simulated gateways)
#   make test    set up, then run every test (lint, types, Python, Java)
#   make bench   set up, then run the benchmarks (results in benchmarks/results/)
#   make proto   regenerate the Python code of proto/ into sidecar/vigie/v1/
#   make docs    regenerate the tables of docs/configuration.md and docs/metrics.md from the code
#   make test-java   the gateway handler (gateway-handler/, Maven): unit, shaded-jar and
#                    end-to-end tests against a real `vigie serve`
#   make bench-java  the handler's JMH benchmarks -> benchmarks/results/handler-*.json
#   make backends    build the real OTLP backends of the export tests, promtool and Alertmanager
#                    into .cache/ (once)
#   make soak    10 x peak (15,000 events/s) for 10 minutes through the real handler core into a
#                real sidecar, plus a million-application flood: RSS over time, drops, accounting
#   make fuzz    atheris on the batch decoder + stream service and the WSO2 log parser
#                (FUZZ_SECONDS each, default 300); inputs reaching new code are merged into
#                tests/fuzz/corpus/ (replayed by make test), crashes land in tests/fuzz/crashes/

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PROTOS := $(wildcard proto/vigie/v1/*.proto)

.PHONY: setup demo test test-python test-java lint typecheck bench bench-java proto clean
.PHONY: backends backend-paths promtool-path alertmanager-path kustomize-path soak fuzz docs

MVN       ?= mvn
MVN_FLAGS ?= -B -ntp
VIGIE_CLI := $(abspath $(VENV)/bin/vigie)

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

docs: setup
	$(PY) -m tests.support.docgen

lint: setup
	$(VENV)/bin/ruff check sidecar tests benchmarks
	$(VENV)/bin/ruff format --check sidecar tests benchmarks
	$(VENV)/bin/lint-imports

typecheck: setup
	$(VENV)/bin/mypy

# the rollup tests run a real ClickHouse server: Debian's package, installed when missing
CLICKHOUSE := /usr/sbin/clickhouse-server
$(CLICKHOUSE):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server

# the fault/load tests (tests/ops) drive the real handler core from a JVM: the bench jar
LOAD_JAR     := gateway-handler/bench/target/vigie-bench.jar
JAVA_SOURCES := $(shell find gateway-handler proto -name '*.java' -o -name 'pom.xml' -o -name '*.proto' | grep -v /target/)
$(LOAD_JAR): $(JAVA_SOURCES)
	cd gateway-handler && $(MVN) $(MVN_FLAGS) -q package -pl bench -am -DskipTests
	touch $(LOAD_JAR)

# the HTML report test screenshots the report in headless Chromium: Debian's package
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test-python: setup $(CLICKHOUSE) $(CHROMIUM) backends $(LOAD_JAR)
	VIGIE_LOAD_JAR=$(abspath $(LOAD_JAR)) $(PY) -m pytest -q

test-java: setup
	cd gateway-handler && $(MVN) $(MVN_FLAGS) verify -Dvigie.cli=$(VIGIE_CLI)

test: lint typecheck test-python test-java

bench: setup bench-java
	$(PY) -m benchmarks

bench-java: setup
	cd gateway-handler && $(MVN) $(MVN_FLAGS) -q package -pl bench -am -DskipTests
	java -Dvigie.cli=$(VIGIE_CLI) -Dvigie.results=$(abspath benchmarks/results) \
		-jar gateway-handler/bench/target/vigie-bench.jar

soak: setup $(LOAD_JAR)
	VIGIE_LOAD_JAR=$(abspath $(LOAD_JAR)) $(PY) -m tests.ops.soak $(SOAK_ARGS)

FUZZ_SECONDS ?= 300
fuzz: setup
	$(PY) -m pip install --quiet -c requirements.lock -e '.[fuzz]'
	$(PY) -m tests.fuzz decoder $(FUZZ_SECONDS)
	$(PY) -m tests.fuzz wso2_log $(FUZZ_SECONDS)
	$(PY) -m tests.fuzz merge decoder
	$(PY) -m tests.fuzz merge wso2_log

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache gateway-handler/*/target

# Real OTLP backends for the export tests (tests/test_export_backends.py), built once from the
# Go module proxy into .cache/ (gitignored) and reused: Prometheus with its OTLP receiver, and a
# minimal OpenTelemetry Collector (tests/backends/otelcol) for OTLP over gRPC.
CACHE              := $(CURDIR)/.cache
GO_ENV             := GOMODCACHE=$(CACHE)/go/mod GOCACHE=$(CACHE)/go/build GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
PROMETHEUS_VERSION := v0.316.0
PROMETHEUS         := $(CACHE)/bin/prometheus-$(PROMETHEUS_VERSION)
OTELCOL_SRC        := tests/backends/otelcol
OTELCOL            := $(CACHE)/bin/vigie-otelcol
# promtool runs the unit tests of deploy/prometheus/alerts.yml; Alertmanager receives vigie's alerts
# in tests/e2e/test_alerts_alertmanager.py
PROMTOOL           := $(CACHE)/bin/promtool-$(PROMETHEUS_VERSION)
ALERTMANAGER_VERSION := v0.28.1
ALERTMANAGER       := $(CACHE)/bin/alertmanager-$(ALERTMANAGER_VERSION)

# kustomize renders every deploy/kubernetes overlay in tests/e2e/test_deploy_kubernetes.py
KUSTOMIZE_VERSION  := v5.8.1
KUSTOMIZE          := $(CACHE)/bin/kustomize-$(KUSTOMIZE_VERSION)

backends: $(PROMETHEUS) $(OTELCOL) $(PROMTOOL) $(ALERTMANAGER) $(KUSTOMIZE)

$(PROMETHEUS):
	mkdir -p $(CACHE)/bin $(CACHE)/gobin
	$(GO_ENV) GOBIN=$(CACHE)/gobin go install -tags remove_all_sd \
		github.com/prometheus/prometheus/cmd/prometheus@$(PROMETHEUS_VERSION)
	mv $(CACHE)/gobin/prometheus $@

$(PROMTOOL):
	mkdir -p $(CACHE)/bin $(CACHE)/gobin
	$(GO_ENV) GOBIN=$(CACHE)/gobin go install -tags remove_all_sd \
		github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION)
	mv $(CACHE)/gobin/promtool $@

$(ALERTMANAGER):
	mkdir -p $(CACHE)/bin $(CACHE)/gobin
	$(GO_ENV) GOBIN=$(CACHE)/gobin go install \
		github.com/prometheus/alertmanager/cmd/alertmanager@$(ALERTMANAGER_VERSION)
	mv $(CACHE)/gobin/alertmanager $@

$(OTELCOL): $(OTELCOL_SRC)/go.mod $(OTELCOL_SRC)/go.sum $(OTELCOL_SRC)/main.go
	mkdir -p $(CACHE)/bin
	cd $(OTELCOL_SRC) && $(GO_ENV) go build -mod=readonly -o $@ .

$(KUSTOMIZE):
	mkdir -p $(CACHE)/bin $(CACHE)/gobin
	$(GO_ENV) GOBIN=$(CACHE)/gobin go install \
		sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(CACHE)/gobin/kustomize $@

kustomize-path: $(KUSTOMIZE)
	@echo $(KUSTOMIZE)

backend-paths: backends
	@echo $(PROMETHEUS)
	@echo $(OTELCOL)

promtool-path: $(PROMTOOL)
	@echo $(PROMTOOL)

alertmanager-path: $(ALERTMANAGER)
	@echo $(ALERTMANAGER)
