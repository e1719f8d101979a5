"""The health and anomaly classes for real: two weeks of simulated WSO2 gateway traffic
(compressed in event time: streamed in a few seconds) teach a real ``vigie serve`` its
hour-of-week baselines; then an API degrades (p95 x3, 5xx 0.1 % -> 8 %), a backend stops
answering (WSO2 101503), a consumer surges (x40) and another's traffic drops to nothing. A
real Alertmanager (built from the Go module proxy) must notify a webhook receiver in this test
of exactly those five alerts (the surge also makes its API's traffic anomalous), grouped by
Alertmanager, then of their resolution once the incidents end, and of nothing about the
normal consumers. The traffic is random (Poisson arrivals, log-normal latencies, seeded): the
rules are judged against what each consumer usually does, not against tuned figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import SidecarProcess, start_sidecar
from tests.e2e.test_alerts_alertmanager import Webhook, alertmanager, webhook
from tests.e2e.test_export_backends import wait_for
from tests.support.policy_sidecar import cli_json
from tests.support.streams import StreamClient
from vigie.wire.columns import StreamEncoder

__all__ = ["alertmanager", "webhook"]  # the fixtures, used by name

MINUTE = 60_000_000
DAY = 1440 * MINUTE
HISTORY = 14 * DAY + 2 * 60 * MINUTE  # two weeks and two hours before the incidents
INCIDENT = 20 * MINUTE  # how long each incident lasts
DROP = 30 * MINUTE  # how long the dropping consumer sends nothing
FIRST_SEND = 16 * MINUTE  # phase 1: the history and the incidents' first 16 minutes
SECOND_SEND = 55 * MINUTE  # phase 2: until the incidents are long over

# (application, API, requests per minute)
CONSUMERS = (
    ("app-steady-1", "Stock", 6.0),
    ("app-steady-2", "Stock", 6.0),
    ("app-surge", "Stock", 2.0),
    ("app-drop", "Stock", 8.0),
    ("app-orders", "Orders", 12.0),
    ("app-pay", "Payments", 6.0),
)
SURGE_FACTOR = 40


def _traffic(enc: StreamEncoder, t1: int, lo: int, hi: int, seed: int) -> dict[str, np.ndarray]:
    """The events of [lo, hi) in time order as wire columns; the incidents begin at ``t1``."""
    rng = np.random.default_rng(seed)
    parts: list[dict[str, np.ndarray]] = []
    minutes = np.arange(lo // MINUTE, hi // MINUTE, dtype=np.int64) * MINUTE
    for app, api, rate in CONSUMERS:
        per_min = np.full(len(minutes), rate)
        in_incident = (minutes >= t1) & (minutes < t1 + INCIDENT)
        if app == "app-surge":
            per_min[in_incident] *= SURGE_FACTOR
        if app == "app-drop":
            per_min[(minutes >= t1) & (minutes < t1 + DROP)] = 0
        counts = rng.poisson(per_min)
        ts = np.repeat(minutes, counts) + rng.integers(0, MINUTE, int(counts.sum()))
        n = len(ts)
        incident = (ts >= t1) & (ts < t1 + INCIDENT)
        latency = rng.lognormal(np.log(20_000), 0.3, n)  # ~20 ms
        status = np.full(n, 200, dtype=np.int64)
        error_code = np.zeros(n, dtype=np.int64)
        status[rng.random(n) < 0.001] = 500  # the usual background of 5xx
        if app == "app-orders":  # the API degrades: 3x slower, 8 % of 5xx
            latency[incident] *= 3
            status[incident & (rng.random(n) < 0.08)] = 500
        if app == "app-pay":  # the backend stops answering: WSO2 answers 503 / 101503
            status[incident] = 503
            error_code[incident] = 101503
            latency[incident] = 1_000
        parts.append(
            {
                "event_time_us": ts,
                "application_id": np.full(n, enc.intern(app)),
                "application_name": np.full(n, enc.intern(f"name-{app}")),
                "application_owner": np.full(n, enc.intern("team-a")),
                "api_name": np.full(n, enc.intern(api)),
                "api_version": np.full(n, enc.intern("v1")),
                "api_context": np.full(n, enc.intern(f"/{api.lower()}/v1")),
                "resource_template": np.full(n, enc.intern("/items")),
                "http_method": np.ones(n, dtype=np.int64),
                "http_status": status,
                "error_code": error_code,
                "latency_us": latency.astype(np.int64),
                "backend_latency_us": (latency * 0.8).astype(np.int64),
                "subscription_tier": np.full(n, enc.intern("Gold")),
                "uri_hash": rng.integers(1, 2**62, n),  # every read differs: none repeats
            }
        )
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(columns["event_time_us"], kind="stable")
    return {k: v[order] for k, v in columns.items()}


def _stream(client: StreamClient, enc: StreamEncoder, columns: dict[str, np.ndarray]) -> int:
    n = len(columns["event_time_us"])
    for i in range(0, n, 8192):
        batch = enc.batch({k: v[i : i + 8192] for k, v in columns.items()})
        client.send(batch)
        client.wait_ack(batch.sequence, timeout=120)
    return n


def _alerts(hook: Webhook, status: str) -> list[dict[str, Any]]:
    return [a for n in hook.received() for a in n["alerts"] if a["status"] == status]


def _keys(alerts: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    """Each alert as (alertname, application_id or -, api, direction or -)."""
    return {
        (
            a["labels"]["alertname"],
            a["labels"].get("application_id", "-"),
            a["labels"]["api"],
            a["labels"].get("direction", "-"),
        )
        for a in alerts
    }


EXPECTED = {
    ("VigieApiDegraded", "-", "Orders", "-"),
    ("VigieApiBackendDown", "-", "Payments", "-"),
    ("VigieTrafficAnomaly", "app-surge", "Stock", "surge"),
    ("VigieTrafficAnomaly", "app-drop", "Stock", "drop"),
    ("VigieApiTrafficAnomaly", "-", "Stock", "surge"),
}


@pytest.fixture
def sidecar(tmp_path: Path, alertmanager: str) -> Any:
    config = tmp_path / "vigie.toml"
    config.write_text(  # every class alerts (the default list); the thresholds are defaults
        f'alertmanager_urls = "{alertmanager}"\n'
        'alert_on = "episodes"\n'
        "alert_check_seconds = 1\n"
        "alert_resend_seconds = 30\n"
        'data_store = "off"\n'
    )
    sp = start_sidecar(tmp_path / "state", "--config", str(config))
    try:
        yield sp
    finally:
        sp.stop()


def test_the_scenario_delivers_exactly_the_expected_notifications_then_their_resolution(
    sidecar: SidecarProcess, webhook: Webhook
) -> None:
    end = (int(time.time()) // 60 - 2) * MINUTE
    t1 = end - SECOND_SEND  # the incidents begin here (event time)
    enc = StreamEncoder()
    client = StreamClient(sidecar.telemetry, gateway_id="gw-health")
    try:
        sent = _stream(client, enc, _traffic(enc, t1, t1 - HISTORY, t1 + FIRST_SEND, 1))
        assert sent > 500_000  # two weeks of it

        def all_firing() -> set[tuple[str, ...]]:
            got = _keys(_alerts(webhook, "firing"))
            return got if got >= EXPECTED else set()

        firing = wait_for("the five alerts, through Alertmanager", all_firing, 240, sidecar)
        assert firing == EXPECTED, firing
        assert not _alerts(webhook, "resolved")
        by_name = {a["labels"]["alertname"]: a for a in _alerts(webhook, "firing")}
        down = by_name["VigieApiBackendDown"]
        assert down["labels"]["severity"] == "critical"
        assert "connection_failures=" in down["annotations"]["evidence"]
        degraded = by_name["VigieApiDegraded"]
        assert "p95_ms=" in degraded["annotations"]["evidence"]
        # its backend time (80 % of the latency) rose with it: the backend is blamed
        assert "cause=backend" in degraded["annotations"]["evidence"]
        assert degraded["annotations"]["command"] == "vigie consumers --api Orders"
        # what the person on call runs: the anomalous consumers, with their evidence
        listed = cli_json(sidecar, "consumers", "--class", "traffic_anomaly")["subscriptions"]
        directions = {
            s["application_id"]: s["evidence"]["traffic_anomaly"]["direction"] for s in listed
        }
        assert directions == {"app-surge": "surge", "app-drop": "drop"}

        # the incidents end, the dropped consumer comes back: every alert resolves
        _stream(client, enc, _traffic(enc, t1, t1 + FIRST_SEND, t1 + SECOND_SEND, 2))

        def all_resolved() -> set[tuple[str, ...]]:
            got = _keys(_alerts(webhook, "resolved"))
            return got if got >= EXPECTED else set()

        resolved = wait_for("their resolution", all_resolved, 240, sidecar)
        assert resolved == EXPECTED
    finally:
        client.close()
    notifications = webhook.received()
    # grouped by Alertmanager (the fixture's group_by): one group per alert, first firing,
    # last resolved, and never anything about the normal consumers
    groups: dict[str, list[str]] = {}
    for n in notifications:
        groups.setdefault(json.dumps(n["groupLabels"], sort_keys=True), []).append(n["status"])
    assert len(groups) == len(EXPECTED)
    assert all(s[0] == "firing" and s[-1] == "resolved" for s in groups.values()), groups
    text = json.dumps(notifications)
    for quiet in ("app-steady-1", "app-steady-2", "app-orders", "app-pay"):
        assert quiet not in text
