"""The jitted half of ``vigie.state._baselines``: the arrays' columns, the per-event update,
the minute boundary (evaluate, close the hour, clear the ring) and the small pieces they use.
``_baselines`` says what they compute; ``Baselines.apply`` is their only caller."""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numba import njit

from vigie.state import codes
from vigie.state import layout as L
from vigie.state._baseline_pieces import (
    LAT_BUCKETS,
    MIN_HOUR_REQ,
    NO_CODE,
    bucket_value,
    count_code,
    count_value,
    latency_bucket,
    median_mad,
    p95_bucket,
    p95_ms,
    share_code,
    share_value,
    weighted_median,
)
from vigie.state._tables import table_find

__all__ = ["LAT_BUCKETS", "MIN_HOUR_REQ", "latency_bucket", "p95_ms", "weighted_median"]

WEEKS: Final = 4  # weeks kept per hour-of-week slot
SLOTS: Final = 168
RING: Final = 15  # minutes of the minute ring
MINUTE_US: Final = 60_000_000
HOUR_US: Final = L.HOUR_US
MONDAY_SHIFT: Final = 72  # hours from the epoch (a Thursday) to slot 0 (a Monday)
OUT_BUFFER: Final = 4096

SUB_CLASS_NAMES: Final = ("traffic_anomaly",)
API_CLASS_NAMES: Final = ("degraded", "backend_down", "traffic_anomaly")
C_DEGRADED: Final = 0
C_BACKEND_DOWN: Final = 1
C_ANOMALY_API: Final = 2
N_EV: Final = 10  # evidence figures per class

# subscription rows: bs_i64[row, B_*]
B_GEN: Final = 0  # the state row's generation these figures belong to (0: none yet)
B_SINCE: Final = 1  # first hour (absolute) whose figures count
B_HOUR_REQ: Final = 2  # requests in the current hour
B_HOUR_5XX: Final = 3  # 5xx responses in the current hour
B_FIELDS: Final = 4
# subscription minute ring: bs_min[row, minute % RING, M_REQ | M_5XX]
# subscription week codes: bs_wq[row, slot, week % WEEKS, SQ_*] (bs_week: the count codes)
SQ_SHARE: Final = 0
SQ_P95: Final = 1
N_SQ: Final = 2
# API rows: ba_i64[row, X_*]
X_INIT: Final = 0
X_SINCE: Final = 1
X_HOUR_REQ: Final = 2
X_HOUR_5XX: Final = 3
X_CONSEC: Final = 4  # connection failures in a row, now
X_CONSEC_PEAK: Final = 5  # highest run since the last evaluation
X_FIELDS: Final = 6
# API minute ring: ba_min[row, minute % RING, M_*]
M_REQ: Final = 0
M_5XX: Final = 1
M_CONN: Final = 2
N_M: Final = 3
# API latency sums: ba_lsum[row, minute % RING, U_*], of the events carrying a backend time
U_LAT_US: Final = 0
U_BLAT_US: Final = 1
N_U: Final = 2
# API week table: ba_week[row, slot, week % WEEKS, W_*]
W_REQ: Final = 0
W_SHARE: Final = 1  # NaN: too few requests that hour
W_P95_MS: Final = 2
W_BP95_MS: Final = 3  # backend p95 (NaN: too few events carrying a backend time that hour)
N_W: Final = 4
# globals: bg[Q_*]
Q_MINUTE: Final = 0  # current minute (absolute), -1 before the first event
Q_MINUTE_EVENTS: Final = 1  # platform events in the current minute
Q_HOUR_EVENTS: Final = 2  # platform events in the current hour
Q_LATE: Final = 3  # events older than the minute ring: in no window nor baseline (counted)
Q_OUT: Final = 4  # closed episodes in the out buffer
Q_EVALUATIONS: Final = 5  # minute boundaries evaluated
Q_QUIET: Final = 6  # minutes begun since the last one with events
Q_FIELDS: Final = 8

