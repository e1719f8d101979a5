"""``ParquetStore``: the writer (part files), the upkeep (compaction, retention) and the reader
(aggregates and changes through DuckDB) of the Parquet tree.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vigie.state import layout as L
from vigie.store.parquet._files import (
    COMPACT_LEVEL,
    ROW_GROUP_ROWS,
    SEQ_DIGITS,
    DataFile,
    batches,
    partition_end,
    partition_name,
    partition_start,
    write_parquet,
    write_stream,
)
from vigie.store.parquet._queries import hist_sql, measures_sql, rows_of, sql_files
from vigie.store.parquet._tables import (
    SCHEMAS,
    SORT_KEYS,
    TABLE_DIRS,
    changes_to_arrow,
    derive,
    fold_table,
    read_files,
    rows_to_arrow,
)
from vigie.store.plan import NEVER, Part, plan
from vigie.store.query import AggQuery, AggRow, StoreUnavailable, finish, merge_rows
from vigie.store.rollup import MONTH_PARTITIONED, Rows, month_start
from vigie.store.sql import CHANGE_FIELDS, NO_TENANT_SQL, TENANT_SQL

log = logging.getLogger("vigie.store.parquet")

COMPACT_PARTS: Final = 24  # an open partition is compacted once it has this many files
LAYOUT: Final = "layout.json"  # says from which day the subscription tables are whole


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
        self._tenant_files: dict[Path, bool] = {}  # file -> has the tenant column

    # ---- files ----
    def _next_seq(self) -> str:
        with self._seq_lock:
            seq = max(time.time_ns(), self._last_seq + 1)
            self._last_seq = seq
        return f"{seq:0{SEQ_DIGITS}d}"

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
            final = d / f"m-{top:0{SEQ_DIGITS}d}.parquet"
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
                final = d / f"c-{parts[0].lo:0{SEQ_DIGITS}d}-{parts[-1].hi:0{SEQ_DIGITS}d}.parquet"
                data = fold_table(table, read_files(table, [f.path for f in parts]), sort=False)
                write_parquet(data, final, COMPACT_LEVEL)
                self._replace(d, final, parts)
                done = True
            live = self.live(self.data_files(d))
            runs = [f for f in live if f.kind == "c"]
            if len(runs) >= self.compact_at:
                lo, hi = min(f.lo for f in runs), max(f.hi for f in runs)
                covered = [f for f in live if lo <= f.lo and f.hi <= hi]
                final = d / f"c-{lo:0{SEQ_DIGITS}d}-{hi:0{SEQ_DIGITS}d}.parquet"
                write_stream(table, batches(f.path for f in covered), final)
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

    def _has_tenant(self, path: Path) -> bool:
        """Whether a file has the tenant column (files from before tenants do not); a file
        never changes once written, so the answer is kept (bounded)."""
        known = self._tenant_files.get(path)
        if known is None:
            try:
                known = "tenant" in pq.read_schema(path).names
            except OSError:
                return True  # gone (compacted): the query's retry lists the files again
            if len(self._tenant_files) >= 65_536:
                self._tenant_files.clear()
            self._tenant_files[path] = known
        return known

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
            tenant = TENANT_SQL if any(self._has_tenant(f) for f in files) else NO_TENANT_SQL
            try:
                with duckdb.connect(config={"threads": 2}) as con:
                    measures = con.execute(measures_sql(q, part, listing, tenant)).fetchall()
                    hist = (
                        con.execute(hist_sql(q, part, listing, tenant)).fetchall()
                        if q.histogram
                        else []
                    )
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
        if not any(self._has_tenant(f) for f in files):  # written before tenants
            cols = cols.replace("tenant", "'' AS tenant")
        sql = (
            f"SELECT {cols} FROM read_parquet({sql_files(files)}, union_by_name = true) "
            f"WHERE at_us < {int(to_us)} "
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
