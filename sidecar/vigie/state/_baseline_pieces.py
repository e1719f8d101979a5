"""The small jitted pieces of the baselines (``vigie.state._baseline_kernels``): the coarse
latency buckets, the p95 of a histogram, the weighted median and MAD, and the compact codes a
subscription's hour-of-week table is stored in. Also called from plain Python by the tests.

The subscription table keeps, per hour-of-week slot and week, 4 bytes:

- the hour's requests as a ``uint16`` logarithmic code (``count_code``): ``round(2048 x
  log2(1 + n))``, decoded to the nearest integer; exact up to ~1,470 requests an hour, within
  0.02 % above, up to 4.29e9;
- its 5xx share as a ``uint8`` square-root code (``share_code``): ``round(254 x sqrt(share))``,
  255 when the hour had too few requests (``MIN_HOUR_REQ``); 0.1 % is stored as 0.099 %, 8 %
  as 8.03 %;
- its p95 latency as the ``uint8`` index of its coarse bucket (lossless: a p95 is a bucket's
  upper edge), 255 when too few requests.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numba import njit

LAT_BUCKETS: Final = 64  # bucket 0: < 1 ms; b >= 1: [2^((b-1)/4), 2^(b/4)) ms; the last: above
MIN_HOUR_REQ: Final = 20  # an hour's 5xx share and p95 count in a baseline from this many
NO_CODE: Final = 255  # a uint8 code's "too few requests that hour"
COUNT_SCALE: Final = 2048.0
COUNT_MAX_CODE: Final = 65535
SHARE_SCALE: Final = 254.0


@njit(cache=True, nogil=True)
def latency_bucket(latency_us: int) -> int:
    """The coarse latency bucket of a latency (see ``LAT_BUCKETS``)."""
    if latency_us < 1000:
        return 0
    b = math.floor(4.0 * math.log2(latency_us / 1000.0)) + 1
    return min(b, LAT_BUCKETS - 1)


@njit(cache=True, nogil=True)
def bucket_upper_ms(b: int) -> float:
    """The upper edge of bucket ``b`` in milliseconds (1 ms for bucket 0)."""
    return float(2.0 ** (b / 4.0))


@njit(cache=True, nogil=True)
def p95_bucket(hist: np.ndarray) -> int:
    """The bucket holding the 95th percentile of a coarse histogram, -1 when empty."""
    n = 0
    for b in range(len(hist)):
        n += hist[b]
    if n == 0:
        return -1
    need = 0.95 * n
    acc = 0
    for b in range(len(hist)):
        acc += hist[b]
        if acc >= need:
            return b
    return len(hist) - 1


@njit(cache=True, nogil=True)
def p95_ms(hist: np.ndarray) -> float:
    """The 95th percentile of a coarse histogram (its bucket's upper edge), NaN when empty."""
    b = p95_bucket(hist)
    return np.nan if b < 0 else bucket_upper_ms(b)


@njit(cache=True, nogil=True)
def count_code(n: float) -> int:
    """The uint16 code of an hour's requests (see the module's docstring)."""
    if n <= 0:
        return 0
    return min(math.floor(COUNT_SCALE * math.log2(1.0 + n) + 0.5), COUNT_MAX_CODE)


@njit(cache=True, nogil=True)
def count_value(code: int) -> float:
    """The requests a ``count_code`` stands for."""
    return float(math.floor(2.0 ** (code / COUNT_SCALE) - 1.0 + 0.5))


@njit(cache=True, nogil=True)
def share_code(share: float) -> int:
    """The uint8 code of a 5xx share in [0, 1] (``NO_CODE`` for NaN)."""
    if share != share:
        return NO_CODE
    return math.floor(SHARE_SCALE * math.sqrt(min(max(share, 0.0), 1.0)) + 0.5)


@njit(cache=True, nogil=True)
def share_value(code: int) -> float:
    """The share a ``share_code`` stands for (NaN for ``NO_CODE``)."""
    if code == NO_CODE:
        return np.nan
    return (code / SHARE_SCALE) ** 2


@njit(cache=True, nogil=True)
def bucket_value(code: int) -> float:
    """The p95 (ms) a stored bucket index stands for (NaN for ``NO_CODE``)."""
    if code == NO_CODE:
        return np.nan
    return bucket_upper_ms(code)


@njit(cache=True, nogil=True)
def weighted_median(values: np.ndarray, weights: np.ndarray, n: int) -> float:
    """The lower weighted median of ``values[:n]`` (n >= 1): the smallest value whose
    cumulative weight (ascending) reaches half the total. Sorts both in place (together)."""
    v, w = values, weights
    for i in range(1, n):  # insertion sort (n <= WEEKS)
        j = i
        while j > 0 and v[j - 1] > v[j]:
            v[j - 1], v[j] = v[j], v[j - 1]
            w[j - 1], w[j] = w[j], w[j - 1]
            j -= 1
    total = 0.0
    for i in range(n):
        total += w[i]
    acc = 0.0
    for i in range(n):
        acc += w[i]
        if acc >= 0.5 * total:
            return float(v[i])
    return float(v[n - 1])


@njit(cache=True, nogil=True)
def median_mad(
    values: np.ndarray, weights: np.ndarray, n: int, dev: np.ndarray
) -> tuple[float, float]:
    """Weighted median and weighted median absolute deviation of ``values[:n]`` (``dev``: a
    scratch array of n or more; the inputs are reordered)."""
    m = weighted_median(values, weights, n)
    for i in range(n):
        dev[i] = abs(values[i] - m)
    return m, weighted_median(dev, weights, n)
