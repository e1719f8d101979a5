"""Data points as arrays, and the two ways out of them: OTLP bytes written by vigie's jitted
writers (``encode_request``), or the OTel SDK's ``MetricsData`` (``to_metrics_data``), which any
SDK exporter takes. A test checks both say the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from vigie.export import _wire as W
from vigie.export._catalogue import MetricSpec

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
AttrValue = str | int | float | bool

# tag of the attributes field in each point message
ATTR_TAG_NUMBER: Final = (7 << 3) | 2
ATTR_TAG_HISTOGRAM: Final = (9 << 3) | 2
ATTR_TAG_EXP: Final = (1 << 3) | 2

# a metric's series that are no longer exported are dropped from its cache when it holds more
# than PRUNE_AT times the series exported plus PRUNE_FLOOR (``AttrCache.crowded``)
PRUNE_AT = 4
PRUNE_FLOOR = 1024

CUMULATIVE: Final = AggregationTemporality.CUMULATIVE
DELTA: Final = AggregationTemporality.DELTA


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def _any_value(v: AttrValue) -> common_pb2.AnyValue:
    if isinstance(v, bool):
        return common_pb2.AnyValue(bool_value=v)
    if isinstance(v, int):
        return common_pb2.AnyValue(int_value=v)
    if isinstance(v, float):
        return common_pb2.AnyValue(double_value=v)
    return common_pb2.AnyValue(string_value=v)


def encode_attributes(tag: int, attrs: Mapping[str, AttrValue]) -> bytes:
    """The attribute fields of one point, tags included."""
    return b"".join(
        _field(tag, common_pb2.KeyValue(key=k, value=_any_value(v)).SerializeToString())
        for k, v in attrs.items()
    )


class AttrCache:
    """Attribute sets of one metric's series, each encoded once; ids are stable until the cache
    is compacted (``compact``: series that went away dropped), which ``epoch`` counts and
    ``renumbered`` describes, so that what is keyed by ids (the previous values of delta
    temporality) follows."""

    def __init__(self, tag: int) -> None:
        self.tag = tag
        self.blob = np.zeros(4096, dtype=np.uint8)
        self.off = np.zeros(256, dtype=np.int64)
        self.attrs: list[dict[str, AttrValue]] = []
        self._ids: dict[Any, int] = {}
        self.epoch = 0  # compactions so far
        self.renumbered = np.zeros(0, dtype=np.int64)  # by the latest: old id -> new id, or -1

    def __len__(self) -> int:
        return len(self.attrs)

    def get(self, key: Any) -> int | None:
        return self._ids.get(key)

    def add(self, key: Any, attrs: dict[str, AttrValue]) -> int:
        """The id of ``key``'s series, encoding ``attrs`` the first time."""
        known = self._ids.get(key)
        if known is not None:
            return known
        data = np.frombuffer(encode_attributes(self.tag, attrs), dtype=np.uint8)
        n = len(self.attrs)
        end = int(self.off[n])
        if end + len(data) > len(self.blob):
            grown = np.zeros(max(2 * len(self.blob), end + len(data)), dtype=np.uint8)
            grown[:end] = self.blob[:end]
            self.blob = grown
        if n + 2 > len(self.off):
            off = np.zeros(2 * len(self.off), dtype=np.int64)
            off[: n + 1] = self.off[: n + 1]
            self.off = off
        self.blob[end : end + len(data)] = data
        self.off[n + 1] = end + len(data)
        self.attrs.append(attrs)
        self._ids[key] = n
        return n

    def crowded(self, used: int) -> bool:
        """Whether the cache holds many more series than the ``used`` ones (``PRUNE_AT``)."""
        return len(self.attrs) > PRUNE_AT * used + PRUNE_FLOOR

    def compact(self, keep: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Keep only the series ``keep`` (ascending, unique), renumbered ``0..len(keep)-1`` in
        that order; returns their new ids."""
        n = len(self.attrs)
        new_id = np.full(n, -1, dtype=np.int64)
        new_id[keep] = np.arange(len(keep), dtype=np.int64)
        starts, ends = self.off[keep], self.off[keep + 1]
        sizes = ends - starts
        blob = np.zeros(max(4096, int(sizes.sum())), dtype=np.uint8)
        off = np.zeros(max(256, len(keep) + 2), dtype=np.int64)
        off[1 : len(keep) + 1] = np.cumsum(sizes)
        for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            blob[int(off[i]) : int(off[i + 1])] = self.blob[a:b]
        self.blob, self.off = blob, off
        self.attrs = [self.attrs[i] for i in keep.tolist()]
        self._ids = {k: int(new_id[v]) for k, v in self._ids.items() if new_id[v] >= 0}
        self.renumbered = new_id
        self.epoch += 1
        return np.arange(len(keep), dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# points of one metric
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class NumberPoints:
    """Points of a sum or a gauge: value i belongs to attribute set ``ids[i]`` of ``cache``."""

    spec: MetricSpec
    cache: AttrCache
    ids: I64
    values: npt.NDArray[Any]  # int64 or float64
    start_ns: I64
    monotonic: bool = True
    gauge: bool = False
    temporality: AggregationTemporality = CUMULATIVE

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class ExpHistogramPoints:
    """Exponential histogram points: ``buckets[i, j]`` counts OTLP bucket ``index0 + j``."""

    spec: MetricSpec
    cache: AttrCache
    ids: I64
    count: I64
    sum: F64
    zero: I64
    buckets: I64
    index0: int
    scale: int
    start_ns: I64
    temporality: AggregationTemporality = CUMULATIVE

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class HistogramPoints:
    """Explicit-bucket histogram points: ``buckets[i]`` has ``len(bounds) + 1`` counts."""

    spec: MetricSpec
    cache: AttrCache
    ids: I64
    count: I64
    sum: F64
    buckets: I64
    bounds: F64
    start_ns: I64
    temporality: AggregationTemporality = CUMULATIVE

    def __len__(self) -> int:
        return len(self.ids)


Points = NumberPoints | ExpHistogramPoints | HistogramPoints


@dataclass(slots=True)
class Batch:
    """Everything one export sends: a resource, a scope and the points of each metric."""

    resource: Mapping[str, AttrValue]
    scope_name: str
    scope_version: str
    time_ns: int
    metrics: list[Points] = field(default_factory=list)

    @property
    def n_points(self) -> int:
        return sum(len(m) for m in self.metrics)


# ---------------------------------------------------------------------------------------------
# vigie's encoder
# ---------------------------------------------------------------------------------------------

_EMPTY_I64 = np.zeros(0, dtype=np.int64)


def _metric_header(spec: MetricSpec, data_tag: int, data_len: int) -> bytes:
    head = _field(0x0A, spec.name.encode())
    if spec.description:
        head += _field(0x12, spec.description.encode())
    if spec.unit:
        head += _field(0x1A, spec.unit.encode())
    return head + bytes([data_tag]) + _varint(data_len)


def _data_tail(p: Points) -> bytes:
    if isinstance(p, NumberPoints) and p.gauge:
        return b""
    tail = bytes([(2 << 3) | 0]) + _varint(int(p.temporality))
    if isinstance(p, NumberPoints) and p.monotonic:
        tail += bytes([(3 << 3) | 0, 1])
    return tail


def _data_tag(p: Points) -> int:
    if isinstance(p, NumberPoints):
        return (5 << 3) | 2 if p.gauge else (7 << 3) | 2
    if isinstance(p, ExpHistogramPoints):
        return (10 << 3) | 2
    return (9 << 3) | 2


@dataclass(slots=True)
class _Sized:
    points: Points
    size: int
    sizes: I64
    spans: I64


def _size(p: Points) -> _Sized:
    n = len(p)
    sizes = np.zeros(n, dtype=np.int64)
    spans = _EMPTY_I64.reshape(0, 3)
    c = p.cache
    if isinstance(p, NumberPoints):
        total = W.number_sizes(c.off, p.ids, not p.gauge, sizes)
    elif isinstance(p, ExpHistogramPoints):
        spans = np.zeros((n, 3), dtype=np.int64)
        total = W.exp_sizes(c.off, p.ids, p.buckets, p.index0, p.scale, sizes, spans)
    else:
        total = W.hist_sizes(c.off, p.ids, p.buckets.shape[1], sizes)
    return _Sized(p, int(total), sizes, spans)


def _write(out: npt.NDArray[np.uint8], pos: int, s: _Sized, time_ns: int) -> int:
    p = s.points
    c = p.cache
    if isinstance(p, NumberPoints):
        bits: I64 = p.values.view(np.int64)  # the 64 bits of each value, int64 or float64
        tag = W.TAG_AS_DOUBLE if p.values.dtype == np.float64 else W.TAG_AS_INT
        return int(
            W.write_numbers(
                out, pos, c.blob, c.off, p.ids, s.sizes, bits, tag, p.start_ns, time_ns, not p.gauge
            )
        )
    if isinstance(p, ExpHistogramPoints):
        return int(
            W.write_exp(
                out,
                pos,
                c.blob,
                c.off,
                p.ids,
                s.sizes,
                s.spans,
                p.start_ns,
                time_ns,
                p.count,
                p.sum.view(np.int64),
                p.zero,
                p.buckets,
                p.index0,
                p.scale,
            )
        )
    return int(
        W.write_hist(
            out,
            pos,
            c.blob,
            c.off,
            p.ids,
            s.sizes,
            p.start_ns,
            time_ns,
            p.count,
            p.sum.view(np.int64),
            p.buckets,
            p.bounds.view(np.int64),
        )
    )


def encode_request(batch: Batch) -> bytes:
    """``batch`` as a serialized ``ExportMetricsServiceRequest``."""
    sized = [_size(p) for p in batch.metrics if len(p)]
    heads: list[tuple[bytes, bytes]] = []
    metrics_len = 0
    for s in sized:
        tail = _data_tail(s.points)
        head = _metric_header(s.points.spec, _data_tag(s.points), s.size + len(tail))
        body = len(head) + s.size + len(tail)
        head = bytes([0x12]) + _varint(body) + head  # ScopeMetrics.metrics
        heads.append((head, tail))
        metrics_len += len(head) + s.size + len(tail)
    scope = common_pb2.InstrumentationScope(
        name=batch.scope_name, version=batch.scope_version
    ).SerializeToString()
    scope_metrics_len = len(_field(0x0A, scope)) + metrics_len
    kvs = [common_pb2.KeyValue(key=k, value=_any_value(v)) for k, v in batch.resource.items()]
    resource = resource_pb2.Resource(attributes=kvs).SerializeToString()
    rm_head = (
        _field(0x0A, resource) + bytes([0x12]) + _varint(scope_metrics_len) + _field(0x0A, scope)
    )
    rm_len = len(rm_head) + metrics_len
    top = bytes([0x0A]) + _varint(rm_len) + rm_head
    total = len(top) + metrics_len
    out = np.empty(total, dtype=np.uint8)
    out[: len(top)] = np.frombuffer(top, dtype=np.uint8)
    pos = len(top)
    for s, (head, tail) in zip(sized, heads, strict=True):
        out[pos : pos + len(head)] = np.frombuffer(head, dtype=np.uint8)
        pos = _write(out, pos + len(head), s, batch.time_ns)
        out[pos : pos + len(tail)] = np.frombuffer(tail, dtype=np.uint8)
        pos += len(tail)
    if pos != total:  # pragma: no cover - a sizing bug
        raise AssertionError(f"OTLP encoder wrote {pos} bytes, sized {total}")
    return out.tobytes()


# ---------------------------------------------------------------------------------------------
# the SDK's way: MetricsData (one Python object per point)
# ---------------------------------------------------------------------------------------------

_NO_MINMAX = cast(float, None)  # vigie keeps no exact min/max: the fields stay unset


def _sdk_data(p: Points, time_ns: int) -> Sum | Gauge | ExponentialHistogram | Histogram:
    attrs = p.cache.attrs
    ids = p.ids.tolist()
    starts = p.start_ns.tolist()
    if isinstance(p, NumberPoints):
        values = p.values.tolist()
        pts = [
            NumberDataPoint(attrs[a], s, time_ns, v)
            for a, s, v in zip(ids, starts, values, strict=True)
        ]
        if p.gauge:
            return Gauge(pts)
        return Sum(pts, p.temporality, p.monotonic)
    if isinstance(p, ExpHistogramPoints):
        eh: list[ExponentialHistogramDataPoint] = []
        for i, a in enumerate(ids):
            row = p.buckets[i]
            nz = np.flatnonzero(row)
            if len(nz):
                lo, hi = int(nz[0]), int(nz[-1]) + 1
                pos = Buckets(p.index0 + lo, row[lo:hi].tolist())
            else:
                pos = Buckets(0, [])
            eh.append(
                ExponentialHistogramDataPoint(
                    attributes=attrs[a],
                    start_time_unix_nano=starts[i],
                    time_unix_nano=time_ns,
                    count=int(p.count[i]),
                    sum=float(p.sum[i]),
                    scale=p.scale,
                    zero_count=int(p.zero[i]),
                    positive=pos,
                    negative=Buckets(0, []),
                    flags=0,
                    min=_NO_MINMAX,
                    max=_NO_MINMAX,
                )
            )
        return ExponentialHistogram(eh, p.temporality)
    bounds = p.bounds.tolist()
    hp = [
        HistogramDataPoint(
            attributes=attrs[a],
            start_time_unix_nano=starts[i],
            time_unix_nano=time_ns,
            count=int(p.count[i]),
            sum=float(p.sum[i]),
            bucket_counts=p.buckets[i].tolist(),
            explicit_bounds=bounds,
            min=_NO_MINMAX,
            max=_NO_MINMAX,
        )
        for i, a in enumerate(ids)
    ]
    return Histogram(hp, p.temporality)


def to_metrics_data(batch: Batch) -> MetricsData:
    """``batch`` as the SDK's ``MetricsData`` (for any SDK exporter)."""
    metrics = [
        Metric(p.spec.name, p.spec.description, p.spec.unit, _sdk_data(p, batch.time_ns))
        for p in batch.metrics
        if len(p)
    ]
    scope = ScopeMetrics(InstrumentationScope(batch.scope_name, batch.scope_version), metrics, "")
    resource = Resource(dict(batch.resource))
    return MetricsData([ResourceMetrics(resource, [scope], "")])


def attrs_of(p: Points) -> Sequence[dict[str, AttrValue]]:
    """The attribute set of each point, in order (tests, debugging)."""
    return [p.cache.attrs[a] for a in p.ids.tolist()]
