"""``DataSink.settle``: a reader that must see every applied batch (a forced policy refresh, a
fleet peer's ``QueryData(settle)``) waits for the writer's thread to store them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.unit.store.test_store_rollups import (
    FOREVER,
    START,
    FailingStore,
    _events,
    _naive_minutes,
)
from vigie.store.data import DataSink, SinkConfig
from vigie.store.parquet import ParquetStore
from vigie.store.query import AggQuery
from vigie.wire.columns import Events, Interner


def _requests(store: ParquetStore) -> int:
    rows = store.aggregate(AggQuery("daily", 0, FOREVER))
    return sum(r.get("requests") for r in rows)


def test_settle_waits_until_every_offered_batch_is_stored(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    interner = Interner([""] + [str(i) for i in range(1, 9)])
    store = ParquetStore(tmp_path / "data")
    # no timed flush during the test: only settle writes
    sink = DataSink(store, interner.string, ["c0", "c1", "c2"], SinkConfig(flush_seconds=3600))
    sink.start()
    try:
        batches = [_events(rng, 300, START) for _ in range(3)]
        for ev in batches:
            assert sink.offer(ev)
        assert sink.settle(60.0)
        want = sum(m[0] for m in _naive_minutes(Events.concat(batches)).values())
        assert _requests(store) == want > 0
        assert sink.written_through == sink.batches_offered == 3
        assert sink.settle(60.0)  # nothing new: at once
    finally:
        sink.close()


def test_settle_says_when_the_store_cannot_take_the_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    interner = Interner([""] + [str(i) for i in range(1, 9)])
    store = FailingStore(tmp_path / "data")
    sink = DataSink(store, interner.string, ["c0", "c1", "c2"], SinkConfig(flush_seconds=3600))
    sink.start()
    try:
        ev = _events(rng, 200, START)
        assert sink.offer(ev)
        assert not sink.settle(0.5)  # the disk is full: the reader reads what is written
        store.full = False
        assert sink.settle(60.0)
        assert _requests(store) == sum(m[0] for m in _naive_minutes(ev).values())
    finally:
        sink.close()
