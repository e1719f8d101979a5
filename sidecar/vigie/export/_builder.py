"""From a collected frame to the points of every metric in the catalogue.

``Builder`` keeps what outlives one export: the attribute sets of every series (encoded once),
the series each route row feeds, the top-K subscriptions and the accumulators behind their
series, and the previous values needed for delta temporality. Per export the work is array
work over rows and series (numpy and jitted loops); Python runs per *new* series only.

The metrics come in three families, each with its own module: ``_routes`` (route rows grouped
four ways: duration, requests, throttled, errors), ``_subscriptions`` (the top-K subscriptions
and ``other``) and ``_platform`` (classes, directives, ingestion, the exporter's own figures).
``_series`` holds what they share: the attribute vocabulary, the WSO2 code families and the
build options.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from vigie import __version__
from vigie.export._collect import Frame
from vigie.export._platform import PlatformSeries, SelfFigures
from vigie.export._points import (
    DELTA,
    AttrCache,
    AttrValue,
    Batch,
    ExpHistogramPoints,
    NumberPoints,
    Points,
)
from vigie.export._routes import RouteSeries
from vigie.export._series import BuildOptions
from vigie.export._subscriptions import SubscriptionSeries


class DeltaState:
    """Previous cumulative values per (metric, series id), for delta temporality."""

    def __init__(self) -> None:
        self.prev: dict[str, npt.NDArray[Any]] = {}
        self.seen: dict[str, npt.NDArray[np.bool_]] = {}
        self.epochs: dict[str, int] = {}  # ``AttrCache.epoch`` of the ids in prev / seen
        self.last_ns = 0

    def _follow(self, name: str, cache: AttrCache) -> None:
        """The previous values renumbered as the series were (``AttrCache.compact``): those of
        the series dropped go; after more than one compaction (never between two builds),
        every series starts again."""
        epoch = self.epochs.get(name, 0)
        if cache.epoch == epoch:
            return
        self.epochs[name] = cache.epoch
        prev, seen = self.prev.pop(name, None), self.seen.pop(name, None)
        if prev is None or seen is None or cache.epoch != epoch + 1:
            return
        new_id = cache.renumbered[: len(prev)]
        kept = np.flatnonzero(new_id >= 0)
        grown = np.zeros_like(prev)
        was = np.zeros_like(seen)
        grown[new_id[kept]] = prev[kept]
        was[new_id[kept]] = seen[kept]
        self.prev[name], self.seen[name] = grown, was

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
        self._follow(name, p.cache)
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
        self.routes = RouteSeries(o)
        self.subscriptions = SubscriptionSeries(o.top_k)
        self.platform = PlatformSeries()
        self._delta = DeltaState() if o.delta else None

    def build(self, f: Frame, self_figures: SelfFigures | None = None) -> Batch:
        batch = Batch(self.resource(f), "vigie", __version__, f.time_ns)
        batch.metrics += self.routes.points(f)
        batch.metrics += self.subscriptions.points(f)
        batch.metrics += self.platform.points(f, self_figures)
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
