"""deploy/: the Grafana dashboard queries only metrics vigie exports (names derived from the
export's own catalogue, with either histogram setting) and only variables it defines, over
labels the export really carries; it shows one replica at a time (each request once) and is
importable and file-provisionable as Grafana expects. The Prometheus and Collector
configurations are run for real by tests/test_export_backends.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from vigie.export import METRICS, all_prometheus_names, prometheus_names

DASHBOARDS = sorted((REPO / "deploy" / "grafana").glob("*.json"))
# both histogram settings (otel_histogram): native histograms, or the _bucket series
EXPORTED = all_prometheus_names() | all_prometheus_names("explicit")
# Prometheus's own series of the OTLP resource (its attributes as labels)
TARGET_INFO = "target_info"
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__all"}

# PromQL words that are not metric names
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_KEYWORDS |= {"and", "or", "unless", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\w+", " ", e)  # dashboard variables
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        after = e[m.end() :].lstrip()
        if after.startswith("(") or word.lower() in _KEYWORDS:
            continue  # a function call, or a keyword
        names.add(word)
    return names


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def test_the_name_finder_finds_names() -> None:
    expr = (
        'topk(10, sum by (wso2_api_name) (rate(wso2_api_requests_total{wso2_channel=~"$ch",'
        ' x="a{b}"}[$__rate_interval]))) / on (job) group_left sum(vigie_apis) > bool 0'
    )
    assert metric_names(expr) == {"wso2_api_requests_total", "vigie_apis"}
    assert metric_names("histogram_quantile(0.9, sum(rate(h_seconds[5m])))") == {"h_seconds"}


def test_prometheus_names_follow_the_otlp_translation() -> None:
    by_name = {m.name: m for m in METRICS}
    assert prometheus_names(by_name["wso2.api.requests"]) == ("wso2_api_requests_total",)
    assert prometheus_names(by_name["vigie.subscriptions"]) == ("vigie_subscriptions",)
    assert prometheus_names(by_name["http.server.request.duration"]) == (
        "http_server_request_duration_seconds",
    )
    assert prometheus_names(by_name["http.server.request.duration"], "explicit") == (
        "http_server_request_duration_seconds_bucket",
        "http_server_request_duration_seconds_count",
        "http_server_request_duration_seconds_sum",
    )
    assert "vigie_export_duration_seconds_bucket" in all_prometheus_names()


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_every_dashboard_query_names_a_metric_vigie_exports(path: Path) -> None:
    dash = json.loads(path.read_text())
    exported = EXPORTED
    seen: set[str] = set()
    n_queries = 0
    for p in panels(dash):
        if p["type"] == "row":
            continue
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        for t in p["targets"]:
            names = metric_names(t["expr"])
            assert names, f"panel {p['title']!r}: {t['expr']!r} names no metric"
            unknown = names - exported
            assert not unknown, f"panel {p['title']!r} queries {sorted(unknown)}"
            seen |= names
            n_queries += 1
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            (name,) = re.findall(r"label_values\((\w+)", var["definition"])
            assert name in exported | {TARGET_INFO}, var["name"]
    assert n_queries >= 20
    # the dashboard covers what the issue asks for
    for must in (
        "wso2_api_requests_total",
        "wso2_api_errors_total",
        "wso2_api_throttled_total",
        "http_server_request_duration_seconds",
        "vigie_subscriptions",
        "vigie_subscription_classes",
        "vigie_directives_active",
        "vigie_ingest_dropped_total",
    ):
        assert must in seen, must


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_the_dashboard_is_importable(path: Path) -> None:
    dash = json.loads(path.read_text())
    # file provisioning substitutes no __inputs: the data source is a template variable
    assert "__inputs" not in dash
    (ds,) = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert ds["query"] == "prometheus"
    ref = {"type": "prometheus", "uid": "${" + ds["name"] + "}"}
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == ref, var["name"]
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    for p in panels(dash):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0
        if p["type"] != "row":
            assert p["datasource"] == ref
            refs = [t["refId"] for t in p["targets"]]
            assert all(t["datasource"] == ref for t in p["targets"]), p["title"]
            assert len(refs) == len(set(refs))
    kinds = {p["type"] for p in panels(dash)}
    assert {"heatmap", "timeseries", "table", "stat"} <= kinds


def test_the_readme_lists_every_exported_metric() -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("## OpenTelemetry export", 1)[1]
    for m in METRICS:
        assert f"`{m.name}`" in section, m.name
        assert prometheus_names(m)[0] in section, m.name


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def _variables(text: str) -> set[str]:
    """The dashboard variables a query uses ($name, ${name}, ${name:format}, [[name]])."""
    return {a or b or c for a, b, c in _VARIABLE.findall(text)}


def _selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, its label matchers) of every series an expression selects."""
    out = []
    names = "|".join(sorted(map(re.escape, EXPORTED), key=len, reverse=True))
    for m in re.finditer(rf"(?<![\w:])({names})(?![\w:])(\{{[^}}]*\}})?", expr):
        out.append((m.group(1), m.group(2) or ""))
    return out


