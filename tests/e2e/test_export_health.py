"""The health classes in the exported class metrics, through a real ``vigie serve`` exporting
OTLP to a real Prometheus: the scenario of ``test_health_alerts`` (two weeks of history, then a
degrading API, a dead backend, a surge and a drop) streamed over gRPC, and Prometheus must then
count exactly those classes on ``vigie_apis`` / ``vigie_subscriptions``, the anomalous consumers
with their own ``vigie_subscription_classes`` series, and nothing for the normal ones."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SidecarProcess
from tests.e2e.test_export_backends import Backends, Prometheus, prometheus_with_sidecar, wait_for
from tests.e2e.test_export_backends import backends as backends  # the fixture, by name
from tests.e2e.test_health_alerts import (
    CONSUMERS,
    FIRST_SEND,
    HISTORY,
    MINUTE,
    SECOND_SEND,
    _stream,
    _traffic,
)
from tests.support.streams import StreamClient
from vigie.wire.columns import StreamEncoder


@pytest.fixture
def stack(backends: Backends, tmp_path: Path) -> Iterator[tuple[Prometheus, SidecarProcess]]:
    env = {
        # two by traffic (the history's busiest: Orders' and Stock's steady consumers),
        # two by misbehaviour: the anomalous ones enter by their class
        "VIGIE_OTEL_TOP_K": "2",
        "VIGIE_DATA_STORE": "off",
    }
    with prometheus_with_sidecar(backends, tmp_path, env) as pair:
        yield pair


def _by_class(prom: Prometheus, metric: str) -> dict[str, float]:
    return {
        r["metric"]["vigie_class"]: float(r["value"][1])
        for r in prom.query(f"sum by (vigie_class) ({metric})")
    }


@pytest.mark.slow
def test_prometheus_counts_the_health_classes_like_the_others(
    stack: tuple[Prometheus, Any],
) -> None:
    prom, sc = stack
    end = (int(time.time()) // 60 - 2) * MINUTE
    t1 = end - SECOND_SEND  # the incidents begin here (event time)
    enc = StreamEncoder()
    client = StreamClient(sc.telemetry, gateway_id="gw-health")
    try:
        sent = _stream(client, enc, _traffic(enc, t1, t1 - HISTORY, t1 + FIRST_SEND, 1))
    finally:
        client.close()
    assert sent > 500_000  # two weeks of it

    apis_want = {"degraded": 1.0, "backend_down": 1.0, "traffic_anomaly": 1.0}

    def apis_counted() -> dict[str, float] | None:
        got = _by_class(prom, "vigie_apis")
        return got if {k: got.get(k) for k in apis_want} == apis_want else None

    apis = wait_for("the API health classes in Prometheus", apis_counted, 180, sc)
    # Orders degraded, Payments down, Stock surging (its surge outweighs its drop): 3 APIs,
    # each with one class, so none normal; no API retired nor growing
    assert apis == apis_want | {"retired": 0.0, "growing": 0.0, "normal": 0.0}, apis

    subs = _by_class(prom, "vigie_subscriptions")
    assert subs["traffic_anomaly"] == 2.0, subs  # app-surge and app-drop
    assert subs["normal"] == len(CONSUMERS) - 2, subs
    assert sum(v for k, v in subs.items() if k not in ("traffic_anomaly", "normal")) == 0, subs

    # the anomalous consumers got their own series (top-K by misbehaviour), the others none
    held = {
        (r["metric"]["wso2_application_id"], r["metric"]["vigie_class"])
        for r in prom.query("vigie_subscription_classes == 1")
    }
    assert held == {("app-surge", "traffic_anomaly"), ("app-drop", "traffic_anomaly")}, held
