"""The route metrics: route rows (API x resource x method x status x WSO2 error code x channel x
throttled) grouped four ways, each by its own attributes: http.server.request.duration
(method, route, status, error.type, API, channel), wso2.api.requests (API, channel, outcome),
wso2.api.throttled (API, channel, code) and wso2.api.errors (API, channel, family, code).

Each route row is assigned its series once, when it first appears; per export the work is
jitted grouping over the rows.
"""

from __future__ import annotations

import time

import numpy as np

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


class RouteView:
    """The series of one route-derived metric and the series each route row feeds."""

    def __init__(self, spec: C.MetricSpec, tag: int) -> None:
        self.spec = spec
        self.cache = AttrCache(tag)
        self.group = np.full(0, -1, dtype=np.int64)

    def prune(self, n: int) -> None:
        """Drop the series no route row among the first ``n`` feeds when they pile up
        (``AttrCache.crowded``); the rows' series renumbered."""
        g = self.group[:n]
        used = np.unique(g[g >= 0])
        if self.cache.crowded(len(used)):
            self.cache.compact(used)
            g[g >= 0] = self.cache.renumbered[g[g >= 0]]

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
        if moved:  # the series of the routes evicted, when they pile up, go
            for v in (self.duration, self.requests, self.throttled, self.errors):
                v.prune(n)

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
            tenant, api = tenants.split(s[int(f.api_i64[api_row, L.A_NAME])])
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
            attrs["wso2.tenant"] = tenant
            attrs["wso2.api.name"] = api
            attrs["wso2.api.version"] = version
            attrs["wso2.channel"] = channel
            api_id = (tenant, api, version)  # names, not rows: rows move (an eviction)
            self.duration.group[r] = self.duration.cache.add(
                (api_id, s[res], me, st, err, channel), attrs
            )

            out = outcome(st, thr, ec)
            api_attrs: dict[str, AttrValue] = {
                "wso2.tenant": tenant,
                "wso2.api.name": api,
                "wso2.api.version": version,
                "wso2.channel": channel,
            }
            self.requests.group[r] = self.requests.cache.add(
                (api_id, channel, out), api_attrs | {"wso2.outcome": out}
            )
            if thr:
                self.throttled.group[r] = self.throttled.cache.add(
                    (api_id, channel, ec), api_attrs | {"wso2.error.code": ec}
                )
            if ec:
                self.errors.group[r] = self.errors.cache.add(
                    (api_id, channel, ec),
                    api_attrs | {"wso2.error.family": error_family(ec), "wso2.error.code": ec},
                )
        self._routes_seen = n

    def _sum(self, v: RouteView, f: Frame, column: int) -> NumberPoints:
        n = len(f.route_i64)
        g = len(v.cache)
        out = np.zeros(g, dtype=np.int64)
        W.group_values(f.route_i64[:, column], v.group[:n], g, out)
        ids = np.flatnonzero(out).astype(np.int64)
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
        ids = np.flatnonzero(count).astype(np.int64)
        if len(ids) < g:  # series without requests yet (rare): leave them out
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
