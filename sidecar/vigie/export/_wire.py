"""Protobuf writers for OTLP data points: jitted, over arrays, releasing the GIL.

The OTel SDK's encoder builds one Python protobuf object per point (tens of microseconds each);
these write the same bytes straight from the arrays. Every writer has a sizing twin: sizes are
computed first (protobuf is length-prefixed), then the points are written into one buffer.
Field numbers are those of opentelemetry/proto/metrics/v1/metrics.proto; a test parses the
output with the official classes and compares it with the SDK's own encoding.

Attributes are pre-encoded once per series (``AttrCache`` in ``_points``): a point copies the
bytes ``blob[off[a]:off[a + 1]]`` of its attribute id ``a``, tags included.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# wire types: 0 varint, 1 fixed64, 2 length-delimited
TAG_START: int = (2 << 3) | 1  # start_time_unix_nano, fixed64, in every point type
TAG_TIME: int = (3 << 3) | 1  # time_unix_nano
TAG_AS_DOUBLE: int = (4 << 3) | 1  # NumberDataPoint.as_double
TAG_AS_INT: int = (6 << 3) | 1  # NumberDataPoint.as_int (sfixed64)
TAG_COUNT: int = (4 << 3) | 1  # (Exponential)HistogramDataPoint.count
TAG_SUM: int = (5 << 3) | 1  # (Exponential)HistogramDataPoint.sum
TAG_SCALE: int = (6 << 3) | 0  # ExponentialHistogramDataPoint.scale (sint32)
TAG_ZERO: int = (7 << 3) | 1  # ExponentialHistogramDataPoint.zero_count
TAG_POSITIVE: int = (8 << 3) | 2  # ExponentialHistogramDataPoint.positive
TAG_OFFSET: int = (1 << 3) | 0  # Buckets.offset (sint32)
TAG_BUCKETS: int = (2 << 3) | 2  # Buckets.bucket_counts (packed uint64)
TAG_BUCKET_COUNTS: int = (6 << 3) | 2  # HistogramDataPoint.bucket_counts (packed fixed64)
TAG_BOUNDS: int = (7 << 3) | 2  # HistogramDataPoint.explicit_bounds (packed double)
TAG_POINT: int = (1 << 3) | 2  # Sum/Gauge/Histogram/ExponentialHistogram.data_points


@njit(cache=True, nogil=True, inline="always")
def varint_len(v: int) -> int:
    u = np.uint64(v)
    n = 1
    while u >= np.uint64(0x80):
        u = u >> np.uint64(7)
        n += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def put_varint(out: np.ndarray, pos: int, v: int) -> int:
    u = np.uint64(v)
    while u >= np.uint64(0x80):
        out[pos] = np.uint8((u & np.uint64(0x7F)) | np.uint64(0x80))
        u = u >> np.uint64(7)
        pos += 1
    out[pos] = np.uint8(u)
    return pos + 1


@njit(cache=True, nogil=True, inline="always")
def put_fixed64(out: np.ndarray, pos: int, tag: int, v: int) -> int:
    out[pos] = np.uint8(tag)
    u = np.uint64(v)
    for k in range(8):
        out[pos + 1 + k] = np.uint8((u >> np.uint64(8 * k)) & np.uint64(0xFF))
    return pos + 9


@njit(cache=True, nogil=True, inline="always")
def zigzag32(v: int) -> int:
    return (np.int64(v) << 1) ^ (np.int64(v) >> 63)


@njit(cache=True, nogil=True, inline="always")
def put_attrs(out: np.ndarray, pos: int, blob: np.ndarray, off: np.ndarray, a: int) -> int:
    lo = off[a]
    hi = off[a + 1]
    for k in range(lo, hi):
        out[pos] = blob[k]
        pos += 1
    return pos


# ---------------------------------------------------------------------------------------------
# NumberDataPoint (Sum, Gauge)
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def number_sizes(off: np.ndarray, ids: np.ndarray, with_start: bool, sizes: np.ndarray) -> int:
    """Body size of each point into ``sizes``; returns the bytes of all points, tags included."""
    total = 0
    for i in range(len(ids)):
        a = ids[i]
        body = (off[a + 1] - off[a]) + 18 + (9 if with_start else 0)
        sizes[i] = body
        total += 1 + varint_len(body) + body
    return total


@njit(cache=True, nogil=True)
def write_numbers(
    out: np.ndarray,
    pos: int,
    blob: np.ndarray,
    off: np.ndarray,
    ids: np.ndarray,
    sizes: np.ndarray,
    bits: np.ndarray,
    value_tag: int,
    start: np.ndarray,
    time_ns: int,
    with_start: bool,
) -> int:
    """Write the points; ``bits`` holds each value's 64 bits (int64, or float64 viewed)."""
    for i in range(len(ids)):
        out[pos] = np.uint8(TAG_POINT)
        pos = put_varint(out, pos + 1, sizes[i])
        pos = put_attrs(out, pos, blob, off, ids[i])
        if with_start:
            pos = put_fixed64(out, pos, TAG_START, start[i])
        pos = put_fixed64(out, pos, TAG_TIME, time_ns)
        pos = put_fixed64(out, pos, value_tag, bits[i])
    return pos


