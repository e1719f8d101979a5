"""The route metrics: route rows (API x resource x method x status x WSO2 error code x channel x
throttled) grouped four ways, each by its own attributes: http.server.request.duration
(method, route, status, error.type, API, channel), wso2.api.requests (API, channel, outcome),
wso2.api.throttled (API, channel, code) and wso2.api.errors (API, channel, family, code).

Each route row is assigned its series once, when it first appears; per export the work is
jitted grouping over the rows.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from vigie.export import _catalogue as C
from vigie.export import _wire as W
from vigie.export._collect import Frame
from vigie.export._points import (
    ATTR_TAG_EXP,
    ATTR_TAG_HISTOGRAM,
    ATTR_TAG_NUMBER,
    AttrCache,
    AttrValue,
    ExpHistogramPoints,
    HistogramPoints,
    NumberPoints,
    Points,
)
from vigie.export._series import (
    METHODS,
    OVERFLOW,
    BuildOptions,
    error_family,
    explicit_map,
    outcome,
)
from vigie.state import layout as L
from vigie.wire import tenants

log = logging.getLogger(__name__)
I64 = npt.NDArray[np.int64]


class RouteView:
    """The series of one route-derived metric, the series each route row feeds, and what each
    series keeps of the route rows evicted from it (``vigie.state._evict.RouteFold``): their
    requests (``off``), and for the durations their latency sums and histograms."""

    def __init__(self, spec: C.MetricSpec, tag: int) -> None:
        self.spec = spec
        self.cache = AttrCache(tag)
        self.group = np.full(0, -1, dtype=np.int64)
        self.off = np.zeros(64, dtype=np.int64)
        self.off_lat_us = np.zeros(64, dtype=np.int64)
        self.off_hist: dict[int, I64] = {}  # sparse: few series lose routes

    def carry(self, sid: int, req: int, lat_us: int, hist: I64 | None) -> None:
        """Series ``sid`` keeps figures of rows evicted from it (negative: given back)."""
        if sid >= len(self.off):
            size = max(sid + 1, 2 * len(self.off))
            for name in ("off", "off_lat_us"):
                old = getattr(self, name)
                grown = np.zeros(size, dtype=np.int64)
                grown[: len(old)] = old
                setattr(self, name, grown)
        self.off[sid] += req
        self.off_lat_us[sid] += lat_us
        if hist is not None:
            mine = self.off_hist.get(sid)
            if mine is None:
                self.off_hist[sid] = hist.copy()
            else:
                mine += hist

    def fed(self, n: int) -> npt.NDArray[np.bool_]:
        """The series some route row among the first ``n`` feeds (only those are exported)."""
        out = np.zeros(len(self.cache), dtype=np.bool_)
        g = self.group[:n]
        out[g[g >= 0]] = True
        return out

    def prune(self, n: int) -> None:
        """Drop the series no route row among the first ``n`` feeds when they pile up
        (``AttrCache.crowded``); the rows' series renumbered."""
        g = self.group[:n]
        used = np.unique(g[g >= 0])
        if self.cache.crowded(len(used)):
            self.cache.compact(used)
            g[g >= 0] = self.cache.renumbered[g[g >= 0]]
            size = max(64, len(used))
            for name in ("off", "off_lat_us"):
                old = getattr(self, name)
                kept = np.zeros(size, dtype=np.int64)
                inside = used[used < len(old)]
                kept[self.cache.renumbered[inside]] = old[inside]
                setattr(self, name, kept)
            renumbered = self.cache.renumbered
            self.off_hist = {
                int(renumbered[k]): h
                for k, h in self.off_hist.items()
                if k < len(renumbered) and renumbered[k] >= 0
            }

    def extend(self, n: int) -> None:
        if n > len(self.group):
            grown = np.full(max(n, 2 * len(self.group)), -1, dtype=np.int64)
            grown[: len(self.group)] = self.group
            self.group = grown


