"""The tables that make the store fast answer exactly like the slow way.

The subscription tables (``sub_daily``, ``sub_monthly``) give the same sums as the daily
table; the planner covers every day of a range once; a store written before those tables
existed is read from the daily table until the writer has derived them; the tiered
compaction of an open day never counts a row twice, even after a crash; months follow the
long retention; and the kernel that evicts old minutes from its tables still gives one row
per key."""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.wso2_traffic import make_records, write_log
from tests.unit.store.test_store_rollups import _events, _minute_dict, _naive_minutes
from vigie.replay import replay_into
from vigie.sources.wso2_log import ReplayStats
from vigie.state import layout as L
from vigie.state.engine import State
from vigie.state.primitives import latency_bucket
from vigie.store import _rollup_kernels as RK
from vigie.store.data import DataSink, SinkConfig
from vigie.store.parquet import COMPACT_PARTS, LAYOUT, DataFile, ParquetStore, day_name
from vigie.store.plan import NEVER, Part, plan
from vigie.store.query import AggQuery, AggRow, finish
from vigie.store.rollup import Accumulator, Rows, month_start
from vigie.wire.columns import Events, Interner

DAY = L.DAY_US
START = 1_759_276_800_000_000  # 2025-10-01T00:00:00Z
FOREVER = 1 << 62


def _month(t: int) -> int:
    return int(month_start(np.array([t]))[0])


