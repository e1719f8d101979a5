"""The data writer: events -> rollups -> a store, off the ingest path, never in its way.

``DataSink.offer`` is all the ingest path does: put the batch on a bounded queue (a full
queue is a counted drop, never a wait). A source that can wait (a history stream: a backfill,
a replay sent to the sidecar) first takes a place with ``reserve``, outside the state's lock.
The writer's thread runs at the lowest CPU priority (``writer_nice``: on busy cores ingestion
goes first), folds batches into per-minute rows with a jitted kernel that releases the GIL, and
every ``flush_seconds`` writes the rows (and the day, subscription and month rows derived from
them) to the store, records class and directive changes, compacts and enforces retention.

When the store cannot be written (disk full, ClickHouse down) the sink *degrades*: it keeps
the unwritten rows in memory up to ``memory_cap`` bytes, retries at every flush, says so in
``status()``, and past the cap drops per-minute rows first, then the oldest day rows, counting
what it dropped (and the period of what it dropped, for the reports). Ingestion never stops.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np

from vigie.state import layout as L
from vigie.store.rollup import TIME_COLUMN, Accumulator, Rows, month_start
from vigie.wire.columns import Events

log = logging.getLogger(__name__)

_STOP: Final = object()
_FLUSH: Final = object()


class Backend(Protocol):
    """What the writer needs from a store."""

    def write_rows(self, rows: Rows) -> int: ...

    def write_changes(self, records: Sequence[dict[str, Any]]) -> int: ...

    def compact_due(self, newest_day_us: int) -> int: ...

    def enforce_retention(
        self, newest_day_us: int, short_days: int, long_days: int
    ) -> list[str]: ...

    def disk_usage(self) -> dict[str, int]: ...


@dataclass(slots=True)
class Pending:
    """Something not yet written: rows of a table, or change records."""

    rows: Rows | None
    changes: list[dict[str, Any]] | None
    nbytes: int


@dataclass(frozen=True, slots=True)
class SinkConfig:
    flush_seconds: float = 30.0
    queue_batches: int = 4096
    memory_cap: int = 256 << 20
    short_retention_days: int = 14
    long_retention_days: int = 1830
    max_rows: int = 1 << 20  # flush early when the open rows reach this
    writer_nice: int = 19  # the writer thread's CPU niceness: ingestion comes first


ROOM_POLL_S: Final = 0.01
DROP_MERGE_US: Final = 300_000_000  # drops this close in event time make one period
MAX_DROP_PERIODS: Final = 256  # between two flushes; past it, the last period grows


class DropPeriods:
    """The event-time periods of the data dropped since the last flush (thread-safe): batches
    the writer's queue could not take (``table`` empty: every table misses them), and rows a
    degraded writer shed past its memory cap (``table``: the one they were rows of)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._periods: list[list[Any]] = []  # [from_us, to_us, events, table]

    def note(self, lo: int, hi: int, events: int, table: str = "") -> None:
        with self._lock:
            same = [p for p in self._periods if p[3] == table]
            for p in same[-4:]:
                if lo <= p[1] + DROP_MERGE_US and hi >= p[0] - DROP_MERGE_US:
                    p[0], p[1], p[2] = min(p[0], lo), max(p[1], hi), p[2] + events
                    return
            if len(self._periods) >= MAX_DROP_PERIODS and same:
                p = same[-1]
                p[0], p[1], p[2] = min(p[0], lo), max(p[1], hi), p[2] + events
                return
            self._periods.append([lo, hi, events, table])

    def take(self) -> list[dict[str, Any]]:
        """The periods as change records, forgotten here."""
        with self._lock:
            periods, self._periods = self._periods, []
        return [
            {
                "at_us": lo,
                "kind": "data",
                "event": "dropped",
                "name": "rollups",
                "detail": json.dumps(
                    {"from_us": lo, "to_us": hi + 1, "events": n} | ({"table": t} if t else {})
                ),
            }
            for lo, hi, n, t in periods
        ]


