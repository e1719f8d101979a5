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

The package: ``_files`` (partitions, file names and what they cover, atomic writes),
``_tables`` (Arrow schemas, the fold of compaction), ``_queries`` (DuckDB's SQL over the files)
and ``_store`` (``ParquetStore``: writer, upkeep, reader). The SQL it shares with the ClickHouse
store is in ``vigie.store.sql``.
"""

from vigie.store.parquet._files import (
    COMPACT_LEVEL,
    PART_LEVEL,
    ROW_GROUP_ROWS,
    DataFile,
    write_parquet,
)
from vigie.store.parquet._store import COMPACT_PARTS, LAYOUT, ParquetStore
from vigie.store.sql import day_name, sql_str

__all__ = [
    "COMPACT_LEVEL",
    "COMPACT_PARTS",
    "LAYOUT",
    "PART_LEVEL",
    "ROW_GROUP_ROWS",
    "DataFile",
    "ParquetStore",
    "day_name",
    "sql_str",
    "write_parquet",
]
