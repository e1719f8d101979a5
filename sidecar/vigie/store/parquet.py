"""The embedded store: Parquet files partitioned by day (by month for the subscription
tables, which have few rows a day), queried with DuckDB.

Layout (any engine that reads Parquet reads it: DuckDB, ClickHouse, Spark, pandas)::

    <data_dir>/minute/day=2026-11-28/p-<seq>.parquet      per-minute rows (short-term)
    <data_dir>/daily/day=2026-11-28/p-<seq>.parquet       per-day rows (long-term)
    <data_dir>/sub_daily/month=2026-11/p-<seq>.parquet    per day and subscription
    <data_dir>/sub_monthly/month=2026-11/p-<seq>.parquet  per month and subscription
    <data_dir>/changes/day=2026-11-28/p-<seq>.parquet     classes raised/cleared, directives

Every file is a *delta*: the figures of a partition are the sums over its files. Each flush
writes new ``p-`` (part) files, atomically (written under a dot-name, then renamed).
Compaction writes one file that *covers* the files it replaces, then deletes them: ``m-<seq>``
covers every file whose sequence is not above its own, ``c-<lo>-<hi>`` the files whose
sequences lie in ``lo..hi``. Readers take the files no other file covers, so a crash between
writing a merged file and deleting what it covers never counts anything twice.

Compaction keeps the writer's work small: an open day of per-minute rows folds each run of
``COMPACT_PARTS`` parts into a ``c-`` file (and runs of ``c-`` files into one), never
rewriting the whole day; a closed day is written once more as one file sorted by API and
time in row groups of ``ROW_GROUP_ROWS``, so that a query on one API reads only that API's
row groups. The other tables are small: their partitions are merged whole into one file
(rows with the same keys added up), sorted by API and application.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vigie.state import layout as L
from vigie.store import _rollup_kernels as RK
from vigie.store.plan import NEVER, Part, next_month, plan
from vigie.store.query import AggQuery, AggRow, StoreUnavailable, finish, merge_rows
from vigie.store.rollup import (
    MEASURES,
    MONTH_PARTITIONED,
    ROLLUP_TABLES,
    STRING_KEYS,
    TABLE_KEYS,
    TIME_COLUMN,
    Rows,
    month_start,
)

log = logging.getLogger(__name__)

TABLE_DIRS: Final = (*ROLLUP_TABLES, "changes")
COMPACT_PARTS: Final = 24  # an open partition is compacted once it has this many files
ROW_GROUP_ROWS: Final = 32_768
# the sort order of a compacted file: rows of one API (then one application) together
SORT_KEYS: Final = {
    "minute": ("api", "minute_us", "application_id", "api_version", "resource", "method"),
    "daily": ("api", "application_id", "api_version", "resource", "method", "channel"),
    "sub_daily": ("api", "application_id", "api_version", "channel"),
    "sub_monthly": ("api", "application_id", "api_version", "channel", "error_code"),
}
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
_SEQ: Final = 20  # digits of a sequence number
# sums of large, varied numbers compress best as deltas; keys and counts as dictionaries
DELTA_COLUMNS: Final = frozenset(
    {
        "minute_us",
        "day_us",
        "month_us",
        "latency_sum_us",
        "backend_latency_sum_us",
        "request_bytes",
        "response_bytes",
    }
)
PART_LEVEL: Final = 3  # zstd level of the part files (written often, soon compacted)
COMPACT_LEVEL: Final = 9  # zstd level of compacted files (written once, kept for long)
LAYOUT: Final = "layout.json"  # says from which day the subscription tables are whole


def day_name(day_us: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day_us // L.DAY_US)).isoformat()


def day_us_of(name: str) -> int:
    d = date.fromisoformat(name)
    return (d - date(1970, 1, 1)).days * L.DAY_US


def partition_name(table: str, start_us: int) -> str:
    if table in MONTH_PARTITIONED:
        return f"month={day_name(start_us)[:7]}"
    return f"day={day_name(start_us)}"


def partition_start(table: str, name: str) -> int:
    """The start (us) of a partition directory's day or month; ValueError if not one."""
    if table in MONTH_PARTITIONED:
        if not name.startswith("month="):
            raise ValueError(name)
        return day_us_of(name[6:] + "-01")
    if not name.startswith("day="):
        raise ValueError(name)
    return day_us_of(name[4:])


