"""The platform metrics: subscriptions and APIs per class, directives and their hits, what the
sidecar and the gateways ingested, dropped and refused, and the exporter's own figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from vigie.export import _catalogue as C
from vigie.export._collect import API_CLASSES, SUB_CLASSES, Frame
from vigie.export._points import (
    ATTR_TAG_HISTOGRAM,
    ATTR_TAG_NUMBER,
    AttrCache,
    AttrValue,
    HistogramPoints,
    NumberPoints,
    Points,
)
from vigie.export._series import I64
from vigie.state import layout as L

# the data store's loss counters (vigie.store.data), without their _dropped suffix
DATA_DROP_REASONS: Final = (
    "rollup_events",
    "minute_rows",
    "changes_rows",
    "daily_rows",
    "sub_daily_rows",
    "sub_monthly_rows",
)
EXPORT_BOUNDS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class SelfFigures:
    """The exporter's own figures, exported with everything else."""

    durations: I64  # explicit buckets over EXPORT_BOUNDS (len + 1)
    duration_sum: float
    failures: dict[str, int]
    last_points: int


def bucket_of_seconds(seconds: float) -> int:
    """The export-duration bucket of a cycle time (index into EXPORT_BOUNDS + overflow)."""
    for j, b in enumerate(EXPORT_BOUNDS):
        if seconds <= b:
            return j
    return len(EXPORT_BOUNDS)


class PlatformSeries:
    """The few series of the platform metrics, keyed by their attributes."""

    def __init__(self) -> None:
        self._simple: dict[str, AttrCache] = {}

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

    def points(self, f: Frame, own: SelfFigures | None) -> list[Points]:
        """The platform figures, and the exporter's own when given."""
        start = f.start_ns
        live = f.sub_i64[:, L.S_KEY] != 0
        held = f.sub_held[live]
        subs = [({"vigie.class": c}, int(held[:, i].sum())) for i, c in enumerate(SUB_CLASSES)]
        subs.append(({"vigie.class": "normal"}, int((~held.any(axis=1)).sum())))
        ah = f.api_held
        apis = [({"vigie.class": c}, int(ah[:, i].sum())) for i, c in enumerate(API_CLASSES)]
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
        if f.data is not None:
            # every reason from the start, at 0 until it happens: a rate() needs the first point
            lost = dict.fromkeys(DATA_DROP_REASONS, 0) | f.data.dropped
            out.append(
                self._points(
                    C.DATA_DROPPED,
                    [({"vigie.drop.reason": k}, v) for k, v in sorted(lost.items())],
                    start,
                )
            )
            out.append(self._points(C.DATA_DEGRADED, [({}, int(f.data.degraded))], start))
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
