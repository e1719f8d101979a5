"""The embedded store: Parquet files partitioned by day, queried with DuckDB.

Layout (any engine that reads Parquet reads it: DuckDB, ClickHouse, Spark, pandas)::

    <data_dir>/minute/day=2026-11-28/p-<seq>.parquet   per-minute rows (short-term)
    <data_dir>/daily/day=2026-11-28/p-<seq>.parquet    per-day rows (long-term)
    <data_dir>/changes/day=2026-11-28/p-<seq>.parquet  classes raised/cleared, directives

Every file is a *delta*: the figures of a day are the sums over its files. Each flush writes
new ``p-`` (part) files, atomically (written under a dot-name, then renamed). Compaction
merges a day's files into one ``m-<seq>`` file that replaces every file whose sequence is not
above its own: readers take the newest ``m-`` file and the ``p-`` files after it, so a crash
between writing the merged file and deleting the parts never counts anything twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vigie.state import _layout as L
from vigie.store.query import AggQuery, AggRow, StoreUnavailable, finish
from vigie.store.rollup import (
    DAILY_KEYS,
    MEASURES,
    MINUTE_KEYS,
    STRING_KEYS,
    TIME_COLUMN,
    Rows,
)

log = logging.getLogger(__name__)

TABLE_DIRS: Final = ("minute", "daily", "changes")
COMPACT_PARTS: Final = 24  # an open day is compacted once it has this many files
CHANGE_FIELDS: Final = (
    "at_us",
    "kind",
    "event",
    "name",
    "application_id",
    "api",
    "api_version",
    "detail",
)


def day_name(day_us: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day_us // L.DAY_US)).isoformat()


def day_us_of(name: str) -> int:
    d = date.fromisoformat(name)
    return (d - date(1970, 1, 1)).days * L.DAY_US


def _schema(table: str) -> pa.Schema:
    if table == "changes":
        return pa.schema(
            [
                ("at_us", pa.int64()),
                ("day", pa.date32()),
                ("kind", pa.string()),
                ("event", pa.string()),
                ("name", pa.string()),
                ("application_id", pa.string()),
                ("api", pa.string()),
                ("api_version", pa.string()),
                ("detail", pa.string()),
            ]
        )
    keys = MINUTE_KEYS if table == "minute" else DAILY_KEYS
    fields: list[tuple[str, pa.DataType]] = [(keys[0], pa.int64()), ("day", pa.date32())]
    for k in keys[1:]:
        fields.append((k, pa.string() if k in STRING_KEYS else pa.int32()))
    fields += [(m, pa.int64()) for m in MEASURES]
    fields += [("lat_idx", pa.list_(pa.int16())), ("lat_cnt", pa.list_(pa.int64()))]
    return pa.schema(fields)


SCHEMAS: Final = {t: _schema(t) for t in TABLE_DIRS}


def rows_to_arrow(rows: Rows) -> pa.Table:
    """Rows as an Arrow table of the store's schema (histograms made sparse)."""
    tcol = TIME_COLUMN[rows.table]
    t = rows.keys[tcol]
    arrays: dict[str, pa.Array] = {
        tcol: pa.array(t, pa.int64()),
        "day": pa.array((t // L.DAY_US).astype(np.int32), pa.date32()),
    }
    keys = MINUTE_KEYS if rows.table == "minute" else DAILY_KEYS
    for k in keys[1:]:
        v = rows.keys[k]
        arrays[k] = pa.array(v, pa.string()) if k in STRING_KEYS else pa.array(v, pa.int32())
    for i, m in enumerate(MEASURES):
        arrays[m] = pa.array(rows.measures[:, i], pa.int64())
    offsets = pa.array(rows.hist_off.astype(np.int32))
    arrays["lat_idx"] = pa.ListArray.from_arrays(offsets, pa.array(rows.hist_idx, pa.int16()))
    arrays["lat_cnt"] = pa.ListArray.from_arrays(offsets, pa.array(rows.hist_cnt, pa.int64()))
    return pa.table(arrays, schema=SCHEMAS[rows.table])


def changes_to_arrow(records: Sequence[dict[str, Any]]) -> pa.Table:
    cols: dict[str, list[Any]] = {f: [r.get(f, "") for r in records] for f in CHANGE_FIELDS}
    cols["at_us"] = [int(r["at_us"]) for r in records]
    cols["day"] = [int(r["at_us"]) // L.DAY_US for r in records]
    return pa.table(
        {
            "at_us": pa.array(cols["at_us"], pa.int64()),
            "day": pa.array(np.array(cols["day"], dtype=np.int32), pa.date32()),
            **{f: pa.array([str(v) for v in cols[f]], pa.string()) for f in CHANGE_FIELDS[1:]},
        },
        schema=SCHEMAS["changes"],
    )


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


class ParquetStore:
    """Reads and writes the Parquet tree under ``root``; queries go through DuckDB."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._seq_lock = threading.Lock()
        self._last_seq = 0
        self._compact_lock = threading.Lock()

    # ---- files ----
    def _next_seq(self) -> str:
        with self._seq_lock:
            seq = max(time.time_ns(), self._last_seq + 1)
            self._last_seq = seq
        return f"{seq:020d}"

    def day_dir(self, table: str, day_us: int) -> Path:
        return self.root / table / f"day={day_name(day_us)}"

    def days(self, table: str) -> list[int]:
        base = self.root / table
        if not base.is_dir():
            return []
        out = []
        for d in base.iterdir():
            if d.is_dir() and d.name.startswith("day="):
                try:
                    out.append(day_us_of(d.name[4:]))
                except ValueError:
                    continue
        return sorted(out)

    @staticmethod
    def live_files(day_dir: Path) -> list[Path]:
        """The files that count: the newest merged file and the parts written after it."""
        if not day_dir.is_dir():
            return []
        merged: list[tuple[str, Path]] = []
        parts: list[tuple[str, Path]] = []
        for f in day_dir.iterdir():
            n = f.name
            if not n.endswith(".parquet") or n.startswith("."):
                continue
            seq = n[2:-8]
            if n.startswith("m-"):
                merged.append((seq, f))
            elif n.startswith("p-"):
                parts.append((seq, f))
        top = max(merged)[0] if merged else ""
        live = [max(merged)[1]] if merged else []
        live += [f for s, f in sorted(parts) if s > top]
        return live

    def _write(self, table: str, day_us: int, data: pa.Table) -> Path:
        d = self.day_dir(table, day_us)
        d.mkdir(parents=True, exist_ok=True)
        seq = self._next_seq()
        final = d / f"p-{seq}.parquet"
        tmp = d / f".p-{seq}.parquet.tmp"
        try:
            pq.write_table(data, tmp, compression="zstd")
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final

    def write_rows(self, rows: Rows) -> int:
        """Write rows (split by day) as new part files; return the bytes written."""
        written = 0
        for day_us, part in rows.split_by_day().items():
            written += self._write(rows.table, day_us, rows_to_arrow(part)).stat().st_size
        return written

    def write_changes(self, records: Sequence[dict[str, Any]]) -> int:
        by_day: dict[int, list[dict[str, Any]]] = {}
        for r in records:
            day = int(r["at_us"]) - int(r["at_us"]) % L.DAY_US
            by_day.setdefault(day, []).append(r)
        written = 0
        for day_us, recs in by_day.items():
            written += self._write("changes", day_us, changes_to_arrow(recs)).stat().st_size
        return written

    # ---- upkeep ----
    def compact(self, table: str, day_us: int) -> bool:
        """Merge a day's live files into one; return whether anything was merged."""
        with self._compact_lock:
            d = self.day_dir(table, day_us)
            live = self.live_files(d)
            if len(live) <= 1:
                return False
            top = max(f.name[2:-8] for f in live)
            final = d / f"m-{top}.parquet"
            tmp = d / f".m-{top}.parquet.tmp"
            files = "[" + ", ".join(sql_str(str(f)) for f in live) + "]"
            if table == "changes":
                sql = f"SELECT * FROM read_parquet({files}) ORDER BY at_us"
            else:
                tk = MINUTE_KEYS if table == "minute" else DAILY_KEYS
                keys = [tk[0], "day", *tk[1:]]
                sql = _merge_sql(files, keys)
            try:
                with duckdb.connect() as con:
                    tbl = con.sql(sql).to_arrow_table().cast(SCHEMAS[table])
                pq.write_table(tbl, tmp, compression="zstd")
                os.replace(tmp, final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            for f in d.iterdir():
                n = f.name
                stale = n.endswith(".parquet") and n[:2] in ("m-", "p-") and n[2:-8] <= top
                if stale and f != final:
                    f.unlink(missing_ok=True)
            return True

    def compact_due(self, newest_day_us: int) -> int:
        """Compact closed days with several files and open days with many; return how many."""
        done = 0
        for table in TABLE_DIRS:
            for day_us in self.days(table):
                n = len(self.live_files(self.day_dir(table, day_us)))
                if (n > 1 and day_us < newest_day_us) or n >= COMPACT_PARTS:
                    done += self.compact(table, day_us)
        return done

    def enforce_retention(self, newest_day_us: int, short_days: int, long_days: int) -> list[str]:
        """Delete the days older than the retention of their table; return what went."""
        gone = []
        for table in TABLE_DIRS:
            keep = short_days if table == "minute" else long_days
            if keep <= 0:
                continue
            limit = newest_day_us - keep * L.DAY_US
            for day_us in self.days(table):
                if day_us <= limit:
                    shutil.rmtree(self.day_dir(table, day_us), ignore_errors=True)
                    gone.append(f"{table}/{day_name(day_us)}")
        return gone

    def disk_usage(self) -> dict[str, int]:
        out = {}
        for table in TABLE_DIRS:
            total = 0
            base = self.root / table
            if base.is_dir():
                for dirpath, _, names in os.walk(base):
                    for n in names:
                        try:
                            total += os.stat(os.path.join(dirpath, n)).st_size
                        except OSError:
                            continue
            out[table] = total
        return out

    # ---- queries ----
    def _files(self, table: str, from_us: int, to_us: int) -> list[Path]:
        lo = from_us - from_us % L.DAY_US
        out: list[Path] = []
        for day_us in self.days(table):
            if lo <= day_us < to_us:
                out += self.live_files(self.day_dir(table, day_us))
        return out

    def aggregate(self, q: AggQuery) -> list[AggRow]:
        q.validate()
        files = self._files(q.table, q.from_us, q.to_us)
        if not files:
            return []
        sql = aggregate_sql(q, "[" + ", ".join(sql_str(str(f)) for f in files) + "]")
        try:
            with duckdb.connect(config={"threads": 2}) as con:
                result = con.execute(sql).fetchall()
        except duckdb.Error as exc:
            raise StoreUnavailable(f"the Parquet store under {self.root}: {exc}") from exc
        return finish(_row(q, r) for r in result)

    def changes(self, from_us: int, to_us: int) -> list[dict[str, Any]]:
        files = self._files("changes", 0, to_us)
        if not files:
            return []
        listing = "[" + ", ".join(sql_str(str(f)) for f in files) + "]"
        cols = ", ".join(CHANGE_FIELDS)
        sql = (
            f"SELECT {cols} FROM read_parquet({listing}) WHERE at_us < {int(to_us)} "
            f"ORDER BY at_us, kind, name, application_id, api, api_version, event"
        )
        with duckdb.connect() as con:
            rows = con.execute(sql).fetchall()
        return [dict(zip(CHANGE_FIELDS, r, strict=True)) for r in rows]

    def extent(self) -> tuple[int, int]:
        days = sorted(set(self.days("daily")) | set(self.days("minute")))
        if not days:
            return 0, 0
        return days[0], days[-1] + L.DAY_US


def _merge_sql(files: str, keys: Sequence[str]) -> str:
    kl = ", ".join(keys)
    sums = ", ".join(f"sum({m})::BIGINT AS {m}" for m in MEASURES)
    return (
        f"WITH src AS (SELECT * FROM read_parquet({files})), "
        f"m AS (SELECT {kl}, {sums} FROM src GROUP BY {kl}), "
        f"h AS (SELECT {kl}, b, sum(c)::BIGINT AS c FROM "
        f"(SELECT {kl}, unnest(lat_idx) AS b, unnest(lat_cnt) AS c FROM src) GROUP BY {kl}, b), "
        f"hl AS (SELECT {kl}, list(b ORDER BY b) AS lat_idx, list(c ORDER BY b) AS lat_cnt "
        f"FROM h GROUP BY {kl}) "
        f"SELECT m.*, hl.lat_idx, hl.lat_cnt FROM m LEFT JOIN hl USING ({kl}) "
        f"ORDER BY {kl}"
    )


def group_exprs(q: AggQuery, div: str) -> list[tuple[str, str]]:
    """(expression, alias) of each group key; ``div`` formats an integer division."""
    tcol = TIME_COLUMN[q.table]
    out = []
    for g in q.group_by:
        if g == "time":
            out.append((f"{div.format(tcol, int(q.bucket_us))} * {int(q.bucket_us)}", "g_time"))
        else:
            out.append((g, f"g_{g}"))
    return out or [("0", "g_all")]


def where_clause(q: AggQuery, quote: Any) -> str:
    tcol = TIME_COLUMN[q.table]
    parts = [f"{tcol} >= {int(q.from_us)}", f"{tcol} < {int(q.to_us)}"]
    for f, v in q.filters().items():
        if f == "application":
            parts.append(f"(application_id = {quote(v)} OR application_name = {quote(v)})")
        else:
            parts.append(f"{f} = {quote(v)}")
    return " AND ".join(parts)


def aggregate_sql(q: AggQuery, files: str) -> str:
    g = group_exprs(q, "({0} // {1})")
    sel = ", ".join(f"{e} AS {a}" for e, a in g)
    aliases = ", ".join(a for _, a in g)
    sums = ", ".join(f"sum({m})::BIGINT AS {m}" for m in MEASURES)
    src = f"SELECT * FROM read_parquet({files}) WHERE {where_clause(q, sql_str)}"
    m = f"SELECT {sel}, {sums}, max(application_name) AS application_name FROM src GROUP BY ALL"
    if not q.histogram:
        return f"WITH src AS ({src}) SELECT *, NULL AS bs, NULL AS cs FROM ({m})"
    return (
        f"WITH src AS ({src}), m AS ({m}), "
        f"h AS (SELECT {aliases}, b, sum(c)::BIGINT AS c FROM "
        f"(SELECT {sel}, unnest(lat_idx) AS b, unnest(lat_cnt) AS c FROM src) "
        f"GROUP BY {aliases}, b), "
        f"hl AS (SELECT {aliases}, list(b ORDER BY b) AS bs, list(c ORDER BY b) AS cs "
        f"FROM h GROUP BY {aliases}) "
        f"SELECT m.*, hl.bs, hl.cs FROM m LEFT JOIN hl USING ({aliases})"
    )


def _row(q: AggQuery, r: Sequence[Any]) -> AggRow:
    k = len(q.group_by)
    nk = k or 1
    key = tuple(int(v) if isinstance(v, int) else str(v) for v in r[:k])
    measures = [int(v or 0) for v in r[nk : nk + len(MEASURES)]]
    name = r[nk + len(MEASURES)] or ""
    bs, cs = r[nk + len(MEASURES) + 1], r[nk + len(MEASURES) + 2]
    hist = {int(b): int(c) for b, c in zip(bs, cs, strict=True)} if bs else {}
    return AggRow(key, measures, hist, str(name) if "application_id" in q.group_by else "")


def iso_day(day_us: int) -> str:
    return datetime.fromtimestamp(day_us / 1e6, tz=UTC).date().isoformat()
