"""The data store: what the rollups cost the ingest path, how many bytes a day takes at the
seed's scale, and how long a 14-day autopsy and a 1-year report take.

Traffic model (the seed's platform): 2,500 subscriptions (600 applications x 600 APIs, drawn
at random), ~10 resources per API, 4 channels, 40 M requests a day following a morning-peak
curve, ~3 % throttled (6 WSO2 codes), ~1 % server errors (2 codes), ~4 % client errors,
log-normal latencies. The day is pushed through the real path (kernel -> rows -> Parquet,
compacted); 14 days of per-minute data and 365 days of per-day rows are that day copied with
shifted times (DuckDB), then the real autopsy/report code runs on them.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt

from benchmarks._harness import Result
from vigie.reports import build
from vigie.state import _layout as L
from vigie.state.engine import State
from vigie.store.data import DataSink, SinkConfig
from vigie.store.parquet import ParquetStore, day_name, sql_str
from vigie.store.rollup import Accumulator
from vigie.wire.columns import ENGINE_DTYPES, Events

DAY = L.DAY_US
T0 = 1_767_225_600_000_000  # 2026-01-01


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
    event time, like a sidecar flushing every few seconds would); return (seconds, events)."""
    acc = Accumulator()
    minutes = _diurnal_minutes(per_day)
    t = time.perf_counter()
    events = 0
    for block in range(0, 1440, 10):
        n = int(minutes[block : block + 10].sum())
        ev = platform.events(rng, n, T0 + block * 60_000_000, T0 + (block + 10) * 60_000_000)
        acc.add(ev)
        events += n
        drained = acc.drain(names.__getitem__, ["main", "sale", "preparation", "delivery"])
        assert drained is not None
        for rows in drained:
            store.write_rows(rows)
    store.compact("minute", T0)
    store.compact("daily", T0)
    return time.perf_counter() - t, events


def _copy_days(store: ParquetStore, table: str, days: int) -> None:
    """Copy day T0 of ``table`` to the ``days - 1`` days before it (times shifted)."""
    [src] = store.live_files(store.day_dir(table, T0))
    tcol = "minute_us" if table == "minute" else "day_us"
    with duckdb.connect(config={"threads": 2}) as con:
        for k in range(1, days):
            d = T0 - k * DAY
            out = store.day_dir(table, d)
            out.mkdir(parents=True, exist_ok=True)
            con.sql(
                f"COPY (SELECT * REPLACE ({tcol} - {k * DAY} AS {tcol}, "
                f"day - INTERVAL {k} DAY AS day) FROM read_parquet({sql_str(str(src))})) "
                f"TO {sql_str(str(out / 'm-00000000000000000001.parquet'))} "
                f"(FORMAT parquet, COMPRESSION zstd)"
            )


def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*.parquet"))


def _ingest(
    platform: Platform, batches: list[Events], with_store: bool, root: Path
) -> tuple[float, float]:
    """(ingest seconds, seconds until the store has everything) for the batches."""
    state = State()
    state.interner.intern_many(platform.strings()[1:])
    for c in ("main", "sale", "preparation", "delivery"):
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
        # ---- ingest with and without the store, side by side ----
        n_events = 400_000 if quick else 4_000_000
        per_batch = 4096
        evs = platform.events(rng, n_events, T0, T0 + DAY // 4)
        batches = [evs.take(slice(k, k + per_batch)) for k in range(0, n_events, per_batch)]
        _ingest(platform, batches[:20], True, tmp / "warm")  # compile the kernels
        base, _ = _ingest(platform, batches, False, tmp / "a")
        with_store, end_to_end = _ingest(platform, batches, True, tmp / "b")
        results.append(
            Result(
                "ingest with the data store (writer thread)",
                "events/s",
                n_events / with_store,
                naive=n_events / base,
                naive_label="ingest without the store",
                notes=f"{(with_store / base - 1) * 100:+.1f} % ingest time; everything written "
                f"after {end_to_end:.2f} s ({n_events / end_to_end:,.0f} events/s end to end)",
                extra={
                    "overhead_pct": (with_store / base - 1) * 100,
                    "end_to_end_events_per_s": n_events / end_to_end,
                },
            )
        )
        acc = Accumulator()
        t = time.perf_counter()
        for ev in batches:
            acc.add(ev)
        kernel = time.perf_counter() - t
        results.append(Result("rollup kernel alone", "events/s", n_events / kernel))

        # ---- one day at the seed's scale ----
        per_day = 4_000_000 if quick else 40_000_000
        store = ParquetStore(tmp / "day")
        secs, events = _one_day(store, platform, per_day, rng, names)
        minute_b = _dir_bytes(tmp / "day" / "minute")
        daily_b = _dir_bytes(tmp / "day" / "daily")
        with duckdb.connect() as con:
            rows = {
                t: con.sql(
                    f"SELECT count(*) FROM read_parquet("
                    f"{sql_str(str(store.live_files(store.day_dir(t, T0))[0]))})"
                ).fetchall()[0][0]
                for t in ("minute", "daily")
            }
        results.append(
            Result(
                f"daily rollups, bytes per day ({events / 1e6:.0f} M requests, 2,500 subs)",
                "bytes",
                float(daily_b),
                higher_is_better=False,
                notes=f"{rows['daily']:,} rows; {daily_b * 365 / 1e6:,.0f} MB a year",
                extra={"rows": rows["daily"], "requests": events},
            )
        )
        results.append(
            Result(
                "per-minute data, bytes per day",
                "bytes",
                float(minute_b),
                higher_is_better=False,
                notes=f"{rows['minute']:,} rows; {14 * minute_b / 1e9:.2f} GB for 14 days; "
                f"day written in {secs:.1f} s",
                extra={"rows": rows["minute"], "requests": events},
            )
        )

        # ---- 14-day autopsy, 1-year report ----
        _copy_days(store, "minute", 14)
        _copy_days(store, "daily", 365)
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
        results.append(
            Result(
                "1-year report (365 days of daily rows)",
                "s",
                time.perf_counter() - t,
                higher_is_better=False,
                notes=f"{doc['total']['requests']:,} requests",
            )
        )
        assert doc["total"]["requests"] == 365 * events
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
