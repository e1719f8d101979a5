"""Copies of a ``State``: the arrays cut to the rows in use (what a snapshot keeps and a
reader needs), loading them back, and the copy taken a few rows at a time under the sidecar's
lock. ``State``'s methods of the same names call these. A copy holds its own copy of the
baselines (``State.baselines``): a reader of the copy (the notifier, the views, the export)
never reads the live arrays the ingest thread writes."""

from __future__ import annotations

import copy
import time
from collections import defaultdict
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigie.state._arrays import API_ARRAYS, PLAIN_ARRAYS, ROUTE_ARRAYS, SUB_ARRAYS
from vigie.state._baselines import API_SPEC, SUB_SPEC, Baselines
from vigie.wire.columns import RELEASE_GRACE_S, Interner

if TYPE_CHECKING:
    from vigie.state.engine import State


def used_arrays(state: State) -> dict[str, npt.NDArray[Any]]:
    """The arrays cut to the rows in use (what a snapshot keeps). The detector caches are
    left out: they remember the last seconds only, and a restart may forget them."""
    out: dict[str, npt.NDArray[Any]] = {}
    for spec, n in (
        (SUB_ARRAYS, state.n_sub_rows),
        (API_ARRAYS, state.n_api_rows),
        (ROUTE_ARRAYS, state.n_route_rows),
    ):
        for name in spec:
            out[name] = getattr(state, name)[:n]
    out["sub_free"] = state.sub_free[: int(state.sub_meta[0])]
    for name in PLAIN_ARRAYS:
        if name != "sub_free":
            out[name] = getattr(state, name)
    out["app_channel"] = state.app_channel[: len(state.interner)]
    return out


def restore_used(state: State, arrays: dict[str, npt.NDArray[Any]]) -> None:
    """Load arrays written by ``used_arrays`` (shapes checked by the caller)."""
    for spec, meta_name in (
        (SUB_ARRAYS, "sub_meta"),
        (API_ARRAYS, "api_meta"),
        (ROUTE_ARRAYS, "route_meta"),
    ):
        n = int(arrays[meta_name][1])
        current = len(getattr(state, next(iter(spec))))
        rows = max(current, n, 1)  # not rounded up: the rows count in memory_cap (_evict)
        for name, (shape, dt) in spec.items():
            full = np.zeros((rows, *shape), dtype=dt)
            full[:n] = arrays[name]
            setattr(state, name, full)
    state.sub_meta = arrays["sub_meta"].copy()
    state.api_meta = arrays["api_meta"].copy()
    state.route_meta = arrays["route_meta"].copy()
    state.g = arrays["g"].copy()
    free = np.zeros(len(state.sub_i64), dtype=np.int32)
    free[: len(arrays["sub_free"])] = arrays["sub_free"]
    state.sub_free = free
    channel = np.full(max(1024, len(arrays["app_channel"])), -1, dtype=np.int8)
    channel[: len(arrays["app_channel"])] = arrays["app_channel"]
    state.app_channel = channel
    state.rebuild_tables()


def copy_state(state: State) -> State:
    """A copy to read from (suggestions, fleet export), taken quickly under the caller's
    lock: the rows in use and the tables, not the free capacity nor the detector caches.
    Not for ``apply``."""
    new = copy.copy(state)
    for name, arr in used_arrays(state).items():
        setattr(new, name, arr.copy())
    for name in (
        "sub_tkeys",
        "sub_tvals",
        "api_tkeys",
        "api_tvals",
        "route_tkeys",
        "route_tvals",
    ):
        setattr(new, name, getattr(state, name).copy())
    _copy_python_parts(state, new)
    new.baselines = _baselines_head(state.baselines)
    b = state.baselines
    for name in b.arrays:
        n = state.n_sub_rows if name in SUB_SPEC else state.n_api_rows
        new.baselines.arrays[name] = b.arrays[name][:n].copy()
    _seal(new.baselines)
    return new


def _baselines_head(b: Baselines) -> Baselines:
    """A copy of ``b`` without its row arrays (filled by the caller): the platform-wide
    figures, the slots' weeks and the parameters copied, a scratch buffer of its own."""
    new = copy.copy(b)
    new.bg = b.bg.copy()
    new.slot_week = b.slot_week.copy()
    new.bp = b.bp.copy()
    new.out = np.zeros_like(b.out[:1])
    new.arrays = {}
    new._own = ()
    return new


def _seal(b: Baselines) -> None:
    """The kernel's tuple of ``b``'s arrays, after they were replaced."""
    b._own = tuple(b.arrays[k] for k in (*SUB_SPEC, *API_SPEC) if k in b.arrays)


