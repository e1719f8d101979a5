"""The data store: rollups of the events over months, and the one query every backend answers.

The way in: ``rollup`` (events -> per-minute and per-day rows, jitted in ``_rollup_kernels``),
``changes`` (classes and directives as they change) and ``data`` (the writer thread that folds
and flushes them), wired into ``vigie serve`` by ``service``. The backends: ``parquet`` (files
queried with DuckDB) and ``clickhouse``, which share ``sql``. The way out: ``query`` (the
aggregate query and how answers add up) and ``plan`` (which tables answer it).
"""