def test_the_plan_covers_every_day_of_a_range_once() -> None:
    rng = random.Random(4)
    for _ in range(3000):
        a = START + rng.randint(-90, 500) * DAY + rng.choice([0, rng.randrange(DAY)])
        b = a + rng.randint(1, 420) * DAY + rng.choice([0, rng.randrange(DAY)])
        sub_from = rng.choice([0, NEVER, START + rng.randint(-30, 400) * DAY])
        groups = rng.choice([(), ("time",), ("error_code",), ("api", "application_id")])
        q = AggQuery("daily", a, b, groups, bucket_us=DAY if "time" in groups else 0)
        days: list[int] = []
        for p in plan(q, sub_from):
            assert p.from_us < p.to_us
            step = DAY
            if p.table == "sub_monthly":
                assert _month(p.from_us) == p.from_us and _month(p.to_us) == p.to_us
                assert "time" not in groups
            if p.table != "daily":
                assert p.from_us >= sub_from  # the subscription tables only where whole
            if p.table == "sub_daily":
                assert "error_code" not in groups
            t = -(-p.from_us // step) * step
            while t < p.to_us:
                days.append(t)
                t += step
        first = -(-a // DAY) * DAY
        assert sorted(days) == list(range(first, b, DAY))
    q = AggQuery("daily", 0, FOREVER, ("resource",))
    assert plan(q) == [Part("daily", 0, FOREVER)]  # resources: only the daily table has them
    assert plan(AggQuery("minute", 5, 9)) == [Part("minute", 5, 9)]


@pytest.fixture(scope="module")
def long_store(tmp_path_factory: pytest.TempPathFactory) -> ParquetStore:
    """Ten weeks of traffic (three calendar months), written by a sink flushing often."""
    d = tmp_path_factory.mktemp("long")
    records = make_records(17, START + 5 * DAY, 70.0, 9_000)
    write_log(d / "gw1.log", records[:5_000])
    write_log(d / "gw2.log", records[5_000:])
    state = State()
    store = ParquetStore(d / "data")
    sink = DataSink(store, state.interner.string, state.channels, SinkConfig(flush_seconds=3600))
    batches = 0

    def on_batch(ev: Events) -> None:
        nonlocal batches
        batches += 1
        sink.add(ev)
        if batches % 2 == 0:
            sink.flush()

    replay_into(
        state, [f"main={d / 'gw1.log'}", f"sale={d / 'gw2.log'}"], ReplayStats(), None, on_batch
    )
    sink.flush()
    assert sink.status()["state"] == "ok"
    assert len(store.days("sub_monthly")) == 3
    return store


def _daily_only(store: ParquetStore, q: AggQuery) -> list[AggRow]:
    return finish(store.aggregate_parts(q, [Part("daily", q.from_us, q.to_us)]))


QUERIES = [
    AggQuery("daily", 0, FOREVER),
    AggQuery("daily", 0, FOREVER, ("api", "api_version")),
    AggQuery("daily", START + 9 * DAY, START + 71 * DAY, ("application_id",)),
    AggQuery("daily", START + 9 * DAY + 5, START + 66 * DAY - 5, ("error_code",)),
    AggQuery("daily", START + 20 * DAY, START + 80 * DAY, ("application_id", "api", "api_version")),
    AggQuery("daily", 0, FOREVER, ("time", "application_id"), bucket_us=7 * DAY),
    AggQuery("daily", START, START + 95 * DAY, ("channel", "error_code"), api="TrackAndTrace"),
    AggQuery("daily", 0, FOREVER, ("api",), application="Application 4", channel="sale"),
    AggQuery("daily", START + 31 * DAY, START + 61 * DAY, ("time",), bucket_us=DAY),
]


@pytest.mark.parametrize("q", QUERIES, ids=lambda q: "-".join(q.group_by) or "total")
def test_the_subscription_tables_answer_like_the_daily_table(
    long_store: ParquetStore, q: AggQuery
) -> None:
    parts = plan(q, long_store.sub_from())
    assert any(p.table != "daily" for p in parts)
    want = [r.to_json() for r in _daily_only(long_store, q)]
    assert want, "the query should find rows"
    assert [r.to_json() for r in long_store.aggregate(q)] == want


def test_a_store_written_before_the_subscription_tables_is_read_then_backfilled(
    long_store: ParquetStore, tmp_path: Path
) -> None:
    shutil.copytree(long_store.root, tmp_path / "old")
    old = ParquetStore(tmp_path / "old")
    shutil.rmtree(old.root / "sub_daily")
    shutil.rmtree(old.root / "sub_monthly")
    (old.root / LAYOUT).unlink()
    assert old.sub_from() == NEVER  # daily rows but no word on the subscription tables
    for q in QUERIES:
        assert all(p.table == "daily" for p in plan(q, old.sub_from()))
        assert [r.to_json() for r in old.aggregate(q)] == [
            r.to_json() for r in long_store.aggregate(q)
        ]
    assert old.backfill() == len(old.days("daily"))
    assert old.sub_from() == 0 and old.backfill() == 0
    months = sorted({_month(d) for d in old.days("daily")})
    assert old.days("sub_daily") == old.days("sub_monthly") == months
    for q in QUERIES:
        assert [r.to_json() for r in old.aggregate(q)] == [
            r.to_json() for r in long_store.aggregate(q)
        ]
    new = ParquetStore(tmp_path / "new")
    assert new.sub_from() == 0  # a new store holds them from the start


def _rows_of(rng: np.random.Generator, t0: int, n: int) -> list[Events]:
    """Batches of events in time order within one day (what a gateway sends)."""
    out = []
    for k in range(n):
        ev = _events(rng, 200, t0)
        ev.columns["event_time_us"] = np.sort(
            t0 + k * 600_000_000 + rng.integers(0, 600_000_000, 200)
        ).astype(np.int64)
        out.append(ev)
    return out


def test_an_open_day_is_compacted_in_runs_and_a_crash_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(12)
    interner = Interner([""] + [str(i) for i in range(1, 9)])
    store = ParquetStore(tmp_path / "data")
    sink = DataSink(store, interner.string, ["c0", "c1", "c2"], SinkConfig(flush_seconds=3600))
    day = START + 40 * DAY
    q = AggQuery("minute", 0, FOREVER, ("time", "api", "status"), bucket_us=3_600_000_000)
    batches = _rows_of(rng, day, 2 * COMPACT_PARTS + 3)
    for ev in batches:
        sink.add(ev)
        sink.flush()  # one part per flush; the day stays open (nothing newer)
    d = store.day_dir("minute", day)
    files = store.data_files(d)
    runs = [f for f in files if f.kind == "c"]
    assert len(runs) == 2 and not any(f.kind == "m" for f in files)
    assert len(store.live_files(d)) == 2 + 3  # two runs and the parts after them
    want = _naive_minutes(Events.concat(batches))
    [total] = store.aggregate(AggQuery("minute", 0, FOREVER))
    assert total.get("requests") == sum(m[0] for m in want.values())
    before = [r.to_json() for r in store.aggregate(q)]
    # a crash after a run was written but before its parts were deleted
    part = DataFile(d / f"p-{runs[0].lo + 1:020d}.parquet", "p", runs[0].lo + 1, runs[0].lo + 1)
    shutil.copy(store.live_files(d)[-1], part.path)
    assert runs[0].covers(part)
    assert [r.to_json() for r in store.aggregate(q)] == before
    # the day closes: one sorted file, the same sums
    assert store.compact("minute", day)
    assert len(store.live_files(d)) == 1
    assert [r.to_json() for r in store.aggregate(q)] == before


def test_runs_of_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    interner = Interner([""] + [str(i) for i in range(1, 9)])
    store = ParquetStore(tmp_path / "data", compact_at=3)
    day = START + 3 * DAY
    acc = Accumulator()
    q = AggQuery("minute", 0, FOREVER, ("api", "channel"))
    total = 0
    for ev in _rows_of(rng, day, 3 * 3):
        acc.add(ev)
        total += int((ev["api_name"] != 0).sum())
        drained = acc.drain(interner.string, ["c0", "c1", "c2"])
        assert drained is not None
        store.write_rows(drained[0])
        store.compact_parts("minute", day)
    d = store.day_dir("minute", day)
    live = store.live(store.data_files(d))
    assert len(live) == 1 and live[0].kind == "c"
    assert sum(r.get("requests") for r in store.aggregate(q)) == total


def test_a_month_goes_once_all_its_days_are_past_retention(
    long_store: ParquetStore, tmp_path: Path
) -> None:
    shutil.copytree(long_store.root, tmp_path / "data")
    store = ParquetStore(tmp_path / "data")
    months = store.days("sub_monthly")
    newest = store.days("daily")[-1] + DAY
    # the first month's last day stays within retention, the days before it go
    keep = (newest - (months[1] - 2 * DAY)) // DAY
    gone = store.enforce_retention(newest, short_days=0, long_days=keep)
    assert store.days("sub_monthly") == store.days("sub_daily") == months
    assert gone and all(g.startswith("daily/") for g in gone)
    gone = store.enforce_retention(newest, short_days=0, long_days=keep - 1)
    assert store.days("sub_monthly") == store.days("sub_daily") == months[1:]
    month = day_name(months[0])[:7]
    assert gone == [
        "daily/" + day_name(months[1] - DAY),
        f"sub_daily/{month}",
        f"sub_monthly/{month}",
    ]


def test_evicting_old_minutes_keeps_one_row_per_key() -> None:
    """Events in time order with some late ones: old minutes leave the kernel's tables, late
    events make second rows for their keys, and the drain folds them."""
    rng = np.random.default_rng(21)
    interner = Interner([""] + [str(i) for i in range(1, 9)])
    acc = Accumulator(initial_rows=64)
    batches = []
    for k in range(40):
        ev = _events(rng, 300, START)
        c = ev.columns
        busy = rng.random(300) < 0.5  # one busy key: rows with many latency buckets
        for col in ("api_name", "api_version", "resource_template", "application_id"):
            c[col][busy] = 1
        c["application_name"][busy] = 1
        c["http_status"][busy] = 200
        c["error_code"][busy] = 0
        t = START + k * 120_000_000 + np.sort(rng.integers(0, 120_000_000, 300))
        late = rng.random(300) < 0.05
        t[late] -= rng.integers(300_000_000, 3_000_000_000, int(late.sum()))
        c["event_time_us"] = t.astype(np.int64)
        batches.append(ev)
        acc.add(ev)
    assert acc.meta[RK.META_HORIZON] > 0 and acc.meta[RK.META_CLOSED] > 0
    assert acc.meta[RK.META_DUPES] == 1
    drained = acc.drain(interner.string, ["c0", "c1", "c2"])
    assert drained is not None
    minute = drained[0]
    want = _naive_minutes(Events.concat(batches))
    assert _minute_dict(minute) == want and len(minute) == len(want)
    # the histograms: each row's buckets are those of its events' latencies
    every = Events.concat(batches)
    lat: dict[tuple[int, ...], Counter[int]] = {}
    for key, ms in zip(_keys(every), every["latency_us"].tolist(), strict=True):
        if key is not None:
            lat.setdefault(key, Counter())[int(latency_bucket(ms))] += 1
    got = _minute_dict_hists(minute)
    assert got == {k: dict(v) for k, v in lat.items()}


def _keys(ev: Events) -> Iterator[tuple[int, ...] | None]:
    """The minute key of each event (as ``_naive_minutes`` makes it), None without an API."""
    c = ev.columns
    for i in range(len(ev)):
        if c["api_name"][i] == 0:
            yield None
            continue
        t = int(c["event_time_us"][i])
        yield (
            t - t % 60_000_000,
            int(c["api_name"][i]),
            int(c["api_version"][i]),
            int(c["resource_template"][i]),
            int(c["http_method"][i]),
            int(c["application_id"][i]),
            int(ev.channel[i]),
            int(c["http_status"][i]),
            int(c["error_code"][i]),
        )


def _minute_dict_hists(rows: Rows) -> dict[tuple[int, ...], dict[int, int]]:
    """Each row's histogram by its key (the key of ``_minute_dict``)."""
    keys = list(_minute_dict(rows))
    out = {}
    for i, key in enumerate(keys):
        a, b = int(rows.hist_off[i]), int(rows.hist_off[i + 1])
        out[key] = dict(zip(rows.hist_idx[a:b].tolist(), rows.hist_cnt[a:b].tolist(), strict=True))
    return out


def test_the_writer_thread_yields_the_cores_to_ingestion(tmp_path: Path) -> None:
    """The writer runs at the lowest CPU priority; the thread that feeds it keeps its own."""
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    interner = Interner([""] + [str(i) for i in range(1, 9)])
    store = ParquetStore(tmp_path / "data")
    sink = DataSink(store, interner.string, ["c0"], SinkConfig())
    sink.start()
    try:
        assert sink._thread is not None and sink._thread.native_id is not None
        tid = sink._thread.native_id
        deadline = time.monotonic() + 30
        while os.getpriority(os.PRIO_PROCESS, tid) < SinkConfig().writer_nice:
            assert time.monotonic() < deadline, "the writer thread kept its priority"
            time.sleep(0.01)
        assert sink.offer(_events(np.random.default_rng(3), 100, START))
    finally:
        sink.close()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
    [row] = store.aggregate(AggQuery("daily", 0, FOREVER))
    assert row.get("requests") > 0
