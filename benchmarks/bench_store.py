"""The data store: what the rollups cost the ingest path, how many bytes a day takes at the
seed's scale, and how long a 14-day autopsy and a 1-year report take.

Traffic model (the seed's platform): 2,500 subscriptions (600 applications x 600 APIs, drawn
at random), ~10 resources per API, 4 channels, 40 M requests a day following a morning-peak
curve, ~3 % throttled (6 WSO2 codes), ~1 % server errors (2 codes), ~4 % client errors,
log-normal latencies. The day is pushed through the real path (kernel -> rows -> Parquet,
the open day compacted in runs as the writer does, then closed); 14 days of per-minute data
and 365 days of per-day rows are that day copied with shifted times (DuckDB), the months of
the subscription table are the sums of their copied days, then the real autopsy/report code
runs on them. Side by side: ingest with the store and without it; the 1-year report as read
now and as read from the per-resource daily table alone (what every report read before the
subscription tables).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks._harness import Result
from vigie.reports import build
from vigie.state import layout as L
from vigie.state.engine import State
from vigie.store.data import DataSink, SinkConfig
from vigie.store.parquet import (
    COMPACT_LEVEL,
    ROW_GROUP_ROWS,
    ParquetStore,
    day_name,
    sql_str,
    write_parquet,
)
from vigie.store.plan import Part
from vigie.store.query import AggQuery, AggRow, finish
from vigie.store.rollup import MEASURES, ROLLUP_TABLES, TIME_COLUMN, Accumulator, month_start
from vigie.wire.columns import ENGINE_DTYPES, Events

DAY = L.DAY_US
T0 = 1_767_225_600_000_000  # 2026-01-01
CHANNELS = ["main", "sale", "preparation", "delivery"]


class Platform:
    def __init__(self, rng: np.random.Generator, interner_base: int = 1) -> None:
        self.n_apps, self.n_apis, self.n_subs, self.res_per_api = 600, 600, 2500, 10
        self.sub_app = rng.integers(0, self.n_apps, self.n_subs)
        self.sub_api = rng.integers(0, self.n_apis, self.n_subs)
        self.weight = rng.pareto(1.2, self.n_subs) + 0.05
        self.weight /= self.weight.sum()
        self.base = interner_base

    def strings(self) -> list[str]:
        out = [""]
        out += [f"app-{i}" for i in range(self.n_apps)]
        out += [f"Application {i}" for i in range(self.n_apps)]
        out += [f"API{i}" for i in range(self.n_apis)]
        out += ["1.0.0"]
        out += [f"/resource/{r}" for r in range(self.res_per_api)]
        return out

    def events(self, rng: np.random.Generator, n: int, t_from: int, t_to: int) -> Events:
        sub = rng.choice(self.n_subs, n, p=self.weight)
        cols = {name: np.zeros(n, dtype=dt) for name, dt in ENGINE_DTYPES.items()}
        cols["event_time_us"] = np.sort(rng.integers(t_from, t_to, n)).astype(np.int64)
        app = self.sub_app[sub]
        cols["application_id"] = (1 + app).astype(np.int32)
        cols["application_name"] = (1 + self.n_apps + app).astype(np.int32)
        cols["api_name"] = (1 + 2 * self.n_apps + self.sub_api[sub]).astype(np.int32)
        cols["api_version"] = np.full(n, 1 + 2 * self.n_apps + self.n_apis, dtype=np.int32)
        res = rng.integers(0, self.res_per_api, n)
        cols["resource_template"] = (2 + 2 * self.n_apps + self.n_apis + res).astype(np.int32)
        cols["http_method"] = (1 + (res % 3)).astype(np.uint8)
        u = rng.random(n)
        status = np.where(u < 0.03, 429, np.where(u < 0.04, 503, np.where(u < 0.08, 404, 200)))
        cols["http_status"] = status.astype(np.uint16)
        code = np.zeros(n, dtype=np.int32)
        thr = u < 0.03
        code[thr] = rng.choice([900800, 900801, 900802, 900803, 900804, 900806], thr.sum())
        srv = (u >= 0.03) & (u < 0.04)
        code[srv] = rng.choice([101503, 101504], srv.sum())
        cols["error_code"] = code
        cols["latency_us"] = np.minimum(rng.lognormal(10.3, 0.9, n), 4e9).astype(np.uint32)
        cols["backend_latency_us"] = (cols["latency_us"] * 0.8).astype(np.uint32)
        cols["request_bytes"] = rng.integers(100, 2000, n)
        cols["response_bytes"] = rng.integers(200, 20000, n)
        return Events(cols, (sub % 4).astype(np.uint8))


def _diurnal_minutes(per_day: int) -> npt.NDArray[np.int64]:
    """Requests per minute over a day with a morning peak (sums to per_day)."""
    m = np.arange(1440)
    curve = 0.25 + np.exp(-(((m - 540) / 90.0) ** 2)) + 0.5 * np.exp(-(((m - 840) / 150.0) ** 2))
    out: npt.NDArray[np.int64] = np.floor(curve / curve.sum() * per_day).astype(np.int64)
    out[540] += per_day - out.sum()
    return out


def _one_day(
    store: ParquetStore,
    platform: Platform,
    per_day: int,
    rng: np.random.Generator,
    names: list[str],
) -> tuple[float, int]:
    """Push one day through the accumulator into the store (flushing every 10 minutes of
    event time, like a sidecar flushing every few seconds would), then compact the day like
    the writer does once it is over; return (seconds spent by the store, events)."""
    acc = Accumulator()
    minutes = _diurnal_minutes(per_day)
    spent = 0.0
    events = 0
    for block in range(0, 1440, 10):
        n = int(minutes[block : block + 10].sum())
        ev = platform.events(rng, n, T0 + block * 60_000_000, T0 + (block + 10) * 60_000_000)
        t = time.perf_counter()
        acc.add(ev)
        events += n
        drained = acc.drain(names.__getitem__, CHANNELS, subscriptions=True)
        assert drained is not None
        for rows in drained:
            store.write_rows(rows)
        store.compact_due(T0)  # the open day: what the writer does after each flush
        spent += time.perf_counter() - t
    t = time.perf_counter()
    for table in ROLLUP_TABLES:
        store.compact(table, T0)
    return spent + time.perf_counter() - t, events


def _copy_days(store: ParquetStore, table: str, days: int) -> None:
    """Copy day T0 of ``table`` to the ``days - 1`` days before it (times shifted), each as
    one compacted file in the same order and row groups (DuckDB writes them: fast; its
    encodings differ a little from the store's, the bytes per day are measured on T0)."""
    [src] = store.live_files(store.day_dir(table, T0))
    tcol = TIME_COLUMN[table]
    with duckdb.connect(config={"threads": 2}) as con:
        for k in range(1, days):
            out = store.day_dir(table, T0 - k * DAY)
            out.mkdir(parents=True, exist_ok=True)
            con.execute(
                f"COPY (SELECT * REPLACE ({tcol} - {k * DAY} AS {tcol}, "
                f"day - INTERVAL {k} DAY AS day) FROM read_parquet({sql_str(str(src))})) "
                f"TO {sql_str(str(out / 'm-00000000000000000001.parquet'))} "
                f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
            )


def _shifted(data: pa.Table, tcol: str, by_us: int) -> pa.Table:
    t = data.column(tcol).to_numpy() - by_us
    data = data.set_column(data.schema.get_field_index(tcol), tcol, pa.array(t, pa.int64()))
    day = pa.array((t // DAY).astype(np.int32), pa.date32())
    return data.set_column(data.schema.get_field_index("day"), "day", day)


def _months_of_copies(store: ParquetStore, days: int) -> None:
    """The month partitions of the subscription tables for the copied days: ``sub_daily``
    holds T0's rows once per day of the month (times shifted); every day being the same
    copy, ``sub_monthly`` is T0's monthly rows with every sum times the days of the month
    (what the writer would have written, added up, in as many rows)."""
    [day_src] = store.live_files(store.day_dir("sub_daily", T0))
    [month_src] = store.live_files(store.day_dir("sub_monthly", T0))
    one_day, one_month = pq.read_table(day_src), pq.read_table(month_src)
    by_month: dict[int, list[int]] = {}
    for k in range(days):
        by_month.setdefault(int(month_start(np.array([T0 - k * DAY]))[0]), []).append(k)
    for table in ("sub_daily", "sub_monthly"):
        shutil.rmtree(store.root / table, ignore_errors=True)
    for month, ks in by_month.items():
        copies = pa.concat_tables([_shifted(one_day, "day_us", k * DAY) for k in sorted(ks)])
        data = one_month
        for m in MEASURES:
            data = data.set_column(
                data.schema.get_field_index(m), m, pc.multiply(data.column(m), len(ks))
            )
        cnt = data.column("lat_cnt").combine_chunks()
        data = data.set_column(
            data.schema.get_field_index("lat_cnt"),
            "lat_cnt",
            pa.ListArray.from_arrays(cnt.offsets, pc.multiply(cnt.values, len(ks))),
        )
        data = data.set_column(0, "month_us", pa.array(np.full(len(data), month), pa.int64()))
        data = data.set_column(
            1, "day", pa.array(np.full(len(data), month // DAY, dtype=np.int32), pa.date32())
        )
        for table, rows in (("sub_daily", copies), ("sub_monthly", data)):
            out = store.day_dir(table, month)
            out.mkdir(parents=True, exist_ok=True)
            write_parquet(rows, out / "m-00000000000000000001.parquet", COMPACT_LEVEL)


def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*.parquet"))


def _ingest(
    platform: Platform, batches: list[Events], with_store: bool, root: Path
) -> tuple[float, float]:
    """(ingest seconds, seconds until the store has everything) for the batches."""
    state = State()
    state.interner.intern_many(platform.strings()[1:])
    for c in CHANNELS:
        state.channel_index(c)
    sink = None
    if with_store:
        sink = DataSink(
            ParquetStore(root), state.interner.string, state.channels, SinkConfig(flush_seconds=2.0)
        )
        sink.start()
    lock = threading.Lock()
    t = time.perf_counter()
    for ev in batches:
        with lock:  # what Sidecar.apply_batch does
            state.apply(ev)
            if sink is not None:
                sink.offer(ev)
    ingest = time.perf_counter() - t
    if sink is not None:
        sink.close()
        assert sink.counters["rollup_events_dropped"] == 0
    return ingest, time.perf_counter() - t


def run(quick: bool) -> list[Result]:
    rng = np.random.default_rng(1)
    platform = Platform(rng)
    names = platform.strings()
    results: list[Result] = []
    tmp = Path(tempfile.mkdtemp(prefix="vigie-bench-store-"))
    try:
        # ---- ingest with and without the store, side by side (alternated) ----
        n_events = 400_000 if quick else 4_000_000
        per_batch = 4096
        evs = platform.events(rng, n_events, T0, T0 + DAY // 4)
        batches = [evs.take(slice(k, k + per_batch)) for k in range(0, n_events, per_batch)]
        _ingest(platform, batches[:20], True, tmp / "warm")  # compile the kernels
        base, with_store, end_to_end = [], [], []
        for k in range(5 if quick else 3):
            base.append(_ingest(platform, batches, False, tmp / f"a{k}")[0])
            w, e = _ingest(platform, batches, True, tmp / f"b{k}")
            with_store.append(w)
            end_to_end.append(e)
        b, w, e = statistics.median(base), statistics.median(with_store), min(end_to_end)
        best = (min(with_store) / min(base) - 1) * 100
        results.append(
            Result(
                "ingest with the data store (writer thread)",
                "events/s",
                n_events / w,
                naive=n_events / b,
                naive_label="ingest without the store",
                notes=f"{(w / b - 1) * 100:+.1f} % ingest time (median of {len(base)} runs each, "
                f"alternated; best against best {best:+.1f} %); everything written after "
                f"{e:.2f} s ({n_events / e:,.0f} events/s end to end)",
                extra={
                    "overhead_pct": (w / b - 1) * 100,
                    "overhead_best_pct": best,
                    "end_to_end_events_per_s": n_events / e,
                    "runs_without_s": base,
                    "runs_with_s": with_store,
                },
            )
        )
        acc = Accumulator()
        t = time.perf_counter()
        for ev in batches:
            acc.add(ev)
        kernel = time.perf_counter() - t
        t = time.perf_counter()
        drained = acc.drain(names.__getitem__, CHANNELS, subscriptions=True)
        drain = time.perf_counter() - t
        assert drained is not None
        results.append(
            Result(
                "rollup kernel alone",
                "events/s",
                n_events / kernel,
                notes=f"then {drain:.2f} s to hand over "
                + ", ".join(f"{len(r):,} {r.table}" for r in drained)
                + " rows",
            )
        )

        # ---- one day at the seed's scale ----
        per_day = 4_000_000 if quick else 40_000_000
        store = ParquetStore(tmp / "day")
        secs, events = _one_day(store, platform, per_day, rng, names)
        size = {tb: _dir_bytes(tmp / "day" / tb) for tb in ROLLUP_TABLES}
        rows = {}
        with duckdb.connect() as con:
            for tb in ROLLUP_TABLES:
                [f] = store.live_files(store.day_dir(tb, T0))
                rows[tb] = con.sql(
                    f"SELECT count(*) FROM read_parquet({sql_str(str(f))})"
                ).fetchall()[0][0]
        long_b = size["daily"] + size["sub_daily"] + size["sub_monthly"]
        results.append(
            Result(
                f"daily rollups, bytes of one day ({events / 1e6:.0f} M requests, 2,500 subs)",
                "bytes",
                float(long_b),
                higher_is_better=False,
                notes=f"daily {size['daily']:,} B ({rows['daily']:,} rows) + sub_daily "
                f"{size['sub_daily']:,} B ({rows['sub_daily']:,} rows) + sub_monthly "
                f"{size['sub_monthly']:,} B ({rows['sub_monthly']:,} rows, the month so far)",
                extra={"rows": rows, "bytes": size, "requests": events},
            )
        )
        results.append(
            Result(
                "per-minute data, bytes per day",
                "bytes",
                float(size["minute"]),
                higher_is_better=False,
                notes=f"{rows['minute']:,} rows; {14 * size['minute'] / 1e9:.2f} GB for 14 days; "
                f"the store spent {secs:.1f} s on the day ({events / secs:,.0f} events/s: "
                f"kernel, rows, Parquet, compaction)",
                extra={"rows": rows["minute"], "requests": events, "store_seconds": secs},
            )
        )

        # ---- 14-day autopsy, 1-year report ----
        _copy_days(store, "minute", 14)
        _copy_days(store, "daily", 365)
        _months_of_copies(store, 365)
        sub_b = _dir_bytes(tmp / "day" / "sub_daily") + _dir_bytes(tmp / "day" / "sub_monthly")
        kept = size["daily"] + sub_b / 365
        results.append(
            Result(
                "daily rollups, bytes per day kept (a year of them)",
                "bytes",
                kept,
                higher_is_better=False,
                notes=f"daily of a day + a 365th of the year's subscription tables ({sub_b:,} B "
                f"in {len(store.days('sub_monthly'))} months); {kept * 365 / 1e6:,.0f} MB a year",
            )
        )
        end = T0 + DAY
        for label, scope in (
            ("14-day autopsy, whole platform", build.Scope(end - 14 * DAY, end)),
            ("14-day autopsy, one API", build.Scope(end - 14 * DAY, end, api="API7")),
            (
                "30-minute autopsy, one API",
                build.Scope(
                    T0 + 8 * 3_600_000_000, T0 + 8 * 3_600_000_000 + 1_800_000_000, api="API7"
                ),
            ),
        ):
            t = time.perf_counter()
            build.autopsy(store, scope)
            results.append(Result(label, "s", time.perf_counter() - t, higher_is_better=False))
        t = time.perf_counter()
        doc = build.report(store, build.Scope(end - 365 * DAY, end))
        report_s = time.perf_counter() - t
        assert doc["total"]["requests"] == 365 * events
        t = time.perf_counter()  # the same report from the per-resource daily rows alone
        assert build.report(DailyOnly(store), build.Scope(end - 365 * DAY, end)) == doc
        naive = time.perf_counter() - t
        results.append(
            Result(
                "1-year report (365 days of daily rows)",
                "s",
                report_s,
                naive=naive,
                naive_label="the same report from the daily table alone",
                higher_is_better=False,
                notes=f"{doc['total']['requests']:,} requests",
            )
        )
        results.append(
            Result(
                "store on disk after the copies",
                "bytes",
                float(_dir_bytes(tmp / "day")),
                higher_is_better=False,
                notes=f"{day_name(end - 365 * DAY)} .. {day_name(T0)}",
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


class DailyOnly:
    """A Parquet store read without the subscription tables (every daily query from the
    per-resource daily rows): the way reports were read before those tables."""

    def __init__(self, store: ParquetStore) -> None:
        self.store = store

    def aggregate(self, q: AggQuery) -> list[AggRow]:
        if q.table == "minute":
            return self.store.aggregate(q)
        return finish(self.store.aggregate_parts(q, [Part("daily", q.from_us, q.to_us)]))

    def changes(self, from_us: int, to_us: int) -> list[dict[str, Any]]:
        return self.store.changes(from_us, to_us)

    def extent(self) -> tuple[int, int]:
        return self.store.extent()