def partition_end(table: str, start_us: int) -> int:
    return next_month(start_us) if table in MONTH_PARTITIONED else start_us + L.DAY_US


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
    keys = TABLE_KEYS[table]
    fields: list[tuple[str, pa.DataType]] = [(keys[0], pa.int64()), ("day", pa.date32())]
    for k in keys[1:]:
        fields.append((k, pa.string() if k in STRING_KEYS else pa.int32()))
    fields += [(m, pa.int64()) for m in MEASURES]
    fields += [("lat_idx", pa.list_(pa.int16())), ("lat_cnt", pa.list_(pa.int64()))]
    return pa.schema(fields)


SCHEMAS: Final = {t: _schema(t) for t in TABLE_DIRS}


def _arrow(
    table: str,
    cols: dict[str, pa.Array],
    measures: npt.NDArray[np.int64],
    off: npt.NDArray[np.int64],
    idx: npt.NDArray[np.int16],
    cnt: npt.NDArray[np.int64],
) -> pa.Table:
    """A table of the store's schema from key columns, measures and CSR histograms."""
    tcol = TIME_COLUMN[table]
    t = np.asarray(cols[tcol].to_numpy(), dtype=np.int64)
    arrays: dict[str, pa.Array] = {tcol: cols[tcol], "day": _date32(t)}
    for k in TABLE_KEYS[table][1:]:
        arrays[k] = cols[k]
    for i, m in enumerate(MEASURES):
        arrays[m] = pa.array(np.ascontiguousarray(measures[:, i]), pa.int64())
    offsets = pa.array(off.astype(np.int32))
    arrays["lat_idx"] = pa.ListArray.from_arrays(offsets, pa.array(idx, pa.int16()))
    arrays["lat_cnt"] = pa.ListArray.from_arrays(offsets, pa.array(cnt, pa.int64()))
    return pa.table(arrays, schema=SCHEMAS[table])


