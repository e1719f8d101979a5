"""deploy/: the Grafana dashboard queries only metrics vigie exports (names derived from the
export's own catalogue), and is importable as Grafana expects. The Prometheus and Collector
configurations are run for real by tests/test_export_backends.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from vigie.export import METRICS, all_prometheus_names, prometheus_names

DASHBOARDS = sorted((REPO / "deploy" / "grafana").glob("*.json"))

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
    exported = all_prometheus_names()
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
            (name,) = re.findall(r"label_values\((\w+),", var["definition"])
            assert name in exported, var["name"]
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
    (ds,) = dash["__inputs"]
    assert (ds["type"], ds["pluginId"]) == ("datasource", "prometheus")
    ref = {"type": "prometheus", "uid": "${" + ds["name"] + "}"}
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    for p in panels(dash):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0
        if p["type"] != "row":
            assert p["datasource"] == ref
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs))
    kinds = {p["type"] for p in panels(dash)}
    assert {"heatmap", "timeseries", "table", "stat"} <= kinds


def test_the_readme_lists_every_exported_metric() -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("## OpenTelemetry export", 1)[1]
    for m in METRICS:
        assert f"`{m.name}`" in section, m.name
        assert prometheus_names(m)[0] in section, m.name