# parameters: bp[P_*]
P_MIN_WEEKS: Final = 0
P_HALFLIFE: Final = 1
P_HOLD_US: Final = 2
P_DEG_MIN: Final = 3
P_DEG_REQ: Final = 4
P_DEG_LAT: Final = 5
P_DEG_SHARE: Final = 6
P_DEG_RATIO: Final = 7
P_BD_CONSEC: Final = 8
P_BD_MIN: Final = 9
P_BD_REQ: Final = 10
P_BD_SHARE: Final = 11
P_AN_MIN: Final = 12
P_AN_K: Final = 13
P_AN_REQ: Final = 14
P_AN_SPREAD: Final = 15
P_FIELDS: Final = 16


# ---------------------------------------------------------------------------------------------
# small pieces (also called from plain Python by the tests and the naive twin's checks)
# ---------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def slot_of_hour(hour: int) -> int:
    return (hour + MONDAY_SHIFT) % SLOTS


@njit(cache=True, nogil=True)
def week_of_hour(hour: int) -> int:
    return (hour + MONDAY_SHIFT) // SLOTS


@njit(cache=True, nogil=True)
def _weeks(
    slot_week: np.ndarray, slot: int, week: int, p: np.ndarray, hours: np.ndarray,
    weights: np.ndarray,
) -> None:  # fmt: skip
    """For each week position of ``slot``: the absolute hour it holds (-1: none usable — not
    observed, or not an earlier week among the last ``WEEKS``) and its weight."""
    for k in range(WEEKS):
        wk = slot_week[slot, k]
        if wk < 0 or wk >= week or wk < week - WEEKS:
            hours[k] = -1
            weights[k] = 0.0
        else:
            hours[k] = wk * SLOTS + slot - MONDAY_SHIFT
            weights[k] = 0.5 ** ((week - wk - 1) / p[P_HALFLIFE])


@njit(cache=True, nogil=True)
def _gather(
    table: np.ndarray, slot: int, since: int, hours: np.ndarray, weights: np.ndarray,
    vals: np.ndarray, wts: np.ndarray,
) -> int:  # fmt: skip
    """The usable weeks' values of ``table[slot, :]`` (from hour ``since``, NaN ones left
    out) into ``vals``, their weights into ``wts``; returns how many."""
    n = 0
    for k in range(WEEKS):
        if hours[k] < since:
            continue
        x = table[slot, k]
        if x != x:
            continue
        vals[n] = x
        wts[n] = weights[k]
        n += 1
    return n


@njit(cache=True, nogil=True)
def _gather_codes(
    table: np.ndarray, kind: int, slot: int, since: int, hours: np.ndarray,
    weights: np.ndarray, vals: np.ndarray, wts: np.ndarray,
) -> int:  # fmt: skip
    """``_gather`` over a subscription's coded table (``table[slot, week]``): ``kind`` 0 the
    count codes, 1 the share codes, 2 the p95 buckets (``_baseline_pieces``)."""
    n = 0
    for k in range(WEEKS):
        if hours[k] < since:
            continue
        q = int(table[slot, k])
        if kind == 0:
            x = count_value(q)
        elif kind == 1:
            x = share_value(q)
        else:
            x = bucket_value(q)
        if x != x:
            continue
        vals[n] = x
        wts[n] = weights[k]
        n += 1
    return n


@njit(cache=True, nogil=True)
def anomaly(count: float, m: float, mad: float, p: np.ndarray, scale: float) -> tuple[int, float]:
    """-1 (drop), 0 or 1 (surge) for ``count`` requests in the window against a slot's hourly
    baseline median ``m`` and MAD ``mad`` (scaled to the window by ``scale``); and the spread
    used."""
    m = m * scale
    spread = max(mad * scale, p[P_AN_SPREAD] * m, math.sqrt(m))
    k = p[P_AN_K]
    if count > m + k * spread and count >= p[P_AN_REQ]:
        return 1, spread
    if count < m - k * spread and m >= p[P_AN_REQ]:
        return -1, spread
    return 0, spread


@njit(cache=True, nogil=True)
def _step(
    first: np.ndarray, last: np.ndarray, evid: np.ndarray, row: int, c: int, holds: bool,
    now: int, figures: np.ndarray, p: np.ndarray, out: np.ndarray, bg: np.ndarray, kind: int,
) -> None:  # fmt: skip
    """One evaluation of class ``c`` of a row: raise or extend its episode, or close it once
    quiet for the hold time (into ``out``)."""
    if holds:
        if first[row, c] == 0:
            first[row, c] = now
        last[row, c] = now
        evid[row, c, :] = figures
    elif first[row, c] > 0 and now - last[row, c] >= p[P_HOLD_US]:
        o = bg[Q_OUT]
        out[o, 0] = kind
        out[o, 1] = row
        out[o, 2] = c
        out[o, 3] = first[row, c]
        out[o, 4] = last[row, c]
        bg[Q_OUT] = o + 1
        first[row, c] = 0
        last[row, c] = 0


