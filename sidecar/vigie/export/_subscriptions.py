"""The per-subscription metrics, bounded: only the top-K subscriptions by recent traffic and the
top-K by misbehaviour get their own series; a member stays while it ranks in the top 2K (so
series do not flap), and everything else is summed under ``wso2.application.name=other``. Those
series are vigie's own accumulators of the increments seen while a subscription is a member (its
start time is when it joined), so ``other`` never decreases when a member joins or leaves, and
members plus ``other`` always add up to the platform's traffic.

A member is a subscription row and its generation (``S_GEN``, +1 each time the row is
allocated): both survive an API eviction, which renumbers API rows and so rewrites the row key
(``S_KEY``, application << 32 | API row) of subscriptions that stay. A member's series is keyed
by the names it exports (application id, tenant, API, version), never by a row key: a row key
may come back for another subscription after an eviction, names do not lie. The series of
subscriptions that are no longer members are pruned when they pile up (``AttrCache.crowded``):
one that comes back starts a new series (its start time says so).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vigie.export import _catalogue as C
from vigie.export._collect import SUB_CLASSES, Frame
from vigie.export._points import ATTR_TAG_NUMBER, AttrCache, AttrValue, NumberPoints, Points
from vigie.export._series import F64, I64
from vigie.state import layout as L
from vigie.wire import tenants

MISBEHAVIOUR: Final = (
    "retry_storm",
    "error_prone",
    "redundant",
    "wrong_channel",
    "throttle_hitter",
    "traffic_anomaly",  # a surge or a drop: the consumer gets its own series
)
OTHER: Final = "other"

SubIdentity = tuple[str, str, str, str]  # application id, tenant, API name, API version


class _Simple:
    """A metric whose few series are keyed by a tuple of attribute values."""

    def __init__(self, spec: C.MetricSpec, tag: int = ATTR_TAG_NUMBER) -> None:
        self.spec = spec
        self.cache = AttrCache(tag)
        self.ids: list[int] = []
        self.values: list[float] = []

    def add(self, attrs: dict[str, AttrValue], value: float) -> None:
        key = tuple(attrs.items())
        self.ids.append(self.cache.add(key, attrs))
        self.values.append(value)


class SubscriptionSeries:
    """The members (top-K subscriptions), the accumulators behind their series and ``other``,
    and the previous figures of every row."""

    def __init__(self, top_k: int) -> None:
        self.top_k = top_k
        self._member_gen = np.full(0, -1, dtype=np.int64)  # per row: S_GEN while a member
        # per member row: its generation, its identity by names and its attributes
        self._names: dict[int, tuple[int, SubIdentity, dict[str, AttrValue]] | None] = {}
        self._sub_caches = {
            spec.name: AttrCache(ATTR_TAG_NUMBER)
            for spec in (C.SUB_REQUESTS, C.SUB_FAILURES, C.SUB_RETRIES)
        }
        self._sub_acc: dict[str, npt.NDArray[Any]] = {
            name: np.zeros(64) for name in self._sub_caches
        }
        self._sub_start: dict[str, npt.NDArray[Any]] = {
            name: np.zeros(64, dtype=np.int64) for name in self._sub_caches
        }
        self._classes = _Simple(C.SUB_CLASSES)
        self._prev = np.zeros((0, 6), dtype=np.int64)  # per row: gen, req, 4xx, 5xx, thr, retries
        self._evicted = np.zeros(5, dtype=np.int64)  # ``Frame.evicted_sub_figures`` seen
        self._score_traffic = np.zeros(0)
        self._score_failures = np.zeros(0)

    def _grow_rows(self, n: int) -> None:
        if n > len(self._prev):
            size = max(n, 2 * len(self._prev))
            prev = np.zeros((size, 6), dtype=np.int64)
            prev[:, 0] = -1
            prev[: len(self._prev)] = self._prev
            self._prev = prev
            for name in ("_score_traffic", "_score_failures"):
                old = getattr(self, name)
                new = np.zeros(size)
                new[: len(old)] = old
                setattr(self, name, new)
            gen = np.full(size, -1, dtype=np.int64)
            gen[: len(self._member_gen)] = self._member_gen
            self._member_gen = gen

    def _named(self, f: Frame, row: int) -> tuple[SubIdentity, dict[str, AttrValue]] | None:
        """A member row's identity by names and its attributes, found once per generation."""
        gen = int(f.sub_i64[row, L.S_GEN])
        known = self._names.get(row)
        if known is None or known[0] != gen:
            attrs = self._sub_attrs(f, row)
            if attrs is None:
                return None  # not kept: looked up again next time
            ident = (
                str(attrs["wso2.application.id"]),
                str(attrs["wso2.tenant"]),
                str(attrs["wso2.api.name"]),
                str(attrs["wso2.api.version"]),
            )
            known = (gen, ident, attrs)
            self._names[row] = known
        return known[1], known[2]

    def _sub_attrs(self, f: Frame, row: int) -> dict[str, AttrValue] | None:
        s = f.strings
        sub = f.sub_i64[row]
        app, name, api_row = int(sub[L.S_APP]), int(sub[L.S_APP_NAME]), int(sub[L.S_API])
        if app >= len(s) or name >= len(s) or api_row >= len(f.api_i64):
            return None  # the row was reused after the strings were copied: next time
        api = f.api_i64[api_row]
        tenant, api_name = tenants.split(s[int(api[L.A_NAME])])
        return {
            "wso2.application.id": s[app],
            "wso2.application.name": s[name] or s[app],
            "wso2.tenant": tenant,
            "wso2.api.name": api_name,
            "wso2.api.version": s[int(api[L.A_VERSION])],
        }

    def _acc_id(self, metric: str, key: Hashable, attrs: dict[str, AttrValue], now: int) -> int:
        cache = self._sub_caches[metric]
        known = cache.get(key)
        if known is not None:
            return known
        i = cache.add(key, attrs)
        if i >= len(self._sub_acc[metric]):
            for store in (self._sub_acc, self._sub_start):
                old = store[metric]
                new = np.zeros(2 * len(old), dtype=old.dtype)
                new[: len(old)] = old
                store[metric] = new
        self._sub_start[metric][i] = now
        return i

    def points(self, f: Frame) -> list[Points]:
        """The points of the per-subscription metrics, members and ``other``."""
        n = len(f.sub_i64)
        self._grow_rows(n)
        sub = f.sub_i64
        live = sub[:, L.S_KEY] != 0
        cur = sub[:, [L.S_GEN, L.S_REQ, L.S_CLIENT_ERR, L.S_5XX, L.S_THROTTLED, L.S_RETRIES]]
        prev = self._prev[:n]
        same = (prev[:, 0] == cur[:, 0]) & live
        inc = np.where(same[:, None], cur - prev, cur)[:, 1:]
        inc = np.where(live[:, None], np.maximum(inc, 0), 0)  # per row: req, 4xx, 5xx, thr, retries
        # the rows freed since the previous export (evicted): what they counted after it, to
        # other (all they counted, less what the previous exports saw of them)
        gone = (prev[:, 0] >= 0) & ~same
        freed = f.evicted_sub_figures - self._evicted
        tail = np.maximum(freed - prev[gone, 1:].sum(axis=0), 0).astype(np.float64)
        self._evicted = f.evicted_sub_figures.copy()
        prev[:] = cur
        prev[~live] = 0
        prev[~live, 0] = -1
        # ranking: recent traffic and failures, halved at each export, plus classes held
        t = self._score_traffic[:n]
        fl = self._score_failures[:n]
        t[:] = np.where(same, 0.5 * t, 0.0) + inc[:, 0]
        fl[:] = np.where(same, 0.5 * fl, 0.0) + inc[:, 1:4].sum(axis=1)
        bad_cols = [SUB_CLASSES.index(c) for c in MISBEHAVIOUR]
        bad = f.sub_held[:, bad_cols].sum(axis=1)
        is_member = self._select(f, live, t, bad * 1e15 + fl, bad > 0)
        member_rows = np.flatnonzero(is_member)
        self._names = {r: self._names.get(r) for r in member_rows.tolist()}
        named = {r: self._named(f, r) for r in member_rows.tolist()}
        out: list[Points] = []
        start0 = f.start_ns
        for spec, cols, label in (
            (C.SUB_REQUESTS, (0,), ()),
            (C.SUB_FAILURES, (1, 2, 3), ("client_error", "server_error", "throttled")),
            (C.SUB_RETRIES, (4,), ()),
        ):
            name = spec.name
            emitted: list[int] = []
            for j, col in enumerate(cols):
                extra: dict[str, AttrValue] = {"vigie.failure": label[j]} if label else {}
                other = {"wso2.application.name": OTHER} | extra
                oid = self._acc_id(name, (OTHER, j), other, start0)
                rows, ids = [], []
                for row in member_rows.tolist():
                    found = named[row]
                    if found is None:
                        continue  # its strings were copied before it: other, this time
                    ident, attrs = found
                    rows.append(row)
                    ids.append(self._acc_id(name, (ident, j), attrs | extra, f.time_ns))
                counted = np.zeros(n, dtype=np.bool_)
                counted[rows] = True
                self._sub_acc[name][oid] += float(inc[~counted, col].sum()) + tail[col]
                emitted.append(oid)
                np.add.at(self._sub_acc[name], ids, inc[rows, col].astype(np.float64))
                emitted += ids
            idx = self._prune(name, np.unique(np.array(emitted, dtype=np.int64)))
            out.append(
                NumberPoints(
                    spec,
                    self._sub_caches[name],
                    idx,
                    self._sub_acc[name][idx].astype(np.int64),
                    self._sub_start[name][idx],
                )
            )
        out.append(self._member_classes(f, member_rows))
        return out

    def _prune(self, metric: str, emitted: I64) -> I64:
        """When the metric keeps many more series than it exports (departed members, evicted
        subscriptions: ``AttrCache.crowded``), only those exported are kept; returns their new
        ids."""
        cache = self._sub_caches[metric]
        if not cache.crowded(len(emitted)):
            return emitted
        new_ids = cache.compact(emitted)
        for store in (self._sub_acc, self._sub_start):
            old = store[metric]
            kept = np.zeros_like(old)
            kept[: len(emitted)] = old[emitted]
            store[metric] = kept
        return new_ids

    def _select(
        self,
        f: Frame,
        live: npt.NDArray[np.bool_],
        traffic: F64,
        anomaly: F64,
        anomalous: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """The member rows now (and kept as such): the top K by traffic and by misbehaviour,
        and the members of the previous export still in the top 2K."""
        n = len(live)
        k = self.top_k
        gen = f.sub_i64[:, L.S_GEN]
        members = np.zeros(n, dtype=np.bool_)
        if k > 0 and live.any():

            def top(score: F64, eligible: npt.NDArray[np.bool_], m: int) -> npt.NDArray[np.bool_]:
                idx = np.flatnonzero(eligible)
                if len(idx) > m:
                    idx = idx[np.argpartition(-score[idx], m - 1)[:m]]
                out = np.zeros(n, dtype=np.bool_)
                out[idx] = True
                return out

            t_ok = live & (traffic > 0)
            a_ok = live & anomalous
            was = live & (self._member_gen[:n] == gen)  # the same row, the same subscription
            entering = top(traffic, t_ok, k) | top(anomaly, a_ok, k)
            staying = was & (top(traffic, t_ok, 2 * k) | top(anomaly, a_ok, 2 * k))
            members = entering | staying
        self._member_gen[:n] = np.where(members, gen, -1)
        self._member_gen[n:] = -1
        return members

    def _member_classes(self, f: Frame, member_rows: I64) -> NumberPoints:
        m = self._classes
        m.ids, m.values = [], []
        for row in member_rows.tolist():
            found = self._named(f, row)
            if found is None:
                continue
            attrs = found[1]
            for c in np.flatnonzero(f.sub_held[row]).tolist():
                m.add(attrs | {"vigie.class": SUB_CLASSES[c]}, 1)
        if m.cache.crowded(len(m.ids)):  # classes of departed members
            ids = np.array(m.ids, dtype=np.int64)
            m.cache.compact(np.unique(ids))
            m.ids = m.cache.renumbered[ids].tolist()
        return NumberPoints(
            m.spec,
            m.cache,
            np.array(m.ids, dtype=np.int64),
            np.array(m.values, dtype=np.int64),
            np.full(len(m.ids), f.start_ns, dtype=np.int64),
            gauge=True,
        )
