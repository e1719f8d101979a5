"""Jitted sliding windows of the state: rings of time slots and their running sums.

A sliding window is a ring of slots: an event of slot ``k`` goes into ``ring[k % SLOTS]`` when
``k > cur - SLOTS`` (``cur`` being the row's newest slot); moving ``cur`` forward empties the
slots it passes (and takes them out of the running sums, which sit in the row). The window at
any moment is the ``SLOTS`` slots ending with ``cur``, so a rule costs a few comparisons.
The short and retry rings keep a bitmap of their slots that may be non-empty (``S_SW_MASK``,
``S_RW_MASK``: a clear bit means the slot is all zeros), so moving ``cur`` reads only those.

Four rings per subscription row: the short window (``sub_sw``, error_prone, redundant,
throttle_hitter), the retry window (``sub_rw``, retry_storm), 14 days of hours (``sub_hour``,
growing; API rows have one too) and 7 days per channel (``sub_day``, wrong_channel).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit
from numba.cpython.unsafe import numbers as _numbers

from vigie.state.layout import (
    DAY_SLOTS,
    HOUR_SLOTS,
    MAX_CHANNELS,
    N_RW,
    N_SW,
    RETRY_SLOTS,
    S_DAY_CUR,
    S_DC_SUM,
    S_MAX_RPM,
    S_RW_CUR,
    S_RW_MASK,
    S_RW_SUM,
    S_SW_CUR,
    S_SW_MASK,
    S_SW_SUM,
    SHORT_SLOTS,
    SW_REQ,
)
from vigie.state.primitives import rate_bucket

trailing_zeros: Any = _numbers.trailing_zeros  # count of trailing zero bits (LLVM cttz)


@njit(cache=True, nogil=True, inline="always")
def slot_of(t: int, width: int, cur: int) -> int:
    """``t // width``, without the division when ``t`` falls in slot ``cur`` (the usual case)."""
    base = cur * width
    if t >= base and t - base < width:
        return cur
    return t // width


@njit(cache=True, nogil=True, inline="always")
def passed_slots(cur: int, k: int, slots: int) -> int:
    """The bits of the ring slots ``cur + 1 .. k`` (``0 < k - cur < slots <= 63``)."""
    a = np.uint64((cur + 1) % slots)
    run = (np.uint64(1) << np.uint64(k - cur)) - np.uint64(1)
    full = (np.uint64(1) << np.uint64(slots)) - np.uint64(1)
    return np.int64(((run << a) | (run >> (np.uint64(slots) - a))) & full)


@njit(cache=True, nogil=True, inline="always")
def advance_short(
    sub_i64: np.ndarray,
    sub_sw: np.ndarray,
    sub_rate: np.ndarray,
    row: int,
    k: int,
) -> None:
    cur = sub_i64[row, S_SW_CUR]
    if k <= cur:
        return
    if cur > 0:
        c = np.int64(sub_sw[row, cur % SHORT_SLOTS, SW_REQ])
        if c > 0:
            sub_rate[row, rate_bucket(c)] += 1
            if c > sub_i64[row, S_MAX_RPM]:
                sub_i64[row, S_MAX_RPM] = c
    mask = sub_i64[row, S_SW_MASK]
    whole = k - cur >= SHORT_SLOTS  # the whole window has passed
    gone = mask if whole else mask & passed_slots(cur, k, SHORT_SLOTS)
    sub_i64[row, S_SW_MASK] = mask & ~gone
    while gone != 0:
        s = np.int64(trailing_zeros(np.uint64(gone)))
        gone &= gone - 1
        for f in range(N_SW):
            if not whole:
                sub_i64[row, S_SW_SUM + f] -= sub_sw[row, s, f]
            sub_sw[row, s, f] = 0
    if whole:
        for f in range(N_SW):
            sub_i64[row, S_SW_SUM + f] = 0
    sub_i64[row, S_SW_CUR] = k


@njit(cache=True, nogil=True, inline="always")
def advance_retry(sub_i64: np.ndarray, sub_rw: np.ndarray, row: int, k: int) -> None:
    cur = sub_i64[row, S_RW_CUR]
    if k <= cur:
        return
    mask = sub_i64[row, S_RW_MASK]
    whole = k - cur >= RETRY_SLOTS
    gone = mask if whole else mask & passed_slots(cur, k, RETRY_SLOTS)
    sub_i64[row, S_RW_MASK] = mask & ~gone
    while gone != 0:
        s = np.int64(trailing_zeros(np.uint64(gone)))
        gone &= gone - 1
        for f in range(N_RW):
            if not whole:
                sub_i64[row, S_RW_SUM + f] -= sub_rw[row, s, f]
            sub_rw[row, s, f] = 0
    if whole:
        for f in range(N_RW):
            sub_i64[row, S_RW_SUM + f] = 0
    sub_i64[row, S_RW_CUR] = k


@njit(cache=True, nogil=True)
def ring_masks(sub_i64: np.ndarray, sub_sw: np.ndarray, sub_rw: np.ndarray, n_rows: int) -> None:
    """Set the slot bitmaps of rows 0..n-1 from their rings (after the rings were written
    outside the kernel: the fleet merge)."""
    for row in range(n_rows):
        m = np.int64(0)
        for s in range(SHORT_SLOTS):
            for f in range(N_SW):
                if sub_sw[row, s, f] != 0:
                    m |= np.int64(1) << s
        sub_i64[row, S_SW_MASK] = m
        m = np.int64(0)
        for s in range(RETRY_SLOTS):
            for f in range(N_RW):
                if sub_rw[row, s, f] != 0:
                    m |= np.int64(1) << s
        sub_i64[row, S_RW_MASK] = m


@njit(cache=True, nogil=True, inline="always")
def advance_hours(hour: np.ndarray, row: int, cur: int, k: int) -> None:
    if k - cur >= HOUR_SLOTS:
        hour[row] = 0
        return
    for j in range(1, k - cur + 1):
        hour[row, (cur + j) % HOUR_SLOTS] = 0


@njit(cache=True, nogil=True, inline="always")
def advance_days(sub_i64: np.ndarray, sub_day: np.ndarray, row: int, k: int) -> None:
    cur = sub_i64[row, S_DAY_CUR]
    if k <= cur:
        return
    if k - cur >= DAY_SLOTS:
        sub_day[row] = 0
        for c in range(MAX_CHANNELS):
            sub_i64[row, S_DC_SUM + c] = 0
    else:
        for j in range(1, k - cur + 1):
            s = (cur + j) % DAY_SLOTS
            for c in range(MAX_CHANNELS):
                sub_i64[row, S_DC_SUM + c] -= sub_day[row, s, c]
                sub_day[row, s, c] = 0
    sub_i64[row, S_DAY_CUR] = k


@njit(cache=True, nogil=True)
def hours_sum(hour: np.ndarray, row: int, cur: int, lo: int, hi: int) -> int:
    """Requests in hours lo..hi (inclusive) that the ring still holds (cur-335 .. cur)."""
    first = max(lo, cur - HOUR_SLOTS + 1)
    last = min(hi, cur)
    total = np.int64(0)
    for h in range(first, last + 1):
        total += hour[row, h % HOUR_SLOTS]
    return total
