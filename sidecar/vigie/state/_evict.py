"""Eviction of API and route rows, and what a row costs against ``memory_cap_bytes``.

``State`` calls these when its API or route table is full and may not grow (``capacity.max_apis``
/ ``max_routes`` reached, or growing would take the state's arrays over ``memory_cap_bytes``).
The rules, coldest first (as for subscriptions, ``State.evict``):

- **API rows**: never one the inventory pinned, nor one a pinned subscription refers to. Among
  the others, first those no subscription row refers to, then the fewest requests, then the
  least recently seen: a flood of new APIs (one or two requests each) evicts itself, not the
  established APIs it pushes out of recency. An evicted API takes its subscription rows
  (counted in ``evicted_subscriptions``), its route rows, its baselines, its episodes and its
  WSO2 apiId with it; its strings are then referred to by nothing and are released.
- **Route rows** (when only the route table is full): the fewest requests first, the oldest
  row among equals. Their figures are folded into route 0 (what does not fit), so the route
  totals do not go down; each eviction also leaves a ``RouteFold`` (the last
  ``ROUTE_FOLDS_KEPT`` in ``State.route_folds``): the rows' identity by names and their
  figures then, so that the export's series keep what their evicted routes had counted
  instead of going down (``vigie.export._routes``).

The rows that remain stay rows ``0..n-1`` (every reader walks them so): the last API rows fill
the holes (only as many rows move as were evicted, ~25 KB each), the route rows are compacted in
order (their order breaks ties); the references to them are rewritten: a subscription's API row
and key, a route's API row and key, the baselines' API rows. ``State.row_epoch`` counts these
moves: a reader that copies rows in several holds of the lock (``_copying.copy_chunked``, the
export) compares it before and after, and copies again when the rows moved in between.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from vigie.errors import ConfigError
from vigie.state import _tables as T
from vigie.state import layout as L
from vigie.state._arrays import API_ARRAYS, ROUTE_ARRAYS, sub_row_bytes
from vigie.state._baselines import API_SPEC
from vigie.state.primitives import pow2_at_least

if TYPE_CHECKING:
    from vigie.state.engine import State

log = logging.getLogger(__name__)

MIN_API_ROWS = 16  # an API table is never smaller, whatever the cap
MIN_ROUTE_ROWS = 64
ROUTE_FOLDS_KEPT: Final = 4  # route evictions remembered for the export (``RouteFold``)
# a subscription row's figures summed over the rows freed (``State.evicted_sub_figures``): the
# export counts what they had not exported yet under ``other``
SUB_FIGURES: Final = (L.S_REQ, L.S_CLIENT_ERR, L.S_5XX, L.S_THROTTLED, L.S_RETRIES)
_TABLE_SHARE = 2 * (8 + 4)  # a row's share of its hash table (keys int64, values int32, x2)
_OUT_SHARE = 3 * 2 * 5 * 8  # its share of the baselines' episode buffer (``Baselines.apply``)


@dataclass(frozen=True, slots=True)
class RouteFold:
    """Route rows one ``evict_routes`` folded into route 0, as they were: what the export needs
    to keep each series' figures whole (the series a row fed is found by names; their strings
    are copied here, as the rows' may be released before the next export)."""

    seq: int  # 1, 2, ... for the life of the state
    rows: npt.NDArray[np.int64]  # (n, R_FIELDS)
    name_ids: npt.NDArray[np.int64]  # (n, 3): the API's keyed name, its version, the resource
    strings: dict[int, str]  # of those ids
    channels: tuple[str, ...]  # the channel slots' names then (R_CHANNEL indexes them)
    hist_row: npt.NDArray[np.int64]  # the rows' latency histograms, sparse: row, column, count
    hist_col: npt.NDArray[np.int64]
    hist_count: npt.NDArray[np.int64]

    def names(self, i: int) -> tuple[str, str, str, str]:
        """Row ``i``'s API keyed name, version, resource and channel."""
        name, version, res = self.name_ids[i].tolist()
        c = int(self.rows[i, L.R_CHANNEL])
        ch = self.channels[c] if 0 <= c < len(self.channels) else f"#{c}"
        return self.strings[name], self.strings[version], self.strings[res], ch


