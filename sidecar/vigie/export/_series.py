"""From a collected frame to the points of every metric in the catalogue.

``Builder`` keeps what outlives one export: the attribute sets of every series (encoded once),
the series each route row feeds, the top-K subscriptions and the accumulators behind their
series, and the previous values needed for delta temporality. Per export the work is array
work over rows and series (numpy and jitted loops); Python runs per *new* series only.

Route rows (API x resource x method x status x WSO2 error code x channel x throttled) feed four
metrics, each grouping the rows by its own attributes: http.server.request.duration (method,
route, status, error.type, API), wso2.api.requests (API, channel, outcome), wso2.api.throttled
(API, channel, code) and wso2.api.errors (API, channel, family, code).

Per-subscription series are bounded: only the top-K subscriptions by recent traffic and the
top-K by misbehaviour get their own series; a member stays while it ranks in the top 2K (so
series do not flap), and everything else is summed under ``wso2.application.name=other``. Those
series are vigie's own accumulators of the increments seen while a subscription is a member (its
start time is when it joined), so ``other`` never decreases when a member joins or leaves, and
members plus ``other`` always add up to the platform's traffic.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vigie import __version__
from vigie.export import _catalogue as C
from vigie.export import _wire as W
from vigie.export._collect import Frame
from vigie.export._points import (
    ATTR_TAG_EXP,
    ATTR_TAG_HISTOGRAM,
    ATTR_TAG_NUMBER,
    DELTA,
    AttrCache,
    AttrValue,
    Batch,
    ExpHistogramPoints,
    HistogramPoints,
    NumberPoints,
    Points,
)
from vigie.state import layout as L
from vigie.state.codes import error_family
from vigie.state.thresholds import API_CLASS_NAMES, CLASS_NAMES

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# OTel semantic conventions: the known HTTP methods, "_OTHER" for the rest
METHODS: Final = ("_OTHER", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "_OTHER")
MISBEHAVIOUR: Final = (
    "retry_storm",
    "error_prone",
    "redundant",
    "wrong_channel",
    "throttle_hitter",
)
OTHER: Final = "other"
OVERFLOW: Final = "_OTHER"
# semconv's advice for http.server.request.duration (seconds)
DEFAULT_BOUNDS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
EXPORT_BOUNDS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def outcome(status: int, throttled: int, code: int) -> str:
    """wso2.outcome: throttled first, then 5xx (or no status but an error code), then 4xx."""
    if throttled:
        return "throttled"
    if status >= 500 or (status < 100 and code):
        return "server_error"
    if 400 <= status < 500:
        return "client_error"
    return "success"


def latency_bucket_uppers() -> F64:
    """Upper bound (seconds) of each latency column (column 0, latency 0, bounds 0)."""
    cols = np.arange(L.LAT_WIDTH, dtype=np.float64)
    up = np.exp2((cols + L.LAT_MIN_INDEX) / 2**L.LAT_SCALE)
    up[0] = 0.0
    return up


def explicit_map(bounds: Sequence[float]) -> I64:
    """Explicit bucket of each latency column: the one holding the column's upper bound (an
    exponential bucket straddling a bound is counted above it, at most one base-2 bucket,
    2^(1/8) = 9 %, too high)."""
    return np.searchsorted(np.asarray(bounds, dtype=np.float64), latency_bucket_uppers()).astype(
        np.int64
    )


@dataclass(frozen=True, slots=True)
class BuildOptions:
    histogram: str = "exponential"  # or "explicit"
    bounds: tuple[float, ...] = DEFAULT_BOUNDS
    top_k: int = 20
    delta: bool = False
    resource: Mapping[str, AttrValue] = field(default_factory=dict)
    gateway: str = ""
    channel: str = ""
    tenant: str = ""


@dataclass(slots=True)
class SelfFigures:
    """The exporter's own figures, exported with everything else."""

    durations: I64  # explicit buckets over EXPORT_BOUNDS (len + 1)
    duration_sum: float
    failures: dict[str, int]
    last_points: int


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


