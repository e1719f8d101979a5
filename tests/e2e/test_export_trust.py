"""What ``vigie status`` says about whether vigie's figures are whole is exported too, and a real
Prometheus gets exactly those counts: a real ``vigie serve`` (memory_cap 32 MiB) exporting OTLP
to a real Prometheus is attacked by a gateway whose clock runs an hour ahead (its future-dated
events refused) and by a flood of new APIs (API, route and subscription rows evicted); PromQL
must then give the counts the attack caused, the status' own figures, and an established
consumer's requests under its own API's name through the evictions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.common import records, status
from tests.conftest import SidecarProcess
from tests.e2e.test_export_backends import Backends, Prometheus, prometheus_with_sidecar, wait_for
from tests.e2e.test_export_backends import backends as backends  # the fixture, by name
from tests.support.streams import StreamClient
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow

CAP = 32 << 20
HOUR_US = 3_600_000_000
FUTURE = 17  # events dated an hour ahead (max_clock_skew_seconds: 300)
GOOD = 30
STEADY = 300
FLOOD = 3000  # new APIs, one request each: a 32 MiB state keeps a few hundred


@pytest.fixture
def stack(backends: Backends, tmp_path: Path) -> Iterator[tuple[Prometheus, SidecarProcess]]:
    env = {"VIGIE_DATA_STORE": "off", "VIGIE_MEMORY_CAP": "32MiB"}
    with prometheus_with_sidecar(backends, tmp_path, env) as pair:
        yield pair


def _now() -> int:
    return int(time.time() * 1e6)


class Gateway:
    """One gateway stream: batches sent, the events the sidecar acknowledged as applied."""

    def __init__(self, client: StreamClient) -> None:
        self.client, self.enc, self.batches = client, StreamEncoder(), 0

    def send(self, batches: list[list[dict[str, Any]]]) -> int:
        """Send ``batches``; the events of them the sidecar applied (its Ack counts per stream)."""
        before = self.applied()
        for recs in batches:
            self.client.send(self.enc.batch_from_records(recs))
        self.batches += len(batches)
        return self.applied() - before

    def applied(self) -> int:
        if not self.batches:
            return 0
        return int(self.client.wait_ack(self.batches, timeout=300).events_applied)


def _flood(start: int) -> list[list[dict[str, Any]]]:
    recs = records(FLOOD, app="", api="", start=start)
    for i, r in enumerate(recs):
        r["api_name"] = f"flood-api-{i}"
        if i % 2:
            r["application_id"] = r["application_name"] = f"flood-app-{i}"
    return [recs[k : k + 1000] for k in range(0, FLOOD, 1000)]


def _series(prom: Prometheus, promql: str, label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in prom.query(promql)}


def test_refusals_and_evictions_reach_prometheus_exactly(
    stack: tuple[Prometheus, SidecarProcess],
) -> None:
    prom, sc = stack
    now = _now()
    # a gateway an hour ahead: its hello says so, and FUTURE of its events are dated so
    skewed = StreamClient(
        sc.telemetry,
        hello=pb.Hello(
            gateway_id="gw-skewed", channel="main", protocol_version=1, clock_us=now + HOUR_US
        ),
    )
    flood = StreamClient(sc.telemetry, gateway_id="gw-flood")
    try:
        good = records(GOOD, app="app-1", api="Orders", start=now - 60_000_000)
        ahead = records(FUTURE, app="app-1", api="Orders", start=now + HOUR_US)
        assert Gateway(skewed).send([good[:10] + ahead + good[10:]]) == GOOD
        gw = Gateway(flood)
        steady = records(STEADY, app="steady", api="Payments", start=now - 50_000_000)
        assert gw.send([steady]) == STEADY
        assert gw.send(_flood(now - 40_000_000)) == FLOOD
        assert gw.send([records(50, app="steady", api="Payments", start=now)]) == 50
        st = status(sc)
        c = st.counters
        assert c["event_refused:future"] == FUTURE
        assert c["api_rows_evicted"] > 0 and c["evicted_subscriptions"] > 0, dict(c)
        assert st.apis + c["api_rows_evicted"] == 2 + FLOOD

        def exported() -> dict[str, Any] | None:
            evicted = _series(prom, "vigie_rows_evicted_total", "vigie_table")
            steady = _series(
                prom,
                'vigie_subscription_requests_total{wso2_application_id="steady"}',
                "wso2_api_name",
            )
            # the export after the last batch (the steady consumer's 50 came after the flood)
            if evicted.get("api") != c["api_rows_evicted"] or sum(steady.values()) < STEADY + 50:
                return None
            return {
                "evicted": evicted,
                "gateway": _series(
                    prom,
                    'vigie_gateway_refused_total{wso2_gateway_id="gw-skewed"}',
                    "vigie_refusal_cause",
                ),
                "dropped": _series(
                    prom,
                    'vigie_ingest_dropped_total{vigie_drop_source="sidecar"}',
                    "vigie_drop_reason",
                ),
                "skew": prom.value('vigie_gateway_clock_skew_seconds{wso2_gateway_id="gw-skewed"}'),
                "rows": _series(prom, "vigie_state_rows", "vigie_table"),
                "memory": _series(prom, "vigie_state_memory_bytes", "vigie_memory"),
                "steady": steady,
            }

        got = wait_for("the evictions in Prometheus", exported, 120, sc)
        # exactly what the attack caused, as vigie status counts it
        assert got["evicted"] == {
            "subscription": c["evicted_subscriptions"],
            "api": c["api_rows_evicted"],
            "route": c["route_rows_evicted"],
            "security": 0,
        }
        assert got["gateway"]["future"] == FUTURE
        assert got["dropped"]["future"] == FUTURE
        assert got["dropped"]["without_api"] == 0
        assert got["skew"] is not None and abs(got["skew"] - 3600) < 60
        assert got["rows"]["api"] == st.apis
        assert got["rows"]["subscription"] == st.subscriptions
        assert got["memory"]["cap"] == CAP
        assert 0 < got["memory"]["used"] <= CAP
        # the established consumer, under its own API's name, all its requests
        assert got["steady"] == {"Payments": STEADY + 50}
        # and the flood's requests, those of the APIs kept, under their own names
        orders = prom.value('sum(wso2_api_requests_total{wso2_api_name="Orders"})')
        assert orders == GOOD
    finally:
        skewed.close()
        flood.close()
    assert "Traceback" not in sc.log()