# ---------------------------------------------------------------------------------------------
# the minute boundary: evaluate, close the hour, clear the ring's next slot
# ---------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _sub_extra(
    row: int, minute: int, an_n: int, count: float, slot: int, since: int, hours: np.ndarray,
    weights: np.ndarray, bs_i64: np.ndarray, bs_min: np.ndarray, bs_hlat: np.ndarray,
    bs_wq: np.ndarray, vals: np.ndarray, wts: np.ndarray, fig: np.ndarray,
) -> None:  # fmt: skip
    """The error share and latency figures of a subscription's traffic_anomaly: the window's
    5xx share and the slot's baseline share, the hour's p95 so far and the slot's baseline p95
    (NaN where too few requests or no usable week)."""
    err = 0.0
    for j in range(1, an_n + 1):
        err += bs_min[row, (minute - j) % RING, M_5XX]
    fig[5] = err / count if count > 0 else np.nan
    n = _gather_codes(bs_wq[row, :, :, SQ_SHARE], 1, slot, since, hours, weights, vals, wts)
    fig[6] = weighted_median(vals, wts, n) if n > 0 else np.nan
    fig[7] = p95_ms(bs_hlat[row]) if bs_i64[row, B_HOUR_REQ] >= MIN_HOUR_REQ else np.nan
    n = _gather_codes(bs_wq[row, :, :, SQ_P95], 2, slot, since, hours, weights, vals, wts)
    fig[8] = weighted_median(vals, wts, n) if n > 0 else np.nan


