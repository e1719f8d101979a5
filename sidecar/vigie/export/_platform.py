"""The platform metrics: subscriptions and APIs per class, directives and their hits, what the
sidecar and the gateways ingested, dropped and refused, the state's rows, evictions, memory and
strings (the figures of ``vigie status`` that say whether vigie's figures are whole), and the
exporter's own figures.
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
# vigie.rows.evicted / vigie.state.rows: vigie.table -> the state counter (``State.counters``,
# ``Security.counters``) of its evictions
EVICTED_COUNTERS: Final = (
    ("subscription", "evicted_subscriptions"),
    ("api", "api_rows_evicted"),
    ("route", "route_rows_evicted"),
    ("security", "security_evicted_rows"),
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

    def _gateway_points(self, f: Frame) -> list[Points]:
        """What was refused on each connected gateway's stream, and its clock's skew (a
        gateway with several streams: their refusals added, the latest stream's clock)."""
        refused: dict[tuple[str, str], int] = {}
        skew: dict[str, float] = {}
        for gw in f.gateways:
            for cause, v in gw.refused.items():
                refused[(gw.gateway_id, cause)] = refused.get((gw.gateway_id, cause), 0) + v
            if gw.clock_skew_us is not None:
                skew[gw.gateway_id] = gw.clock_skew_us / 1e6
        return [
            self._points(
                C.GATEWAY_REFUSED,
                [
                    ({"wso2.gateway.id": g, "vigie.refusal.cause": c}, v)
                    for (g, c), v in sorted(refused.items())
                ],
                f.start_ns,
            ),
            self._points(
                C.GATEWAY_CLOCK_SKEW,
                [({"wso2.gateway.id": g}, v) for g, v in sorted(skew.items())],
                f.start_ns,
            ),
        ]

    def _refused_points(self, f: Frame) -> list[Points]:
        """What the fleet's peers and the admin clients had refused, by cause (the fleet's
        both from the start, at 0)."""
        fleet = dict.fromkeys(("decision", "directive"), 0)
        admin: dict[str, int] = {"unauthenticated": int(f.counters.get("admin_unauthenticated", 0))}
        for name, v in f.counters.items():
            kind, _, cause = name.partition(":")
            if kind == "fleet_refused":
                fleet[cause] = int(v)
            elif kind == "admin_refused":
                admin[cause] = int(v)
        return [
            self._points(
                C.FLEET_REFUSED,
                [({"vigie.refusal.cause": k}, v) for k, v in sorted(fleet.items())],
                f.start_ns,
            ),
            self._points(
                C.ADMIN_REFUSED,
                [({"vigie.refusal.cause": k}, v) for k, v in sorted(admin.items())],
                f.start_ns,
            ),
        ]

    def _state_points(self, f: Frame, live_subs: int) -> list[Points]:
        """The state's rows in use and evicted by table, its late events, memory and strings
        (every series from the start, at 0 until it happens: a rate() needs the first point)."""
        sc = f.state_counters
        in_use = {
            "subscription": live_subs,
            "api": len(f.api_i64),
            "route": len(f.route_i64),
            "security": int(sc.get("security_tracked_rows", 0)),
        }
        start = f.start_ns
        return [
            self._points(
                C.ROWS_EVICTED,
                [({"vigie.table": t}, int(sc.get(k, 0))) for t, k in EVICTED_COUNTERS],
                start,
            ),
            self._points(C.STATE_ROWS, [({"vigie.table": t}, v) for t, v in in_use.items()], start),
            self._points(
                C.INGEST_LATE,
                [
                    ({"vigie.late.for": "windows"}, int(sc.get("events_late_for_windows", 0))),
                    ({"vigie.late.for": "baselines"}, int(sc.get("events_late_for_baselines", 0))),
                ],
                start,
            ),
            self._points(
                C.STATE_MEMORY,
                [
                    ({"vigie.memory": "used"}, f.state_bytes),
                    ({"vigie.memory": "cap"}, f.state_bytes_cap),
                ],
                start,
            ),
            self._points(C.STRINGS_HELD, [({}, int(sc.get("strings_held", 0)))], start),
            self._points(C.STRINGS_BYTES, [({}, int(sc.get("string_bytes_held", 0)))], start),
        ]

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
        for reason, counter in (
            ("future", "event_refused:future"),
            ("missed", "stream_events_missed"),
        ):
            dropped.append(
                (
                    {"vigie.drop.source": "sidecar", "vigie.drop.reason": reason},
                    int(f.counters.get(counter, 0)),
                )
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
            *self._gateway_points(f),
            *self._refused_points(f),
            *self._state_points(f, int(live.sum())),
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
