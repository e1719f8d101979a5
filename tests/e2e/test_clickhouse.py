"""The same rollups in the embedded store and in a real ClickHouse give the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clickhouse_server import ClickHouse, clickhouse  # noqa: F401 - the fixture
from tests.support.wso2_traffic import make_records, write_log
from vigie.replay import replay_into
from vigie.reports import build
from vigie.sources.wso2_log import ReplayStats
from vigie.state import layout as L
from vigie.state.engine import State
from vigie.store.changes import ChangeTracker
from vigie.store.clickhouse import ClickHouseStore
from vigie.store.data import DataSink, SinkConfig
from vigie.store.parquet import ParquetStore
from vigie.store.query import AggQuery, StoreUnavailable
from vigie.wire.columns import Events

START = 1_764_547_200_000_000
DAY = L.DAY_US
FOREVER = 1 << 62


@pytest.fixture(scope="module")
def both(
    clickhouse: ClickHouse,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ParquetStore, ClickHouseStore]]:
    """One replay written to both stores by two sinks fed the same batches."""
    d = tmp_path_factory.mktemp("ch")
    records = make_records(31, START, 2.5, 8_000)
    write_log(d / "gw1.log", records[:5_000])
    write_log(d / "gw2.log", records[5_000:])
    state = State()
    pq_store = ParquetStore(d / "data")
    ch_store = ClickHouseStore(clickhouse.url, "vigie_test")
    ch_store.drop_all()
    cfg = SinkConfig(flush_seconds=3600)
    sinks = [
        DataSink(s, state.interner.string, state.channels, cfg, name=n)
        for s, n in ((pq_store, "parquet"), (ch_store, "clickhouse"))
    ]
    tracker = ChangeTracker()
    batches = 0

    def on_batch(ev: Events) -> None:
        nonlocal batches
        batches += 1
        for s in sinks:
            s.add(ev)
        if batches % 3 == 0:  # several parts per day in each store
            changes = tracker.poll_classes(state)
            for s in sinks:
                s.record_changes(list(changes))
                s.flush()

    replay_into(
        state, [f"main={d / 'gw1.log'}", f"sale={d / 'gw2.log'}"], ReplayStats(), None, on_batch
    )
    for s in sinks:
        s.flush()
        assert s.status()["state"] == "ok", s.status()
    yield pq_store, ch_store
    ch_store.drop_all()


QUERIES = [
    AggQuery("daily", 0, FOREVER),
    AggQuery("daily", 0, FOREVER, ("time", "api", "application_id"), bucket_us=DAY),
    AggQuery("daily", START + DAY, START + 2 * DAY, ("api", "api_version", "error_code")),
    AggQuery("daily", 0, FOREVER, ("resource", "method", "channel"), application="Application 4"),
    AggQuery("minute", 0, FOREVER, ("time",), bucket_us=3_600_000_000, api="TrackAndTrace"),
    AggQuery(
        "minute",
        START + 8 * 3_600_000_000,
        START + 9 * 3_600_000_000,
        ("time", "application_id", "status", "error_code"),
        bucket_us=60_000_000,
    ),
    AggQuery("minute", 0, FOREVER, ("channel", "status"), histogram=False, channel="sale"),
]


@pytest.mark.parametrize("q", QUERIES, ids=lambda q: f"{q.table}-{'-'.join(q.group_by)}")
def test_the_same_query_gives_the_same_answer(
    both: tuple[ParquetStore, ClickHouseStore], q: AggQuery
) -> None:
    pq_store, ch_store = both
    want = [r.to_json() for r in pq_store.aggregate(q)]
    assert want, "the query should find rows"
    assert [r.to_json() for r in ch_store.aggregate(q)] == want


def test_reports_and_autopsies_read_the_same(both: tuple[ParquetStore, ClickHouseStore]) -> None:
    pq_store, ch_store = both
    scope = build.Scope(START, START + 3 * DAY)
    assert build.report(ch_store, scope) == build.report(pq_store, scope)
    scope = build.Scope(START + DAY, START + DAY + 1_800_000_000, api="TrackAndTrace")
    assert build.autopsy(ch_store, scope) == build.autopsy(pq_store, scope)
    assert ch_store.changes(0, FOREVER) == pq_store.changes(0, FOREVER)


def test_disk_use_and_retention(both: tuple[ParquetStore, ClickHouseStore]) -> None:
    _, ch_store = both
    assert ch_store.disk_usage()["daily"] > 0
    # keep 1 day of per-minute data: only the newest day (the Parquet store's rule too)
    gone = ch_store.enforce_retention(START + 2 * DAY, short_days=1, long_days=0)
    assert sorted(gone) == ["minute/2025-12-01", "minute/2025-12-02"]
    assert not ch_store.aggregate(AggQuery("minute", START, START + 2 * DAY))
    assert ch_store.aggregate(AggQuery("minute", START + 2 * DAY, FOREVER))
    assert ch_store.aggregate(AggQuery("daily", START, START + DAY))


def test_an_unreachable_clickhouse_degrades_the_sink(tmp_path: Path) -> None:
    import numpy as np  # noqa: PLC0415

    from tests.unit.store.test_store_rollups import _events  # noqa: PLC0415
    from vigie.wire.columns import Interner  # noqa: PLC0415

    store = ClickHouseStore("http://127.0.0.1:9", "vigie_nowhere", timeout=2)
    with pytest.raises(StoreUnavailable):
        store.aggregate(AggQuery("daily", 0, FOREVER))
    interner = Interner([""] + [str(i) for i in range(1, 9)])
    sink = DataSink(store, interner.string, ["c0", "c1", "c2"], name="clickhouse")
    sink.add(_events(np.random.default_rng(2), 300, START))
    sink.flush()
    assert sink.status()["state"].startswith("degraded: ClickHouse at http://127.0.0.1:9")
    assert sink.status()["unwritten_rows"] > 0
