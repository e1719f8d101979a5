"""Jitted rules of the behaviour classes: when a class holds, its episodes and its evidence.

One home for each rule: ``apply_events`` (the batch kernel) evaluates them after every event,
the fleet merge (``evaluate_latest``) on merged windows at each subscription's latest event,
and ``State.held`` reads a class's episode with ``episode_holds``.

A class's episode is ``cls_first[row, c] .. cls_last[row, c]`` (event times, 0 = never) with
the evidence of the last time its rule held in ``cls_evid[row, c]``; the three arrays travel
together as ``cls = (cls_first, cls_last, cls_evid)``. An episode ends when its rule has been
quiet for longer than the hold time (after the class's own extension: throttle_hitter looks
back ``throttle_lookback``); it is then written to the episode buffer ``out[1]``.

``out`` is the kernels' output group ``(g, epi, scratch)``: the global counters
(``g[G_*]``), the closed-episode buffer (``epi[n] = (kind, row, class, first, last)``, kind 0
for a subscription row, 1 for an API row; ``g[G_EPISODES_OUT]`` entries) and a scratch array of
evidence, ``scratch[c]`` for class ``c`` (shape (N_WINDOWED_CLASSES, N_EVIDENCE)).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from vigie.state._windows import hours_sum
from vigie.state.layout import (
    C_ERROR_PRONE,
    C_GROWING,
    C_REDUNDANT,
    C_RETRY_STORM,
    C_THROTTLE_HITTER,
    C_WRONG_CHANNEL,
    G_EPISODES_OUT,
    HALF_HOURS,
    HOUR_US,
    MAX_CHANNELS,
    N_WINDOWED_CLASSES,
    P_ERR_MIN_REQ,
    P_ERR_SHARE,
    P_GROW_MIN_PREV_HOURS,
    P_GROW_MIN_REQ,
    P_GROW_RATIO,
    P_HOLD_US,
    P_RED_MIN_REQ,
    P_RED_SHARE,
    P_RETRY_MIN,
    P_RETRY_SHARE,
    P_THR_LOOKBACK_US,
    P_THR_MIN,
    P_WC_DOMINANT_SHARE,
    P_WC_MIN_REQ,
    P_WC_MIN_SHARE,
    P_WC_MINOR_SHARE,
    RW_REQ,
    RW_RETRIES,
    S_APP,
    S_CH_MASK,
    S_DC_SUM,
    S_LAST_SEEN,
    S_RW_SUM,
    S_SW_SUM,
    SW_CLIENT_ERR,
    SW_READS,
    SW_REPEATS,
    SW_REQ,
    SW_THROTTLED,
)

# the windowed rules of a subscription row, in the order they are evaluated (and their closed
# episodes written)
WINDOW_RULES = (C_RETRY_STORM, C_ERROR_PRONE, C_REDUNDANT, C_THROTTLE_HITTER, C_WRONG_CHANNEL)


# ---------------------------------------------------------------------------------------------
# Episodes
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def class_extension(c: int, params: np.ndarray) -> int:
    """How long after its last event the rule of class ``c`` still holds by its own wording."""
    if c == C_THROTTLE_HITTER:
        return np.int64(params[P_THR_LOOKBACK_US])
    return np.int64(0)


@njit(cache=True, nogil=True, inline="always")
def within_hold(last: int, c: int, t: int, params: np.ndarray) -> bool:
    """The hold rule: at ``t``, an episode of class ``c`` whose rule last held at ``last`` is
    still open (the rule has not been quiet for longer than the hold time)."""
    return t - (last + class_extension(c, params)) <= params[P_HOLD_US]


@njit(cache=True, nogil=True, inline="always")
def episode_holds(first: int, last: int, c: int, now: int, params: np.ndarray) -> bool:
    """Class ``c`` is held at ``now`` by the episode ``first .. last`` (0 = none)."""
    return last > 0 and first <= now and within_hold(last, c, now, params)


@njit(cache=True, nogil=True)
def raise_class(
    cls: tuple[np.ndarray, np.ndarray, np.ndarray],
    row: int,
    c: int,
    t: int,
    params: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
    kind: int,
) -> None:
    """Record that the rule of class ``c`` held at ``t`` with the evidence ``out[2][c]``; close
    the previous episode if the rule had been quiet for longer than the hold time."""
    cls_first, cls_last, cls_evid = cls
    g, epi, scratch = out
    last = cls_last[row, c]
    if last == 0:
        cls_first[row, c] = t
        cls_last[row, c] = t
    elif not within_hold(last, c, t, params):
        n = g[G_EPISODES_OUT]
        epi[n, 0] = kind
        epi[n, 1] = row
        epi[n, 2] = c
        epi[n, 3] = cls_first[row, c]
        epi[n, 4] = last
        g[G_EPISODES_OUT] = n + 1
        cls_first[row, c] = t
        cls_last[row, c] = t
    else:
        if t < cls_first[row, c]:
            cls_first[row, c] = t
        if t < last:
            return
        cls_last[row, c] = t
    for f in range(cls_evid.shape[2]):
        cls_evid[row, c, f] = scratch[c, f]


@njit(cache=True, nogil=True)
def held_at(
    cls_first: np.ndarray,
    cls_last: np.ndarray,
    n_rows: int,
    now: int,
    params: np.ndarray,
    held: np.ndarray,
) -> None:
    """``held[row, c]``: class ``c`` (a column of the class arrays) is held at ``now``."""
    for row in range(n_rows):
        for c in range(cls_last.shape[1]):
            held[row, c] = episode_holds(cls_first[row, c], cls_last[row, c], c, now, params)


# ---------------------------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def growing_rule(
    hour: np.ndarray,
    row: int,
    cur: int,
    end: int,
    obs_start_hour: int,
    params: np.ndarray,
    out: np.ndarray,
) -> bool:
    """``growing`` on the 7 days ending with hour ``end`` against the 7 days before.

    Growth is only judged once vigie has observed at least P_GROW_MIN_PREV_HOURS hours of the
    earlier week (from ``obs_start_hour``, the first event it ever saw): before that the earlier
    week is unknown, not empty. ``out`` receives the evidence: last 7 days, the 7 days before,
    the hours of the earlier week observed, the ratio.
    """
    last7 = hours_sum(hour, row, cur, end - HALF_HOURS + 1, end)
    prev_lo = end - 2 * HALF_HOURS + 1
    prev_hi = end - HALF_HOURS
    prev7 = hours_sum(hour, row, cur, prev_lo, prev_hi)
    observed = prev_hi - max(prev_lo, obs_start_hour) + 1
    if observed < 0:
        observed = 0
    if observed < params[P_GROW_MIN_PREV_HOURS]:
        return False
    prev_cmp = float(prev7)
    out[0] = last7
    out[1] = prev_cmp
    out[2] = observed
    out[3] = (last7 / prev_cmp) if prev_cmp > 0 else math.inf
    return last7 >= params[P_GROW_MIN_REQ] and last7 >= params[P_GROW_RATIO] * prev_cmp


@njit(cache=True, nogil=True)
def wrong_channel_rule(
    sub_i64: np.ndarray, row: int, registered: int, params: np.ndarray, out: np.ndarray
) -> bool:
    """``wrong_channel`` on the day window. ``out``: channel, its requests, its share, the
    expected channel (registered, or the dominant one)."""
    total = np.int64(0)
    top = np.int64(0)
    top_c = np.int64(-1)
    for c in range(MAX_CHANNELS):
        v = sub_i64[row, S_DC_SUM + c]
        total += v
        if v > top:
            top = v
            top_c = c
    if total == 0:
        return False
    expected = registered
    if expected < 0:
        if top < params[P_WC_DOMINANT_SHARE] * total:
            return False
        expected = top_c
    best = np.int64(-1)
    best_v = np.int64(0)
    for c in range(MAX_CHANNELS):
        if c == expected:
            continue
        v = sub_i64[row, S_DC_SUM + c]
        if v < params[P_WC_MIN_REQ] or v < params[P_WC_MIN_SHARE] * total:
            continue
        if registered < 0 and v >= params[P_WC_MINOR_SHARE] * total:
            continue
        if v > best_v:
            best_v = v
            best = c
    if best < 0:
        return False
    out[0] = best
    out[1] = best_v
    out[2] = best_v / total
    out[3] = expected
    return True


@njit(cache=True, nogil=True, inline="always")
def _evidence(scratch: np.ndarray, c: int, e0: float, e1: float, e2: float, e3: float) -> None:
    scratch[c, 0] = e0
    scratch[c, 1] = e1
    scratch[c, 2] = e2
    scratch[c, 3] = e3


@njit(cache=True, nogil=True, inline="always")
def evaluate_rules(
    sub_i64: np.ndarray,
    cls: tuple[np.ndarray, np.ndarray, np.ndarray],
    row: int,
    t: int,
    registered: int,
    channel_ok: bool,
    fresh_only: bool,
    params: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """The windowed rules of subscription row ``row`` on its windows as they are, at ``t``:
    each class whose rule holds is raised at ``t`` (``raise_class``).

    ``registered`` is the application's registered channel (-1: none); ``channel_ok`` False
    leaves wrong_channel out (the event's channel is not tracked); ``fresh_only`` skips a class
    already raised at ``t`` or later (the merge: a pod raised it there).
    """
    scratch = out[2]
    held = np.int64(0)
    rq = sub_i64[row, S_RW_SUM + RW_REQ]
    rr = sub_i64[row, S_RW_SUM + RW_RETRIES]
    if rq > 0 and rr >= params[P_RETRY_MIN] and rr >= params[P_RETRY_SHARE] * rq:
        held |= np.int64(1) << C_RETRY_STORM
        _evidence(scratch, C_RETRY_STORM, rr, rq, rr / rq, 0.0)
    q = sub_i64[row, S_SW_SUM + SW_REQ]
    ce = sub_i64[row, S_SW_SUM + SW_CLIENT_ERR]
    if q > 0 and q >= params[P_ERR_MIN_REQ] and ce >= params[P_ERR_SHARE] * q:
        held |= np.int64(1) << C_ERROR_PRONE
        _evidence(scratch, C_ERROR_PRONE, ce, q, ce / q, 0.0)
    reads = sub_i64[row, S_SW_SUM + SW_READS]
    reps = sub_i64[row, S_SW_SUM + SW_REPEATS]
    if q >= params[P_RED_MIN_REQ] and reads > 0 and reps >= params[P_RED_SHARE] * reads:
        held |= np.int64(1) << C_REDUNDANT
        _evidence(scratch, C_REDUNDANT, reps, reads, reps / reads, q)
    thr = sub_i64[row, S_SW_SUM + SW_THROTTLED]
    if q > 0 and thr >= params[P_THR_MIN]:
        held |= np.int64(1) << C_THROTTLE_HITTER
        _evidence(scratch, C_THROTTLE_HITTER, thr, q, thr / q, 0.0)
    mask = sub_i64[row, S_CH_MASK]
    # one channel seen, and it is the registered one (or none is registered): the rule cannot
    # hold, the evaluation is skipped
    single = (mask & (mask - 1)) == 0 and (registered < 0 or mask == np.int64(1) << registered)
    if (
        channel_ok
        and not single
        and wrong_channel_rule(sub_i64, row, registered, params, scratch[C_WRONG_CHANNEL])
    ):
        held |= np.int64(1) << C_WRONG_CHANNEL
    if held == 0:
        return
    cls_last = cls[1]
    for c in WINDOW_RULES:
        if (held >> c) & 1 and not (fresh_only and cls_last[row, c] >= t):
            raise_class(cls, row, c, t, params, out, 0)


@njit(cache=True, nogil=True)
def evaluate_growing(
    hour: np.ndarray,
    cls: tuple[np.ndarray, np.ndarray, np.ndarray],
    row: int,
    cur: int,
    obs_start_hour: int,
    params: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
    kind: int,
) -> None:
    """``growing`` of a row (subscription, kind 0, or API, kind 1) when its hour ``cur`` has
    ended: raised at the hour's last microsecond if it held on the 7 days ending there."""
    if cur > 0 and growing_rule(hour, row, cur, cur, obs_start_hour, params, out[2][C_GROWING]):
        raise_class(cls, row, C_GROWING, (cur + 1) * HOUR_US - 1, params, out, kind)


@njit(cache=True, nogil=True)
def evaluate_latest(
    sub_i64: np.ndarray,
    cls: tuple[np.ndarray, np.ndarray, np.ndarray],
    rows: np.ndarray,
    start: int,
    app_channel: np.ndarray,
    params: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> int:
    """The windowed rules of ``rows[start:]`` at each row's latest event (``evaluate_rules``,
    classes already raised there skipped). Returns the index of the first row not evaluated:
    ``len(rows)``, or earlier when the episode buffer needs draining."""
    g, epi = out[0], out[1]
    room = len(epi) - (N_WINDOWED_CLASSES + 1)
    for k in range(start, len(rows)):
        if g[G_EPISODES_OUT] > room:
            return k
        row = rows[k]
        t = sub_i64[row, S_LAST_SEEN]
        if t == 0:
            continue
        app = sub_i64[row, S_APP]
        registered = np.int64(app_channel[app]) if app < len(app_channel) else np.int64(-1)
        evaluate_rules(sub_i64, cls, row, t, registered, True, True, params, out)
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Query-time evaluation (read-only)
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def growing_at(
    hour: np.ndarray,
    cur_col: np.ndarray,
    n_rows: int,
    now: int,
    obs_start: int,
    params: np.ndarray,
    held: np.ndarray,
    evid: np.ndarray,
) -> None:
    """Evaluate ``growing`` at ``now`` (the 7 days ending with now's hour) for rows 0..n-1;
    ``held[row]`` becomes True where it holds and ``evid[row]`` gets its evidence."""
    end = now // HOUR_US
    obs_h = obs_start // HOUR_US
    out = np.zeros(4)
    for row in range(n_rows):
        cur = cur_col[row]
        if cur == 0:
            held[row] = False
            continue
        ok = growing_rule(hour, row, cur, end, obs_h, params, out)
        held[row] = ok
        if ok:
            evid[row, :] = out
