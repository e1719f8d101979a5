"""Time is bounded and confined: an event dated far ahead of the sidecar's clock is refused and
counted while the rest of its batch applies; one dated far in the past counts where it belongs
but never lengthens "observed history"; retention runs on the sidecar's clock, so no stream's
clock deletes rollups. Against real ``vigie serve`` processes; the events are dated from the
test machine's clock (the sidecar's), never slept on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.adversarial.common import admin, records, status
from tests.conftest import SidecarProcess, start_sidecar
from tests.support.streams import StreamClient
from tests.support.waiting import RPC_S
from tests.support.wso2log import App, LogWriter, at
from vigie.cli import main
from vigie.store.parquet import ParquetStore
from vigie.v1 import admin_pb2 as apb
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow

DAY = 86_400_000_000
YEAR_2999 = 32_472_144_000_000_000  # 2999-01-01
YEAR_1970 = 86_400_000_000  # 1970-01-02
STORE = {"VIGIE_DATA_FLUSH_SECONDS": "0.1"}


def _now() -> int:
    return int(time.time() * 1e6)


def _send(sp: SidecarProcess, batches: list[list[dict[str, Any]]], gateway: str = "gw-1") -> int:
    """Send ``batches`` on one stream; the last Ack's events_applied."""
    c = StreamClient(sp.telemetry, gateway_id=gateway)
    enc = StreamEncoder()
    try:
        for recs in batches:
            c.send(enc.batch_from_records(recs))
        return int(c.wait_ack(len(batches)).events_applied)
    finally:
        c.close()


def _wait_written(sp: SidecarProcess, rows: int) -> apb.Status:
    """Poll until the data writer has written ``rows`` minute rows (and so run its retention)."""
    for _ in range(600):
        st = status(sp)
        if st.data.counters["minute_rows_written"] >= rows:
            return st
        time.sleep(0.1)  # polling the writer, not moving time
    raise AssertionError(f"minute rows never written: {dict(st.data.counters)}")


def _classes(sp: SidecarProcess) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    stub, md = admin(sp)
    subs = stub.ListSubscriptions(apb.ListSubscriptionsRequest(), metadata=md, timeout=RPC_S)
    apis = stub.ListApis(apb.ListApisRequest(), metadata=md, timeout=RPC_S)
    return (
        {s.application_name: sorted(s.classes) for s in subs.subscriptions},
        {a.api: sorted(a.classes) for a in apis.apis},
    )


def test_an_event_from_2999_is_refused_and_deletes_nothing(tmp_path: Path) -> None:
    now = _now()
    old = records(5, app="app-old", start=now - 10 * DAY)  # a day the short retention keeps
    good = records(30, app="app-1", start=now - 60_000_000)
    bad = records(1, app="app-1", start=YEAR_2999)
    sp = start_sidecar(tmp_path / "s", env=STORE)
    try:
        acked = _send(sp, [old, good[:15] + bad + good[15:]])
        assert acked == 35  # the 2999 event is not acknowledged as applied
        st = _wait_written(sp, 2)
        assert st.counters["event_refused:future"] == 1
        assert st.events_applied == 35
        assert st.now_us < now + 300_000_000  # "now" is not 2999
        assert st.data.counters["days_deleted_by_retention"] == 0
        subs, apis = _classes(sp)
        assert "dormant" not in subs["app-1"]
        assert "retired" not in apis["Orders"]
        assert st.classes.get("dormant", 0) == 0
    finally:
        assert sp.stop() == 0
    root = tmp_path / "s" / "data"
    days = ParquetStore(root).days("minute")
    assert now - 10 * DAY - (now - 10 * DAY) % DAY in days
    sp = start_sidecar(tmp_path / "s", env=STORE)  # a restart keeps it so
    try:
        _send(sp, [records(3, app="app-1", start=_now())])
        st = _wait_written(sp, 1)
        assert st.now_us < _now() + 300_000_000
        assert st.data.counters["days_deleted_by_retention"] == 0
        subs, apis = _classes(sp)
        assert "dormant" not in subs["app-1"]
        assert "retired" not in apis["Orders"]
    finally:
        assert sp.stop() == 0
    assert now - 10 * DAY - (now - 10 * DAY) % DAY in ParquetStore(root).days("minute")


def test_an_event_from_1970_counts_but_fakes_no_history(tmp_path: Path) -> None:
    now = _now()
    sp = start_sidecar(tmp_path / "s")
    try:
        acked = _send(
            sp,
            [records(1, app="app-past", start=YEAR_1970) + records(10, start=now - 1_000_000)],
        )
        assert acked == 11
        st = status(sp)
        assert st.events_applied == 11
        assert "event_refused:future" not in st.counters
        subs, _ = _classes(sp)
        # silent since 1970, but vigie has observed this platform for seconds: not judged
        assert "unknown" in subs["app-past"]
        assert "dormant" not in subs["app-past"]
    finally:
        assert sp.stop() == 0
    sp = start_sidecar(tmp_path / "s")  # the observation start is kept across a restart
    try:
        subs, _ = _classes(sp)
        assert "unknown" in subs["app-past"]
        assert "dormant" not in subs["app-past"]
    finally:
        assert sp.stop() == 0


def test_a_gateway_15_days_ahead_is_refused_and_deletes_nothing(tmp_path: Path) -> None:
    now = _now()
    sp = start_sidecar(tmp_path / "s", env=STORE)
    try:
        _send(sp, [records(20, app="app-1", start=now - 60_000_000)], gateway="gw-good")
        _wait_written(sp, 1)
        acked = _send(sp, [records(20, app="app-2", start=now + 15 * DAY)], gateway="gw-ahead")
        assert acked == 0
        st = status(sp)
        assert st.counters["event_refused:future"] == 20
        assert st.events_applied == 20
        subs, _ = _classes(sp)
        assert "app-2" not in subs
        _send(sp, [records(5, app="app-1", start=_now())], gateway="gw-good")
        st = _wait_written(sp, 2)
        assert st.data.counters["days_deleted_by_retention"] == 0
    finally:
        assert sp.stop() == 0
    assert ParquetStore(tmp_path / "s" / "data").days("minute")


def test_a_replay_store_deletes_nothing(tmp_path: Path) -> None:
    """A log spanning 40 days into a store with 14 days of minutes: a replay keeps every day
    (retention is the live sidecar's, on its own clock)."""
    log = LogWriter()
    app = App("app-1")
    for d in range(40):
        log.response(at(days=d, hours=12), app, "Orders")
    path = log.write(tmp_path / "apim_metrics.log")
    store = tmp_path / "store"
    r = CliRunner().invoke(main, ["replay", str(path), "--store", str(store)])
    assert r.exit_code == 0, r.output
    assert len(ParquetStore(store).days("minute")) == 40
    assert len(ParquetStore(store).days("daily")) == 40
