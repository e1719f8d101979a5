"""``State``: the owner of every state array. It validates, grows, evicts, restores and reads.

The kernels (``_kernels``, ``_rules``, ``_tables``) do the per-event work; this class is their
only caller: it calls ``apply_events`` once per batch (and again after growing or evicting when
a batch needs more rows than there are). The arrays' shapes are in ``_arrays``, the copies in
``_copying``, the names (tenant-keyed API names, channel slots, strings in use) in ``_names``.
It is not thread-safe: the server serialises access with one lock.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Iterable
from contextlib import AbstractContextManager
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vigie.errors import ConfigError
from vigie.state import _copying, _names
from vigie.state import _evict as E
from vigie.state import _groups as G
from vigie.state import _rules as R
from vigie.state import _tables as T
from vigie.state import layout as L
from vigie.state._arrays import (
    API_ARRAYS,
    DETECTOR_ARRAYS,
    EPISODE_BUFFER,
    MAX_EPISODES_PER_ROW,
    MIN_SUB_ROWS,
    PLAIN_ARRAYS,
    ROUTE_ARRAYS,
    SUB_ARRAYS,
    Capacity,
    Episode,
    sub_row_bytes,
)
from vigie.state._baselines import Baselines
from vigie.state._entry import apply_flat
from vigie.state._security import Security
from vigie.state.primitives import pow2_at_least
from vigie.state.thresholds import CLASS_NAMES, Thresholds
from vigie.wire.columns import Events, Interner

if TYPE_CHECKING:
    from vigie.sources.inventory import Dates

log = logging.getLogger(__name__)

__all__ = ["MAX_EPISODES_PER_ROW", "Capacity", "Episode", "State", "sub_row_bytes"]

I64 = npt.NDArray[np.int64]

# the array groups of the kernels (see ``_kernels``), read off a State in one call each
_SUBS = attrgetter(*G.SUB_GROUP)
_APIS = attrgetter(*G.API_GROUP)
_ROUTES = attrgetter(*G.ROUTE_GROUP)
_DETECTORS = attrgetter(*G.DETECTOR_GROUP)
_OUT = attrgetter(*G.OUT_GROUP)
_EVENTS = itemgetter(*G.EVENT_COLUMNS)
# what ``_entry.apply_flat`` takes after the events and ``start``: every group, flat, in one call
_FLAT = attrgetter(
    *G.SUB_GROUP,
    *G.API_GROUP,
    *G.ROUTE_GROUP,
    *G.DETECTOR_GROUP,
    "app_channel",
    "params",
    *G.OUT_GROUP,
    "_resolved",
)


class State:
    """Per-subscription and per-API state of everything vigie has seen."""

    def __init__(self, thresholds: Thresholds | None = None, capacity: Capacity | None = None):
        self.thresholds = thresholds or Thresholds()
        self.capacity = capacity or Capacity()
        self.params = self.thresholds.params()
        self.interner = Interner()
        self.channels: list[str] = []
        self.g = np.zeros(L.G_FIELDS, dtype=np.int64)
        self.evicted = 0
        self.api_rows_evicted = 0
        self.route_rows_evicted = 0
        self.row_epoch = 0  # +1 each time API or route rows move (``_evict``)
        self.route_folds: deque[E.RouteFold] = deque(maxlen=E.ROUTE_FOLDS_KEPT)  # for the export
        self.evicted_sub_figures = np.zeros(len(E.SUB_FIGURES), dtype=np.int64)  # for the export
        # when vigie started observing (us): set once by a live sidecar at its first ingest
        # (that batch's newest event time, never later than its clock); 0 = not set, then
        # the earliest event time counts (a replay, an older snapshot)
        self.observed_since_us = 0
        self.episodes: dict[tuple[int, int, int], list[Episode]] = defaultdict(list)
        self.api_episodes: dict[tuple[int, int], list[Episode]] = defaultdict(list)
        self.app_info: dict[int, tuple[int, int]] = {}  # app gid -> (name gid, owner gid)
        # the inventory's created / last-used dates (``Inventory.apply_to``); replaced, never
        # changed in place (a copy shares it); not in snapshots: the inventory is applied again
        self.inventory_dates: Dates | None = None
        # API key ((keyed name gid << 32) | version gid, see ``api_key``) -> WSO2 apiId gid;
        # replaced, never changed in place: a copy may share it without the lock
        self.api_uuid: dict[int, int] = {}
        self.app_channel = np.full(1024, -1, dtype=np.int8)
        self._epi = np.zeros((EPISODE_BUFFER, 5), dtype=np.int64)
        self._scratch = np.zeros((L.N_WINDOWED_CLASSES, L.N_EVIDENCE), dtype=np.float64)
        self._resolved = np.zeros((T.CHUNK, T.X_FIELDS), dtype=np.int64)  # the kernel's pass 1
        self.sub_free = np.zeros(0, dtype=np.int32)
        self.sub_meta = np.zeros(2, dtype=np.int64)  # [n_free, high water]
        self.api_meta = np.zeros(2, dtype=np.int64)
        self.route_meta = np.zeros(2, dtype=np.int64)
        self.max_sub_rows = max(MIN_SUB_ROWS, self.capacity.memory_cap_bytes // sub_row_bytes())
        self._alloc_subs(min(self.capacity.initial_subscriptions, self.max_sub_rows))
        cap = self.capacity.memory_cap_bytes
        self._alloc_apis(
            E.initial_rows(self.capacity.initial_apis, cap, E.api_row_bytes(), E.MIN_API_ROWS)
        )
        routes = min(1024, self.capacity.max_routes)
        least = min(routes, E.MIN_ROUTE_ROWS)
        self._alloc_routes(E.initial_rows(routes, cap, E.route_row_bytes(), least))
        self.route_meta[1] = 1  # route 0 gathers what does not fit
        n = pow2_at_least(self.capacity.detector_entries)
        self.retry_keys = np.zeros(n, dtype=np.int64)
        self.retry_vals = np.zeros((n, 2), dtype=np.int64)
        self.repeat_keys = np.zeros(n, dtype=np.int64)
        self.repeat_vals = np.zeros((n, 1), dtype=np.int64)
        self.baselines = Baselines()  # hour-of-week baselines and the health classes
        self.security = Security()  # auth_failing per client IP / application key / API

    # -----------------------------------------------------------------------------------------
    # arrays
    # -----------------------------------------------------------------------------------------
    sub_i64: I64
    sub_sw: npt.NDArray[np.int32]
    sub_rw: npt.NDArray[np.int32]
    sub_hour: npt.NDArray[np.int32]
    sub_day: npt.NDArray[np.int32]
    sub_hist: I64
    sub_rate: npt.NDArray[np.int32]
    cls_first: I64
    cls_last: I64
    cls_evid: npt.NDArray[np.float64]
    sub_tkeys: I64
    sub_tvals: npt.NDArray[np.int32]
    api_i64: I64
    api_hour: npt.NDArray[np.int32]
    api_hist: I64
    api_cls_first: I64
    api_cls_last: I64
    api_cls_evid: npt.NDArray[np.float64]
    api_tkeys: I64
    api_tvals: npt.NDArray[np.int32]
    route_i64: I64
    route_hist: I64
    route_tkeys: I64
    route_tvals: npt.NDArray[np.int32]

    def _resize(self, spec: dict[str, tuple[tuple[int, ...], Any]], rows: int) -> None:
        for name, (shape, dt) in spec.items():
            new = np.zeros((rows, *shape), dtype=dt)
            old = getattr(self, name, None)
            if old is not None:
                new[: len(old)] = old
            setattr(self, name, new)

    def _alloc_subs(self, rows: int) -> None:
        self._resize(SUB_ARRAYS, rows)
        free = np.zeros(rows, dtype=np.int32)
        free[: len(self.sub_free)] = self.sub_free
        self.sub_free = free
        size = pow2_at_least(2 * rows)
        self.sub_tkeys = np.zeros(size, dtype=np.int64)
        self.sub_tvals = np.full(size, -1, dtype=np.int32)
        T.table_rebuild(
            self.sub_tkeys, self.sub_tvals, self.sub_i64[:, L.S_KEY], int(self.sub_meta[1])
        )

    def _alloc_apis(self, rows: int) -> None:
        self._resize(API_ARRAYS, rows)
        size = pow2_at_least(2 * rows)
        self.api_tkeys = np.zeros(size, dtype=np.int64)
        self.api_tvals = np.full(size, -1, dtype=np.int32)
        T.table_rebuild(
            self.api_tkeys, self.api_tvals, self.api_i64[:, L.A_KEY], int(self.api_meta[1])
        )

    def _alloc_routes(self, rows: int) -> None:
        self._resize(ROUTE_ARRAYS, rows)
        size = pow2_at_least(2 * rows)
        self.route_tkeys = np.zeros(size, dtype=np.int64)
        self.route_tvals = np.full(size, -1, dtype=np.int32)
        T.table_rebuild(
            self.route_tkeys, self.route_tvals, self.route_i64[:, L.R_KEY], int(self.route_meta[1])
        )

    @property
    def n_sub_rows(self) -> int:
        """Rows in use or once used (free rows inside have key 0)."""
        return int(self.sub_meta[1])

    @property
    def n_api_rows(self) -> int:
        return int(self.api_meta[1])

    def new_api_rows(self, ev: Events) -> int:
        """How many API rows applying ``ev`` would add, or 0 when that many could not go over
        ``capacity.max_apis`` whatever they are (then not looked up): checked before a batch
        is applied, so a batch is refused whole rather than stopped half way."""
        name = ev["api_name"].astype(np.int64)
        has = name != 0
        keys = np.unique((name[has] << 32) | ev["api_version"].astype(np.int64)[has])
        if self.n_api_rows + len(keys) <= self.capacity.max_apis:
            return 0
        tk, tv = self.api_tkeys, self.api_tvals
        return sum(1 for k in keys.tolist() if T.table_find(tk, tv, k) < 0)

    @property
    def n_route_rows(self) -> int:
        return int(self.route_meta[1])

    def nbytes(self) -> int:
        """Bytes of every state array, the baselines' as they are once grown with the rows
        (what ``memory_cap_bytes`` bounds)."""
        baselines = self.baselines.nbytes(len(self.sub_i64), len(self.api_i64))
        arrays = [getattr(self, n) for n in (*SUB_ARRAYS, *API_ARRAYS, *ROUTE_ARRAYS)]
        arrays += [
            self.sub_tkeys,
            self.sub_tvals,
            self.api_tkeys,
            self.api_tvals,
            self.route_tkeys,
            self.route_tvals,
            self.retry_keys,
            self.retry_vals,
            self.repeat_keys,
            self.repeat_vals,
            self.app_channel,
        ]
        return int(sum(a.nbytes for a in arrays)) + baselines

    def set_thresholds(self, thresholds: Thresholds) -> None:
        changed = {k for k, v in thresholds.as_dict().items() if self.thresholds.as_dict()[k] != v}
        frozen = changed & Thresholds.window_fields()
        if frozen:
            raise ConfigError(
                f"{', '.join(sorted(frozen))}: window lengths shape the state and can only be "
                "set at start-up"
            )
        self.thresholds = thresholds
        self.params = thresholds.params()

    # -----------------------------------------------------------------------------------------
    # names
    # -----------------------------------------------------------------------------------------
    def channel_index(self, name: str) -> int:
        """The slot of channel ``name``, taken if new (a released slot first)."""
        return _names.channel_index(self, name)

    def channels_in_use(self) -> npt.NDArray[np.bool_]:
        """Which channel slots the rows refer to (see ``_names``)."""
        return _names.channels_in_use(self)

    def release_channels(self, keep: Iterable[int]) -> list[str]:
        """Release the channel slots nothing refers to; returns their names (see ``_names``)."""
        return _names.release_channels(self, keep)

    def register_application(
        self, app_id: str, name: str = "", owner: str = "", channel: str | None = None
    ) -> None:
        gid = self.interner.intern(app_id)
        self.app_info[gid] = (self.interner.intern(name), self.interner.intern(owner))
        self._ensure_app_channel_size()
        if channel:
            self.app_channel[gid] = self.channel_index(channel)

    def _ensure_app_channel_size(self) -> None:
        n = len(self.interner)
        if n > len(self.app_channel):
            grown = np.full(max(n, 2 * len(self.app_channel)), -1, dtype=np.int8)
            grown[: len(self.app_channel)] = self.app_channel
            self.app_channel = grown

    # -----------------------------------------------------------------------------------------
    # ingest
    # -----------------------------------------------------------------------------------------
    def apply(self, ev: Events) -> None:
        """Apply a batch of events (one kernel call, more only to grow or evict)."""
        if len(ev) == 0:
            return
        self._ensure_app_channel_size()
        columns = self._tenant_keyed(ev.columns)
        events = (*_EVENTS(columns), ev.channel)
        start = 0
        while True:
            args = (*events, start, *_FLAT(self))
            stop, start = apply_flat(*args)  # apply_events, its groups passed flat (_entry)
            self._drain_episodes()
            if stop == L.STOP_DONE:
                break
            if stop == L.STOP_SUB_FULL:
                self._make_sub_room()
            elif stop == L.STOP_API_FULL:
                E.make_api_room(self)
        self.baselines.apply(self, columns)  # the columns the main kernel read; rows exist
        self.security.apply(
            columns, self.thresholds.auth_min_failures, int(self.thresholds.max_tracked_clients)
        )
        E.make_route_room(self)

    def _tenant_keyed(self, columns: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """The columns the kernel reads, API names tenant-keyed (see ``_names``)."""
        return _names.tenant_keyed(self, columns)

    def api_key(self, tenant: str, name: str, version: str) -> int:
        """The key of an API row (``A_KEY``), interning its strings."""
        return _names.api_key(self, tenant, name, version)

    def api_identity(self, row: int) -> tuple[str, str, str, str]:
        """``(tenant, name, version, apiId)`` of an API row, the tenant as displayed."""
        return _names.api_identity(self, row)

    def _make_sub_room(self) -> None:
        rows = len(self.sub_i64)
        grown = min(2 * rows, self.max_sub_rows)
        # grow only while every state array together stays under the cap
        if grown > rows and E.may_grow(self, "sub", grown):
            self._alloc_subs(grown)
            return
        self.evict(max(1, rows // 8))

    def grow_apis(self, rows: int) -> None:
        self._alloc_apis(rows)

    def grow_routes(self, rows: int) -> None:
        self._alloc_routes(rows)

    def api_room(self) -> int:
        """How many new APIs one batch can bring: every row but the protected ones
        (``_evict.protected_apis``) can be evicted for them."""
        return self.capacity.max_apis - int(E.protected_apis(self).sum())

    def evict(self, count: int) -> int:
        """Free the ``count`` coldest subscription rows not pinned by the inventory: fewest
        requests first, least recently seen among equals."""
        n = self.n_sub_rows
        keys = self.sub_i64[:n, L.S_KEY]
        candidates = np.flatnonzero(
            (keys != 0) & ((self.sub_i64[:n, L.S_FLAGS] & L.ROW_PINNED) == 0)
        )
        if len(candidates) == 0:
            raise ConfigError(
                "the memory cap holds only inventory subscriptions: raise memory_cap_bytes"
            )
        count = min(count, len(candidates))
        # the least used first, then the least recent: a flood of new applications (one or two
        # requests each) evicts itself, not the established consumers it pushes out of recency
        order = np.lexsort(
            (self.sub_i64[candidates, L.S_LAST_SEEN], self.sub_i64[candidates, L.S_REQ])
        )
        E.free_sub_rows(self, candidates[order[:count]])
        T.table_rebuild(self.sub_tkeys, self.sub_tvals, self.sub_i64[:, L.S_KEY], n)
        log.warning("memory cap reached: evicted the %d coldest subscriptions", count)
        return count

    def referenced_strings(self) -> npt.NDArray[np.bool_]:
        """Which interner ids the state refers to (see ``_names``), and the auth_failing
        table's (client IPs, application keys, APIs)."""
        live = _names.referenced_strings(self)
        self.security.mark_referenced(live)
        return live

    def release_strings(
        self, also_live: Iterable[npt.NDArray[Any]], epoch: int, now: float = 0.0
    ) -> int:
        """Release the strings nothing refers to; returns how many (see ``_names``)."""
        return _names.release_strings(self, also_live, epoch, now)

    def _sub_identity(self, row: int) -> tuple[int, int, int]:
        api_row = int(self.sub_i64[row, L.S_API])
        return (
            int(self.sub_i64[row, L.S_APP]),
            int(self.api_i64[api_row, L.A_NAME]),
            int(self.api_i64[api_row, L.A_VERSION]),
        )

    def _drain_episodes(self) -> None:
        n = int(self.g[L.G_EPISODES_OUT])
        for kind, row, c, first, last in self._epi[:n].tolist():
            ep = Episode(L.WINDOWED_CLASS_NAMES[c], first, last)
            if kind == 0:
                lst = self.episodes[self._sub_identity(row)]
            else:
                lst = self.api_episodes[
                    (int(self.api_i64[row, L.A_NAME]), int(self.api_i64[row, L.A_VERSION]))
                ]
            lst.append(ep)
            if len(lst) > MAX_EPISODES_PER_ROW:
                del lst[0]
        self.g[L.G_EPISODES_OUT] = 0

    # -----------------------------------------------------------------------------------------
    # inventory rows
    # -----------------------------------------------------------------------------------------
    def ensure_api(
        self,
        name: str,
        version: str,
        context: str = "",
        pinned: bool = True,
        tenant: str = "",
        api_id: str = "",
    ) -> int:
        key = self.api_key(tenant, name, version)
        ng, vg = key >> 32, key & 0xFFFFFFFF
        if api_id:
            self.api_uuid = self.api_uuid | {key: self.interner.intern(api_id)}
        row = int(T.table_find(self.api_tkeys, self.api_tvals, key))
        if row < 0:
            if self.n_api_rows >= len(self.api_i64):
                E.make_api_room(self)
            row = self.n_api_rows
            self.api_meta[1] += 1
            T.init_api_row(_APIS(self), row, key, ng, vg)
            T.table_insert(self.api_tkeys, self.api_tvals, key, row)
        if context:
            self.api_i64[row, L.A_CONTEXT] = self.interner.intern(context)
        if pinned:
            self.api_i64[row, L.A_FLAGS] |= L.ROW_PINNED
        return row

    def ensure_subscription(
        self, app_id: str, api: str, version: str, tier: str = "", tenant: str = ""
    ) -> int:
        api_row = self.ensure_api(api, version, pinned=False, tenant=tenant)
        ag = self.interner.intern(app_id)
        self._ensure_app_channel_size()
        row = self.subscription_row(ag, api_row)
        if tier:
            self.sub_i64[row, L.S_TIER] = self.interner.intern(tier)
        self.sub_i64[row, L.S_FLAGS] |= L.ROW_PINNED
        return row

    def subscription_row(self, app: int, api_row: int) -> int:
        """The row of application gid ``app`` on API row ``api_row``, made if new."""
        key = (app << 32) | api_row
        row = int(T.table_find(self.sub_tkeys, self.sub_tvals, key))
        if row >= 0:
            return row
        row = int(T.alloc_sub(self.sub_i64, self.sub_free, self.sub_meta))
        if row < 0:
            self._make_sub_room()
            row = int(T.alloc_sub(self.sub_i64, self.sub_free, self.sub_meta))
        T.init_sub_row(_SUBS(self), row, key, app, api_row)
        T.table_insert(self.sub_tkeys, self.sub_tvals, key, row)
        return row

    def route_row(
        self, api_row: int, res: int, me: int, st: int, ch: int, ec: int, thr: int
    ) -> int:
        """The route row of that identity, made if new (the table grows up to
        ``capacity.max_routes``; beyond, route 0 and a counted overflow)."""
        key = int(T.route_key(api_row, res, me, st, ec, ch, thr))
        row = int(T.find_route(_ROUTES(self), key, api_row, res, me, st, ec, ch, thr))
        if row >= 0:
            return row
        if self.n_route_rows >= len(self.route_i64):
            if len(self.route_i64) >= self.capacity.max_routes:
                self.g[L.G_ROUTE_OVERFLOW] += 1
                return 0
            self._alloc_routes(min(2 * len(self.route_i64), self.capacity.max_routes))
        return int(T.new_route_row(_ROUTES(self), key, api_row, res, me, st, ch, ec, thr))

    # -----------------------------------------------------------------------------------------
    # reading
    # -----------------------------------------------------------------------------------------
    @property
    def now_us(self) -> int:
        return int(self.g[L.G_NOW])

    def sub_rows(self) -> npt.NDArray[np.intp]:
        n = self.n_sub_rows
        return np.flatnonzero(self.sub_i64[:n, L.S_KEY] != 0)

    def api_rows(self) -> npt.NDArray[np.intp]:
        return np.arange(self.n_api_rows)

    def _held(
        self, cls: tuple[I64, I64], hour: npt.NDArray[np.int32], hour_cur: I64, n: int, now: int
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """Rows 0..n-1 at ``now``: which class columns are held by an episode (the kernel's
        hold rule, ``_rules.episode_holds``), and growing evaluated at now with its evidence."""
        episodes = np.zeros((n, cls[1].shape[1]), dtype=np.bool_)
        R.held_at(cls[0], cls[1], n, now, self.params, episodes)
        grow_now = np.zeros(n, dtype=np.bool_)
        grow_evid = np.zeros((n, L.N_EVIDENCE), dtype=np.float64)
        obs_start = int(self.g[L.G_OBS_START])
        R.growing_at(hour, hour_cur, n, now, obs_start, self.params, grow_now, grow_evid)
        return episodes, grow_now, grow_evid

    def held(self, now: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """Subscription classes held at ``now``: a (rows, len(CLASS_NAMES)) mask in
        ``CLASS_NAMES`` order, and the growing evidence evaluated at now."""
        n = self.n_sub_rows
        cls = (self.cls_first, self.cls_last)
        episodes, grow_now, grow_evid = self._held(
            cls, self.sub_hour, self.sub_i64[:, L.S_HOUR_CUR], n, now
        )
        out = np.zeros((n, len(CLASS_NAMES)), dtype=np.bool_)
        for c, name in enumerate(L.WINDOWED_CLASS_NAMES):
            out[:, CLASS_NAMES.index(name)] = episodes[:, c]
        out[:, CLASS_NAMES.index("growing")] |= grow_now
        last_seen = self.sub_i64[:n, L.S_LAST_SEEN]
        out[:, CLASS_NAMES.index("dormant")] = (last_seen == 0) | (
            now - last_seen >= self.thresholds.dormant_seconds * 1e6
        )
        out[self.sub_i64[:n, L.S_KEY] == 0] = False
        return out, grow_evid

    def api_held(self, now: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """API classes held at ``now`` in ``API_CLASS_NAMES`` order (retired, growing)."""
        n = self.n_api_rows
        cls = (self.api_cls_first, self.api_cls_last)
        episodes, grow_now, grow_evid = self._held(
            cls, self.api_hour, self.api_i64[:, L.A_HOUR_CUR], n, now
        )
        out = np.zeros((n, 2), dtype=np.bool_)
        last_seen = self.api_i64[:n, L.A_LAST_SEEN]
        out[:, 0] = (last_seen == 0) | (now - last_seen >= self.thresholds.retired_seconds * 1e6)
        out[:, 1] = episodes[:, L.C_GROWING] | grow_now
        return out, grow_evid

    def evaluate_latest(self) -> None:
        """The windowed rules on the windows as they are, at each subscription's latest event
        (a class already raised there is left alone): what a merged state needs, its windows
        being the sum of several sidecars' (``vigie.state.merge``)."""
        rows = self.sub_rows()
        cls = (self.cls_first, self.cls_last, self.cls_evid)
        start = 0
        while start < len(rows):
            start = int(
                R.evaluate_latest(
                    self.sub_i64, cls, rows, start, self.app_channel, self.params, _OUT(self)
                )
            )
            self._drain_episodes()

    def string(self, gid: int) -> str:
        return self.interner.string(gid)

    def counters(self) -> dict[str, int]:
        g = self.g
        return {
            "events_applied": int(g[L.G_EVENTS]),
            "events_without_api": int(g[L.G_SKIPPED_NO_API]),
            "events_without_application": int(g[L.G_NO_APP]),
            "events_late_for_windows": int(g[L.G_LATE]),
            "events_late_for_baselines": self.baselines.late,  # > 15 min late: no health window
            "route_overflow": int(g[L.G_ROUTE_OVERFLOW]),
            "detector_replacements": int(g[L.G_RETRY_EVICT]),
            "evicted_subscriptions": self.evicted,
            "api_rows_evicted": self.api_rows_evicted,
            "route_rows_evicted": self.route_rows_evicted,
            "strings_held": self.interner.live,
            "strings_released": self.interner.released,
        }

    def iter_arrays(self) -> Iterable[tuple[str, npt.NDArray[Any]]]:
        """Every array that makes up the state, at full capacity."""
        for name in (*SUB_ARRAYS, *API_ARRAYS, *ROUTE_ARRAYS):
            yield name, getattr(self, name)
        for name in (*PLAIN_ARRAYS, *DETECTOR_ARRAYS):
            yield name, getattr(self, name)

    def used_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays cut to the rows in use (what a snapshot keeps). The detector caches are
        left out: they remember the last seconds only, and a restart may forget them."""
        return _copying.used_arrays(self)

    def restore_used(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        """Load arrays written by ``used_arrays`` (shapes checked by the caller)."""
        _copying.restore_used(self, arrays)

    def copy(self) -> State:
        """A copy to read from (suggestions, fleet export), taken quickly under the caller's
        lock: the rows in use and the tables, not the free capacity nor the detector caches.
        Not for ``apply``."""
        new = _copying.copy_state(self)
        new.api_uuid = self.api_uuid  # replaced, never changed in place
        return new

    def copy_chunked(
        self, lock: AbstractContextManager[Any], routes: bool = True, chunk_bytes: int = 1 << 20
    ) -> State:
        """``copy`` taken a few rows at a time, each range under ``lock``: see
        ``_copying.copy_chunked``. ``routes=False`` leaves the route rows out."""
        uuid = self.api_uuid  # replaced, never changed in place: read before the copy
        new = _copying.copy_chunked(self, lock, routes, chunk_bytes)
        new.api_uuid = uuid
        return new

    def rebuild_tables(self) -> None:
        """Recreate the hash tables from the rows (after a restore)."""
        self._alloc_subs(len(self.sub_i64))
        self._alloc_apis(len(self.api_i64))
        self._alloc_routes(len(self.route_i64))
