"""The data writer's queue and the places history streams take in it (``DataSink.reserve``):
live offers never wait and are dropped past ``queue_batches``; places are counted, so waiting
sources together take at most the first half; a taken place always queues its batch (the live
batches cannot take it); a place given back frees it; a closing sink makes no one wait.
A real Parquet store under the sink; no writer thread (the test drains the queue itself)."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np

from vigie.store.data import DataSink, SinkConfig
from vigie.store.parquet import ParquetStore
from vigie.wire.columns import COLUMN_NAMES, ENGINE_DTYPES, Events

T0 = 1_772_409_600_000_000


def _events(n: int = 10) -> Events:
    cols = {name: np.zeros(n, dtype=ENGINE_DTYPES[name]) for name in COLUMN_NAMES}
    cols["event_time_us"] = T0 + np.arange(n, dtype=np.int64)
    cols["api_name"][:] = 1
    cols["application_id"][:] = 2
    return Events(cols, np.zeros(n, dtype=np.uint8))


def _sink(tmp_path: Path, queue_batches: int = 4) -> DataSink:
    strings = ["", "Orders", "app-1"]
    return DataSink(
        ParquetStore(tmp_path / "data"),
        strings.__getitem__,
        ["main"],
        SinkConfig(queue_batches=queue_batches),
    )


def test_places_are_counted_and_a_taken_place_always_queues(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    assert sink.reserve(0) and sink.reserve(0)  # the first half: 2 places
    assert not sink.reserve(0)  # held by the two waiting sources, though the queue is empty
    for _ in range(4):  # the live streams fill the queue meanwhile
        assert sink.offer(_events())
    assert not sink.offer(_events())  # full for live batches: dropped, counted
    assert sink.counters["rollup_events_dropped"] == 10
    assert sink.offer(_events(), reserved=True) and sink.offer(_events(), reserved=True)
    assert sink._queue.qsize() == 6  # at most 1.5 x queue_batches
    assert sink.batches_offered == 6


def test_a_place_given_back_is_free_again_and_closing_makes_no_one_wait(tmp_path: Path) -> None:
    sink = _sink(tmp_path, queue_batches=2)
    assert sink.reserve(0)
    assert not sink.reserve(0)
    sink.release()
    assert sink.reserve(0)
    sink.release()
    sink.close()  # no thread: flushes inline
    assert not sink.reserve(3600)  # returns at once: the sink is closing


def test_waiting_sources_lose_nothing_while_the_writer_drains(tmp_path: Path) -> None:
    """Eight sources, 50 batches each, through 2 places, while the test drains the queue as a
    slow writer would: every batch queued, none dropped, and the queue never over its half plus
    the live batches (none here)."""
    sink = _sink(tmp_path)
    done = threading.Event()
    drained: list[int] = []
    most = [0]

    def writer() -> None:
        while not done.is_set() or sink._queue.qsize():
            most[0] = max(most[0], sink._queue.qsize())
            try:
                ev = sink._queue.get(timeout=0.01)
            except queue.Empty:
                continue
            sink.add(ev)
            drained.append(len(ev))

    def source() -> None:
        for _ in range(50):
            assert sink.reserve(600)
            assert sink.offer(_events(), reserved=True)

    w = threading.Thread(target=writer)
    w.start()
    sources = [threading.Thread(target=source) for _ in range(8)]
    for t in sources:
        t.start()
    for t in sources:
        t.join()
    done.set()
    w.join()
    assert sum(drained) == 8 * 50 * 10
    assert sink.counters["rollup_events_dropped"] == 0
    assert most[0] <= 2  # the first half only: the other half stays for the live streams


def test_flush_requests_take_no_batch_place(tmp_path: Path) -> None:
    """Refreshes ask the writer for a flush while it is stuck (a slow store): those requests
    wait in the same queue, but they are not batches, so live batches are still queued up to
    ``queue_batches`` and nothing is dropped for them."""
    sink = _sink(tmp_path, queue_batches=4)
    for _ in range(3):
        sink.request_flush()
    for _ in range(4):
        assert sink.offer(_events())
    assert sink.counters["rollup_events_dropped"] == 0
    assert not sink.offer(_events())  # the fifth batch is past the bound: dropped, counted
    assert sink.counters["rollup_events_dropped"] == 10
    assert sink.status()["queued_batches"] == 4
    assert sink.reserve(0) is False  # the first half is full of batches, not of requests