@njit(cache=True, nogil=True)
def _evaluate(
    minute: int, n_sub: int, n_api: int, sub_i64: np.ndarray, api_i64: np.ndarray,
    bs_i64: np.ndarray, bs_min: np.ndarray, bs_hlat: np.ndarray, bs_week: np.ndarray,
    bs_wq: np.ndarray, bs_first: np.ndarray, bs_last: np.ndarray, bs_evid: np.ndarray,
    ba_i64: np.ndarray, ba_min: np.ndarray, ba_lsum: np.ndarray, ba_lat: np.ndarray,
    ba_blat: np.ndarray, ba_week: np.ndarray, ba_first: np.ndarray, ba_last: np.ndarray,
    ba_evid: np.ndarray, slot_week: np.ndarray, bg: np.ndarray, p: np.ndarray, out: np.ndarray,
) -> None:  # fmt: skip
    """The rules at the start of ``minute`` over the minutes before it."""
    now = minute * MINUTE_US
    hour = (minute - 1) // 60
    slot = slot_of_hour(hour)
    week = week_of_hour(hour)
    min_weeks = int(p[P_MIN_WEEKS])
    an_n = int(p[P_AN_MIN])
    scale = an_n / 60.0
    vals = np.zeros(WEEKS, dtype=np.float64)
    wts = np.zeros(WEEKS, dtype=np.float64)
    dev = np.zeros(WEEKS, dtype=np.float64)
    hours = np.zeros(WEEKS, dtype=np.int64)
    weights = np.zeros(WEEKS, dtype=np.float64)
    _weeks(slot_week, slot, week, p, hours, weights)
    fig = np.zeros(N_EV, dtype=np.float64)
    for row in range(n_sub):
        if sub_i64[row, L.S_KEY] == 0 or bs_i64[row, B_GEN] != sub_i64[row, L.S_GEN]:
            continue
        holds = False
        since = bs_i64[row, B_SINCE]
        n = _gather_codes(bs_week[row], 0, slot, since, hours, weights, vals, wts)
        if n >= min_weeks and since * HOUR_US <= now - an_n * MINUTE_US:
            count = 0.0
            for j in range(1, an_n + 1):
                count += bs_min[row, (minute - j) % RING, M_REQ]
            m, mad = median_mad(vals, wts, n, dev)
            d, spread = anomaly(count, m, mad, p, scale)
            holds = d != 0
            fig[:] = 0.0
            fig[0] = count
            fig[1] = m * scale
            fig[2] = spread
            fig[3] = d
            fig[4] = n
            if holds:  # the evidence's other figures, only when it is kept
                _sub_extra(row, minute, an_n, count, slot, since, hours, weights, bs_i64,
                           bs_min, bs_hlat, bs_wq, vals, wts, fig)  # fmt: skip
        _step(bs_first, bs_last, bs_evid, row, 0, holds, now, fig, p, out, bg, 0)
    deg_n = int(p[P_DEG_MIN])
    bd_n = int(p[P_BD_MIN])
    hist = np.zeros(LAT_BUCKETS, dtype=np.int64)
    bhist = np.zeros(LAT_BUCKETS, dtype=np.int64)
    for row in range(n_api):
        if ba_i64[row, X_INIT] == 0:
            continue
        since = ba_i64[row, X_SINCE]
        observed = since * HOUR_US
        # degraded
        req = 0.0
        err = 0.0
        for j in range(1, deg_n + 1):
            k = (minute - j) % RING
            req += ba_min[row, k, M_REQ]
            err += ba_min[row, k, M_5XX]
        holds = False
        fig[:] = 0.0
        if req >= p[P_DEG_REQ] and observed <= now - deg_n * MINUTE_US:
            hist[:] = 0  # the latencies only when the volume is there
            bhist[:] = 0
            lsum = 0.0
            bsum = 0.0
            for j in range(1, deg_n + 1):
                k = (minute - j) % RING
                hist += ba_lat[row, k]
                bhist += ba_blat[row, k]
                lsum += ba_lsum[row, k, U_LAT_US]
                bsum += ba_lsum[row, k, U_BLAT_US]
            share = err / req
            q95 = p95_ms(hist)
            b95 = p95_ms(bhist)
            fig[0] = q95
            fig[2] = share
            fig[4] = req
            fig[6] = b95
            fig[8] = bsum / lsum if lsum > 0 else np.nan
            n = _gather(ba_week[row, :, :, W_P95_MS], slot, since, hours, weights, vals, wts)
            if n >= min_weeks:
                base = weighted_median(vals, wts, n)
                fig[1] = base
                if q95 >= p[P_DEG_LAT] * base:
                    holds = True
            n = _gather(ba_week[row, :, :, W_BP95_MS], slot, since, hours, weights, vals, wts)
            if n >= min_weeks:
                base = weighted_median(vals, wts, n)
                fig[7] = base
                if b95 >= p[P_DEG_LAT] * base:  # NaN (no backend times): never
                    holds = True
            n = _gather(ba_week[row, :, :, W_SHARE], slot, since, hours, weights, vals, wts)
            if n >= min_weeks:
                base = weighted_median(vals, wts, n)
                fig[3] = base
                if share >= p[P_DEG_SHARE] and share >= p[P_DEG_RATIO] * base:
                    holds = True
            fig[5] = n
        _step(ba_first, ba_last, ba_evid, row, C_DEGRADED, holds, now, fig, p, out, bg, 1)
        # backend_down
        req = 0.0
        conn = 0.0
        for j in range(1, bd_n + 1):
            k = (minute - j) % RING
            req += ba_min[row, k, M_REQ]
            conn += ba_min[row, k, M_CONN]
        peak = ba_i64[row, X_CONSEC_PEAK]
        ba_i64[row, X_CONSEC_PEAK] = ba_i64[row, X_CONSEC]
        holds = peak >= p[P_BD_CONSEC] or (
            req >= p[P_BD_REQ] and req > 0 and conn >= p[P_BD_SHARE] * req
        )
        fig[:] = 0.0
        fig[0] = peak
        fig[1] = conn
        fig[2] = req
        fig[3] = conn / req if req > 0 else 0.0
        _step(ba_first, ba_last, ba_evid, row, C_BACKEND_DOWN, holds, now, fig, p, out, bg, 1)
        # traffic_anomaly
        count = 0.0
        for j in range(1, an_n + 1):
            count += ba_min[row, (minute - j) % RING, M_REQ]
        holds = False
        fig[:] = 0.0
        n = _gather(ba_week[row, :, :, W_REQ], slot, since, hours, weights, vals, wts)
        if n >= min_weeks and observed <= now - an_n * MINUTE_US:
            m, mad = median_mad(vals, wts, n, dev)
            d, spread = anomaly(count, m, mad, p, scale)
            holds = d != 0
            fig[0] = count
            fig[1] = m * scale
            fig[2] = spread
            fig[3] = d
            fig[4] = n
        _step(ba_first, ba_last, ba_evid, row, C_ANOMALY_API, holds, now, fig, p, out, bg, 1)