def _labels_of(metric: str) -> set[str]:
    """The Prometheus labels a series of vigie's export carries: its attributes, the promoted
    resource attributes (deploy/prometheus/prometheus.yml), job and instance."""
    promoted = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())["otlp"][
        "promote_resource_attributes"
    ]
    out = {"job", "instance", "le"} | {a.replace(".", "_") for a in promoted}
    for m in METRICS:
        if metric in prometheus_names(m) + prometheus_names(m, "explicit"):
            out |= {a.replace(".", "_") for a in m.attributes}
    return out


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_queries_use_defined_variables_over_labels_that_exist(path: Path) -> None:
    dash = json.loads(path.read_text())
    defined = {v["name"] for v in dash["templating"]["list"]}
    texts = [t["expr"] for p in panels(dash) for t in p.get("targets", [])]
    texts += [v["definition"] for v in dash["templating"]["list"] if v["type"] == "query"]
    for text in texts:
        unknown = _variables(text) - defined - GRAFANA_BUILTINS
        assert not unknown, f"{text!r} uses undefined {sorted(unknown)}"
        for metric, matchers in _selectors(text):
            used = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
            assert used <= _labels_of(metric), f"{metric}: no {sorted(used - _labels_of(metric))}"
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        (metric, label) = re.findall(
            r"label_values\((\w+)(?:\{[^}]*\})?, (\w+)\)", var["definition"]
        )[0]
        if metric == TARGET_INFO:
            # a resource attribute the deployment sets (OTEL_RESOURCE_ATTRIBUTES), or instance
            sts = (REPO / "deploy/kubernetes/base/vigie/statefulset.yaml").read_text()
            assert label == "instance" or f"{label.replace('_', '.')}=" in sts, var["name"]
        else:
            assert label in _labels_of(metric), var["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_each_request_is_counted_once_and_latency_works_for_both_histograms(path: Path) -> None:
    """Every replica sees all traffic: every query reads one replica (a single-valued variable);
    the latency panels filter by channel and read the native histogram or the _bucket series."""
    dash = json.loads(path.read_text())
    (replica,) = [v for v in dash["templating"]["list"] if v["name"] == "replica"]
    assert not replica["multi"] and not replica["includeAll"]
    assert {"dc", "channel", "api", "tenant", "gateway"} <= {
        v["name"] for v in dash["templating"]["list"]
    }
    latency = 0
    for p in panels(dash):
        exprs = [t["expr"] for t in p.get("targets", [])]
        for expr in exprs:
            for metric, matchers in _selectors(expr):
                assert 'instance=~"$replica"' in matchers, f"{p['title']}: {metric}"
                if metric.startswith("http_server_request_duration"):
                    assert 'wso2_channel=~"$channel"' in matchers, p["title"]
        names = {m for e in exprs for m, _ in _selectors(e)}
        if "http_server_request_duration_seconds" in names:
            latency += 1
            assert "http_server_request_duration_seconds_bucket" in names, p["title"]
    assert latency >= 4
