"""The files of the Parquet store: partition directories (a day, or a month for the subscription
tables), the sequence-named files in them and what each covers, and writing a file atomically.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from vigie.state import layout as L
from vigie.store.parquet._tables import SCHEMAS
from vigie.store.plan import next_month
from vigie.store.rollup import MONTH_PARTITIONED
from vigie.store.sql import day_name, day_us_of

ROW_GROUP_ROWS: Final = 32_768
SEQ_DIGITS: Final = 20  # digits of a sequence number
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


def batches(paths: Iterable[Path]) -> Iterable[pa.RecordBatch]:
    """The rows of several files, in order, a row group at a time (little memory)."""
    for p in paths:
        f = pq.ParquetFile(p)
        for i in range(f.num_row_groups):
            yield from f.read_row_group(i).to_batches()