@njit(cache=True, nogil=True)
def _close_hour(
    hour: int, n_sub: int, n_api: int, sub_i64: np.ndarray, bs_i64: np.ndarray,
    bs_hlat: np.ndarray, bs_week: np.ndarray, bs_wq: np.ndarray, ba_i64: np.ndarray,
    ba_hlat: np.ndarray, ba_hblat: np.ndarray, ba_week: np.ndarray, slot_week: np.ndarray,
    bg: np.ndarray,
) -> None:  # fmt: skip
    """The figures of ``hour`` into its slot's week (observed when the platform sent
    something that hour), the hour accumulators reset."""
    slot = slot_of_hour(hour)
    k = week_of_hour(hour) % WEEKS
    observed = bg[Q_HOUR_EVENTS] > 0
    slot_week[slot, k] = week_of_hour(hour) if observed else -1
    for row in range(n_sub):
        if sub_i64[row, L.S_KEY] != 0 and bs_i64[row, B_GEN] == sub_i64[row, L.S_GEN]:
            req = bs_i64[row, B_HOUR_REQ]
            bs_week[row, slot, k] = count_code(req)
            if req >= MIN_HOUR_REQ:
                bs_wq[row, slot, k, SQ_SHARE] = share_code(bs_i64[row, B_HOUR_5XX] / req)
                bs_wq[row, slot, k, SQ_P95] = p95_bucket(bs_hlat[row])
            else:
                bs_wq[row, slot, k, SQ_SHARE] = NO_CODE
                bs_wq[row, slot, k, SQ_P95] = NO_CODE
        if bs_i64[row, B_HOUR_REQ] > 0:
            bs_hlat[row] = 0
        bs_i64[row, B_HOUR_REQ] = 0
        bs_i64[row, B_HOUR_5XX] = 0
    for row in range(n_api):
        req = ba_i64[row, X_HOUR_REQ]
        ba_week[row, slot, k, W_REQ] = req
        if req >= MIN_HOUR_REQ:
            ba_week[row, slot, k, W_SHARE] = ba_i64[row, X_HOUR_5XX] / req
            ba_week[row, slot, k, W_P95_MS] = p95_ms(ba_hlat[row])
        else:
            ba_week[row, slot, k, W_SHARE] = np.nan
            ba_week[row, slot, k, W_P95_MS] = np.nan
        breq = 0
        for b in range(LAT_BUCKETS):
            breq += ba_hblat[row, b]
        ba_week[row, slot, k, W_BP95_MS] = p95_ms(ba_hblat[row]) if breq >= MIN_HOUR_REQ else np.nan
        ba_i64[row, X_HOUR_REQ] = 0
        ba_i64[row, X_HOUR_5XX] = 0
        ba_hlat[row] = 0
        ba_hblat[row] = 0
    bg[Q_HOUR_EVENTS] = 0


