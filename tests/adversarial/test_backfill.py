"""A backfill does not drop: batches of past events (a backfill, a replay sent to a sidecar)
wait for room in the data writer's queue instead of being dropped, while live batches never
wait (tests/adversarial/test_data_loss.py: they are dropped, counted and loud). Where rollups
were dropped, reports and autopsies of that period print a "data incomplete" banner naming it.
Against a real ``vigie serve`` and the real ``vigie report`` / ``vigie autopsy`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.adversarial.common import T0, records, status
from tests.conftest import start_sidecar
from tests.support.streams import StreamClient
from vigie.cli import main
from vigie.store.data import DataSink, SinkConfig
from vigie.store.parquet import ParquetStore
from vigie.v1 import telemetry_pb2 as tpb
from vigie.wire.columns import COLUMN_NAMES, ENGINE_DTYPES, Events, StreamEncoder

pytestmark = pytest.mark.slow

DAY = 86_400_000_000
BATCHES = 150
PER_BATCH = 500


def test_a_backfill_waits_for_the_data_writer_and_drops_nothing(tmp_path: Path) -> None:
    env = {"VIGIE_DATA_QUEUE_BATCHES": "2", "VIGIE_DATA_FLUSH_SECONDS": "0.2"}
    sp = start_sidecar(tmp_path / "s", env=env)
    try:
        hello = tpb.Hello(gateway_id="backfill", protocol_version=1, history=True)
        c = StreamClient(sp.telemetry, hello=hello)
        enc = StreamEncoder()
        try:
            # 150 batches of past traffic (each a different day-old minute), sent at once
            for b in range(BATCHES):
                recs = records(PER_BATCH, app=f"app-{b % 7}", start=T0 + b * 60_000_000)
                c.send(enc.batch_from_records(recs))
            assert c.wait_ack(BATCHES, timeout=600).events_applied == BATCHES * PER_BATCH
        finally:
            c.close()
        st = status(sp)
        assert st.counters["backfill_batches"] == BATCHES
        assert st.data.counters["rollup_events_dropped"] == 0
        assert st.data.state == "ok"
    finally:
        assert sp.stop() == 0  # the writer writes out what it holds
    r = CliRunner().invoke(
        main,
        [
            "report", "--store", str(tmp_path / "s" / "data"), "--format", "json",
            "--from", "2026-03-01", "--to", "2026-03-04",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["total"]["requests"] == BATCHES * PER_BATCH
    assert doc["incomplete"] == []


def test_the_same_batches_on_a_live_stream_do_not_wait_and_are_dropped(tmp_path: Path) -> None:
    """The twin of the test above: a stream without ``Hello.history`` is live, whatever the age
    of its events; it never waits, so the batches the writer cannot take are dropped, counted
    and loud (the zero above is the wait's doing, not luck)."""
    env = {"VIGIE_DATA_QUEUE_BATCHES": "2", "VIGIE_DATA_FLUSH_SECONDS": "0.2"}
    sp = start_sidecar(tmp_path / "s", env=env)
    try:
        c = StreamClient(sp.telemetry, gateway_id="live")
        enc = StreamEncoder()
        try:
            for b in range(BATCHES):
                recs = records(PER_BATCH, app=f"app-{b % 7}", start=T0 + b * 60_000_000)
                c.send(enc.batch_from_records(recs))
            assert c.wait_ack(BATCHES, timeout=600).events_applied == BATCHES * PER_BATCH
        finally:
            c.close()
        st = status(sp)
        assert "backfill_batches" not in st.counters
        dropped = st.data.counters["rollup_events_dropped"]
        assert dropped > 0 and dropped % PER_BATCH == 0  # whole batches
        assert st.data.state == f"degraded: {dropped:,} events not stored"
    finally:
        assert sp.stop() == 0


def _events(n: int, start: int) -> Events:
    cols = {name: np.zeros(n, dtype=ENGINE_DTYPES[name]) for name in COLUMN_NAMES}
    cols["event_time_us"] = start + np.arange(n, dtype=np.int64) * 1_000_000
    cols["api_name"][:] = 1
    cols["application_id"][:] = 2
    cols["http_status"][:] = 200
    return Events(cols, np.zeros(n, dtype=np.uint8))


def test_reports_over_a_period_with_drops_say_data_incomplete(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    strings = ["", "Orders", "app-1"]
    sink = DataSink(ParquetStore(root), strings.__getitem__, ["main"], SinkConfig(queue_batches=1))
    t1 = T0 + 2 * 3_600_000_000  # 02:00 on 2026-03-02
    assert sink.offer(_events(60, T0))  # queued (no writer thread: it stays there)
    assert not sink.offer(_events(90, t1))  # the queue is full: dropped, its period noted
    sink.add(sink._queue.get_nowait())
    sink.flush()
    store = ["--store", str(root)]
    span = ["--from", "2026-03-02T00:00", "--to", "2026-03-02T06:00"]
    r = CliRunner().invoke(main, ["autopsy", *store, *span])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert (
        "data incomplete: 90 events of this span were not stored (the data writer could not "
        "keep up, or the store could not be written): "
        "2026-03-02T02:00:00.000Z → 2026-03-02T02:01:29.000Z (90 events)"
    ) in out, out
    r = CliRunner().invoke(main, ["report", *store, *span, "--format", "json"])
    assert json.loads(r.stdout)["incomplete"] == [
        {"from": "2026-03-02T02:00:00.000Z", "to": "2026-03-02T02:01:29.000Z", "events": 90}
    ]
    # a span without drops says nothing of them
    r = CliRunner().invoke(
        main, ["autopsy", *store, "--from", "2026-03-02T00:00", "--to", "2026-03-02T01:00"]
    )
    assert r.exit_code == 0 and "data incomplete" not in r.output
