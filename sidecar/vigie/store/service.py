"""Wiring of the data store into ``vigie serve`` and ``vigie replay --store``.

The sidecar and the replay only call ``offer``/``on_batch`` with each applied batch; the rest
(the writer thread, change tracking, retention) lives here. The sidecar's side is handed the
live state (``LiveState``), the directive table and the settings, never the process object.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vigie.classify.live import LiveState
from vigie.clock import SYSTEM, Clock, wall_us
from vigie.directives.table import DirectiveTable
from vigie.errors import ConfigError
from vigie.settings import Settings
from vigie.state.engine import State
from vigie.store.changes import ChangeTracker
from vigie.store.data import DataSink, SinkConfig
from vigie.store.parquet import ParquetStore
from vigie.store.query import Store
from vigie.store.rollup import ROLLUP_TABLES, Accumulator
from vigie.wire.columns import Events

log = logging.getLogger(__name__)

CLASS_POLL_US = 60_000_000  # a replay records class changes at most once a minute of event time


def sink_config(settings: Settings) -> SinkConfig:
    return SinkConfig(
        flush_seconds=float(settings.data_flush_seconds),
        queue_batches=int(settings.data_queue_batches),
        memory_cap=int(settings.data_memory_cap),
        short_retention_days=int(settings.short_retention_days),
        long_retention_days=int(settings.long_retention_days),
        # open rows flush early before they outgrow the data memory cap (a flood of new
        # applications makes one row each; arrays double, so half the cap)
        max_rows=max(4096, int(settings.data_memory_cap) // (2 * Accumulator.row_bytes())),
    )


def open_store(settings: Settings) -> tuple[Any, str]:
    """The store the settings name: (store, its name), or (None, "off")."""
    kind = settings.data_store
    if kind == "off":
        return None, "off"
    if kind == "parquet":
        root = Path(settings.data_dir) if settings.data_dir else settings.state_path / "data"
        root.mkdir(parents=True, exist_ok=True)
        store = ParquetStore(root)
        store.backfill()  # a store written before the subscription tables: derive them
        return store, "parquet"
    if kind == "clickhouse":
        from vigie.store.clickhouse import ClickHouseStore  # noqa: PLC0415

        return ClickHouseStore(settings.clickhouse_url, settings.clickhouse_database), "clickhouse"
    raise ConfigError(f"data_store: unknown store {kind!r}")


def for_sidecar(
    live: LiveState, directives: DirectiveTable, settings: Settings, clock: Clock = SYSTEM
) -> SidecarData | None:
    """The data side of ``vigie serve`` as its settings say (None when off)."""
    store, name = open_store(settings)
    if store is None:
        return None
    return SidecarData(store, name, live, directives, sink_config(settings), clock)


class SidecarData:
    """The data side of a running sidecar: a writer thread fed by ``offer``, which records
    the classes' and the directives' changes (stamped by ``clock``'s wall time) as it goes."""

    def __init__(
        self,
        store: Any,
        name: str,
        live: LiveState,
        directives: DirectiveTable,
        config: SinkConfig,
        clock: Clock = SYSTEM,
    ) -> None:
        self.store: Store = store
        self._live = live
        self._directives = directives
        self._clock = clock
        self.tracker = ChangeTracker()
        self.dropped_since_us = 0  # wall time of the first batch not stored, 0 = none
        state = live.state
        self.sink = DataSink(
            store,
            state.interner.string,
            state.channels,
            config,
            poll_changes=self._poll,
            name=name,
            retention_now=lambda: wall_us(clock),  # never an event's time: one stream's clock
        )

    def _poll(self) -> list[dict[str, Any]]:
        with self._live.lock:
            records = self.tracker.poll_classes(self._live.state)
        _, directives = self._directives.snapshot()
        records += self.tracker.poll_directives(directives, wall_us(self._clock))
        return records

    def start(self) -> None:
        self.sink.start()

    def offer(self, ev: Events, reserved: bool = False) -> bool:
        """Hand a batch to the writer; a batch it cannot take is dropped, counted, and the
        status says so (``dropped_since``) until the sidecar restarts: lost rollups are
        never silent. ``reserved``: a place taken by ``sink.reserve`` (``DataSink.offer``)."""
        taken = self.sink.offer(ev, reserved)
        if not taken and not self.dropped_since_us:
            self.dropped_since_us = wall_us(self._clock)
            log.warning("rollups dropped: the data writer's queue is full (data_queue_batches)")
        return taken

    def close(self) -> None:
        self.sink.close()

    def status(self) -> dict[str, Any]:
        """The sink's status; ``degraded: N events not stored`` (and since when) once any
        batch or row was dropped, for as long as the process runs: lost data stays loud after
        the store recovers."""
        st = self.sink.status()
        lost = []
        counters = st["counters"]
        # a queue drop misses every table, shed rows one table: count the table missing most
        events = int(counters.get("rollup_events_dropped", 0))
        events += max(int(counters.get(f"{t}_events_dropped", 0)) for t in ROLLUP_TABLES)
        if events:
            lost.append(f"{events:,} events not stored")
        for key, n in sorted(st["counters"].items()):
            if key.endswith("_rows_dropped") and n:
                lost.append(f"{int(n):,} {key.removesuffix('_rows_dropped')} rows not stored")
        if not lost:
            return st
        if not self.dropped_since_us:  # rows shed by the writer: first seen now
            self.dropped_since_us = int(st["degraded_since"] * 1e6) or wall_us(self._clock)
        if st["state"] != "ok":
            lost.append(st["state"].removeprefix("degraded: "))
        return st | {
            "state": "degraded: " + "; ".join(lost),
            "degraded_since": self.dropped_since_us / 1e6,
        }


class ReplayRecorder:
    """``vigie replay --store DIR``: the same rollups, written inline as the log is read."""

    def __init__(self, root: Path, state: State, config: SinkConfig | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.store = ParquetStore(root)
        self.store.backfill()
        self.state = state
        self.tracker = ChangeTracker()
        # a replay never deletes: the log's times say nothing of what the store should keep
        self.sink = DataSink(
            self.store, state.interner.string, state.channels, config, retention=False
        )
        self._next_poll = 0

    def on_batch(self, ev: Events) -> None:
        self.sink.add(ev)
        now = self.state.now_us
        if now >= self._next_poll:
            self._record_classes()
            self._next_poll = now - now % CLASS_POLL_US + CLASS_POLL_US

    def _record_classes(self) -> None:
        self.sink.record_changes(self.tracker.poll_classes(self.state))

    def close(self) -> None:
        self._record_classes()
        self.sink.flush()
        if self.sink.degraded:
            raise ConfigError(f"the store under {self.store.root}: {self.sink.degraded}")