class RouteSeries:
    """The four route metrics: their series, and the series of each that every route row
    feeds (assigned once, when the row first appears)."""

    def __init__(self, options: BuildOptions) -> None:
        self.histogram = options.histogram
        self.bounds = options.bounds
        dur_tag = ATTR_TAG_EXP if options.histogram == "exponential" else ATTR_TAG_HISTOGRAM
        self.duration = RouteView(C.HTTP_SERVER_DURATION, dur_tag)
        self.requests = RouteView(C.API_REQUESTS, ATTR_TAG_NUMBER)
        self.throttled = RouteView(C.API_THROTTLED, ATTR_TAG_NUMBER)
        self.errors = RouteView(C.API_ERRORS, ATTR_TAG_NUMBER)
        self._routes_seen = 0
        self._epoch = 0  # ``Frame.row_epoch`` of the rows assigned
        self._fold_seq = 0  # the latest ``RouteFold`` carried
        self._colmap = explicit_map(options.bounds)

    def _assign(self, f: Frame) -> None:
        n = len(f.route_i64)
        moved = f.row_epoch != self._epoch
        if moved:  # route rows were moved (an eviction): assigned again
            self._epoch = f.row_epoch
            self._routes_seen = 0
            for v in (self.duration, self.requests, self.throttled, self.errors):
                v.group[:] = -1
        if n > self._routes_seen:
            self._assign_new(f, n)
        if moved:
            self._carry(f)
            for v in (self.duration, self.requests, self.throttled, self.errors):
                v.prune(n)  # the series of the routes evicted, when they pile up, go

    def _carry(self, f: Frame) -> None:
        """The route rows evicted into route 0 since the previous export (``RouteFold``): each
        series they fed keeps their figures, and route 0's series (``_OTHER``) gives them back,
        so that no series goes down and ``_OTHER`` counts only what did not fit. A row whose
        series is gone is left in ``_OTHER``; folds older than the state remembers too."""
        folds = [fold for fold in f.route_folds if fold.seq > self._fold_seq]
        if not folds:
            return
        if folds[0].seq > self._fold_seq + 1:
            log.info(
                "%d route evictions happened between two exports and are forgotten: their "
                "routes' figures count under http.route=_OTHER",
                folds[0].seq - self._fold_seq - 1,
            )
        self._fold_seq = folds[-1].seq
        views = (self.duration, self.requests, self.throttled, self.errors)
        for fold in folds:
            # each row's histogram entries (sparse, by row): rebuilt one row at a time
            bounds = np.searchsorted(fold.hist_row, np.arange(len(fold.rows) + 1)).tolist()
            for i in range(len(fold.rows)):
                name, version, res, channel = fold.names(i)
                row = fold.rows[i]
                req, lat = int(row[L.R_REQ]), int(row[L.R_LAT_SUM_US])
                keys = self._keys(
                    name,
                    version,
                    res,
                    channel,
                    int(row[L.R_METHOD]),
                    int(row[L.R_STATUS]),
                    int(row[L.R_ERROR_CODE]),
                    int(row[L.R_THROTTLED]),
                )
                for v, (key, _) in zip(views, keys, strict=True):
                    sid = None if key is None else v.cache.get(key)
                    if sid is None:
                        continue  # no such series now: the row stays in _OTHER
                    h = None
                    if v is self.duration:
                        h = np.zeros(L.LAT_WIDTH, dtype=np.int64)
                        lo, hi = bounds[i], bounds[i + 1]
                        h[fold.hist_col[lo:hi]] = fold.hist_count[lo:hi]
                    v.carry(sid, req, lat, h)
                    if v.group[0] >= 0:  # route 0 feeds this metric: _OTHER gives it back
                        v.carry(int(v.group[0]), -req, -lat, None if h is None else -h)

    def _assign_new(self, f: Frame, n: int) -> None:
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
            keys = self._keys(
                s[int(f.api_i64[api_row, L.A_NAME])],
                s[int(f.api_i64[api_row, L.A_VERSION])],
                s[int(row[L.R_RESOURCE])],
                f.channels[ch]
                if 0 <= (ch := int(row[L.R_CHANNEL])) < len(f.channels)
                else f"#{ch}",
                int(row[L.R_METHOD]),
                int(row[L.R_STATUS]),
                int(row[L.R_ERROR_CODE]),
                int(row[L.R_THROTTLED]),
            )
            for v, (key, attrs) in zip(
                (self.duration, self.requests, self.throttled, self.errors), keys, strict=True
            ):
                if key is not None:
                    v.group[r] = v.cache.add(key, attrs)
        self._routes_seen = n

    @staticmethod
    def _keys(
        keyed_api: str,
        version: str,
        res: str,
        channel: str,
        me: int,
        st: int,
        ec: int,
        thr: int,
    ) -> list[tuple[Any, dict[str, AttrValue]]]:
        """The series (key, attributes) a route row feeds in each of the four metrics
        (duration, requests, throttled, errors; key None: none), from its names."""
        tenant, api = tenants.split(keyed_api)
        attrs: dict[str, AttrValue] = {
            "http.request.method": METHODS[me] if 0 <= me < len(METHODS) else "_OTHER"
        }
        if res:
            attrs["http.route"] = res
        if st:
            attrs["http.response.status_code"] = st
        err = str(st) if st >= 500 else (str(ec) if st < 100 and ec else "")
        if err:
            attrs["error.type"] = err
        attrs["wso2.tenant"] = tenant
        attrs["wso2.api.name"] = api
        attrs["wso2.api.version"] = version
        attrs["wso2.channel"] = channel
        api_id = (tenant, api, version)  # names, not rows: rows move (an eviction)
        out = outcome(st, thr, ec)
        api_attrs: dict[str, AttrValue] = {
            "wso2.tenant": tenant,
            "wso2.api.name": api,
            "wso2.api.version": version,
            "wso2.channel": channel,
        }
        none: tuple[Any, dict[str, AttrValue]] = (None, {})
        return [
            ((api_id, res, me, st, err, channel), attrs),
            ((api_id, channel, out), api_attrs | {"wso2.outcome": out}),
            ((api_id, channel, ec), api_attrs | {"wso2.error.code": ec}) if thr else none,
            (
                (
                    (api_id, channel, ec),
                    api_attrs | {"wso2.error.family": error_family(ec), "wso2.error.code": ec},
                )
                if ec
                else none
            ),
        ]

    def _sum(self, v: RouteView, f: Frame, column: int) -> NumberPoints:
        n = len(f.route_i64)
        g = len(v.cache)
        out = np.zeros(g, dtype=np.int64)
        W.group_values(f.route_i64[:, column], v.group[:n], g, out)
        out += v.off[:g] if len(v.off) >= g else np.pad(v.off, (0, g - len(v.off)))
        ids = np.flatnonzero(v.fed(n) & (out > 0)).astype(np.int64)
        return NumberPoints(v.spec, v.cache, ids, out[ids], np.full(len(ids), f.start_ns))

    def points(self, f: Frame) -> list[Points]:
        """The points of the four route metrics (new route rows get their series first)."""
        self._assign(f)
        n = len(f.route_i64)
        v = self.duration
        g = len(v.cache)
        hist = np.zeros((g, L.LAT_WIDTH), dtype=np.int64)
        W.group_rows(f.route_hist, v.group[:n], g, hist)
        lat = np.zeros(g, dtype=np.int64)
        W.group_values(f.route_i64[:, L.R_LAT_SUM_US], v.group[:n], g, lat)
        count = np.zeros(g, dtype=np.int64)
        W.group_values(f.route_i64[:, L.R_REQ], v.group[:n], g, count)
        if len(v.off) < g:
            v.carry(g - 1, 0, 0, None)  # the offsets as long as the series
        count += v.off[:g]
        lat += v.off_lat_us[:g]
        for sid, h in v.off_hist.items():
            if sid < g:
                hist[sid] += h
        ids = np.flatnonzero(v.fed(n) & (count > 0)).astype(np.int64)
        if len(ids) < g:  # series without requests yet (rare) or no longer fed: left out
            hist, lat, count = hist[ids], lat[ids], count[ids]
        seconds = lat.astype(np.float64) / 1e6
        start = np.full(len(ids), f.start_ns, dtype=np.int64)
        duration: Points
        if self.histogram == "exponential":
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
            bounds = np.asarray(self.bounds, dtype=np.float64)
            explicit = np.zeros((len(ids), len(bounds) + 1), dtype=np.int64)
            W.remap_columns(hist, self._colmap, explicit)
            duration = HistogramPoints(
                v.spec, v.cache, ids, count, seconds, explicit, bounds, start
            )
        return [
            duration,
            self._sum(self.requests, f, L.R_REQ),
            self._sum(self.throttled, f, L.R_REQ),
            self._sum(self.errors, f, L.R_REQ),
        ]