@njit(cache=True, nogil=True)
def _minute(
    m: int, n_sub: int, n_api: int, sub_i64: np.ndarray, api_i64: np.ndarray,
    bs_i64: np.ndarray, bs_min: np.ndarray, bs_hlat: np.ndarray, bs_week: np.ndarray,
    bs_wq: np.ndarray, bs_first: np.ndarray, bs_last: np.ndarray, bs_evid: np.ndarray,
    ba_i64: np.ndarray, ba_min: np.ndarray, ba_lsum: np.ndarray, ba_lat: np.ndarray,
    ba_blat: np.ndarray, ba_hlat: np.ndarray, ba_hblat: np.ndarray, ba_week: np.ndarray,
    ba_first: np.ndarray, ba_last: np.ndarray, ba_evid: np.ndarray, slot_week: np.ndarray,
    bg: np.ndarray, p: np.ndarray, out: np.ndarray,
) -> None:  # fmt: skip
    """Minute ``m`` begins: the boundary is evaluated (when the platform sent something in
    the minute before), the hour closed at an hour's end, the ring's slot of ``m`` cleared."""
    if bg[Q_MINUTE_EVENTS] > 0:
        _evaluate(m, n_sub, n_api, sub_i64, api_i64, bs_i64, bs_min, bs_hlat, bs_week, bs_wq,
                  bs_first, bs_last, bs_evid, ba_i64, ba_min, ba_lsum, ba_lat, ba_blat,
                  ba_week, ba_first, ba_last, ba_evid, slot_week, bg, p, out)  # fmt: skip
        bg[Q_EVALUATIONS] += 1
        bg[Q_QUIET] = 0
    else:
        bg[Q_QUIET] += 1
    bg[Q_MINUTE_EVENTS] = 0
    if m % 60 == 0:
        _close_hour(m // 60 - 1, n_sub, n_api, sub_i64, bs_i64, bs_hlat, bs_week, bs_wq,
                    ba_i64, ba_hlat, ba_hblat, ba_week, slot_week, bg)  # fmt: skip
    k = m % RING
    bs_min[:n_sub, k, :] = 0
    ba_min[:n_api, k, :] = 0
    ba_lsum[:n_api, k, :] = 0
    ba_lat[:n_api, k, :] = 0
    ba_blat[:n_api, k, :] = 0
    bg[Q_MINUTE] = m


