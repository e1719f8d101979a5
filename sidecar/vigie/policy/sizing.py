"""Sizing limits from a subscription's per-minute request distribution.

The state keeps, per subscription, a histogram of requests per short-window slot (one minute by
default) over the slots that had traffic: bucket 0 counts slots with exactly one request, bucket
``b >= 1`` slots with a count in ``(2^((b-1)/4), 2^(b/4)]`` (OTLP exponential scale 2), and
``S_MAX_RPM`` the busiest slot. Percentiles read from it are the bucket's upper bound (never
below the truth by more than one bucket, i.e. at most 19 % high), capped by the busiest slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from vigie.state import layout as L

# "human" numbers: limits are rounded up to one of these times a power of ten
NICE_STEPS: Final = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def rate_bucket(count: int) -> int:
    """The rate-histogram bucket of a per-slot count (>= 1), as the kernels file it."""
    b = math.ceil(math.log2(count) * 4.0) if count > 1 else 0
    return min(max(b, 0), L.RATE_BUCKETS - 1)


def bucket_upper(b: int) -> float:
    """Upper bound (inclusive) of rate bucket ``b``: 1 for bucket 0, else 2^(b/4)."""
    return 1.0 if b <= 0 else 2.0 ** (b / 4.0)


def bucket_lower(b: int) -> float:
    """Lower bound (exclusive) of rate bucket ``b`` (0 for bucket 0)."""
    return 0.0 if b <= 0 else 2.0 ** ((b - 1) / 4.0)


def _mids(n: int) -> npt.NDArray[np.float64]:
    """A representative count per bucket: 1 for bucket 0, the geometric middle otherwise."""
    b = np.arange(n, dtype=np.float64)
    mids = 2.0 ** ((b - 0.5) / 4.0)
    mids[0] = 1.0
    return mids


@dataclass(frozen=True, slots=True)
class RateProfile:
    """A subscription's requests per minute over the minutes it had traffic."""

    minutes: int  # minutes with traffic in the histogram
    p50: float
    p99: float
    max: float  # the busiest minute
    slot_seconds: float = 60.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "minutes_with_traffic": self.minutes,
            "p50_per_minute": round(self.p50, 1),
            "p99_per_minute": round(self.p99, 1),
            "max_per_minute": round(self.max, 1),
        }


def percentile(hist: npt.NDArray[np.integer], q: float, cap: float) -> float:
    """The ``q`` quantile (0..1) of the counts in a rate histogram, as a bucket upper bound."""
    total = int(hist.sum())
    if total == 0:
        return 0.0
    cum = np.cumsum(hist)
    b = int(np.searchsorted(cum, q * total, side="left"))
    b = min(b, len(hist) - 1)
    return min(bucket_upper(b), cap) if cap > 0 else bucket_upper(b)


def profile(
    hist: npt.NDArray[np.integer], max_per_slot: int, slot_seconds: float = 60.0
) -> RateProfile:
    """Per-minute figures of one subscription from its rate histogram and busiest slot."""
    to_min = 60.0 / slot_seconds
    cap = float(max_per_slot)
    return RateProfile(
        minutes=int(hist.sum()),
        p50=percentile(hist, 0.50, cap) * to_min,
        p99=percentile(hist, 0.99, cap) * to_min,
        max=cap * to_min,
        slot_seconds=slot_seconds,
    )


def refused_share(
    hist: npt.NDArray[np.integer], limit_per_slot: float, max_per_slot: int = 0
) -> float:
    """Estimated share of the requests a limit of ``limit_per_slot`` would have refused.

    Every minute with traffic counts ``max(0, count - limit)`` refusals, its count taken as the
    middle of its bucket (the busiest minute's bucket is capped by the busiest minute).
    """
    total_minutes = int(hist.sum())
    if total_minutes == 0:
        return 0.0
    mids = _mids(len(hist))
    if max_per_slot > 0:
        mids = np.minimum(mids, float(max_per_slot))
    counts = hist.astype(np.float64)
    requests = float((counts * mids).sum())
    refused = float((counts * np.maximum(mids - limit_per_slot, 0.0)).sum())
    return refused / requests if requests > 0 else 0.0


def nice_ceil(x: float) -> int:
    """Round up to a human number: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten
    (whole numbers only: 1, 2, 3, 4, 5, 6, 8 below 10)."""
    if x <= 1:
        return 1
    exp = math.floor(math.log10(x))
    base = 10.0**exp
    for step in NICE_STEPS:
        v = step * base
        if abs(v - round(v)) > 1e-9:  # 1.2, 1.5, 2.5 below 10: limits are whole numbers
            continue
        if v >= x - 1e-9 * base:
            return round(v)
    return round(10 * base)  # pragma: no cover - 10 is the last step


def days_to_limit(current: float, limit: float, weekly_ratio: float) -> float | None:
    """Days until ``current`` (per minute) reaches ``limit`` growing ``weekly_ratio`` a week.

    0 when it is already there; None when it does not grow (ratio <= 1) or has no level.
    """
    if current <= 0 or limit <= 0:
        return None
    if current >= limit:
        return 0.0
    if not math.isfinite(weekly_ratio) or weekly_ratio <= 1.0:
        return None
    return 7.0 * math.log(limit / current) / math.log(weekly_ratio)


def slot_seconds(short_window_seconds: float) -> float:
    """Width of a short-window slot (the rate histogram's unit of time)."""
    return short_window_seconds / L.SHORT_SLOTS
