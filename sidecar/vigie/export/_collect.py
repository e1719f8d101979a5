"""Collection: copy what the export needs out of the sidecar, a few rows at a time.

The state's arrays are copied in chunks of about ``chunk_bytes``, each under the sidecar's lock
and the lock released between chunks, so a collection never holds the ingest thread for more
than one chunk's memcpy. A row's figures are copied together (a route row's counter and its
histogram, a subscription's counters and class times), so each series is consistent; series
copied in different chunks may be a few microseconds apart, which no metric backend can see.
Everything after the copy (classes, grouping, encoding) runs on the copies, outside the lock.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from vigie.state import layout as L
from vigie.state._evict import RouteFold
from vigie.state.engine import State
from vigie.state.thresholds import (
    API_CLASS_NAMES,
    API_HEALTH_CLASS_NAMES,
    CLASS_NAMES,
    HEALTH_CLASS_NAMES,
)
from vigie.v1 import directives_pb2 as dpb
from vigie.wire.columns import Interner

DEFAULT_CHUNK_BYTES = 512 * 1024

I64 = npt.NDArray[np.int64]


class Source(Protocol):
    """What the export reads from the sidecar (``vigie.server.core.Sidecar`` is one)."""

    @property
    def lock(self) -> threading.Lock: ...
    @property
    def state(self) -> State: ...
    @property
    def counters(self) -> Mapping[str, int]: ...
    @property
    def streams(self) -> Mapping[int, Any]: ...
    @property
    def directives(self) -> Any: ...  # vigie.directives.table.DirectiveTable
    @property
    def started_at_us(self) -> int: ...
    @property
    def sidecar_id(self) -> str: ...


class Strings:
    """The interner's strings as they were at collection time, read without a copy: ids below
    ``len`` keep their strings for the collection (the interner hands a released id out again
    only after ``RELEASE_GRACE_S``, see ``Interner.settle``)."""

    def __init__(self, interner: Interner) -> None:
        self._interner = interner
        self._n = len(interner)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, gid: int) -> str:
        if not 0 <= gid < self._n:
            raise IndexError(gid)
        return self._interner.string(gid)


@dataclass(slots=True)
class GatewayFigures:
    gateway_id: str
    channel: str
    tenant: str
    offered: int = 0
    sent: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    # what was refused on its stream: its events dated too far ahead (by the sidecar), the
    # directive upserts and local quotas it reports having rejected
    refused: dict[str, int] = field(default_factory=dict)
    clock_skew_us: int | None = None  # its clock minus the sidecar's; None: not sent


@dataclass(slots=True)
class DirectiveFigures:
    directive_id: str
    mode: str
    action: str


@dataclass(slots=True)
class DataFigures:
    dropped: dict[str, int]  # reason (rollup_events, minute_rows, ...) -> count
    degraded: bool


def data_figures(data: Any) -> DataFigures | None:
    """What the data store (``vigie.store.service.DataService``, or None) reports lost: its
    ``*_dropped`` counters, the same ones ``vigie status`` shows."""
    if data is None:
        return None
    status = data.status()
    dropped = {
        name.removesuffix("_dropped"): int(v)
        for name, v in status["counters"].items()
        if name.endswith("_dropped")
    }
    return DataFigures(dropped, status["state"] != "ok")


@dataclass(slots=True)
class Frame:
    """Private copies of everything one export reads."""

    time_ns: int
    start_ns: int
    sidecar_id: str
    g: I64
    route_i64: I64
    route_hist: I64
    api_i64: I64
    sub_i64: I64
    sub_held: npt.NDArray[np.bool_]  # (rows, SUB_CLASSES) at the latest event time
    api_held: npt.NDArray[np.bool_]  # (rows, API_CLASSES)
    strings: Strings
    channels: list[str]
    counters: dict[str, int]
    gateways: list[GatewayFigures]
    directives: list[DirectiveFigures]
    hits: list[tuple[str, int, int, int]]  # directive id, shadow, enforced, passed
    # the data store's losses (counter name -> count) and whether it is degraded; None: no store
    data: DataFigures | None = None
    lock_hold_max_s: float = 0.0  # longest single hold of the sidecar's lock
    lock_holds: int = 0
    row_epoch: int = 0  # ``State.row_epoch``: API / route rows were moved when it changes
    # the state's own counters as ``vigie status`` shows them (``State.counters``, the
    # auth_failing table's), its bytes and its cap
    state_counters: dict[str, int] = field(default_factory=dict)
    state_bytes: int = 0
    state_bytes_cap: int = 0
    # the latest route evictions (``State.route_folds``): the export's series keep their figures
    route_folds: tuple[RouteFold, ...] = ()
    # ``State.evicted_sub_figures``: what the freed subscription rows had counted
    evicted_sub_figures: I64 = field(default_factory=lambda: np.zeros(5, dtype=np.int64))


_SUB_COPIES = ("sub_i64", "cls_first", "cls_last", "sub_hour")
_API_COPIES = ("api_i64", "api_hour", "api_cls_first", "api_cls_last")
_ROUTE_COPIES = ("route_i64", "route_hist")
# what ``Baselines.sub_held`` / ``api_held`` read: a row's generation and the health classes'
_SUB_HEALTH_COPIES = ("bs_i64", "bs_first", "bs_last")
_API_HEALTH_COPIES = ("ba_i64", "ba_first", "ba_last")
# the class columns of ``Frame.sub_held`` / ``api_held``: the windowed and the health classes
SUB_CLASSES: Final = (*CLASS_NAMES, *HEALTH_CLASS_NAMES)
API_CLASSES: Final = (*API_CLASS_NAMES, *API_HEALTH_CLASS_NAMES)


class _Chunker:
    """Copies row ranges of several arrays, each range under the lock."""

    def __init__(
        self, lock: threading.Lock, chunk_bytes: int, buffers: dict[str, npt.NDArray[Any]]
    ) -> None:
        self.lock = lock
        self.chunk_bytes = chunk_bytes
        self.buffers = buffers
        self.hold_max = 0.0
        self.holds = 0

    def held(self, fn: Callable[[], Any]) -> Any:
        with self.lock:
            t0 = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t0
        self.hold_max = max(self.hold_max, dt)
        self.holds += 1
        time.sleep(0)  # let a waiting ingest thread take the lock before the next chunk
        return out

    def _buffer(self, name: str, like: npt.NDArray[Any], n: int) -> npt.NDArray[Any]:
        """Room for ``n`` rows like ``like``, reused from the previous collection, its pages
        touched here (outside the lock) so that no page fault happens while the lock is held."""
        buf = self.buffers.get(name)
        if (
            buf is None
            or len(buf) < n
            or buf.shape[1:] != like.shape[1:]
            or buf.dtype != like.dtype
        ):
            buf = np.zeros((n + n // 4 + 16, *like.shape[1:]), dtype=like.dtype)
            buf.fill(0)
            self.buffers[name] = buf
        return buf[:n]

    def rows(self, state: State, names: tuple[str, ...], n: int) -> dict[str, npt.NDArray[Any]]:
        return self.rows_of(lambda name: getattr(state, name), names, n)

    def rows_of(
        self, get: Callable[[str], npt.NDArray[Any]], names: tuple[str, ...], n: int
    ) -> dict[str, npt.NDArray[Any]]:
        """The first ``n`` rows of the arrays ``get(name)`` (called under the lock); rows an
        array does not have yet (the baselines grow at the next batch) are zeros."""
        first = {name: get(name) for name in names}  # their shapes and dtypes
        out = {name: self._buffer(name, a, n) for name, a in first.items()}
        row_bytes = max(1, sum(a[:1].nbytes for a in first.values()))
        step = max(16, self.chunk_bytes // row_bytes)
        for lo in range(0, n, step):
            hi = min(n, lo + step)

            def copy_rows(lo: int = lo, hi: int = hi) -> None:
                for name in names:  # re-read: the arrays may have grown meanwhile
                    src = get(name)[lo:hi]
                    out[name][lo : lo + len(src)] = src
                    out[name][lo + len(src) : hi] = 0

            self.held(copy_rows)
        return out


def _gateway(gs: Any) -> GatewayFigures:
    h = gs.hello
    fig = GatewayFigures(h.gateway_id, h.channel or "default", h.tenant)
    fig.refused = {"future": int(getattr(gs, "refused", 0))}
    fig.clock_skew_us = getattr(gs, "clock_skew_us", None)
    r = gs.report
    if r is not None:
        fig.offered = int(r.offered)
        fig.sent = int(r.sent)
        fig.dropped = {
            "queue_full": int(r.dropped_queue_full),
            "disconnected": int(r.dropped_disconnected),
            "send_failed": int(r.dropped_send_failed),
            "other": int(r.dropped_other),
        }
        fig.refused["directive"] = int(getattr(r, "directives_rejected", 0))
        fig.refused["quota"] = int(getattr(r, "quotas_rejected", 0))
    return fig


def _small(src: Source) -> dict[str, Any]:
    st = src.state
    return {
        "g": st.g.copy(),
        "n_sub": st.n_sub_rows,
        "n_api": st.n_api_rows,
        "n_route": st.n_route_rows,
        "row_epoch": st.row_epoch,
        "route_folds": tuple(getattr(st, "route_folds", ())),
        "evicted_sub_figures": np.array(getattr(st, "evicted_sub_figures", np.zeros(5)), np.int64),
        "sub_meta": st.sub_meta.copy(),
        "api_meta": st.api_meta.copy(),
        "strings": Strings(st.interner),
        "channels": list(st.channels),
        "counters": dict(src.counters)
        | {"fleet_refused:directive": int(getattr(src.directives, "remote_refused", 0))},
        "state_counters": st.counters()
        | st.security.counters()
        | {"string_bytes_held": st.interner.bytes},
        "state_bytes": (st.nbytes(), st.capacity.memory_cap_bytes),
        "gateways": [_gateway(gs) for gs in src.streams.values()],
        "thresholds": (st.thresholds, st.params),
    }


def _rows(ch: _Chunker, src: Source, small: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The row copies of a frame: subscriptions, APIs, routes, and the baselines' health."""
    state = src.state
    subs = ch.rows(state, _SUB_COPIES, small["n_sub"])
    apis = ch.rows(state, _API_COPIES, small["n_api"])
    routes = ch.rows(state, _ROUTE_COPIES, small["n_route"])
    health = ch.rows_of(lambda k: src.state.baselines.arrays[k], _SUB_HEALTH_COPIES, small["n_sub"])
    health |= ch.rows_of(
        lambda k: src.state.baselines.arrays[k], _API_HEALTH_COPIES, small["n_api"]
    )
    return subs, apis, routes, health