def _copy_python_parts(state: State, new: State, strings: bool = True) -> None:
    """The strings (unless ``strings`` is false), channels, inventory and episodes, into
    ``new`` (under the lock)."""
    if strings:
        new.interner = Interner(state.interner.strings())
        new.app_info = dict(state.app_info)
    new.channels = list(state.channels)
    new.episodes = defaultdict(list, {k: list(v) for k, v in state.episodes.items()})
    new.api_episodes = defaultdict(list, {k: list(v) for k, v in state.api_episodes.items()})
    new.security = state.security.copy()


def copy_chunked(
    state: State, lock: AbstractContextManager[Any], routes: bool = True, chunk_bytes: int = 1 << 20
) -> State:
    """``copy`` taken a few rows at a time, each range under ``lock`` (the sidecar's), so
    that ingestion waits for one range (~0.1 ms), never for the whole state. A row is copied
    whole in one hold, so every row is consistent; rows copied later may have seen a few
    more milliseconds of events. The memory is allocated and touched outside the lock.
    ``routes=False`` leaves the route rows out (the suggestions never read them)."""
    started = time.monotonic()
    with lock:
        head = copy.copy(state)
        _copy_python_parts(state, head, strings=False)
        head.baselines = _baselines_head(state.baselines)
        plain = {name: getattr(state, name).copy() for name in PLAIN_ARRAYS}
        plain["sub_free"] = state.sub_free[: int(state.sub_meta[0])].copy()
        counts = (state.n_sub_rows, state.n_api_rows, state.n_route_rows)
        epoch = state.row_epoch  # API / route rows moved (``_evict``) since: copied again
    for name, arr in plain.items():
        setattr(head, name, arr)
    groups = [(SUB_ARRAYS, counts[0]), (API_ARRAYS, counts[1])]
    if routes:
        groups.append((ROUTE_ARRAYS, counts[2]))
    else:
        for name, (shape, dt) in ROUTE_ARRAYS.items():
            setattr(head, name, np.zeros((0, *shape), dtype=dt))
        head.route_meta = np.zeros_like(state.route_meta)
    bl_specs = {id(SUB_ARRAYS): SUB_SPEC, id(API_ARRAYS): API_SPEC}
    for spec, n in groups:
        out = {name: np.empty((n, *shape), dtype=dt) for name, (shape, dt) in spec.items()}
        # a row's baselines are copied in the same hold as the row
        bl_spec = bl_specs.get(id(spec), {})
        bl = {name: np.empty((n, *shape), dtype=dt) for name, (shape, dt) in bl_spec.items()}
        for arr in (*out.values(), *bl.values()):
            arr.fill(0)  # the pages are faulted in here, not under the lock
        row_bytes = sum(a[:1].nbytes for a in (*out.values(), *bl.values())) or 1
        step = max(1, chunk_bytes // row_bytes)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            with lock:  # the arrays may have grown since: read them again
                for name, arr in out.items():
                    arr[lo:hi] = getattr(state, name)[lo:hi]
                live = state.baselines.arrays
                for name, arr in bl.items():
                    src = live[name][lo:hi]  # shorter while the baselines have not grown yet
                    arr[lo : lo + len(src)] = src
            time.sleep(0)  # a waiting stream takes the lock before the next range
        for name, arr in out.items():
            setattr(head, name, arr)
        head.baselines.arrays |= bl
    _seal(head.baselines)
    with lock:
        if state.row_epoch != epoch or time.monotonic() - started >= RELEASE_GRACE_S / 2:
            # rows moved between two ranges, or the copy took so long that an id a row copied
            # early refers to could have been released and handed out again: one copy, whole
            return copy_state(state)
        # the strings last: every id a copied row refers to was interned before this hold,
        # and none was handed out again since (ids wait RELEASE_GRACE_S before reuse)
        head.interner = Interner(state.interner.strings())
        head.app_info = dict(state.app_info)
        head.app_channel = state.app_channel[: len(state.interner)].copy()
        for name in ("sub_tkeys", "sub_tvals", "api_tkeys", "api_tvals"):
            setattr(head, name, getattr(state, name).copy())
        if routes:
            head.route_tkeys = state.route_tkeys.copy()
            head.route_tvals = state.route_tvals.copy()
    if not routes:
        head.route_tkeys = np.zeros(1, dtype=state.route_tkeys.dtype)
        head.route_tvals = np.zeros(1, dtype=state.route_tvals.dtype)
    return head
