"""Hashing and bucketing: the small jitted helpers that the state kernels and the rollup kernels
(``vigie.store._rollup_kernels``) share. Pure functions of their arguments, inlined where used.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from vigie.state.layout import LAT_BUCKETS, LAT_MIN_INDEX, RATE_BUCKETS

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: spreads consecutive values
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)


@njit(cache=True, nogil=True, inline="always")
def mix64(x: int) -> int:
    """SplitMix64 finaliser: a well-spread 64-bit hash of a 64-bit value."""
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    return x ^ (x >> _S31)


@njit(cache=True, nogil=True, inline="always")
def combine(h: int, v: int) -> int:
    """Fold a value into a running hash."""
    return mix64(h ^ (np.uint64(v) + GOLDEN))


@njit(cache=True, nogil=True, inline="always")
def row_salt(row: int, gen: int) -> int:
    """A per-(row, generation) 64-bit salt: keys of a reused row never meet its old ones."""
    return mix64(np.uint64(row) * GOLDEN + np.uint64(gen))


@njit(cache=True, nogil=True, inline="always")
def nonzero_key(h: int) -> int:
    """A hash as a table key: 0 is reserved for empty slots."""
    k = np.int64(h)
    return k if k != 0 else np.int64(1)


@njit(cache=True, nogil=True, inline="always")
def latency_bucket(latency_us: int) -> int:
    """Bucket of a latency: 0 for 0, else 1 + OTLP scale-3 index (seconds) - LAT_MIN_INDEX."""
    if latency_us <= 0:
        return np.int64(0)
    idx = np.int64(math.ceil(math.log2(latency_us / 1e6) * 8.0)) - 1
    b = idx - LAT_MIN_INDEX + 1
    if b < 1:
        return np.int64(1)
    if b > LAT_BUCKETS:
        return np.int64(LAT_BUCKETS)
    return b


@njit(cache=True, nogil=True, inline="always")
def rate_bucket(count: int) -> int:
    """Bucket of a per-slot request count (>= 1): OTLP scale-2 index + 1."""
    idx = np.int64(math.ceil(math.log2(count) * 4.0)) - 1
    b = idx + 1
    if b < 0:
        return np.int64(0)
    if b >= RATE_BUCKETS:
        return np.int64(RATE_BUCKETS - 1)
    return b


def pow2_at_least(n: int) -> int:
    """The smallest power of two >= ``n`` (1 for n <= 1): the size of a hash table."""
    p = 1
    while p < n:
        p <<= 1
    return p