def _fold(state: State, victims: npt.NDArray[np.intp], hist: npt.NDArray[np.int64]) -> RouteFold:
    """The ``RouteFold`` of route rows ``victims`` (``hist``: their histograms) before they are
    folded: numpy copies, and the strings of the distinct ids only (under the sidecar's lock)."""
    rows = state.route_i64[victims].copy()
    hr, hc = np.divmod(np.flatnonzero(hist), hist.shape[1])
    api = rows[:, L.R_API]
    name_ids = np.stack(
        [state.api_i64[api, L.A_NAME], state.api_i64[api, L.A_VERSION], rows[:, L.R_RESOURCE]],
        axis=1,
    )
    s = state.interner.string
    strings = {i: s(i) for i in np.unique(name_ids).tolist()}
    last = state.route_folds[-1].seq if state.route_folds else 0
    return RouteFold(
        last + 1,
        rows,
        name_ids,
        strings,
        tuple(state.channels),
        hr.astype(np.int64),
        hc.astype(np.int64),
        hist[hr, hc],
    )


def _per_row(spec: dict[str, tuple[tuple[int, ...], Any]]) -> int:
    return sum(int(np.prod(shape)) * int(np.dtype(dt).itemsize) for shape, dt in spec.values())


def api_row_bytes() -> int:
    """Bytes one API row costs: its arrays, its hash-table share and its baselines (grown with
    the rows), so that ``memory_cap_bytes`` bounds all of it."""
    return _per_row(API_ARRAYS) + _TABLE_SHARE + _per_row(API_SPEC) + _OUT_SHARE


def route_row_bytes() -> int:
    """Bytes one route row costs: its figures, its latency histogram and its hash-table share."""
    return _per_row(ROUTE_ARRAYS) + _TABLE_SHARE