def collect(
    src: Source,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    clock: Callable[[], float] = time.time,
    buffers: dict[str, npt.NDArray[Any]] | None = None,
) -> Frame:
    """Copy the sidecar's figures out (see the module docstring). With ``buffers`` (a dict kept
    by the caller), the copies reuse the previous collection's memory: the previous frame's
    arrays are then overwritten."""
    ch = _Chunker(src.lock, chunk_bytes, {} if buffers is None else buffers)
    state = src.state
    small: dict[str, Any] = ch.held(lambda: _small(src))
    subs, apis, routes, health = _rows(ch, src, small)
    if ch.held(lambda: state.row_epoch) != small["row_epoch"]:
        # API / route rows moved between two holds (an eviction, ``vigie.state._evict``): the
        # copies may not agree with each other; copied again, all in one hold of the lock
        whole = _Chunker(contextlib.nullcontext(), 1 << 62, ch.buffers)  # type: ignore[arg-type]
        with src.lock:
            small = _small(src)
            subs, apis, routes, health = _rows(whole, src, small)

    # classes, evaluated on the copies (State.held reads only these arrays)
    view = copy.copy(state)
    for name, arr in (*subs.items(), *apis.items()):
        setattr(view, name, arr)
    view.sub_meta = small["sub_meta"]
    view.api_meta = small["api_meta"]
    view.g = small["g"]
    view.thresholds, view.params = small["thresholds"]
    now = int(small["g"][L.G_NOW])
    view.baselines = copy.copy(state.baselines)
    view.baselines.arrays = health  # what sub_held / api_held read, nothing else
    sub_held = np.hstack([view.held(now)[0], view.baselines.sub_held(view, now)])
    api_held = np.hstack([view.api_held(now)[0], view.baselines.api_held(view, now)])

    _, items = src.directives.snapshot()
    directives = [
        DirectiveFigures(
            d.id,
            "enforce" if d.mode == dpb.DIRECTIVE_MODE_ENFORCE else "shadow",
            "limit" if d.action == dpb.DIRECTIVE_ACTION_LIMIT else "block",
        )
        for d in items
    ]
    hits = [
        (h.directive_id, int(h.shadow_hits), int(h.enforced_hits), int(h.passed))
        for h in src.directives.hits()
    ]
    return Frame(
        time_ns=int(clock() * 1e9),
        start_ns=int(src.started_at_us) * 1000,
        sidecar_id=src.sidecar_id,
        g=small["g"],
        route_i64=routes["route_i64"],
        route_hist=routes["route_hist"],
        api_i64=apis["api_i64"],
        sub_i64=subs["sub_i64"],
        sub_held=sub_held,
        api_held=api_held,
        strings=small["strings"],
        channels=small["channels"],
        counters=small["counters"],
        gateways=small["gateways"],
        directives=directives,
        hits=hits,
        data=data_figures(getattr(src, "data", None)),  # its own lock, not the sidecar's
        lock_hold_max_s=ch.hold_max,
        lock_holds=ch.holds,
        row_epoch=small["row_epoch"],
        route_folds=small["route_folds"],
        evicted_sub_figures=small["evicted_sub_figures"],
        state_counters=small["state_counters"],
        state_bytes=small["state_bytes"][0],
        state_bytes_cap=small["state_bytes"][1],
    )