# ---------------------------------------------------------------------------------------------
# ExponentialHistogramDataPoint (positive buckets only: latencies are >= 0)
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def exp_sizes(
    off: np.ndarray,
    ids: np.ndarray,
    buckets: np.ndarray,
    index0: int,
    scale: int,
    sizes: np.ndarray,
    spans: np.ndarray,
) -> int:
    """Sizes of exponential histogram points. ``buckets[i, j]`` counts bucket index
    ``index0 + j``; the non-zero span of each row goes to ``spans[i] = (lo, hi, packed)``."""
    total = 0
    width = buckets.shape[1]
    for i in range(len(ids)):
        lo = 0
        while lo < width and buckets[i, lo] == 0:
            lo += 1
        hi = width
        while hi > lo and buckets[i, hi - 1] == 0:
            hi -= 1
        body = (off[ids[i] + 1] - off[ids[i]]) + 9 * 5 + 1 + varint_len(zigzag32(scale))
        packed = 0
        if hi > lo:
            for j in range(lo, hi):
                packed += varint_len(buckets[i, j])
            offset = index0 + lo
            inner = 1 + varint_len(packed) + packed
            if offset != 0:
                inner += 1 + varint_len(zigzag32(offset))
            body += 1 + varint_len(inner) + inner
        spans[i, 0] = lo
        spans[i, 1] = hi
        spans[i, 2] = packed
        sizes[i] = body
        total += 1 + varint_len(body) + body
    return total


@njit(cache=True, nogil=True)
def write_exp(
    out: np.ndarray,
    pos: int,
    blob: np.ndarray,
    off: np.ndarray,
    ids: np.ndarray,
    sizes: np.ndarray,
    spans: np.ndarray,
    start: np.ndarray,
    time_ns: int,
    count: np.ndarray,
    sum_bits: np.ndarray,
    zero: np.ndarray,
    buckets: np.ndarray,
    index0: int,
    scale: int,
) -> int:
    for i in range(len(ids)):
        out[pos] = np.uint8(TAG_POINT)
        pos = put_varint(out, pos + 1, sizes[i])
        pos = put_attrs(out, pos, blob, off, ids[i])
        pos = put_fixed64(out, pos, TAG_START, start[i])
        pos = put_fixed64(out, pos, TAG_TIME, time_ns)
        pos = put_fixed64(out, pos, TAG_COUNT, count[i])
        pos = put_fixed64(out, pos, TAG_SUM, sum_bits[i])
        out[pos] = np.uint8(TAG_SCALE)
        pos = put_varint(out, pos + 1, zigzag32(scale))
        pos = put_fixed64(out, pos, TAG_ZERO, zero[i])
        lo = spans[i, 0]
        hi = spans[i, 1]
        packed = spans[i, 2]
        if hi > lo:
            offset = index0 + lo
            inner = 1 + varint_len(packed) + packed
            if offset != 0:
                inner += 1 + varint_len(zigzag32(offset))
            out[pos] = np.uint8(TAG_POSITIVE)
            pos = put_varint(out, pos + 1, inner)
            if offset != 0:
                out[pos] = np.uint8(TAG_OFFSET)
                pos = put_varint(out, pos + 1, zigzag32(offset))
            out[pos] = np.uint8(TAG_BUCKETS)
            pos = put_varint(out, pos + 1, packed)
            for j in range(lo, hi):
                pos = put_varint(out, pos, buckets[i, j])
    return pos


