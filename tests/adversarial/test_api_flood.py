"""A stream of ever-new APIs never fails: API and route rows are evicted coldest first inside
``memory_cap`` (``vigie.state._evict``), so 110,000 distinct APIs sent to a sidecar capped at
64 MiB are all acknowledged, the evictions counted, the process bounded, the established
consumers' figures and classes untouched, and the state restarts cleanly from its snapshot.
Against a real ``vigie serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.common import T0, admin, records, status
from tests.conftest import SidecarProcess, start_sidecar
from tests.support.streams import StreamClient
from vigie.v1 import admin_pb2 as apb
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow

CAP = 64 << 20
N_APIS = 110_000
PER_BATCH = 5_000
PER_STREAM = 20_000  # a gateway reconnecting now and then: its dictionary is let go
DATA_CAP = 32 << 20
ENV = {"VIGIE_MEMORY_CAP": "64MiB", "VIGIE_MAX_STRINGS": "200000", "VIGIE_DATA_MEMORY_CAP": "32MiB"}


def _rss(sp: SidecarProcess) -> int:
    for line in Path(f"/proc/{sp.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _established() -> list[dict[str, Any]]:
    """Two consumers with a history and classes: ``steady`` (all 200, one resource:
    ``redundant``) and ``flaky`` (half 503: ``retry_storm`` too)."""
    steady = records(300, app="steady", api="Orders", start=T0)
    flaky = records(300, app="flaky", api="Payments", start=T0 + 500)
    for k, r in enumerate(flaky):
        r["http_status"] = 503 if k % 2 else 200
    return steady + flaky


def _send(sp: SidecarProcess, batches: list[list[dict[str, Any]]], gateway: str) -> int:
    c = StreamClient(sp.telemetry, gateway_id=gateway)
    enc = StreamEncoder()
    try:
        for b in batches:
            c.send(enc.batch_from_records(b))
        return int(c.wait_ack(len(batches), timeout=300).events_applied)
    finally:
        c.close()


def _flood(first: int, n: int) -> list[dict[str, Any]]:
    """``n`` new APIs from ``first`` on, one request each, every other one with an application
    of its own; within the established consumers' minutes."""
    recs = records(n, app="", api="", start=T0 + 600_000)
    for k, r in enumerate(recs):
        i = first + k
        r["api_name"] = f"flood-api-{i}"
        r["event_time_us"] = T0 + 600_000 + i * 5  # within a second: no class ages meanwhile
        if i % 2:
            r["application_id"] = r["application_name"] = f"flood-app-{i}"
    return recs


def _consumers(sp: SidecarProcess) -> dict[str, tuple[int, int, list[str]]]:
    stub, md = admin(sp)
    out = {}
    for app in ("steady", "flaky"):
        got = stub.ListSubscriptions(
            apb.ListSubscriptionsRequest(application=app), metadata=md, timeout=60
        )
        (s,) = got.subscriptions
        out[app] = (int(s.requests), int(s.server_errors), sorted(s.classes))
    return out


def test_110k_new_apis_are_all_acked_evicted_coldest_first_under_the_cap(tmp_path: Path) -> None:
    sp = start_sidecar(tmp_path / "s", env=ENV)
    try:
        assert _send(sp, [_established()], "established") == 600
        before = _consumers(sp)
        assert before["flaky"][2] and before["steady"][2], before  # classes the flood must keep
        base = peak = _rss(sp)
        acked = 0
        for first in range(0, N_APIS, PER_STREAM):
            n = min(PER_STREAM, N_APIS - first)
            acked += _send(sp, _flood_batches(first, n), f"flood-{first}")
            st = status(sp)
            assert st.state_bytes <= st.state_bytes_cap == CAP, (st.state_bytes, CAP)
            peak = max(peak, _rss(sp))
        assert acked == N_APIS  # every batch acked whole: acked + dropped = offered, 0 dropped
        st = status(sp)
        c = st.counters
        print(
            f"RSS {base >> 20} MiB before, {peak >> 20} MiB peak; {st.apis} API rows kept, "
            f"{c['api_rows_evicted']} evicted, {c['route_rows_evicted']} route rows, "
            f"{c['evicted_subscriptions']} subscriptions; state {st.state_bytes >> 20} MiB; "
            f"{c['strings_released']} strings released, {c['route_overflow']} route overflows"
        )  # the figures
        assert st.events_applied == 600 + N_APIS
        assert st.apis + c["api_rows_evicted"] == 2 + N_APIS
        assert c["api_rows_evicted"] > N_APIS // 2
        # each had a route row, or its event went to route 0 (the table was full in a batch)
        assert c["route_rows_evicted"] + c["route_overflow"] >= c["api_rows_evicted"]
        assert c["evicted_subscriptions"] > 0
        assert "batch_refused:api_rows_full" not in c and "stream_internal_error" not in c
        assert c["strings_released"] > N_APIS // 2  # the evicted APIs' names let go
        assert c["strings_held"] < 200_000
        # the state under its cap, the store's rollups under theirs, the rest is the strings
        assert peak - base < CAP + DATA_CAP + (128 << 20), (base, peak)
        assert _consumers(sp) == before  # their figures and classes, untouched
        assert _send(sp, [records(10, app="steady", api="Orders", start=T0 + 1000)], "g") == 10
        assert "Traceback" not in sp.log()
        assert sp.stop() == 0
        sp = start_sidecar(tmp_path / "s", env=ENV)  # a clean restart from the snapshot
        st2 = status(sp)
        assert st2.apis == st.apis
        assert st2.state_bytes <= CAP, st2.state_bytes
        for k in ("api_rows_evicted", "route_rows_evicted", "evicted_subscriptions"):
            assert st2.counters[k] == c[k], k
        after = _consumers(sp)
        assert after["flaky"] == before["flaky"]
        assert after["steady"][0] == before["steady"][0] + 10
        assert _send(sp, _flood_batches(N_APIS, 10_000), "after") == 10_000  # and it goes on
        assert status(sp).counters["api_rows_evicted"] > c["api_rows_evicted"]
        assert "Traceback" not in sp.log()
    finally:
        assert sp.stop() == 0


def _flood_batches(first: int, n: int) -> list[list[dict[str, Any]]]:
    return [_flood(first + k, min(PER_BATCH, n - k)) for k in range(0, n, PER_BATCH)]