def _date32(t: npt.NDArray[np.int64]) -> pa.Array:
    return pa.array((t // L.DAY_US).astype(np.int32), pa.date32())


def rows_to_arrow(rows: Rows) -> pa.Table:
    """Rows as an Arrow table of the store's schema."""
    cols: dict[str, pa.Array] = {}
    for k in TABLE_KEYS[rows.table]:
        if k in STRING_KEYS:
            names = pa.array(rows.names[k], pa.string())
            cols[k] = pa.DictionaryArray.from_arrays(rows.codes[k], names).cast(pa.string())
        elif k == TIME_COLUMN[rows.table]:
            cols[k] = pa.array(rows.ints[k], pa.int64())
        else:
            cols[k] = pa.array(rows.ints[k], pa.int32())
    return _arrow(rows.table, cols, rows.measures, rows.hist_off, rows.hist_idx, rows.hist_cnt)


def _list_parts(col: pa.ChunkedArray | pa.Array) -> tuple[npt.NDArray[np.int64], pa.Array]:
    """(offsets from 0, flat values) of a list column (nulls as empty lists)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    lens = pc.fill_null(pc.list_value_length(arr), 0).to_numpy().astype(np.int64)
    off = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    return off, pc.list_flatten(arr)


def read_files(table: str, paths: Sequence[Path]) -> pa.Table:
    """The rows of several files of a table, in the store's schema."""
    tables = [pq.read_table(p).select(SCHEMAS[table].names).cast(SCHEMAS[table]) for p in paths]
    return pa.concat_tables(tables) if tables else SCHEMAS[table].empty_table()


def fold_table(table: str, data: pa.Table, sort: bool = True) -> pa.Table:
    """Rows with the same keys as one row (measures and histograms added), sorted by the
    table's sort keys when ``sort``: the merge of compaction, in one jitted pass."""
    keys = TABLE_KEYS[table]
    data = data.select([*keys, *MEASURES, "lat_idx", "lat_cnt"]).combine_chunks()
    n = data.num_rows
    mat = np.empty((n, len(keys)), dtype=np.int64)
    dictionaries: dict[str, pa.Array] = {}
    for j, k in enumerate(keys):
        col = data.column(k)
        if k in STRING_KEYS:
            enc = pc.dictionary_encode(pc.fill_null(col, "")).combine_chunks()
            # codes in the strings' order, so that sorting codes sorts the strings
            order = pc.sort_indices(enc.dictionary).to_numpy()
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            mat[:, j] = rank[enc.indices.to_numpy(zero_copy_only=False)] if n else 0
            dictionaries[k] = enc.dictionary.take(pa.array(order))
        else:
            mat[:, j] = pc.fill_null(col, 0).to_numpy()
    vals = np.empty((n, len(MEASURES)), dtype=np.int64)
    for i, m in enumerate(MEASURES):
        vals[:, i] = pc.fill_null(data.column(m), 0).to_numpy()
    off, idx_flat = _list_parts(data.column("lat_idx"))
    _, cnt_flat = _list_parts(data.column("lat_cnt"))
    idx = idx_flat.to_numpy(zero_copy_only=False).astype(np.int16)
    cnt = cnt_flat.to_numpy(zero_copy_only=False).astype(np.int64)
    gkeys, gvals, goff, gidx, gcnt, _ = RK.fold(mat, vals, off, idx, cnt)
    if sort and len(gkeys):
        pos = {k: j for j, k in enumerate(keys)}
        order = np.lexsort([gkeys[:, pos[k]] for k in reversed(SORT_KEYS[table])])
        gkeys, gvals = gkeys[order], gvals[order]
        lens = np.diff(goff)[order]
        src = np.repeat(goff[:-1][order], lens) + (
            np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        )
        gidx, gcnt = gidx[src], gcnt[src]
        goff = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(lens, out=goff[1:])
    cols: dict[str, pa.Array] = {}
    for j, k in enumerate(keys):
        if k in STRING_KEYS:
            cols[k] = dictionaries[k].take(pa.array(gkeys[:, j])).cast(pa.string())
        elif j == 0:
            cols[k] = pa.array(gkeys[:, j], pa.int64())
        else:
            cols[k] = pa.array(gkeys[:, j].astype(np.int32), pa.int32())
    return _arrow(table, cols, gvals, goff, gidx, gcnt)


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


def sql_files(files: Iterable[Path]) -> str:
    return "[" + ", ".join(sql_str(str(f)) for f in files) + "]"


@dataclass(frozen=True, slots=True)
class DataFile:
    """A file of a partition and the sequences it covers (``lo..hi``)."""

    path: Path
    kind: str  # "p", "c" or "m"
    lo: int
    hi: int

    def covers(self, other: DataFile) -> bool:
        return self is not other and self.lo <= other.lo and other.hi <= self.hi

    @staticmethod
    def parse(path: Path) -> DataFile | None:
        n = path.name
        if not n.endswith(".parquet") or n.startswith(".") or n[1:2] != "-":
            return None
        parts = n[2:-8].split("-")
        try:
            seqs = [int(s) for s in parts]
        except ValueError:
            return None
        kind = n[0]
        if kind == "p" and len(seqs) == 1:
            return DataFile(path, "p", seqs[0], seqs[0])
        if kind == "m" and len(seqs) == 1:
            return DataFile(path, "m", 0, seqs[0])
        if kind == "c" and len(seqs) == 2 and seqs[0] <= seqs[1]:
            return DataFile(path, "c", seqs[0], seqs[1])
        return None


def write_options(schema: pa.Schema, level: int) -> dict[str, Any]:
    """Parquet writer options: zstd, delta-encoded times and sums (Parquet 2.0 encodings
    that every Parquet reader knows), dictionaries for the rest."""
    delta = [n for n in schema.names if n in DELTA_COLUMNS]
    return {
        "compression": "zstd",
        "compression_level": level,
        "use_dictionary": [n for n in schema.names if n not in DELTA_COLUMNS],
        "column_encoding": dict.fromkeys(delta, "DELTA_BINARY_PACKED"),
    }


def write_parquet(data: pa.Table, final: Path, level: int = PART_LEVEL) -> None:
    """Write a table atomically (a dot-name, then renamed)."""
    tmp = final.with_name(f".{final.name}.tmp")
    try:
        pq.write_table(
            data, tmp, row_group_size=ROW_GROUP_ROWS, **write_options(data.schema, level)
        )
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_stream(table: str, batches: Iterable[pa.RecordBatch], final: Path) -> None:
    """Write record batches as one compacted file, atomically, one row group at a time."""
    schema = SCHEMAS[table]
    tmp = final.with_name(f".{final.name}.tmp")
    try:
        with pq.ParquetWriter(tmp, schema, **write_options(schema, COMPACT_LEVEL)) as w:
            held: list[pa.RecordBatch] = []
            rows = 0
            for b in batches:
                held.append(b)
                rows += b.num_rows
                if rows >= ROW_GROUP_ROWS:
                    w.write_table(pa.Table.from_batches(held).cast(schema), ROW_GROUP_ROWS)
                    held, rows = [], 0
            if held:
                w.write_table(pa.Table.from_batches(held).cast(schema), ROW_GROUP_ROWS)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _batches(paths: Iterable[Path]) -> Iterable[pa.RecordBatch]:
    """The rows of several files, in order, a row group at a time (little memory)."""
    for p in paths:
        f = pq.ParquetFile(p)
        for i in range(f.num_row_groups):
            yield from f.read_row_group(i).to_batches()


def derive(daily: pa.Table, table: str) -> pa.Table:
    """Rows of the ``daily`` table as rows of ``sub_daily`` or ``sub_monthly`` (summed)."""
    if table == "sub_monthly":
        m = month_start(daily.column("day_us").to_numpy())
        daily = daily.append_column("month_us", pa.array(m, pa.int64()))
    return fold_table(table, daily)


class ParquetStore:
    """Reads and writes the Parquet tree under ``root``; queries go through DuckDB."""

    tables: tuple[str, ...] = TABLE_DIRS  # what the writer hands over

    def __init__(self, root: Path, compact_at: int = COMPACT_PARTS) -> None:
        self.root = root
        self.compact_at = compact_at  # an open partition is compacted with this many files
        self._seq_lock = threading.Lock()
        self._last_seq = 0
        self._compact_lock = threading.Lock()
        self._dirty: set[tuple[str, int]] | None = None  # partitions written since upkeep
        self._layout_ok = False

    # ---- files ----
    def _next_seq(self) -> str:
        with self._seq_lock:
            seq = max(time.time_ns(), self._last_seq + 1)
            self._last_seq = seq
        return f"{seq:0{_SEQ}d}"

    def day_dir(self, table: str, day_us: int) -> Path:
        """The partition directory of a day (of a month: its first day)."""
        return self.root / table / partition_name(table, day_us)

    def days(self, table: str) -> list[int]:
        """The partitions of a table (the start of each day or month), oldest first."""
        base = self.root / table
        if not base.is_dir():
            return []
        out = []
        for d in base.iterdir():
            if d.is_dir():
                try:
                    out.append(partition_start(table, d.name))
                except ValueError:
                    continue
        return sorted(out)

    @staticmethod
    def data_files(day_dir: Path) -> list[DataFile]:
        if not day_dir.is_dir():
            return []
        out = []
        for f in day_dir.iterdir():
            df = DataFile.parse(f)
            if df is not None:
                out.append(df)
        return out

    @staticmethod
    def live(files: Sequence[DataFile]) -> list[DataFile]:
        """The files that count: those no other file covers, oldest first."""
        files = sorted(files, key=lambda f: (f.lo, -f.hi))
        out: list[DataFile] = []
        reach = -1  # the highest sequence covered by a file kept so far
        for f in files:
            if f.hi <= reach:
                continue  # covered by an earlier file (lo <= f.lo and hi >= f.hi)
            out.append(f)
            reach = f.hi
        return out

    @classmethod
    def live_files(cls, day_dir: Path) -> list[Path]:
        """The files that count: those no other file covers."""
        return [f.path for f in cls.live(cls.data_files(day_dir))]

    def _write(self, table: str, day_us: int, data: pa.Table) -> Path:
        d = self.day_dir(table, day_us)
        d.mkdir(parents=True, exist_ok=True)
        final = d / f"p-{self._next_seq()}.parquet"
        write_parquet(data, final)
        if self._dirty is not None:
            self._dirty.add((table, day_us))
        return final

    def sub_from(self) -> int:
        """The first day from which the subscription tables are whole (plan.NEVER: none)."""
        try:
            doc = json.loads((self.root / LAYOUT).read_text())
            return int(doc["sub_tables_from_us"])
        except FileNotFoundError:
            # a new store has them from the start; one written before they existed, not
            return 0 if not self.days("daily") else NEVER
        except (OSError, ValueError, KeyError, TypeError):
            return NEVER  # unreadable: read everything from the daily table

    def _write_layout(self, sub_from: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{LAYOUT}.tmp"
        tmp.write_text(json.dumps({"sub_tables_from_us": sub_from}) + "\n")
        os.replace(tmp, self.root / LAYOUT)

    def backfill(self) -> int:
        """A store written before the subscription tables existed: derive them from its daily
        rows (a month at a time) and say so in ``layout.json``; return the days derived.
        Called by the writer before it writes anything (``vigie serve``, ``replay --store``)."""
        if (self.root / LAYOUT).exists():
            return 0
        days = self.days("daily")
        if days:
            log.info("deriving the subscription tables of %d days under %s", len(days), self.root)
        for table in MONTH_PARTITIONED:  # what an interrupted backfill left
            shutil.rmtree(self.root / table, ignore_errors=True)
        by_month: dict[int, list[int]] = {}
        for day in days:
            by_month.setdefault(int(month_start(np.array([day]))[0]), []).append(day)
        for month, month_days in by_month.items():
            sub_daily, sub_monthly = [], SCHEMAS["sub_monthly"].empty_table()
            for day in month_days:
                data = read_files("daily", self.live_files(self.day_dir("daily", day)))
                sub_daily.append(derive(data, "sub_daily"))
                both = pa.concat_tables([sub_monthly, derive(data, "sub_monthly")])
                sub_monthly = fold_table("sub_monthly", both, sort=False)
            self._write_merged(
                "sub_daily", month, fold_table("sub_daily", pa.concat_tables(sub_daily))
            )
            self._write_merged("sub_monthly", month, fold_table("sub_monthly", sub_monthly))
        self._write_layout(0)
        return len(days)

    def _write_merged(self, table: str, start: int, data: pa.Table) -> None:
        d = self.day_dir(table, start)
        d.mkdir(parents=True, exist_ok=True)
        write_parquet(data, d / f"m-{self._next_seq()}.parquet", COMPACT_LEVEL)

    def write_rows(self, rows: Rows) -> int:
        """Write rows (split by partition) as new part files; return the bytes written."""
        if not self._layout_ok:
            if not (self.root / LAYOUT).exists() and not self.days("daily"):
                self._write_layout(0)  # a new store: the subscription tables are whole
            self._layout_ok = True
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
    def _replace(self, d: Path, final: Path, gone: Sequence[DataFile]) -> None:
        """After ``final`` is written: delete the files it covers."""
        for f in gone:
            if f.path != final:
                f.path.unlink(missing_ok=True)

    def compact(self, table: str, day_us: int) -> bool:
        """Merge a partition's live files into one; return whether anything was merged."""
        with self._compact_lock:
            d = self.day_dir(table, day_us)
            files = self.data_files(d)
            live = self.live(files)
            if len(live) <= 1:
                return False
            top = max(f.hi for f in files)
            final = d / f"m-{top:0{_SEQ}d}.parquet"
            paths = [f.path for f in live]
            if table == "changes":
                with duckdb.connect(config={"threads": 1}) as con:
                    data = con.sql(
                        f"SELECT * FROM read_parquet({sql_files(paths)}) ORDER BY at_us"
                    ).to_arrow_table()
                write_parquet(data.cast(SCHEMAS[table]), final, COMPACT_LEVEL)
            elif table == "minute":
                self._sorted_copy(table, paths, final)
            else:
                write_parquet(fold_table(table, read_files(table, paths)), final, COMPACT_LEVEL)
            self._replace(d, final, [f for f in files if f.hi <= top])
            return True

    def _sorted_copy(self, table: str, paths: Sequence[Path], final: Path) -> None:
        """The rows of ``paths`` in one file sorted by the table's sort keys: DuckDB sorts
        (streaming, spilling to disk past its memory limit: a day of per-minute rows need not
        fit in memory) and hands the rows over a row group at a time."""
        cols = ", ".join(SCHEMAS[table].names)
        order = ", ".join(SORT_KEYS[table])
        spill = str(self.root / ".tmp")
        with duckdb.connect(
            config={"threads": 1, "memory_limit": "1GB", "temp_directory": spill}
        ) as con:
            reader = con.sql(
                f"SELECT {cols} FROM read_parquet({sql_files(paths)}) ORDER BY {order}"
            ).to_arrow_reader(ROW_GROUP_ROWS)
            write_stream(table, reader, final)

    def compact_parts(self, table: str, day_us: int) -> bool:
        """An open partition of per-minute rows: fold its uncovered parts into one ``c-``
        file (a run) when there are ``compact_at`` of them, and its runs into one when there
        are as many; the rows of a run are not rewritten until then."""
        with self._compact_lock:
            d = self.day_dir(table, day_us)
            done = False
            parts = [f for f in self.live(self.data_files(d)) if f.kind == "p"]
            if len(parts) >= self.compact_at:
                final = d / f"c-{parts[0].lo:0{_SEQ}d}-{parts[-1].hi:0{_SEQ}d}.parquet"
                data = fold_table(table, read_files(table, [f.path for f in parts]), sort=False)
                write_parquet(data, final, COMPACT_LEVEL)
                self._replace(d, final, parts)
                done = True
            live = self.live(self.data_files(d))
            runs = [f for f in live if f.kind == "c"]
            if len(runs) >= self.compact_at:
                lo, hi = min(f.lo for f in runs), max(f.hi for f in runs)
                covered = [f for f in live if lo <= f.lo and f.hi <= hi]
                final = d / f"c-{lo:0{_SEQ}d}-{hi:0{_SEQ}d}.parquet"
                write_stream(table, _batches(f.path for f in covered), final)
                self._replace(d, final, covered)
                done = True
            return done

    def compact_due(self, newest_day_us: int) -> int:
        """Compact closed partitions with several files and open ones with many; return how
        many were compacted. Only the partitions written since the last call are looked at
        (every one the first time)."""
        if self._dirty is None:
            self._dirty = {(t, p) for t in TABLE_DIRS for p in self.days(t)}
        done = 0
        for table, start in sorted(self._dirty):
            n = len(self.live_files(self.day_dir(table, start)))
            closed = partition_end(table, start) <= newest_day_us
            if closed and n > 1:
                done += self.compact(table, start)
            elif not closed and n >= self.compact_at:
                if table == "minute":
                    done += self.compact_parts(table, start)
                else:
                    done += self.compact(table, start)
            if closed:  # an open partition is looked at again until it closes
                self._dirty.discard((table, start))
        return done

    def enforce_retention(self, newest_day_us: int, short_days: int, long_days: int) -> list[str]:
        """Delete the partitions past the retention of their table (a month once all its
        days are); return what went."""
        gone: list[str] = []
        for table in TABLE_DIRS:
            keep = short_days if table == "minute" else long_days
            if keep <= 0:
                continue
            limit = newest_day_us - keep * L.DAY_US
            for start in self.days(table):
                if partition_end(table, start) - L.DAY_US <= limit:
                    shutil.rmtree(self.day_dir(table, start), ignore_errors=True)
                    name = partition_name(table, start).split("=", 1)[1]
                    gone.append(f"{table}/{name}")
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
        """The live files of the partitions that may hold times in ``[from_us, to_us)``."""
        out: list[Path] = []
        for start in self.days(table):
            if start < to_us and partition_end(table, start) > from_us:
                out += self.live_files(self.day_dir(table, start))
        return out

    def aggregate(self, q: AggQuery) -> list[AggRow]:
        q.validate()
        return finish(self.aggregate_parts(q, plan(q, self.sub_from())))

    def aggregate_parts(self, q: AggQuery, parts: Sequence[Part]) -> list[AggRow]:
        """The sums of ``q`` over the given parts (tables and time ranges), added up."""
        answers = [self._aggregate_part(q, part) for part in parts]
        return answers[0] if len(answers) == 1 else merge_rows(answers)

    def _aggregate_part(self, q: AggQuery, part: Part) -> list[AggRow]:
        for attempt in range(3):  # compaction may replace a file between listing and reading
            files = self._files(part.table, part.from_us, part.to_us)
            if not files:
                return []
            listing = sql_files(files)
            try:
                with duckdb.connect(config={"threads": 2}) as con:
                    measures = con.execute(measures_sql(q, part, listing)).fetchall()
                    hist = con.execute(hist_sql(q, part, listing)).fetchall() if q.histogram else []
                return rows_of(q, measures, hist)
            except duckdb.IOException as exc:
                if attempt == 2 or all(f.exists() for f in files):
                    raise StoreUnavailable(f"the Parquet store under {self.root}: {exc}") from exc
            except duckdb.Error as exc:
                raise StoreUnavailable(f"the Parquet store under {self.root}: {exc}") from exc
        return []

    def changes(self, from_us: int, to_us: int) -> list[dict[str, Any]]:
        files = self._files("changes", 0, to_us)
        if not files:
            return []
        cols = ", ".join(CHANGE_FIELDS)
        sql = (
            f"SELECT {cols} FROM read_parquet({sql_files(files)}) WHERE at_us < {int(to_us)} "
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


def group_exprs(q: AggQuery, div: str, table: str | None = None) -> list[tuple[str, str]]:
    """(expression, alias) of each group key; ``div`` formats an integer division."""
    tcol = TIME_COLUMN[table or q.table]
    out = []
    for g in q.group_by:
        if g == "time":
            out.append((f"{div.format(tcol, int(q.bucket_us))} * {int(q.bucket_us)}", "g_time"))
        else:
            out.append((g, f"g_{g}"))
    return out or [("0", "g_all")]


def where_clause(q: AggQuery, quote: Any, part: Part | None = None) -> str:
    table = part.table if part else q.table
    lo, hi = (part.from_us, part.to_us) if part else (q.from_us, q.to_us)
    tcol = TIME_COLUMN[table]
    parts = [f"{tcol} >= {int(lo)}", f"{tcol} < {int(hi)}"]
    for f, v in q.filters().items():
        if f == "application":
            parts.append(f"(application_id = {quote(v)} OR application_name = {quote(v)})")
        else:
            parts.append(f"{f} = {quote(v)}")
    return " AND ".join(parts)


def measures_sql(q: AggQuery, part: Part, files: str) -> str:
    g = group_exprs(q, "({0} // {1})", part.table)
    sel = ", ".join(f"{e} AS {a}" for e, a in g)
    sums = ", ".join(f"sum({m})::BIGINT AS {m}" for m in MEASURES)
    return (
        f"SELECT {sel}, {sums}, max(application_name) AS application_name "
        f"FROM read_parquet({files}) WHERE {where_clause(q, sql_str, part)} GROUP BY ALL"
    )


def hist_sql(q: AggQuery, part: Part, files: str) -> str:
    """Each group's latency histogram, summed bucket by bucket: (keys..., buckets, counts)."""
    g = group_exprs(q, "({0} // {1})", part.table)
    sel = ", ".join(f"{e} AS {a}" for e, a in g)
    aliases = ", ".join(a for _, a in g)
    return (
        f"SELECT {aliases}, list(b ORDER BY b), list(c ORDER BY b) FROM ("
        f"SELECT {aliases}, b, sum(c)::BIGINT AS c FROM (SELECT {sel}, unnest(lat_idx) AS b, "
        f"unnest(lat_cnt) AS c FROM read_parquet({files}) "
        f"WHERE {where_clause(q, sql_str, part)}) GROUP BY ALL) GROUP BY ALL"
    )


def _key(q: AggQuery, r: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(int(v) if isinstance(v, int) else str(v) for v in r[: len(q.group_by)])


def rows_of(
    q: AggQuery, measures: Sequence[Sequence[Any]], hist: Sequence[Sequence[Any]]
) -> list[AggRow]:
    """AggRows from the answers of ``measures_sql`` and ``hist_sql`` (keys first)."""
    nk = len(q.group_by) or 1
    with_name = "application_id" in q.group_by
    out: dict[tuple[Any, ...], AggRow] = {}
    for r in measures:
        name = r[nk + len(MEASURES)] or ""
        out[_key(q, r)] = AggRow(
            _key(q, r),
            [int(v or 0) for v in r[nk : nk + len(MEASURES)]],
            {},
            str(name) if with_name else "",
        )
    for r in hist:
        row = out.get(_key(q, r))
        if row is not None:
            row.hist = {b: c for b, c in zip(r[nk], r[nk + 1], strict=True) if c}
    return list(out.values())


def iso_day(day_us: int) -> str:
    return datetime.fromtimestamp(day_us / 1e6, tz=UTC).date().isoformat()
