"""The "data incomplete" periods: queue drops (every table misses them) and rows shed per table
(the table missing most counts), merged where they touch, read from a real Parquet store's
change records as the data writer writes them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vigie.reports.incomplete import banner, dropped_periods
from vigie.store.data import DropPeriods
from vigie.store.parquet import ParquetStore

H = 3_600_000_000
T0 = 1_772_409_600_000_000  # 2026-03-02T00:00Z


def _store(tmp_path: Path, notes: list[tuple[int, int, int, str]]) -> ParquetStore:
    store = ParquetStore(tmp_path / "data")
    d = DropPeriods()
    for lo, hi, n, table in notes:
        d.note(lo, hi, n, table)
    store.write_changes(d.take())
    return store


def test_shed_rows_of_two_tables_count_the_table_missing_most(tmp_path: Path) -> None:
    store = _store(
        tmp_path,
        [
            (T0, T0 + H - 1, 500, "minute"),  # the minute rows of 00:00-01:00 shed
            (T0, T0 + 24 * H - 1, 300, "daily"),  # and later the day's rows (the same events)
            (T0 + 2 * H, T0 + 2 * H + 10, 7, ""),  # a queue drop at 02:00: every table
            (T0 + 48 * H, T0 + 49 * H - 1, 40, "minute"),  # two days later, apart
        ],
    )
    got = dropped_periods(store, T0, T0 + 72 * H)
    assert got == [
        {"from": "2026-03-02T00:00:00.000Z", "to": "2026-03-03T00:00:00.000Z", "events": 507},
        {"from": "2026-03-04T00:00:00.000Z", "to": "2026-03-04T01:00:00.000Z", "events": 40},
    ]
    # a naive twin: per merged span, the queue drops plus the largest per-table sum
    naive = [7 + max(500, 300), 40]
    assert [p["events"] for p in got] == naive
    line = banner(got)
    assert line is not None and line.startswith("data incomplete: 547 events of this span")
    assert dropped_periods(store, T0 + 30 * H, T0 + 40 * H) == []  # between the two: nothing


def test_periods_of_one_table_merge_but_not_with_another_tables(tmp_path: Path) -> None:
    d = DropPeriods()
    d.note(T0, T0 + 10, 1, "minute")
    d.note(T0 + 20, T0 + 30, 2, "minute")  # within 5 min: one period
    d.note(T0 + 20, T0 + 30, 4, "daily")  # another table: its own record
    records = d.take()
    assert len(records) == 2
    assert d.take() == []
    rng = np.random.default_rng(1)
    lows = np.sort(rng.integers(T0, T0 + 100 * H, 50))
    for lo in lows:
        d.note(int(lo), int(lo) + 1, 1, "")
    total = sum(int(json.loads(r["detail"])["events"]) for r in d.take())
    assert total == 50  # merged or not, no event is lost from the count