# ---------------------------------------------------------------------------------------------
# HistogramDataPoint (explicit bounds, the same for every point of a metric)
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def hist_sizes(off: np.ndarray, ids: np.ndarray, n_buckets: int, sizes: np.ndarray) -> int:
    total = 0
    counts = 8 * n_buckets
    bounds = 8 * (n_buckets - 1)
    extra = 1 + varint_len(counts) + counts
    if bounds > 0:
        extra += 1 + varint_len(bounds) + bounds
    for i in range(len(ids)):
        body = (off[ids[i] + 1] - off[ids[i]]) + 9 * 4 + extra
        sizes[i] = body
        total += 1 + varint_len(body) + body
    return total


@njit(cache=True, nogil=True)
def write_hist(
    out: np.ndarray,
    pos: int,
    blob: np.ndarray,
    off: np.ndarray,
    ids: np.ndarray,
    sizes: np.ndarray,
    start: np.ndarray,
    time_ns: int,
    count: np.ndarray,
    sum_bits: np.ndarray,
    buckets: np.ndarray,
    bound_bits: np.ndarray,
) -> int:
    nb = buckets.shape[1]
    for i in range(len(ids)):
        out[pos] = np.uint8(TAG_POINT)
        pos = put_varint(out, pos + 1, sizes[i])
        pos = put_attrs(out, pos, blob, off, ids[i])
        pos = put_fixed64(out, pos, TAG_START, start[i])
        pos = put_fixed64(out, pos, TAG_TIME, time_ns)
        pos = put_fixed64(out, pos, TAG_COUNT, count[i])
        pos = put_fixed64(out, pos, TAG_SUM, sum_bits[i])
        out[pos] = np.uint8(TAG_BUCKET_COUNTS)
        pos = put_varint(out, pos + 1, 8 * nb)
        for j in range(nb):
            u = np.uint64(buckets[i, j])
            for k in range(8):
                out[pos + k] = np.uint8((u >> np.uint64(8 * k)) & np.uint64(0xFF))
            pos += 8
        if len(bound_bits) > 0:
            out[pos] = np.uint8(TAG_BOUNDS)
            pos = put_varint(out, pos + 1, 8 * len(bound_bits))
            for j in range(len(bound_bits)):
                u = np.uint64(bound_bits[j])
                for k in range(8):
                    out[pos + k] = np.uint8((u >> np.uint64(8 * k)) & np.uint64(0xFF))
                pos += 8
    return pos


# ---------------------------------------------------------------------------------------------
# aggregation helpers (rows -> series)
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def group_rows(src: np.ndarray, groups: np.ndarray, n_groups: int, out: np.ndarray) -> None:
    """``out[g] += src[r]`` for every row r with ``groups[r] == g >= 0`` (2-D src)."""
    width = src.shape[1]
    for r in range(len(groups)):
        g = groups[r]
        if g < 0 or g >= n_groups:
            continue
        for j in range(width):
            out[g, j] += src[r, j]


@njit(cache=True, nogil=True)
def group_values(src: np.ndarray, groups: np.ndarray, n_groups: int, out: np.ndarray) -> None:
    """``out[g] += src[r]`` for every row r with ``groups[r] == g >= 0`` (1-D src)."""
    for r in range(len(groups)):
        g = groups[r]
        if g < 0 or g >= n_groups:
            continue
        out[g] += src[r]


@njit(cache=True, nogil=True)
def remap_columns(src: np.ndarray, colmap: np.ndarray, out: np.ndarray) -> None:
    """``out[i, colmap[j]] += src[i, j]``: merge histogram buckets into coarser ones."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            out[i, colmap[j]] += src[i, j]
