"""Rollups: a replay's rollups equal, to the request, the counts taken straight from the log
lines; the kernel agrees with a slow twin; compaction, retention and a failing disk."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tests.support.wso2_traffic import expected_counts, make_records, outcome, write_log
from vigie.cli.main import main
from vigie.state import layout as L
from vigie.store.data import DataSink, SinkConfig
from vigie.store.parquet import ParquetStore
from vigie.store.query import AggQuery, merge_rows, quantile
from vigie.store.rollup import MEASURES, Accumulator, Rows
from vigie.wire.columns import ENGINE_DTYPES, Events, Interner

START = 1_764_547_200_000_000  # 2025-12-01T00:00:00Z
FOREVER = 1 << 62
DAY = L.DAY_US


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Three days of traffic through two gateways (two files), replayed with --store."""
    d = tmp_path_factory.mktemp("replay")
    records = make_records(11, START, 3.0, 12_000)
    write_log(d / "gw1.log", records[:7_000])
    write_log(d / "gw2.log", records[7_000:])
    result = CliRunner().invoke(
        main,
        [
            "replay",
            f"main={d / 'gw1.log'}",
            f"sale={d / 'gw2.log'}",
            "--store",
            str(d / "store"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return d / "store", records


def test_replay_rollups_equal_the_counts_of_the_log_lines(
    replayed: tuple[Path, list[dict[str, Any]]],
) -> None:
    store_dir, records = replayed
    store = ParquetStore(store_dir)
    want = expected_counts(records)
    got: Counter[tuple[str, str, str, str]] = Counter()
    rows = store.aggregate(
        AggQuery("daily", 0, FOREVER, ("time", "api", "application_id"), bucket_us=DAY)
    )
    for r in rows:
        day = np.datetime64(r.key[0], "us").astype("datetime64[D]").astype(str)
        for m in ("requests", "successes", "client_errors", "server_errors", "throttled"):
            if r.get(m):
                got[(day, r.key[1], r.key[2], m)] = r.get(m)
    assert got == +want
    assert sum(r.get("requests") for r in rows) == len(records)


def test_minute_and_daily_tables_agree(replayed: tuple[Path, list[dict[str, Any]]]) -> None:
    store = ParquetStore(replayed[0])
    q = (
        "time",
        "api",
        "api_version",
        "resource",
        "method",
        "application_id",
        "channel",
        "error_code",
    )
    daily = store.aggregate(AggQuery("daily", 0, FOREVER, q, bucket_us=DAY))
    minute = store.aggregate(AggQuery("minute", 0, FOREVER, q, bucket_us=DAY))
    assert [r.to_json() for r in daily] == [r.to_json() for r in minute]


def test_throttled_by_wso2_error_code(replayed: tuple[Path, list[dict[str, Any]]]) -> None:
    store_dir, records = replayed
    rows = ParquetStore(store_dir).aggregate(
        AggQuery("daily", 0, FOREVER, ("error_code",), histogram=False)
    )
    got = {r.key[0]: r.get("throttled") for r in rows if r.get("throttled")}
    want = Counter(int(r["errorCode"]) for r in records if outcome(r) == "throttled")
    assert got == dict(want)


def test_filters_and_latency_quantiles(replayed: tuple[Path, list[dict[str, Any]]]) -> None:
    store_dir, records = replayed
    store = ParquetStore(store_dir)
    [row] = store.aggregate(
        AggQuery("minute", 0, FOREVER, (), api="TrackAndTrace", application="Application 3")
    )
    mine = [
        r for r in records if r["apiName"] == "TrackAndTrace" and r["applicationId"] == "app-003"
    ]
    assert row.get("requests") == len(mine)
    lat = sorted(int(r.get("responseLatency", 0)) for r in mine)
    assert row.get("latency_sum_us") == 1000 * sum(lat)
    exact = float(np.quantile(lat, 0.5, method="inverted_cdf"))
    p50 = quantile(row.hist, 0.5)
    assert p50 is not None and abs(p50 - exact) <= 0.1 * exact + 1e-9


def _events(rng: np.random.Generator, n: int, t0: int) -> Events:
    cols: dict[str, Any] = {}
    for name, dt in ENGINE_DTYPES.items():
        cols[name] = np.zeros(n, dtype=dt)
    cols["event_time_us"] = (t0 + rng.integers(0, 3 * DAY, n)).astype(np.int64)
    cols["api_name"] = rng.integers(0, 4, n).astype(np.int32)  # 0 = no API: skipped
    cols["api_version"] = rng.integers(1, 3, n).astype(np.int32)
    cols["resource_template"] = rng.integers(0, 3, n).astype(np.int32)
    cols["application_id"] = rng.integers(0, 5, n).astype(np.int32)
    cols["application_name"] = cols["application_id"]
    cols["http_method"] = rng.integers(0, 4, n).astype(np.uint8)
    cols["http_status"] = rng.choice([0, 200, 304, 401, 429, 500, 503], n).astype(np.uint16)
    cols["error_code"] = rng.choice([0, 0, 900800, 101503], n).astype(np.int32)
    cols["flags"] = rng.integers(0, 2, n).astype(np.uint8)
    cols["latency_us"] = rng.integers(0, 5_000_000, n).astype(np.uint32)
    cols["backend_latency_us"] = rng.integers(0, 100_000, n).astype(np.uint32)
    cols["request_bytes"] = rng.integers(-1, 5000, n).astype(np.int64)
    cols["response_bytes"] = rng.integers(-1, 5000, n).astype(np.int64)
    return Events(cols, rng.integers(0, 3, n).astype(np.uint8))


def _naive_minutes(ev: Events) -> dict[tuple[int, ...], list[int]]:
    """The slow twin of the kernel: a dict of minute keys -> measures."""
    out: dict[tuple[int, ...], list[int]] = {}
    c = ev.columns
    for i in range(len(ev)):
        if c["api_name"][i] == 0:
            continue
        t = int(c["event_time_us"][i])
        key: tuple[int, ...] = (
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
        m = out.setdefault(key, [0] * len(MEASURES))
        st, ec, fl = int(c["http_status"][i]), int(c["error_code"][i]), int(c["flags"][i])
        if fl & 1 or 900800 <= ec <= 900899:  # a bare 429 is a 4xx (vigie.state.codes)
            k = 4
        elif st >= 500 or st < 100:
            k = 3
        elif st >= 400:
            k = 2
        else:
            k = 1
        m[0] += 1
        m[k] += 1
        m[5] += int(c["latency_us"][i])
        m[6] += int(c["backend_latency_us"][i])
        m[7] += max(0, int(c["request_bytes"][i]))
        m[8] += max(0, int(c["response_bytes"][i]))
    return out


def _minute_dict(rows: Rows) -> dict[tuple[int, ...], list[int]]:
    names = {"": 0, **{str(i): i for i in range(1, 9)}}
    methods = {"": 0, "GET": 1, "HEAD": 2, "POST": 3}
    chans = {"c0": 0, "c1": 1, "c2": 2}
    k = rows.keys
    out = {}
    for i in range(len(rows)):
        key: tuple[int, ...] = (
            int(k["minute_us"][i]),
            names[k["api"][i]],
            names[k["api_version"][i]],
            names[k["resource"][i]],
            methods[k["method"][i]],
            names[k["application_id"][i]],
            chans[k["channel"][i]],
            int(k["status"][i]),
            int(k["error_code"][i]),
        )
        out[key] = [int(v) for v in rows.measures[i]]
    return out


def test_kernel_equals_its_slow_twin_across_growth() -> None:
    rng = np.random.default_rng(5)
    interner = Interner([""] + [str(i) for i in range(1, 9)])
    acc = Accumulator(initial_rows=16)  # grows many times
    batches = [_events(rng, 700, START) for _ in range(3)]
    for ev in batches:
        acc.add(ev)
    drained = acc.drain(interner.string, ["c0", "c1", "c2"])
    assert drained is not None
    minute, daily = drained
    want = _naive_minutes(Events.concat(batches))
    assert _minute_dict(minute) == want
    assert int(daily.measures[:, 0].sum()) == sum(m[0] for m in want.values())
    assert int(minute.dense_hist().sum()) == sum(m[0] for m in want.values())
    assert acc.rows == 0 and acc.drain(interner.string, []) is None


def test_compaction_keeps_every_sum_and_survives_a_crash(
    replayed: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    import shutil  # noqa: PLC0415

    src = tmp_path / "store"
    shutil.copytree(replayed[0], src)
    store = ParquetStore(src)
    q = AggQuery("minute", 0, FOREVER, ("time", "api", "status"), bucket_us=3_600_000_000)
    before = [r.to_json() for r in store.aggregate(q)]
    day = store.days("minute")[0]
    d = store.day_dir("minute", day)
    # a second part file for the day (the same rows again): the day now counts twice
    [part] = store.live_files(d)
    shutil.copy(part, d / f"p-{int(part.name[2:-8]) + 1:020d}.parquet")
    doubled = merge_rows([store.aggregate(q)])
    assert store.compact("minute", day)
    assert len(store.live_files(d)) == 1
    assert [r.to_json() for r in store.aggregate(q)] == [r.to_json() for r in doubled]
    # a crash after the merged file was written but before the parts were deleted
    merged = store.live_files(d)[0]
    shutil.copy(merged, d / "p-00000000000000000001.parquet")
    assert [r.to_json() for r in store.aggregate(q)] == [r.to_json() for r in doubled]
    assert before != [r.to_json() for r in doubled]


class FailingStore(ParquetStore):
    """A Parquet store whose disk is full until ``heal()``."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.full = True

    def write_rows(self, rows: Rows) -> int:
        if self.full:
            raise OSError(28, "No space left on device", str(self.root))
        return super().write_rows(rows)


def test_a_full_disk_degrades_the_store_and_never_stops_ingestion(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    interner = Interner([""] + [str(i) for i in range(1, 9)])
    store = FailingStore(tmp_path / "data")
    sink = DataSink(store, interner.string, ["c0", "c1", "c2"], SinkConfig(flush_seconds=3600))
    batches = [_events(rng, 500, START) for _ in range(4)]
    for ev in batches[:2]:
        assert sink.offer(ev)
        sink.add(sink._queue.get_nowait())
    sink.flush()
    st = sink.status()
    assert st["state"].startswith("degraded: No space left on device")
    assert st["unwritten_rows"] > 0 and sink.counters["store_write_failures"] == 1
    for ev in batches[2:]:  # ingestion goes on
        assert sink.offer(ev)
        sink.add(sink._queue.get_nowait())
    store.full = False
    sink.flush()
    assert sink.status()["state"] == "ok"
    [row] = store.aggregate(AggQuery("daily", 0, FOREVER))
    assert row.get("requests") == sum(m[0] for m in _naive_minutes(Events.concat(batches)).values())


def test_past_the_memory_cap_minute_rows_go_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    interner = Interner([""] + [str(i) for i in range(1, 9)])
    store = FailingStore(tmp_path / "data")
    sink = DataSink(store, interner.string, ["c0", "c1", "c2"], SinkConfig(memory_cap=4 << 20))
    total = 0
    for _ in range(6):
        ev = _events(rng, 4000, START)
        total += int((ev["api_name"] != 0).sum())
        sink.add(ev)
        sink.flush()
    assert sink.counters["minute_rows_dropped"] > 0
    assert sink.counters["daily_rows_dropped"] == 0
    store.full = False
    sink.flush()
    [row] = store.aggregate(AggQuery("daily", 0, FOREVER))
    assert row.get("requests") == total  # the long-term figures are whole


def test_a_real_full_tmpfs(tmp_path: Path) -> None:
    """The store on a 1 MiB tmpfs: it fills, the sink degrades, events keep being taken."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True
        ).returncode
    ):
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        rng = np.random.default_rng(4)
        interner = Interner([""] + [str(i) for i in range(1, 9)])
        store = ParquetStore(mnt / "data")
        sink = DataSink(store, interner.string, ["c0", "c1", "c2"], SinkConfig())
        for k in range(40):
            ev = _events(rng, 3000, START + k * 3 * DAY)
            assert sink.offer(ev)
            sink.add(sink._queue.get_nowait())
            sink.flush()
            if sink.degraded:
                break
        assert "No space left on device" in sink.degraded, sink.status()
        assert sink.status()["bytes"]["minute"] > 0
        assert sink.offer(_events(rng, 100, START))  # still taking events
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_retention_deletes_old_days_per_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    interner = Interner([""] + [str(i) for i in range(1, 9)])
    store = ParquetStore(tmp_path / "data")
    sink = DataSink(
        store,
        interner.string,
        ["c0", "c1", "c2"],
        SinkConfig(short_retention_days=2, long_retention_days=5),
    )
    for k in range(8):
        sink.add(_one_day(rng, START + k * DAY))
    sink.flush()
    assert [(d - START) // DAY for d in store.days("minute")] == [6, 7]
    assert [(d - START) // DAY for d in store.days("daily")] == [3, 4, 5, 6, 7]
    assert sink.counters["days_deleted_by_retention"] == 6 + 3


def _one_day(rng: np.random.Generator, day_start: int) -> Events:
    ev = _events(rng, 300, day_start)
    ev.columns["event_time_us"] = (day_start + rng.integers(0, DAY, 300)).astype(np.int64)
    return ev
