"""vigie's OTLP writer against the reference: the OTel SDK's own encoder of the same points."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from vigie.export import _catalogue as C
from vigie.export._points import (
    ATTR_TAG_EXP,
    ATTR_TAG_HISTOGRAM,
    ATTR_TAG_NUMBER,
    CUMULATIVE,
    DELTA,
    AttrCache,
    Batch,
    ExpHistogramPoints,
    HistogramPoints,
    NumberPoints,
    encode_request,
    to_metrics_data,
)

attr_values = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False),
)
attr_sets = st.dictionaries(st.text(min_size=1, max_size=20), attr_values, max_size=5)


def _cache(tag: int, sets: list[dict[str, Any]]) -> AttrCache:
    cache = AttrCache(tag)
    for i, attrs in enumerate(sets):
        cache.add(i, attrs)
    return cache


def _same(batch: Batch) -> None:
    mine = ExportMetricsServiceRequest.FromString(encode_request(batch))
    reference = encode_metrics(to_metrics_data(batch))
    assert mine == reference


@settings(max_examples=60, deadline=None)
@given(
    sets=st.lists(attr_sets, min_size=1, max_size=6),
    data=st.data(),
    gauge=st.booleans(),
    floats=st.booleans(),
)
def test_number_points_encode_as_the_sdk_does(
    sets: list[dict[str, Any]], data: st.DataObject, gauge: bool, floats: bool
) -> None:
    n = data.draw(st.integers(0, 12))
    ids = np.array(data.draw(st.lists(st.integers(0, len(sets) - 1), min_size=n, max_size=n)))
    if floats:
        vals = data.draw(st.lists(st.floats(allow_nan=False), min_size=n, max_size=n))
        values: Any = np.array(vals, dtype=np.float64)
    else:
        ints = st.integers(-(2**63), 2**63 - 1)
        values = np.array(data.draw(st.lists(ints, min_size=n, max_size=n)), dtype=np.int64)
    start = np.array(data.draw(st.lists(st.integers(0, 2**63 - 1), min_size=n, max_size=n)))
    spec = C.SUBSCRIPTIONS if gauge else C.API_REQUESTS
    points = NumberPoints(
        spec,
        _cache(ATTR_TAG_NUMBER, sets),
        ids.astype(np.int64),
        values,
        start.astype(np.int64),
        gauge=gauge,
        temporality=DELTA if data.draw(st.booleans()) else CUMULATIVE,
    )
    resource = data.draw(attr_sets)
    _same(Batch(resource, "vigie", "1.0", data.draw(st.integers(0, 2**63 - 1)), [points]))


@settings(max_examples=60, deadline=None)
@given(
    sets=st.lists(attr_sets, min_size=1, max_size=4),
    rows=st.integers(0, 6),
    width=st.integers(1, 40),
    index0=st.integers(-300, 300),
    scale=st.integers(-10, 20),
    seed=st.integers(0, 2**32 - 1),
)
def test_exponential_histograms_encode_as_the_sdk_does(
    sets: list[dict[str, Any]], rows: int, width: int, index0: int, scale: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    buckets = rng.integers(0, 2**40, size=(rows, width)) * (rng.random((rows, width)) < 0.4)
    if rows:
        buckets[0] = 0  # a point with only a zero count
    zero = rng.integers(0, 1000, size=rows)
    points = ExpHistogramPoints(
        C.HTTP_SERVER_DURATION,
        _cache(ATTR_TAG_EXP, sets),
        rng.integers(0, len(sets), size=rows).astype(np.int64),
        buckets.sum(axis=1) + zero,
        rng.random(rows) * 1e6,
        zero.astype(np.int64),
        buckets.astype(np.int64),
        index0,
        scale,
        rng.integers(0, 2**62, size=rows).astype(np.int64),
    )
    _same(Batch({"service.name": "vigie"}, "vigie", "", 123, [points]))


@settings(max_examples=40, deadline=None)
@given(
    sets=st.lists(attr_sets, min_size=1, max_size=4),
    rows=st.integers(0, 6),
    n_bounds=st.integers(0, 20),
    seed=st.integers(0, 2**32 - 1),
)
def test_explicit_histograms_encode_as_the_sdk_does(
    sets: list[dict[str, Any]], rows: int, n_bounds: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    bounds = np.cumsum(rng.random(n_bounds) + 0.01)
    buckets = rng.integers(0, 2**40, size=(rows, n_bounds + 1))
    points = HistogramPoints(
        C.EXPORT_DURATION,
        _cache(ATTR_TAG_HISTOGRAM, sets),
        rng.integers(0, len(sets), size=rows).astype(np.int64),
        buckets.sum(axis=1).astype(np.int64),
        rng.random(rows),
        buckets.astype(np.int64),
        bounds,
        np.zeros(rows, dtype=np.int64),
    )
    _same(Batch({}, "vigie", "x", 1, [points]))


def test_a_batch_of_every_kind_encodes_as_the_sdk_does() -> None:
    rng = np.random.default_rng(3)
    sets: list[dict[str, Any]] = [{"k": "v"}, {"k": "w", "n": 3}, {}]
    ids = np.array([0, 1, 2], dtype=np.int64)
    start = np.full(3, 17, dtype=np.int64)
    b = rng.integers(0, 9, size=(3, 232))
    batch = Batch(
        {"service.name": "vigie", "wso2.channel": "main"},
        "vigie",
        "0.1.0",
        10**18,
        [
            ExpHistogramPoints(
                C.HTTP_SERVER_DURATION,
                _cache(ATTR_TAG_EXP, sets),
                ids,
                b.sum(1),
                rng.random(3),
                np.zeros(3, dtype=np.int64),
                b,
                -136,
                3,
                start,
            ),
            NumberPoints(C.API_REQUESTS, _cache(ATTR_TAG_NUMBER, sets), ids, ids * 7, start),
            NumberPoints(C.APIS, _cache(ATTR_TAG_NUMBER, sets), ids, ids - 1, start, gauge=True),
            NumberPoints(C.API_ERRORS, _cache(ATTR_TAG_NUMBER, sets), ids[:0], ids[:0], start[:0]),
        ],
    )
    _same(batch)
    assert batch.n_points == 9


def test_attribute_sets_are_encoded_once_and_keyed() -> None:
    cache = AttrCache(ATTR_TAG_NUMBER)
    a = cache.add(("x", 1), {"a": "x", "b": 1})
    assert cache.add(("x", 1), {"ignored": "the first encoding stays"}) == a
    for i in range(2000):  # grows its buffers
        assert cache.add(i, {"series": f"s{i}" * 5}) == i + 1
    assert len(cache) == 2001
    assert cache.get(("x", 1)) == 0
    assert cache.get("nope") is None


@pytest.mark.parametrize("value", [0.0, -0.0, math.inf, -math.inf, 1e-300, 2**53 + 1.0])
def test_odd_doubles_survive(value: float) -> None:
    cache = _cache(ATTR_TAG_NUMBER, [{"a": "b"}])
    pts = NumberPoints(
        C.API_REQUESTS,
        cache,
        np.array([0], dtype=np.int64),
        np.array([value]),
        np.array([0], dtype=np.int64),
    )
    _same(Batch({}, "vigie", "", 5, [pts]))