class _RouteView:
    """The series of one route-derived metric and the series each route row feeds."""

    def __init__(self, spec: C.MetricSpec, tag: int) -> None:
        self.spec = spec
        self.cache = AttrCache(tag)
        self.group = np.full(0, -1, dtype=np.int64)

    def extend(self, n: int) -> None:
        if n > len(self.group):
            grown = np.full(max(n, 2 * len(self.group)), -1, dtype=np.int64)
            grown[: len(self.group)] = self.group
            self.group = grown


class _DeltaState:
    """Previous cumulative values per (metric, series id), for delta temporality."""

    def __init__(self) -> None:
        self.prev: dict[str, npt.NDArray[Any]] = {}
        self.seen: dict[str, npt.NDArray[np.bool_]] = {}
        self.last_ns = 0

    def _arrays(
        self, name: str, n_ids: int, shape: tuple[int, ...], dtype: Any
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
        prev = self.prev.get(name)
        if prev is None or len(prev) < n_ids:
            size = max(n_ids, 2 * (0 if prev is None else len(prev)), 64)
            grown = np.zeros((size, *shape), dtype=dtype)
            seen = np.zeros(size, dtype=np.bool_)
            if prev is not None:
                grown[: len(prev)] = prev
                seen[: len(prev)] = self.seen[name]
            self.prev[name], self.seen[name] = grown, seen
        return self.prev[name], self.seen[name]

    def apply(self, p: Points, n_ids: int) -> None:
        """Turn ``p`` (cumulative) into deltas since the previous export, in place. A value
        below the previous one is a reset: the delta is then the value itself."""
        name = p.spec.name
        ids = p.ids
        if isinstance(p, NumberPoints):
            prev, seen = self._arrays(name, n_ids, (), p.values.dtype)
            cur = p.values.copy()
            d = cur - prev[ids]
            p.values = np.where(d < 0, cur, d)
            prev[ids] = cur
        else:
            # one row per series: count, sum, zero count, buckets...
            zero = p.zero if isinstance(p, ExpHistogramPoints) else np.zeros(len(ids), np.int64)
            cur = np.concatenate(
                [
                    p.count[:, None].astype(np.float64),
                    p.sum[:, None],
                    zero[:, None].astype(np.float64),
                    p.buckets.astype(np.float64),
                ],
                axis=1,
            )
            prev, seen = self._arrays(name, n_ids, (cur.shape[1],), np.float64)
            old = prev[ids]
            reset = cur[:, 0] < old[:, 0]
            d = np.where(reset[:, None], cur, cur - old)
            prev[ids] = cur
            p.count = d[:, 0].astype(np.int64)
            p.sum = d[:, 1].copy()
            if isinstance(p, ExpHistogramPoints):
                p.zero = d[:, 2].astype(np.int64)
            p.buckets = d[:, 3:].astype(np.int64)
        was = seen[ids]
        if self.last_ns:
            p.start_ns = np.where(was, self.last_ns, p.start_ns).astype(np.int64)
        seen[ids] = True
        p.temporality = DELTA


class Builder:
    """Frames in, batches of points out (see the module docstring)."""

    def __init__(self, options: BuildOptions | None = None) -> None:
        self.options = options or BuildOptions()
        o = self.options
        if o.histogram not in ("exponential", "explicit"):
            raise ValueError(f"histogram must be exponential or explicit, not {o.histogram!r}")
        dur_tag = ATTR_TAG_EXP if o.histogram == "exponential" else ATTR_TAG_HISTOGRAM
        self.duration = _RouteView(C.HTTP_SERVER_DURATION, dur_tag)
        self.requests = _RouteView(C.API_REQUESTS, ATTR_TAG_NUMBER)
        self.throttled = _RouteView(C.API_THROTTLED, ATTR_TAG_NUMBER)
        self.errors = _RouteView(C.API_ERRORS, ATTR_TAG_NUMBER)
        self._routes_seen = 0
        self._colmap = explicit_map(o.bounds)
        # top-K subscriptions
        self.members: set[int] = set()  # S_KEY of member subscriptions
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
        self._score_traffic = np.zeros(0)
        self._score_failures = np.zeros(0)
        self._delta = _DeltaState() if o.delta else None
        self._simple: dict[str, AttrCache] = {}

    # -----------------------------------------------------------------------------------------
    def build(self, f: Frame, self_figures: SelfFigures | None = None) -> Batch:
        batch = Batch(self.resource(f), "vigie", __version__, f.time_ns)
        self._assign_routes(f)
        batch.metrics += self._route_metrics(f)
        batch.metrics += self._subscription_metrics(f)
        batch.metrics += self._platform_metrics(f, self_figures)
        if self._delta is not None:
            for p in batch.metrics:
                if not (isinstance(p, NumberPoints) and (p.gauge or not p.monotonic)):
                    self._delta.apply(p, len(p.cache))
            self._delta.last_ns = f.time_ns
        return batch

    def resource(self, f: Frame) -> dict[str, AttrValue]:
        """The resource: fixed for the life of the process (Prometheus turns resource
        attributes into labels, and a label that comes and goes splits every series), so the
        gateway, channel and tenant come from the settings, not from the connected gateways."""
        o = self.options
        attrs: dict[str, AttrValue] = {
            "service.name": "vigie",
            "service.version": __version__,
            "service.instance.id": f.sidecar_id,
        }
        for key, value in (
            ("wso2.gateway.id", o.gateway),
            ("wso2.channel", o.channel),
            ("wso2.tenant", o.tenant),
        ):
            if value:
                attrs[key] = value
        attrs.update(o.resource)
        return attrs

    # -----------------------------------------------------------------------------------------
    # route rows
    # -----------------------------------------------------------------------------------------
    def _assign_routes(self, f: Frame) -> None:
        n = len(f.route_i64)
        if n <= self._routes_seen:
            return
        for v in (self.duration, self.requests, self.throttled, self.errors):
            v.extend(n)
        s = f.strings
        for r in range(self._routes_seen, n):
            if r % 256 == 255:
                time.sleep(0)  # many new routes: let the ingest thread have the GIL
            row = f.route_i64[r]
            if r == 0:  # what did not fit the route table
                self.duration.group[0] = self.duration.cache.add(
                    "overflow", {"http.request.method": OVERFLOW, "http.route": OVERFLOW}
                )
                self.requests.group[0] = self.requests.cache.add(
                    "overflow", {"wso2.api.name": OVERFLOW, "wso2.outcome": OVERFLOW}
                )
                continue
            api_row = int(row[L.R_API])
            api = s[int(f.api_i64[api_row, L.A_NAME])]
            version = s[int(f.api_i64[api_row, L.A_VERSION])]
            res = int(row[L.R_RESOURCE])
            me = int(row[L.R_METHOD])
            st = int(row[L.R_STATUS])
            ch = int(row[L.R_CHANNEL])
            ec = int(row[L.R_ERROR_CODE])
            thr = int(row[L.R_THROTTLED])
            channel = f.channels[ch] if 0 <= ch < len(f.channels) else f"#{ch}"

            attrs: dict[str, AttrValue] = {
                "http.request.method": METHODS[me] if 0 <= me < len(METHODS) else "_OTHER"
            }
            if res:
                attrs["http.route"] = s[res]
            if st:
                attrs["http.response.status_code"] = st
            err = str(st) if st >= 500 else (str(ec) if st < 100 and ec else "")
            if err:
                attrs["error.type"] = err
            attrs["wso2.api.name"] = api
            attrs["wso2.api.version"] = version
            self.duration.group[r] = self.duration.cache.add((api_row, res, me, st, err), attrs)

            out = outcome(st, thr, ec)
            api_attrs: dict[str, AttrValue] = {
                "wso2.api.name": api,
                "wso2.api.version": version,
                "wso2.channel": channel,
            }
            self.requests.group[r] = self.requests.cache.add(
                (api_row, ch, out), api_attrs | {"wso2.outcome": out}
            )
            if thr:
                self.throttled.group[r] = self.throttled.cache.add(
                    (api_row, ch, ec), api_attrs | {"wso2.error.code": ec}
                )
            if ec:
                self.errors.group[r] = self.errors.cache.add(
                    (api_row, ch, ec),
                    api_attrs | {"wso2.error.family": error_family(ec), "wso2.error.code": ec},
                )
        self._routes_seen = n

    def _route_sum(self, v: _RouteView, f: Frame, column: int) -> NumberPoints:
        n = len(f.route_i64)
        g = len(v.cache)
        out = np.zeros(g, dtype=np.int64)
        W.group_values(f.route_i64[:, column], v.group[:n], g, out)
        ids = np.flatnonzero(out).astype(np.int64)
        return NumberPoints(v.spec, v.cache, ids, out[ids], np.full(len(ids), f.start_ns))

    def _route_metrics(self, f: Frame) -> list[Points]:
        n = len(f.route_i64)
        v = self.duration
        g = len(v.cache)
        hist = np.zeros((g, L.LAT_WIDTH), dtype=np.int64)
        W.group_rows(f.route_hist, v.group[:n], g, hist)
        lat = np.zeros(g, dtype=np.int64)
        W.group_values(f.route_i64[:, L.R_LAT_SUM_US], v.group[:n], g, lat)
        count = np.zeros(g, dtype=np.int64)
        W.group_values(f.route_i64[:, L.R_REQ], v.group[:n], g, count)
        ids = np.flatnonzero(count).astype(np.int64)
        if len(ids) < g:  # series without requests yet (rare): leave them out
            hist, lat, count = hist[ids], lat[ids], count[ids]
        seconds = lat.astype(np.float64) / 1e6
        start = np.full(len(ids), f.start_ns, dtype=np.int64)
        duration: Points
        if self.options.histogram == "exponential":
            duration = ExpHistogramPoints(
                v.spec,
                v.cache,
                ids,
                count,
                seconds,
                hist[:, 0],
                hist[:, 1:],
                L.LAT_MIN_INDEX,
                L.LAT_SCALE,
                start,
            )
        else:
            bounds = np.asarray(self.options.bounds, dtype=np.float64)
            explicit = np.zeros((len(ids), len(bounds) + 1), dtype=np.int64)
            W.remap_columns(hist, self._colmap, explicit)
            duration = HistogramPoints(
                v.spec, v.cache, ids, count, seconds, explicit, bounds, start
            )
        return [
            duration,
            self._route_sum(self.requests, f, L.R_REQ),
            self._route_sum(self.throttled, f, L.R_REQ),
            self._route_sum(self.errors, f, L.R_REQ),
        ]

    # -----------------------------------------------------------------------------------------
    # subscriptions
    # -----------------------------------------------------------------------------------------
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

    def _sub_attrs(self, f: Frame, row: int) -> dict[str, AttrValue] | None:
        s = f.strings
        sub = f.sub_i64[row]
        app, name, api_row = int(sub[L.S_APP]), int(sub[L.S_APP_NAME]), int(sub[L.S_API])
        if app >= len(s) or name >= len(s) or api_row >= len(f.api_i64):
            return None  # the row was reused after the strings were copied: next time
        api = f.api_i64[api_row]
        return {
            "wso2.application.id": s[app],
            "wso2.application.name": s[name] or s[app],
            "wso2.api.name": s[int(api[L.A_NAME])],
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

    def _subscription_metrics(self, f: Frame) -> list[Points]:
        n = len(f.sub_i64)
        self._grow_rows(n)
        sub = f.sub_i64
        live = sub[:, L.S_KEY] != 0
        cur = sub[:, [L.S_GEN, L.S_REQ, L.S_CLIENT_ERR, L.S_5XX, L.S_THROTTLED, L.S_RETRIES]]
        prev = self._prev[:n]
        same = (prev[:, 0] == cur[:, 0]) & live
        inc = np.where(same[:, None], cur - prev, cur)[:, 1:]
        inc = np.where(live[:, None], np.maximum(inc, 0), 0)  # per row: req, 4xx, 5xx, thr, retries
        prev[:] = cur
        prev[~live] = 0
        prev[~live, 0] = -1
        # ranking: recent traffic and failures, halved at each export, plus classes held
        t = self._score_traffic[:n]
        fl = self._score_failures[:n]
        t[:] = np.where(same, 0.5 * t, 0.0) + inc[:, 0]
        fl[:] = np.where(same, 0.5 * fl, 0.0) + inc[:, 1:4].sum(axis=1)
        bad_cols = [CLASS_NAMES.index(c) for c in MISBEHAVIOUR]
        bad = f.sub_held[:, bad_cols].sum(axis=1)
        self._select(f, live, t, bad * 1e15 + fl, bad > 0)

        keys = sub[:, L.S_KEY]
        is_member = live & np.isin(keys, np.fromiter(self.members, np.int64, len(self.members)))
        member_rows = np.flatnonzero(is_member)
        attrs_of_row: dict[int, dict[str, AttrValue] | None] = {}
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
                self._sub_acc[name][oid] += float(inc[~is_member, col].sum())
                emitted.append(oid)
                rows, ids = [], []
                for row in member_rows.tolist():
                    key = (int(keys[row]), j)
                    i = self._sub_caches[name].get(key)
                    if i is None:
                        if row not in attrs_of_row:
                            attrs_of_row[row] = self._sub_attrs(f, row)
                        attrs = attrs_of_row[row]
                        if attrs is None:
                            continue
                        i = self._acc_id(name, key, attrs | extra, f.time_ns)
                    rows.append(row)
                    ids.append(i)
                np.add.at(self._sub_acc[name], ids, inc[rows, col].astype(np.float64))
                emitted += ids
            idx = np.array(sorted(emitted), dtype=np.int64)
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

    def _select(
        self,
        f: Frame,
        live: npt.NDArray[np.bool_],
        traffic: F64,
        anomaly: F64,
        anomalous: npt.NDArray[np.bool_],
    ) -> None:
        k = self.options.top_k
        keys = f.sub_i64[:, L.S_KEY]
        if k <= 0 or not live.any():
            self.members = set()
            return

        def top(score: F64, eligible: npt.NDArray[np.bool_], m: int) -> set[int]:
            idx = np.flatnonzero(eligible)
            if len(idx) > m:
                idx = idx[np.argpartition(-score[idx], m - 1)[:m]]
            return set(keys[idx].tolist())

        t_ok = live & (traffic > 0)
        a_ok = live & anomalous
        entering = top(traffic, t_ok, k) | top(anomaly, a_ok, k)
        staying = self.members & (top(traffic, t_ok, 2 * k) | top(anomaly, a_ok, 2 * k))
        self.members = entering | staying

    def _member_classes(self, f: Frame, member_rows: I64) -> NumberPoints:
        m = self._classes
        m.ids, m.values = [], []
        for row in member_rows.tolist():
            attrs = self._sub_attrs(f, row)
            if attrs is None:
                continue
            for c in np.flatnonzero(f.sub_held[row]).tolist():
                m.add(attrs | {"vigie.class": CLASS_NAMES[c]}, 1)
        return NumberPoints(
            m.spec,
            m.cache,
            np.array(m.ids, dtype=np.int64),
            np.array(m.values, dtype=np.int64),
            np.full(len(m.ids), f.start_ns, dtype=np.int64),
            gauge=True,
        )

    # -----------------------------------------------------------------------------------------
    # platform figures
    # -----------------------------------------------------------------------------------------
    def _points(
        self,
        spec: C.MetricSpec,
        rows: Sequence[tuple[Mapping[str, AttrValue], float]],
        start: int,
    ) -> NumberPoints:
        cache = self._simple.setdefault(spec.name, AttrCache(ATTR_TAG_NUMBER))
        ids = np.array([cache.add(tuple(a.items()), dict(a)) for a, _ in rows], dtype=np.int64)
        integral = all(float(v).is_integer() for _, v in rows)
        values = np.array([v for _, v in rows], dtype=np.int64 if integral else np.float64)
        gauge = spec.kind is C.Kind.GAUGE
        return NumberPoints(
            spec, cache, ids, values, np.full(len(ids), start, dtype=np.int64), gauge=gauge
        )

    def _platform_metrics(self, f: Frame, own: SelfFigures | None) -> list[Points]:
        start = f.start_ns
        live = f.sub_i64[:, L.S_KEY] != 0
        held = f.sub_held[live]
        subs = [({"vigie.class": c}, int(held[:, i].sum())) for i, c in enumerate(CLASS_NAMES)]
        subs.append(({"vigie.class": "normal"}, int((~held.any(axis=1)).sum())))
        ah = f.api_held
        apis = [({"vigie.class": c}, int(ah[:, i].sum())) for i, c in enumerate(API_CLASS_NAMES)]
        apis.append(({"vigie.class": "normal"}, int((~ah.any(axis=1)).sum())))

        active: dict[tuple[str, str], int] = {}
        for d in f.directives:
            active[(d.mode, d.action)] = active.get((d.mode, d.action), 0) + 1
        hits = [
            ({"vigie.directive.id": i, "vigie.directive.result": r}, v)
            for i, shadow, enforced, passed in f.hits
            for r, v in (("shadow", shadow), ("enforced", enforced), ("passed", passed))
        ]
        dropped: list[tuple[dict[str, AttrValue], float]] = [
            (
                {"vigie.drop.source": "sidecar", "vigie.drop.reason": "without_api"},
                int(f.g[L.G_SKIPPED_NO_API]),
            )
        ]
        gw_events: list[tuple[dict[str, AttrValue], float]] = []
        for gw in f.gateways:
            for reason, v in gw.dropped.items():
                dropped.append(
                    (
                        {
                            "vigie.drop.source": "gateway",
                            "vigie.drop.reason": reason,
                            "wso2.gateway.id": gw.gateway_id,
                        },
                        v,
                    )
                )
            if gw.dropped:
                for stage, v in (("offered", gw.offered), ("sent", gw.sent)):
                    gw_events.append(
                        ({"wso2.gateway.id": gw.gateway_id, "vigie.gateway.stage": stage}, v)
                    )
        refused = [
            ({"vigie.refusal.cause": name}, v)
            for name, v in sorted(f.counters.items())
            if name.startswith(("batch_refused:", "stream_refused:"))
        ]
        out: list[Points] = [
            self._points(C.SUBSCRIPTIONS, subs, start),
            self._points(C.APIS, apis, start),
            self._points(
                C.DIRECTIVES_ACTIVE,
                [
                    ({"vigie.directive.mode": m, "vigie.directive.action": a}, v)
                    for (m, a), v in sorted(active.items())
                ],
                start,
            ),
            self._points(C.DIRECTIVE_HITS, hits, start),
            self._points(C.INGEST_EVENTS, [({}, int(f.g[L.G_EVENTS]))], start),
            self._points(C.INGEST_DROPPED, dropped, start),
            self._points(C.INGEST_REFUSED, refused, start),
            self._points(C.GATEWAY_EVENTS, gw_events, start),
            self._points(C.ROUTE_OVERFLOW, [({}, int(f.g[L.G_ROUTE_OVERFLOW]))], start),
        ]
        if own is not None:
            out.append(
                self._points(
                    C.EXPORT_FAILURES,
                    [({"error.type": k}, v) for k, v in sorted(own.failures.items())],
                    start,
                )
            )
            out.append(self._points(C.EXPORT_SERIES, [({}, own.last_points)], start))
            cache = self._simple.setdefault(C.EXPORT_DURATION.name, AttrCache(ATTR_TAG_HISTOGRAM))
            ids = np.array([cache.add((), {})], dtype=np.int64)
            out.append(
                HistogramPoints(
                    C.EXPORT_DURATION,
                    cache,
                    ids,
                    np.array([int(own.durations.sum())], dtype=np.int64),
                    np.array([own.duration_sum]),
                    own.durations.reshape(1, -1).astype(np.int64),
                    np.asarray(EXPORT_BOUNDS, dtype=np.float64),
                    np.array([start], dtype=np.int64),
                )
            )
        return out


def bucket_of_seconds(seconds: float) -> int:
    """The export-duration bucket of a cycle time (index into EXPORT_BOUNDS + overflow)."""
    for j, b in enumerate(EXPORT_BOUNDS):
        if seconds <= b:
            return j
    return len(EXPORT_BOUNDS)


__all__ = [
    "DEFAULT_BOUNDS",
    "EXPORT_BOUNDS",
    "BuildOptions",
    "Builder",
    "SelfFigures",
    "bucket_of_seconds",
    "error_family",
    "explicit_map",
    "outcome",
]