def initial_rows(wanted: int, cap_bytes: int, row_bytes: int, least: int) -> int:
    """The rows a table starts with: ``wanted``, but no more than a 64th of the cap's worth
    (at least ``least``): a small cap is left to the subscriptions, the tables grow on demand."""
    return max(least, min(wanted, cap_bytes // 64 // row_bytes))


def room(state: State) -> int:
    """Bytes the state's arrays may still take under the cap, leaving room for the next
    doubling of ``app_channel`` (a byte per string: it grows with the strings, not rows)."""
    return state.capacity.memory_cap_bytes - state.nbytes() - len(state.app_channel)


def may_grow(state: State, table: str, rows: int) -> bool:
    """Whether growing table ``table`` ("sub", "api", "route") to ``rows`` rows keeps the
    state's arrays under the cap: the rows' arrays and baselines, and the hash table's new
    size (a power of two, at least twice the rows)."""
    first, keys, per_row = _TABLES[table]
    now = len(getattr(state, first))
    slots = pow2_at_least(2 * rows) - len(getattr(state, keys))
    return (rows - now) * (per_row() - _TABLE_SHARE) + slots * (8 + 4) <= room(state)


_TABLES: Final[dict[str, tuple[str, str, Callable[[], int]]]] = {
    "sub": ("sub_i64", "sub_tkeys", sub_row_bytes),
    "api": ("api_i64", "api_tkeys", api_row_bytes),
    "route": ("route_i64", "route_tkeys", route_row_bytes),
}


def protected_apis(state: State) -> npt.NDArray[np.bool_]:
    """API rows that are never evicted: pinned by the inventory, or referred to by a pinned
    subscription."""
    n = state.n_api_rows
    keep: npt.NDArray[np.bool_] = (state.api_i64[:n, L.A_FLAGS] & L.ROW_PINNED) != 0
    s = state.sub_i64[: state.n_sub_rows]
    pinned = (s[:, L.S_KEY] != 0) & ((s[:, L.S_FLAGS] & L.ROW_PINNED) != 0)
    keep[s[pinned, L.S_API]] = True
    return keep


def free_sub_rows(state: State, victims: npt.NDArray[np.intp]) -> None:
    """Free subscription rows ``victims``, counted evicted, their figures added to
    ``evicted_sub_figures``, their episodes dropped (the caller rebuilds the table)."""
    for row in victims:
        state.episodes.pop(state._sub_identity(int(row)), None)
    # rebound, not added in place: a copy of the state (``copy.copy``) shares the array
    figures = state.sub_i64[victims][:, list(SUB_FIGURES)].sum(axis=0)
    state.evicted_sub_figures = state.evicted_sub_figures + figures
    state.sub_i64[victims, L.S_KEY] = 0
    n_free = int(state.sub_meta[0])
    state.sub_free[n_free : n_free + len(victims)] = victims
    state.sub_meta[0] = n_free + len(victims)
    state.evicted += len(victims)


def evict_apis(state: State, count: int) -> int:
    """Evict the ``count`` coldest API rows (the rules above); returns how many. Raises
    ``ConfigError`` when every API row is protected."""
    n = state.n_api_rows
    a = state.api_i64[:n]
    s = state.sub_i64[: state.n_sub_rows]
    live = s[:, L.S_KEY] != 0
    referenced = np.zeros(n, dtype=np.bool_)
    referenced[s[live, L.S_API]] = True
    candidates = np.flatnonzero(~protected_apis(state))
    if len(candidates) == 0:
        raise ConfigError(
            "every API row is in the inventory (or used by an inventory subscription): raise "
            "memory_cap_bytes or capacity.max_apis"
        )
    order = np.lexsort(
        (a[candidates, L.A_LAST_SEEN], a[candidates, L.A_REQ], referenced[candidates])
    )
    victims = candidates[order[: min(count, len(candidates))]]
    gone = np.zeros(n, dtype=np.bool_)
    gone[victims] = True
    # the identity of each victim: its episodes, its apiId
    for name, version in a[victims][:, [L.A_NAME, L.A_VERSION]].tolist():
        state.api_episodes.pop((name, version), None)
    keys = set(a[victims, L.A_KEY].tolist())
    if keys & state.api_uuid.keys():
        state.api_uuid = {k: v for k, v in state.api_uuid.items() if k not in keys}
    # their subscriptions go with them
    subs = np.flatnonzero(live & gone[s[:, L.S_API]])
    if len(subs):
        free_sub_rows(state, subs)
    # the last rows fill the holes (a row is ~25 KB: only as many move as were evicted)
    m = n - len(victims)
    holes = np.sort(victims[victims < m])
    movers = np.flatnonzero(~gone[m:]) + m
    new_row = np.arange(n, dtype=np.int64)
    new_row[victims] = -1
    new_row[movers] = holes
    for name in API_ARRAYS:
        _fill(getattr(state, name), holes, movers, m, n)
    for name in API_SPEC:
        _fill(state.baselines.arrays[name], holes, movers, m, n)
    state.api_meta[1] = m
    # the subscriptions that remain: their API row and their key
    s = state.sub_i64[: state.n_sub_rows]
    live = s[:, L.S_KEY] != 0
    s[live, L.S_API] = new_row[s[live, L.S_API]]
    s[~live, L.S_API] = 0
    s[live, L.S_KEY] = (s[live, L.S_APP] << 32) | s[live, L.S_API]
    # the routes: those of the victims go, the others point to their API's new row
    nr = state.n_route_rows
    r = state.route_i64[:nr]
    keep_route = np.ones(nr, dtype=np.bool_)
    keep_route[1:] = ~gone[r[1:, L.R_API]]
    r[1:, L.R_API] = np.where(keep_route[1:], new_row[r[1:, L.R_API]], 0)
    routes_gone = _drop_routes(state, np.flatnonzero(keep_route))
    state.api_rows_evicted += len(victims)
    state.route_rows_evicted += routes_gone
    _rebuild(state)
    log.warning(
        "API rows full: evicted the %d coldest APIs (%d subscriptions, %d routes with them)",
        len(victims),
        len(subs),
        routes_gone,
    )
    return len(victims)


def evict_routes(state: State, count: int) -> int:
    """Evict the ``count`` coldest route rows (fewest requests, oldest row among equals),
    their figures folded into route 0; returns how many."""
    nr = state.n_route_rows
    if nr <= 1 or count <= 0:
        return 0
    req = state.route_i64[1:nr, L.R_REQ]
    victims = 1 + np.argsort(req, kind="stable")[: min(count, nr - 1)]
    hist = state.route_hist[victims]
    folds = state.route_folds  # rebound, not appended in place: a copy shares the deque
    state.route_folds = deque([*folds, _fold(state, victims, hist)], maxlen=folds.maxlen)
    r0 = state.route_i64[0]
    r0[L.R_REQ] += int(state.route_i64[victims, L.R_REQ].sum())
    r0[L.R_LAT_SUM_US] += int(state.route_i64[victims, L.R_LAT_SUM_US].sum())
    state.route_hist[0] += hist.sum(axis=0)
    keep = np.ones(nr, dtype=np.bool_)
    keep[victims] = False
    gone = _drop_routes(state, np.flatnonzero(keep))
    state.route_rows_evicted += gone
    _rebuild(state, subs=False, apis=False)
    log.warning("route rows full: evicted the %d coldest routes (into route 0)", gone)
    return gone


def _compact(arr: npt.NDArray[Any], kept: npt.NDArray[np.intp], n: int) -> None:
    """Rows ``kept`` (ascending) of ``arr[:n]`` moved to its first rows, the rest zeroed, in
    place a few MiB at a time (``kept[i] >= i``: a row is read before anything overwrites it).
    An array shorter than ``n`` (the baselines grow at the end of a batch) has zeros beyond."""
    have = min(n, len(arr))
    kept = kept[kept < have]
    m = len(kept)
    moved = np.flatnonzero(kept != np.arange(m))
    step = max(1, (4 << 20) // max(1, arr[:1].nbytes))
    for lo in range(int(moved[0]) if len(moved) else m, m, step):
        hi = min(m, lo + step)
        arr[lo:hi] = arr[kept[lo:hi]]
    arr[m:have] = 0


def _fill(
    arr: npt.NDArray[Any], holes: npt.NDArray[np.intp], movers: npt.NDArray[np.intp], m: int, n: int
) -> None:
    """Rows ``movers`` (all >= m) of ``arr`` moved to rows ``holes`` (all < m), rows ``m..n-1``
    zeroed. An array shorter than ``n`` (the baselines grow at the end of a batch) has zeros
    beyond its end. Rows already zero are not written: most of a baseline's pages were never
    touched, and writing zeros to them would make the kernel allocate them."""
    have = len(arr)
    src = np.zeros(len(movers), dtype=np.bool_)
    inside = movers < have
    src[inside] = _nonzero(arr, movers[inside])
    dst = np.zeros(len(holes), dtype=np.bool_)
    dst[holes < have] = _nonzero(arr, holes[holes < have])
    arr[holes[src]] = arr[movers[src]]
    arr[holes[dst & ~src]] = 0
    tail = np.arange(m, min(n, have))
    arr[tail[_nonzero(arr, tail)]] = 0


def _nonzero(arr: npt.NDArray[Any], rows: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    """Which of ``rows`` of ``arr`` hold anything but zeros (read a few MiB at a time)."""
    out = np.zeros(len(rows), dtype=np.bool_)
    step = max(1, (4 << 20) // max(1, arr[:1].nbytes))
    for lo in range(0, len(rows), step):
        part = arr[rows[lo : lo + step]]
        out[lo : lo + step] = part.reshape(len(part), -1).any(axis=1)
    return out


def _drop_routes(state: State, kept: npt.NDArray[np.intp]) -> int:
    """Keep route rows ``kept`` (ascending, 0 among them), compacted; returns how many went."""
    nr = state.n_route_rows
    for name in ROUTE_ARRAYS:
        _compact(getattr(state, name), kept, nr)
    state.route_meta[1] = len(kept)
    T.rekey_routes(state.route_i64, len(kept))
    return nr - len(kept)


def _rebuild(state: State, subs: bool = True, apis: bool = True) -> None:
    """The hash tables refilled from the moved rows; the readers told rows moved."""
    if subs:
        T.table_rebuild(
            state.sub_tkeys, state.sub_tvals, state.sub_i64[:, L.S_KEY], state.n_sub_rows
        )
    if apis:
        T.table_rebuild(
            state.api_tkeys, state.api_tvals, state.api_i64[:, L.A_KEY], state.n_api_rows
        )
    T.table_rebuild(
        state.route_tkeys, state.route_tvals, state.route_i64[:, L.R_KEY], state.n_route_rows
    )
    state.row_epoch += 1


def make_api_room(state: State) -> None:
    """Room for one more API row: the table grown (to twice, or what the cap leaves, at least
    an eighth more), else its coldest eighth evicted. An inventory alone may take the table
    past the cap (it is the operator's), never past ``max_apis``."""
    rows = len(state.api_i64)
    cap = state.capacity
    grown = min(2 * rows, cap.max_apis)
    while grown >= rows + max(1, rows // 8) and not may_grow(state, "api", grown):
        grown = rows + (grown - rows) // 2
    if grown >= rows + max(1, rows // 8):
        state.grow_apis(grown)
    elif rows < cap.max_apis and protected_apis(state).all():
        log.warning("the inventory's APIs take the state over memory_cap_bytes")
        state.grow_apis(min(2 * rows, cap.max_apis))
    else:
        evict_apis(state, max(1, rows // 8))


def make_route_room(state: State) -> None:
    """After a batch: the route table grown at half full, so that the next batch's new routes
    fit; when it may not grow (``max_routes``, the cap), evicted from 3/4 full down to half."""
    n, size = state.n_route_rows, len(state.route_i64)
    if 2 * n < size:
        return
    grown = min(2 * size, state.capacity.max_routes)
    if grown > size and may_grow(state, "route", grown):
        state.grow_routes(grown)
    elif 4 * n >= 3 * size:
        evict_routes(state, n - size // 2)