def _shed_period(rows: Rows) -> tuple[int, int, int]:
    """The event-time span (first and last microsecond) and the requests of ``rows``."""
    t = rows.ints[TIME_COLUMN[rows.table]]
    lo, hi = int(t.min()), int(t.max())
    if rows.table == "minute":
        hi += 60_000_000 - 1
    elif rows.table == "sub_monthly":
        hi = int(month_start(np.array([hi + 32 * L.DAY_US]))[0]) - 1
    else:
        hi += L.DAY_US - 1
    return lo, hi, int(rows.measures[:, 0].sum())


class DataSink:
    """Owns the accumulator and the writer thread (``start``), or runs inline (replay)."""

    def __init__(
        self,
        backend: Backend,
        string: Callable[[int], str],
        channels: Sequence[str],
        config: SinkConfig | None = None,
        poll_changes: Callable[[], list[dict[str, Any]]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "parquet",
        retention_now: Callable[[], int] | None = None,
        retention: bool = True,
    ) -> None:
        """``retention_now`` gives the time (us) retention counts back from: a live sidecar's
        wall clock; None counts from the newest event written. ``retention=False`` (a replay)
        never deletes anything."""
        self.backend = backend
        self.name = name
        self.config = config or SinkConfig()
        self._string = string
        self._channels = channels
        self._poll = poll_changes
        self._clock = clock
        self._retention_now = retention_now
        self._retention = retention
        self.acc = Accumulator()
        self._subscriptions = "sub_daily" in getattr(backend, "tables", ())
        self.counters: Counter[str] = Counter()
        self._dropped = DropPeriods()
        # unbounded: ``offer`` counts the bound, so that a place ``reserve`` took stays free
        self._queue: queue.Queue[Any] = queue.Queue()
        self._room = threading.Lock()  # the queue's bound and the reserved places
        self._reserved = 0
        # flush and stop requests in the queue: not batches, so they take no batch's place
        self._controls = 0
        self._closing = False  # set by close: sources waiting for a place stop waiting
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # accumulator + pending: writer thread vs. flush()
        self._pending: list[Pending] = []
        self.degraded: str = ""
        self.degraded_since: float = 0.0
        self.newest_minute_us = 0
        self._next_flush = clock() + self.config.flush_seconds
        self._usage: dict[str, int] = {}
        self._usage_at = -1e18
        # string ids in queued batches are resolved at the next drain: the sidecar releases
        # strings only once every batch offered before the release is past a drain
        self.batches_offered = 0
        self._batches_added = 0
        self.batches_settled = 0
        self.written_through = 0  # every batch up to this one is in the store
        # moves at every write of rollup rows and every retention deletion: what was read from
        # the store before may have changed (``codes.CodesCache``)
        self.generation = 0

    # ---- the ingest path ----
    def offer(self, ev: Events, reserved: bool = False) -> bool:
        """Hand a batch to the writer; never blocks. False (and counted) when the queue holds
        ``queue_batches``: the period of the events dropped is recorded in the store's changes
        at the next flush (``kind = data``, ``event = dropped``), which reports and autopsies
        read. ``reserved``: the caller holds a place taken by ``reserve`` (a source that
        waited): the batch is queued whatever the live batches left, and the place is used."""
        with self._room:
            if reserved:
                self._reserved -= 1
            elif self._batches_queued() >= self.config.queue_batches:
                self.counters["rollup_events_dropped"] += len(ev)
                if len(ev):
                    ts = ev["event_time_us"]
                    self._dropped.note(int(ts.min()), int(ts.max()), len(ev))
                return False
            self._queue.put_nowait(ev)  # unbounded underneath: the bound is counted here
            self.batches_offered += 1
            return True

    def reserve(self, timeout: float) -> bool:
        """Wait until a place is free in the first half of the queue (counting the places
        other waiting sources hold), at most ``timeout`` seconds, and take it: what a source
        that can wait (a backfill, a replay sent to a sidecar) does before its batch is
        applied, so that it never drops and leaves the other half to the live streams. The
        place is used by ``offer(ev, reserved=True)`` or given back by ``release``. False when
        the writer took no batch for ``timeout`` seconds (nothing taken: a stuck writer). The
        queue then holds at most 1.5 x ``queue_batches``."""
        limit = max(1, self.config.queue_batches // 2)
        deadline = time.monotonic() + timeout
        seen = self._batches_added
        while not self._closing:  # a stopping sidecar makes no one wait
            with self._room:
                if self._batches_queued() + self._reserved < limit:
                    self._reserved += 1
                    return True
            now = time.monotonic()
            if self._batches_added != seen:  # the writer is moving (a slow one, on busy cores)
                seen, deadline = self._batches_added, now + timeout
            elif now >= deadline:
                return False
            time.sleep(ROOM_POLL_S)
        return False

    def _batches_queued(self) -> int:
        """Batches waiting in the queue (its flush and stop requests left out); under
        ``_room``."""
        return max(0, self._queue.qsize() - self._controls)

    def _put_control(self, item: object, timeout: float | None = None) -> None:
        with self._room:
            self._controls += 1
        try:
            self._queue.put(item, timeout=timeout)
        except queue.Full:
            with self._room:
                self._controls -= 1
            raise

    def release(self) -> None:
        """Give back a place taken by ``reserve`` that no batch used (a refused batch)."""
        with self._room:
            self._reserved = max(0, self._reserved - 1)

    # ---- the writer ----
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="data-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 60.0) -> None:
        """Write everything out and stop the thread."""
        self._closing = True
        if self._thread is not None:
            self._put_control(_STOP)
            self._thread.join(timeout)
            self._thread = None
        else:
            self.flush()

    def request_flush(self) -> None:
        self._put_control(_FLUSH)

    def settle(self, timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, until every batch offered so far is written to
        the store (a flush by the writer's thread): what a reader that must see all the
        applied events (a forced policy refresh) asks first. False on timeout (the store is
        degraded or slow: the reader reads what is written)."""
        target = self.batches_offered
        if self.written_through >= target:
            return True
        if self._thread is None:
            self.flush()
            return self.written_through >= target
        deadline = time.monotonic() + timeout
        try:
            self._put_control(_FLUSH, timeout=timeout)
        except queue.Full:
            return False
        while self.written_through < target:
            if time.monotonic() >= deadline:
                return False
            time.sleep(ROOM_POLL_S)
        return True

    def _run(self) -> None:
        lower_priority(self.config.writer_nice)
        while True:
            timeout = max(0.05, self._next_flush - self._clock())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP or item is _FLUSH:
                with self._room:
                    self._controls -= 1
            try:
                if item is _STOP:
                    self.flush()
                    return
                if item is _FLUSH:
                    self.flush()
                elif item is not None:
                    self.add(item)
                if self._clock() >= self._next_flush:
                    self.flush()
            except Exception:  # the writer's error boundary: log, count, keep going
                self.counters["data_writer_errors"] += 1
                log.exception("data writer failed")

    def add(self, ev: Events) -> None:
        """Fold a batch (the writer's thread, or inline for a replay)."""
        with self._lock:
            self.acc.add(ev)
            self._batches_added += 1
            self.newest_minute_us = max(self.newest_minute_us, int(self.acc.meta[3]))
            full = self.acc.rows >= self.config.max_rows
        if full:
            self.flush()

    def record_changes(self, records: list[dict[str, Any]]) -> None:
        """Change records to write at the next flush."""
        if records:
            with self._lock:
                self._pending.append(Pending(None, records, 200 * len(records)))

    def flush(self) -> None:
        """Write the open rows and the changes, then compaction and retention."""
        self._next_flush = self._clock() + self.config.flush_seconds
        changes = self._poll() if self._poll is not None else []
        changes += self._dropped.take()
        with self._lock:
            settled = self._batches_added
            drained = self.acc.drain(self._string, self._channels, self._subscriptions)
            self.batches_settled = settled
            if drained is not None:
                for rows in drained:
                    self._pending.append(Pending(rows, None, rows.nbytes))
            if changes:
                self._pending.append(Pending(None, changes, 200 * len(changes)))
            pending, self._pending = self._pending, []
        failed: list[Pending] = []
        error = ""
        for p in pending:
            if error:
                failed.append(p)
                continue
            try:
                if p.rows is not None:
                    try:
                        self.backend.write_rows(p.rows)
                    finally:  # after: a read made during the write is not kept
                        self.generation += 1
                    self.counters[f"{p.rows.table}_rows_written"] += len(p.rows)
                elif p.changes is not None:
                    self.backend.write_changes(p.changes)
                    self.counters["changes_written"] += len(p.changes)
            except Exception as exc:  # OSError (disk full), StoreUnavailable, ...
                error = _describe(exc)
                failed.append(p)
        if failed:
            self.counters["store_write_failures"] += 1
            with self._lock:
                self._pending = failed + self._pending
                self._shed()
            if not self.degraded:
                self.degraded_since = time.time()
                log.warning("%s store degraded: %s; keeping rows in memory", self.name, error)
            self.degraded = error
            return
        if self.degraded:
            log.info("%s store writable again (was: %s)", self.name, self.degraded)
            self.degraded = ""
            self.degraded_since = 0.0
        newest_day = self.newest_minute_us - self.newest_minute_us % L.DAY_US
        if newest_day > 0:
            try:
                self.backend.compact_due(newest_day)
                gone = self._enforce_retention(newest_day)
                if gone:
                    self.generation += 1
                    self.counters["days_deleted_by_retention"] += len(gone)
                    log.info("retention: deleted %s", ", ".join(gone))
            except Exception as exc:
                self.counters["store_upkeep_failures"] += 1
                log.warning("%s store upkeep failed: %s", self.name, _describe(exc))
        # after the upkeep: a settled reader never sees rows that retention is about to delete
        # (minutes older than short_retention_days, written by a replayed history)
        self.written_through = settled

    def _enforce_retention(self, newest_day: int) -> list[str]:
        if not self._retention:
            return []
        now = self._retention_now() if self._retention_now is not None else newest_day
        return self.backend.enforce_retention(
            now - now % L.DAY_US,
            self.config.short_retention_days,
            self.config.long_retention_days,
        )

    def _shed(self) -> None:
        """Keep the unwritten rows under the memory cap: minute rows go first (oldest first),
        then changes, then the long-term rows; each drop is counted (rows, and the requests
        they held: ``<table>_events_dropped``) and its period noted for the store's changes,
        written at the first flush the store takes (reports and autopsies print it). Called
        with the lock held."""
        total = sum(p.nbytes for p in self._pending)
        for table in ("minute", "changes", "daily", "sub_daily", "sub_monthly"):
            i = 0
            while total > self.config.memory_cap and i < len(self._pending):
                p = self._pending[i]
                kind = p.rows.table if p.rows is not None else "changes"
                if kind != table:
                    i += 1
                    continue
                total -= p.nbytes
                n = len(p.rows) if p.rows is not None else len(p.changes or ())
                self.counters[f"{kind}_rows_dropped"] += n
                if p.rows is not None and n:  # their period, written once the store takes it
                    lo, hi, events = _shed_period(p.rows)
                    self.counters[f"{kind}_events_dropped"] += events
                    self._dropped.note(lo, hi, events, kind)
                del self._pending[i]

    # ---- reading ----
    def usage(self, max_age: float = 10.0) -> dict[str, int]:
        now = self._clock()
        if now - self._usage_at > max_age:
            try:
                self._usage = self.backend.disk_usage()
            except Exception as exc:
                self.counters["store_upkeep_failures"] += 1
                log.warning("%s store: cannot measure disk use: %s", self.name, _describe(exc))
            self._usage_at = now
        return dict(self._usage)

    def status(self) -> dict[str, Any]:
        with self._lock:
            pending_rows = sum(len(p.rows) for p in self._pending if p.rows is not None)
            open_rows = self.acc.rows
        return {
            "backend": self.name,
            "state": f"degraded: {self.degraded}" if self.degraded else "ok",
            "degraded_since": self.degraded_since,
            "bytes": self.usage(),
            "open_rows": open_rows,
            "unwritten_rows": pending_rows,
            "queued_batches": self._batches_queued(),
            "short_retention_days": self.config.short_retention_days,
            "long_retention_days": self.config.long_retention_days,
            "counters": dict(self.counters),
        }


def lower_priority(nice: int) -> bool:
    """Make the calling thread nicer (on Linux a thread has its own niceness): when the cores
    are busy, the scheduler gives them to ingestion first and the writer catches up when they
    are not; the queue in between absorbs the difference (a full queue is a counted drop).
    Return whether the thread now runs at that niceness."""
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        return os.getpriority(os.PRIO_PROCESS, tid) >= nice
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: run as is
        log.debug("data writer keeps its priority: %s", exc)
        return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename or type(exc).__name__})"
    return str(exc) or type(exc).__name__