@njit(cache=True, nogil=True)
def _jump(
    to: int, n_sub: int, n_api: int, sub_i64: np.ndarray, bs_i64: np.ndarray,
    bs_hlat: np.ndarray, bs_week: np.ndarray, bs_wq: np.ndarray, ba_i64: np.ndarray,
    ba_hlat: np.ndarray, ba_hblat: np.ndarray, ba_week: np.ndarray, slot_week: np.ndarray,
    bg: np.ndarray,
) -> None:  # fmt: skip
    """Straight to minute ``to`` after a ring's length of silence (the windows are empty,
    nothing to evaluate): only the hours crossed are closed (at most ``WEEKS`` weeks)."""
    cur = bg[Q_MINUTE]
    last_hour = to // 60
    for h in range(max(cur // 60, last_hour - WEEKS * SLOTS), last_hour):
        _close_hour(h, n_sub, n_api, sub_i64, bs_i64, bs_hlat, bs_week, bs_wq, ba_i64,
                    ba_hlat, ba_hblat, ba_week, slot_week, bg)  # fmt: skip
    bg[Q_MINUTE] = to


@njit(cache=True, nogil=True)
def apply_baselines(
    ts: np.ndarray, app: np.ndarray, api_name: np.ndarray, api_version: np.ndarray,
    status: np.ndarray, error_code: np.ndarray, latency: np.ndarray, backend: np.ndarray,
    start: int, sub_i64: np.ndarray, sub_tkeys: np.ndarray, sub_tvals: np.ndarray, n_sub: int,
    api_i64: np.ndarray, api_tkeys: np.ndarray, api_tvals: np.ndarray, n_api: int,
    bs_i64: np.ndarray, bs_min: np.ndarray, bs_hlat: np.ndarray, bs_week: np.ndarray,
    bs_wq: np.ndarray, bs_first: np.ndarray, bs_last: np.ndarray, bs_evid: np.ndarray,
    ba_i64: np.ndarray, ba_min: np.ndarray, ba_lsum: np.ndarray, ba_lat: np.ndarray,
    ba_blat: np.ndarray, ba_hlat: np.ndarray, ba_hblat: np.ndarray, ba_week: np.ndarray,
    ba_first: np.ndarray, ba_last: np.ndarray, ba_evid: np.ndarray, slot_week: np.ndarray,
    bg: np.ndarray, p: np.ndarray, out: np.ndarray,
) -> int:  # fmt: skip
    """Apply events ``start..`` to the baselines; returns the index of the first event not
    applied (``len(ts)`` when done; earlier when ``out`` may not hold a boundary's closed
    episodes: the caller drains it and calls again)."""
    room = len(out) - (n_sub + 3 * n_api)
    for i in range(start, len(ts)):
        t = np.int64(ts[i])
        a_name = np.int64(api_name[i])
        if a_name == 0:
            continue
        minute = t // MINUTE_US
        if bg[Q_MINUTE] < 0:
            bg[Q_MINUTE] = minute
        while minute > bg[Q_MINUTE]:
            if bg[Q_OUT] > room:
                return i
            if bg[Q_QUIET] >= RING and minute - bg[Q_MINUTE] > 1:
                _jump(int(minute - 1), n_sub, n_api, sub_i64, bs_i64, bs_hlat, bs_week, bs_wq,
                      ba_i64, ba_hlat, ba_hblat, ba_week, slot_week, bg)  # fmt: skip
            _minute(bg[Q_MINUTE] + 1, n_sub, n_api, sub_i64, api_i64, bs_i64, bs_min, bs_hlat,
                    bs_week, bs_wq, bs_first, bs_last, bs_evid, ba_i64, ba_min, ba_lsum,
                    ba_lat, ba_blat, ba_hlat, ba_hblat, ba_week, ba_first, ba_last, ba_evid,
                    slot_week, bg, p, out)  # fmt: skip
        cur = bg[Q_MINUTE]
        if cur - minute >= RING:
            bg[Q_LATE] += 1
            continue
        arow = table_find(api_tkeys, api_tvals, int((a_name << 32) | np.int64(api_version[i])))
        if arow < 0 or arow >= n_api:
            continue
        this_hour = minute // 60 == cur // 60
        if ba_i64[arow, X_INIT] == 0:
            ba_i64[arow, X_INIT] = 1
            ba_i64[arow, X_SINCE] = (t - MINUTE_US) // HOUR_US + 1
        bg[Q_MINUTE_EVENTS] += 1
        bg[Q_HOUR_EVENTS] += 1
        k = minute % RING
        st = np.int64(status[i])
        is_5xx = st >= 500 and st < 600
        conn = codes.is_connection_failure(int(error_code[i]))
        lat = np.int64(latency[i])
        lb = latency_bucket(int(lat))
        bl = np.int64(backend[i])
        bb = latency_bucket(int(bl)) if bl > 0 else -1  # 0: no backend time carried
        ba_min[arow, k, M_REQ] += 1
        if is_5xx:
            ba_min[arow, k, M_5XX] += 1
        ba_lat[arow, k, lb] += 1
        if bb >= 0:
            ba_blat[arow, k, bb] += 1
            ba_lsum[arow, k, U_LAT_US] += lat
            ba_lsum[arow, k, U_BLAT_US] += bl
        if conn:
            ba_min[arow, k, M_CONN] += 1
            ba_i64[arow, X_CONSEC] += 1
            if ba_i64[arow, X_CONSEC] > ba_i64[arow, X_CONSEC_PEAK]:
                ba_i64[arow, X_CONSEC_PEAK] = ba_i64[arow, X_CONSEC]
        else:
            ba_i64[arow, X_CONSEC] = 0
        if this_hour:
            ba_i64[arow, X_HOUR_REQ] += 1
            if is_5xx:
                ba_i64[arow, X_HOUR_5XX] += 1
            ba_hlat[arow, lb] += 1
            if bb >= 0:
                ba_hblat[arow, bb] += 1
        a = np.int64(app[i])
        if a == 0:
            continue
        srow = table_find(sub_tkeys, sub_tvals, int((a << 32) | arow))
        if srow < 0 or srow >= n_sub:
            continue
        gen = sub_i64[srow, L.S_GEN]
        if bs_i64[srow, B_GEN] != gen:  # a new row (or one freed and given to another)
            bs_i64[srow, :] = 0
            bs_min[srow] = 0
            bs_hlat[srow] = 0
            bs_week[srow] = 0
            bs_wq[srow] = NO_CODE
            bs_first[srow] = 0
            bs_last[srow] = 0
            bs_evid[srow] = 0.0
            bs_i64[srow, B_GEN] = gen
            bs_i64[srow, B_SINCE] = (t - MINUTE_US) // HOUR_US + 1
        bs_min[srow, k, M_REQ] += 1
        if is_5xx:
            bs_min[srow, k, M_5XX] += 1
        if this_hour:
            bs_i64[srow, B_HOUR_REQ] += 1
            if is_5xx:
                bs_i64[srow, B_HOUR_5XX] += 1
            bs_hlat[srow, lb] += 1
    return len(ts)
