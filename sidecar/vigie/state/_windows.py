"""Jitted sliding windows of the state: rings of time slots and their running sums.

A sliding window is a ring of slots: an event of slot ``k`` goes into ``ring[k % SLOTS]`` when
``k > cur - SLOTS`` (``cur`` being the row's newest slot); moving ``cur`` forward empties the
slots it passes (and takes them out of the running sums, which sit in the row). The window at
any moment is the ``SLOTS`` slots ending with ``cur``, so a rule costs a few comparisons.

Four rings per subscription row: the short window (``sub_sw``, error_prone, redundant,
throttle_hitter), the retry window (``sub_rw``, retry_storm), 14 days of hours (``sub_hour``,
growing; API rows have one too) and 7 days per channel (``sub_day``, wrong_channel).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vigie.state.layout import (
    DAY_SLOTS,
    HOUR_SLOTS,
    MAX_CHANNELS,
    N_RW,
    N_SW,
    RETRY_SLOTS,
    RW_REQ,
    S_DAY_CUR,
    S_DC_SUM,
    S_MAX_RPM,
    S_RW_CUR,
    S_RW_SUM,
    S_SW_CUR,
    S_SW_SUM,
    SHORT_SLOTS,
    SW_REQ,
)
from vigie.state.primitives import rate_bucket


@njit(cache=True, nogil=True, inline="always")
def slot_of(t: int, width: int, cur: int) -> int:
    """``t // width``, without the division when ``t`` falls in slot ``cur`` (the usual case)."""
    base = cur * width
    if t >= base and t - base < width:
        return cur
    return t // width


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
    if k - cur >= SHORT_SLOTS:  # the whole window has passed
        sub_sw[row] = 0
        for f in range(N_SW):
            sub_i64[row, S_SW_SUM + f] = 0
    else:
        for j in range(1, k - cur + 1):
            s = (cur + j) % SHORT_SLOTS
            if sub_sw[row, s, SW_REQ] == 0:  # every event counts a request: slot is empty
                continue
            for f in range(N_SW):
                sub_i64[row, S_SW_SUM + f] -= sub_sw[row, s, f]
                sub_sw[row, s, f] = 0
    sub_i64[row, S_SW_CUR] = k


@njit(cache=True, nogil=True, inline="always")
def advance_retry(sub_i64: np.ndarray, sub_rw: np.ndarray, row: int, k: int) -> None:
    cur = sub_i64[row, S_RW_CUR]
    if k <= cur:
        return
    if k - cur >= RETRY_SLOTS:
        sub_rw[row] = 0
        for f in range(N_RW):
            sub_i64[row, S_RW_SUM + f] = 0
    else:
        for j in range(1, k - cur + 1):
            s = (cur + j) % RETRY_SLOTS
            if sub_rw[row, s, RW_REQ] == 0:
                continue
            for f in range(N_RW):
                sub_i64[row, S_RW_SUM + f] -= sub_rw[row, s, f]
                sub_rw[row, s, f] = 0
    sub_i64[row, S_RW_CUR] = k


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
