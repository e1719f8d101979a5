"""``vigie replay``: WSO2's analytics log through the same state and rules as live traffic."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

from vigie.classify import security, views
from vigie.clock import SYSTEM, Clock, wall_us
from vigie.policy.codes import ThrottleCodes
from vigie.policy.suggest import suggest
from vigie.settings import Settings, load_settings
from vigie.settings.policy import PolicyConfig
from vigie.sources.inventory import load_inventory
from vigie.sources.wso2_log import (
    MAX_LINE_BYTES,
    ReplayStats,
    check_readable,
    parse_source,
    read_logs,
)
from vigie.state.engine import State
from vigie.wire.columns import Events


@dataclass(slots=True)
class ReplayReport:
    state: State
    stats: ReplayStats
    now_us: int
    seconds: float
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    # the WSO2 throttle codes of the last hours (from --store), None without a store
    codes: ThrottleCodes | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.stats.events,
            "rejected": self.stats.rejected,
            "rejected_out_of_timeline": self.stats.out_of_timeline,
            "now": views.iso(self.now_us),
            "subscriptions": [v.to_json() for v in views.subscriptions(self.state, self.now_us)],
            "apis": [v.to_json() for v in views.apis(self.state, self.now_us)],
            "clients": [c.as_dict() for c in security.clients(self.state, held_only=True)],
            "suggestions": [
                s.to_json() for s in suggest(self.state, self.now_us, self.policy, self.codes)
            ],
        }


@dataclass(frozen=True, slots=True)
class LineLimits:
    """What a replay refuses of a line: longer than ``max_line_bytes``, or dated more than
    ``max_skew_us`` (and its neighbours' spread) from the lines around it (0: not checked)."""

    max_line_bytes: int = MAX_LINE_BYTES
    max_skew_us: int = 0

    @staticmethod
    def from_settings(settings: Settings) -> LineLimits:
        return LineLimits(settings.max_line_bytes, int(settings.max_clock_skew_seconds * 1e6))


def replay_into(
    state: State,
    sources: list[str],
    stats: ReplayStats,
    on_bytes: Callable[[int], None] | None = None,
    on_batch: Callable[[Events], None] | None = None,
    limits: LineLimits | None = None,
) -> None:
    """Feed the logs named by ``[CHANNEL=]PATH`` specs into ``state`` (and each applied batch
    to ``on_batch``, e.g. the data store)."""
    lim = limits or LineLimits()
    parsed = [parse_source(s) for s in sources]
    for _, path in parsed:
        check_readable(path)
    resolved = [(state.channel_index(ch), path) for ch, path in parsed]
    lines = read_logs(
        resolved, state.interner, stats, on_bytes, max_line_bytes=lim.max_line_bytes,
        max_skew_us=lim.max_skew_us,
    )  # fmt: skip
    for ev in _ahead(lines):
        state.apply(ev)
        if on_batch is not None:
            on_batch(ev)


_DONE: Final = object()


def _ahead(batches: Iterator[Events], depth: int = 2) -> Generator[Events, None, None]:
    """``batches``, parsed in a thread of their own up to ``depth`` chunks ahead: the kernel
    (which releases the GIL) applies one chunk while the next one is read and parsed. The
    parser only adds strings to the interner; a chunk is handed over once its strings are in,
    so ``State.apply`` sees every id it needs. An error in the parser is raised here."""
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for ev in batches:
                if not put(ev):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    th = threading.Thread(target=produce, name="replay-parse", daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(Events, item)
    finally:
        stop.set()
        th.join()


def run_replay(
    sources: list[str],
    inventory: Path | None,
    now_us: int | None,
    config: Path | None = None,
    progress: bool = False,
    store: Path | None = None,
    clock: Clock = SYSTEM,
) -> ReplayReport:
    """Replay ``sources`` into a fresh state; ``now_us`` (default: the last event's time, else
    ``clock``'s) is when the classes and suggestions are read."""
    settings = load_settings(config) if config else load_settings(env={})
    state = State(settings.thresholds)
    if inventory is not None:
        load_inventory(inventory).apply_to(state)
    stats = ReplayStats()
    limits = LineLimits.from_settings(settings)
    started = time.perf_counter()
    recorder = None
    if store is not None:
        from vigie.store.service import ReplayRecorder, sink_config  # noqa: PLC0415

        recorder = ReplayRecorder(store, state, sink_config(settings))
    on_batch = recorder.on_batch if recorder is not None else None
    if progress:
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        total = sum(
            parse_source(s)[1].stat().st_size for s in sources if parse_source(s)[1].is_file()
        )
        from rich.console import Console  # noqa: PLC0415

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=True,
            console=Console(stderr=True),
        ) as bar:
            task = bar.add_task("replaying", total=total or None)
            replay_into(state, sources, stats, lambda n: bar.advance(task, n), on_batch, limits)
    else:
        replay_into(state, sources, stats, on_batch=on_batch, limits=limits)
    if recorder is not None:
        recorder.close()
    if now_us is None:
        now_us = state.now_us or wall_us(clock)
    policy = PolicyConfig.from_settings(settings)
    codes = None
    if recorder is not None:
        from vigie.store.codes import throttle_codes  # noqa: PLC0415

        codes = ThrottleCodes.from_json(throttle_codes(recorder.store, now_us))
    return ReplayReport(state, stats, now_us, time.perf_counter() - started, policy, codes)
