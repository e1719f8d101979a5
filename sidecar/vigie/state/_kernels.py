"""The jitted kernels: pure functions over the state arrays.

Nothing here allocates per event, touches Python objects or holds the GIL. The arrays are owned
and validated by ``vigie.state.engine.State``; their geometry is in ``_layout``. Every function
has a slow, obvious twin in ``tests/naive.py`` that the property tests compare it with.

Time is event time in microseconds. A sliding window is a ring of slots: an event of slot ``k``
goes into ``ring[k % SLOTS]`` when ``k > cur - SLOTS`` (``cur`` being the row's newest slot);
moving ``cur`` forward empties the slots it passes. The window at any moment is the ``SLOTS``
slots ending with ``cur``: its running sums sit in the row, so a rule costs a few comparisons.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from vigie.state.codes import (
    is_authentication_code,
    is_backend_code,
    is_client_error,
    is_throttled,
)
from vigie.state.layout import (
    A_2XX,
    A_3XX,
    A_4XX,
    A_5XX,
    A_CONTEXT,
    A_FIRST_SEEN,
    A_HOUR_CUR,
    A_KEY,
    A_LAST_SEEN,
    A_LAT_SUM_US,
    A_NAME,
    A_NOAPP,
    A_REQ,
    A_THROTTLED,
    A_VERSION,
    C_ERROR_PRONE,
    C_GROWING,
    C_REDUNDANT,
    C_RETRY_STORM,
    C_THROTTLE_HITTER,
    C_WRONG_CHANNEL,
    CACHE_WAYS,
    DAY_SLOTS,
    DAY_US,
    G_EPISODES_OUT,
    G_EVENTS,
    G_LATE,
    G_NO_APP,
    G_NOW,
    G_OBS_START,
    G_RETRY_EVICT,
    G_ROUTE_OVERFLOW,
    G_SKIPPED_NO_API,
    HALF_HOURS,
    HOUR_SLOTS,
    HOUR_US,
    LAT_BUCKETS,
    LAT_MIN_INDEX,
    MAX_CHANNELS,
    N_RW,
    N_SW,
    N_WINDOWED_CLASSES,
    P_ERR_MIN_REQ,
    P_ERR_SHARE,
    P_GROW_MIN_PREV_HOURS,
    P_GROW_MIN_REQ,
    P_GROW_RATIO,
    P_HOLD_US,
    P_RED_GAP_US,
    P_RED_MIN_REQ,
    P_RED_SHARE,
    P_RETRY_GAP_US,
    P_RETRY_MIN,
    P_RETRY_SHARE,
    P_RW_SLOT_US,
    P_SW_SLOT_US,
    P_THR_LOOKBACK_US,
    P_THR_MIN,
    P_WC_DOMINANT_SHARE,
    P_WC_MIN_REQ,
    P_WC_MIN_SHARE,
    P_WC_MINOR_SHARE,
    R_API,
    R_CHANNEL,
    R_ERROR_CODE,
    R_KEY,
    R_LAT_SUM_US,
    R_METHOD,
    R_REQ,
    R_RESOURCE,
    R_STATUS,
    R_THROTTLED,
    RATE_BUCKETS,
    RETRY_SLOTS,
    RW_REQ,
    RW_RETRIES,
    S_2XX,
    S_3XX,
    S_4XX,
    S_5XX,
    S_API,
    S_APP,
    S_APP_NAME,
    S_APP_OWNER,
    S_AUTH_ERR,
    S_BACKEND_ERR,
    S_BLAT_SUM_US,
    S_CH_MASK,
    S_CH_REQ,
    S_CLIENT_ERR,
    S_DAY_CUR,
    S_DC_SUM,
    S_FAIL_END,
    S_FAIL_MAX_END,
    S_FAIL_NORES_END,
    S_FAIL_NORES_START,
    S_FAIL_START,
    S_FIRST_SEEN,
    S_GEN,
    S_HOUR_CUR,
    S_KEY,
    S_KEY_TYPE,
    S_LAST_SEEN,
    S_LAT_SUM_US,
    S_MAX_RPM,
    S_REPEATS,
    S_REQ,
    S_REQ_BYTES,
    S_RESP_BYTES,
    S_RETRIES,
    S_RW_CUR,
    S_RW_SUM,
    S_SW_CUR,
    S_SW_SUM,
    S_THROTTLED,
    S_TIER,
    SHORT_SLOTS,
    STOP_API_FULL,
    STOP_DONE,
    STOP_EPISODES_FULL,
    STOP_SUB_FULL,
    SW_CLIENT_ERR,
    SW_READS,
    SW_REPEATS,
    SW_REQ,
    SW_THROTTLED,
)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)

METHOD_GET = 1
METHOD_HEAD = 2


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
    return mix64(h ^ (np.uint64(v) + _GOLDEN))


@njit(cache=True, nogil=True, inline="always")
def row_salt(row: int, gen: int) -> int:
    """A per-(row, generation) 64-bit salt: keys of a reused row never meet its old ones."""
    return mix64(np.uint64(row) * _GOLDEN + np.uint64(gen))


@njit(cache=True, nogil=True, inline="always")
def nonzero_key(h: int) -> int:
    """A hash as a table key: 0 is reserved for empty slots."""
    k = np.int64(h)
    return k if k != 0 else np.int64(1)


# ---------------------------------------------------------------------------------------------
# Open-addressing tables (linear probing, keys != 0, load factor <= 1/2, rebuilt not deleted)
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def table_find(tkeys: np.ndarray, tvals: np.ndarray, key: int) -> int:
    mask = np.int64(len(tkeys) - 1)
    slot = np.int64(mix64(np.uint64(key))) & mask
    while True:
        k = tkeys[slot]
        if k == key:
            return np.int64(tvals[slot])
        if k == 0:
            return np.int64(-1)
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def table_insert(tkeys: np.ndarray, tvals: np.ndarray, key: int, value: int) -> None:
    mask = np.int64(len(tkeys) - 1)
    slot = np.int64(mix64(np.uint64(key))) & mask
    while tkeys[slot] != 0 and tkeys[slot] != key:
        slot = (slot + 1) & mask
    tkeys[slot] = key
    tvals[slot] = value


@njit(cache=True, nogil=True)
def table_rebuild(tkeys: np.ndarray, tvals: np.ndarray, row_keys: np.ndarray, n_rows: int) -> None:
    """Refill a table from the key column of the rows (rows whose key is 0 are free)."""
    tkeys[:] = 0
    tvals[:] = -1
    for row in range(n_rows):
        k = row_keys[row]
        if k != 0:
            table_insert(tkeys, tvals, k, row)


# ---------------------------------------------------------------------------------------------
# Detector caches: set-associative, keyed by a 64-bit hash, oldest entry replaced
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def cache_slot(ckeys: np.ndarray, key: int) -> tuple[int, bool]:
    """The entry holding ``key``, or the one to replace (empty or oldest) and False."""
    nsets = np.int64(len(ckeys) // CACHE_WAYS)
    base = (np.int64(mix64(np.uint64(key) ^ _GOLDEN)) & (nsets - 1)) * CACHE_WAYS
    for w in range(CACHE_WAYS):
        if ckeys[base + w] == key:
            return base + w, True
    return base, False


@njit(cache=True, nogil=True, inline="always")
def cache_victim(ckeys: np.ndarray, cvals: np.ndarray, base: int) -> int:
    best = base
    for w in range(CACHE_WAYS):
        e = base + w
        if ckeys[e] == 0:
            return e
        if cvals[e, 0] < cvals[best, 0]:
            best = e
    return best


# ---------------------------------------------------------------------------------------------
# Buckets
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Rings
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def slot_of(t: int, width: int, cur: int) -> int:
    """``t // width``, without the division when ``t`` falls in slot ``cur`` (the usual case)."""
    base = cur * width
    if t >= base and t - base < width:
        return cur
    return t // width


@njit(cache=True, nogil=True, inline="always")
def route_key(
    api_row: int, resource: int, method: int, status: int, error_code: int, channel: int, thr: int
) -> int:
    """Identity of a route row: API x resource x method x status x WSO2 error code x channel x
    throttled. API row (< 2^16), resource id (< 2^31), method (< 16) and status (< 1024) are
    packed in one key; a WSO2 error code, a channel but the first, or throttling are folded in
    by a hash (the export groups the rows into its series; vigie.state.merge merges by this key)."""
    me = method if method < 16 else 15
    st = status if status < 1024 else 0
    k = ((resource << 32) | (api_row << 14) | (me << 10) | st) + 1
    if error_code == 0 and channel == 0 and thr == 0:
        return k
    return nonzero_key(combine(combine(combine(np.uint64(k), error_code), channel), thr))


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


# ---------------------------------------------------------------------------------------------
# Classes: episodes and evidence
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def class_extension(c: int, params: np.ndarray) -> int:
    """How long after its last event the rule of class ``c`` still holds by its own wording."""
    if c == C_THROTTLE_HITTER:
        return np.int64(params[P_THR_LOOKBACK_US])
    return np.int64(0)


@njit(cache=True, nogil=True)
def raise_class(
    cls_first: np.ndarray,
    cls_last: np.ndarray,
    cls_evid: np.ndarray,
    row: int,
    c: int,
    t: int,
    e0: float,
    e1: float,
    e2: float,
    e3: float,
    params: np.ndarray,
    epi: np.ndarray,
    g: np.ndarray,
    kind: int,
) -> None:
    """Record that the rule of class ``c`` held at ``t``; close the previous episode if the
    rule had been quiet for longer than the hold time."""
    last = cls_last[row, c]
    if last == 0:
        cls_first[row, c] = t
        cls_last[row, c] = t
    elif t - (last + class_extension(c, params)) > params[P_HOLD_US]:
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
    cls_evid[row, c, 0] = e0
    cls_evid[row, c, 1] = e1
    cls_evid[row, c, 2] = e2
    cls_evid[row, c, 3] = e3


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


# ---------------------------------------------------------------------------------------------
# The ingest kernel
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def init_sub_row(
    sub_i64: np.ndarray,
    sub_sw: np.ndarray,
    sub_rw: np.ndarray,
    sub_hour: np.ndarray,
    sub_day: np.ndarray,
    sub_hist: np.ndarray,
    sub_rate: np.ndarray,
    cls_first: np.ndarray,
    cls_last: np.ndarray,
    cls_evid: np.ndarray,
    row: int,
    key: int,
    app: int,
    api_row: int,
) -> None:
    gen = sub_i64[row, S_GEN]
    sub_i64[row, :] = 0
    sub_sw[row] = 0
    sub_rw[row] = 0
    sub_hour[row] = 0
    sub_day[row] = 0
    sub_hist[row] = 0
    sub_rate[row] = 0
    cls_first[row] = 0
    cls_last[row] = 0
    cls_evid[row] = 0.0
    sub_i64[row, S_KEY] = key
    sub_i64[row, S_APP] = app
    sub_i64[row, S_API] = api_row
    sub_i64[row, S_GEN] = gen + 1


@njit(cache=True, nogil=True)
def alloc_sub(sub_i64: np.ndarray, sub_free: np.ndarray, sub_meta: np.ndarray) -> int:
    """A free subscription row, or -1 when the arrays are full. sub_meta: [n_free, high]."""
    if sub_meta[0] > 0:
        sub_meta[0] -= 1
        return np.int64(sub_free[sub_meta[0]])
    if sub_meta[1] < sub_i64.shape[0]:
        row = sub_meta[1]
        sub_meta[1] += 1
        return np.int64(row)
    return np.int64(-1)


@njit(cache=True, nogil=True)
def init_api_row(
    api_i64: np.ndarray,
    api_hour: np.ndarray,
    api_hist: np.ndarray,
    api_cls_first: np.ndarray,
    api_cls_last: np.ndarray,
    api_cls_evid: np.ndarray,
    row: int,
    key: int,
    name: int,
    version: int,
) -> None:
    api_i64[row, :] = 0
    api_hour[row] = 0
    api_hist[row] = 0
    api_cls_first[row] = 0
    api_cls_last[row] = 0
    api_cls_evid[row] = 0.0
    api_i64[row, A_KEY] = key
    api_i64[row, A_NAME] = name
    api_i64[row, A_VERSION] = version


@njit(cache=True, nogil=True)
def apply_events(
    # events (one entry per event)
    ts: np.ndarray,
    app: np.ndarray,
    app_name: np.ndarray,
    app_owner: np.ndarray,
    api_name: np.ndarray,
    api_version: np.ndarray,
    api_context: np.ndarray,
    resource: np.ndarray,
    method: np.ndarray,
    status: np.ndarray,
    error_code: np.ndarray,
    latency: np.ndarray,
    backend_latency: np.ndarray,
    request_bytes: np.ndarray,
    response_bytes: np.ndarray,
    key_type: np.ndarray,
    tier: np.ndarray,
    uri_hash: np.ndarray,
    flags: np.ndarray,
    channel: np.ndarray,
    start: int,
    # subscriptions
    sub_i64: np.ndarray,
    sub_sw: np.ndarray,
    sub_rw: np.ndarray,
    sub_hour: np.ndarray,
    sub_day: np.ndarray,
    sub_hist: np.ndarray,
    sub_rate: np.ndarray,
    cls_first: np.ndarray,
    cls_last: np.ndarray,
    cls_evid: np.ndarray,
    sub_tkeys: np.ndarray,
    sub_tvals: np.ndarray,
    sub_free: np.ndarray,
    sub_meta: np.ndarray,
    # APIs
    api_i64: np.ndarray,
    api_hour: np.ndarray,
    api_hist: np.ndarray,
    api_cls_first: np.ndarray,
    api_cls_last: np.ndarray,
    api_cls_evid: np.ndarray,
    api_tkeys: np.ndarray,
    api_tvals: np.ndarray,
    api_meta: np.ndarray,
    # routes
    route_i64: np.ndarray,
    route_hist: np.ndarray,
    route_tkeys: np.ndarray,
    route_tvals: np.ndarray,
    route_meta: np.ndarray,
    # detectors
    retry_keys: np.ndarray,
    retry_vals: np.ndarray,
    repeat_keys: np.ndarray,
    repeat_vals: np.ndarray,
    # registrations, outputs, parameters
    app_channel: np.ndarray,
    epi: np.ndarray,
    params: np.ndarray,
    g: np.ndarray,
    scratch: np.ndarray,
) -> tuple[int, int]:
    """Apply events ``start..`` to the state, evaluating every windowed rule as it goes.

    Returns (STOP_*, index of the first event not applied). The caller grows or evicts and
    calls again from that index: nothing of an event is applied before all its rows exist.
    """
    n = len(ts)
    sw_slot = np.int64(params[P_SW_SLOT_US])
    rw_slot = np.int64(params[P_RW_SLOT_US])
    retry_gap = np.int64(params[P_RETRY_GAP_US])
    red_gap = np.int64(params[P_RED_GAP_US])
    epi_room = len(epi) - (N_WINDOWED_CLASSES + 1)
    for i in range(start, n):
        if g[G_EPISODES_OUT] > epi_room:
            return STOP_EPISODES_FULL, i
        t = np.int64(ts[i])
        a_name = np.int64(api_name[i])
        if a_name == 0:
            g[G_SKIPPED_NO_API] += 1
            continue

        # ---- rows: find or create everything before changing anything ----
        akey = (a_name << 32) | np.int64(api_version[i])
        arow = table_find(api_tkeys, api_tvals, akey)
        if arow < 0:
            if api_meta[1] >= api_i64.shape[0]:
                return STOP_API_FULL, i
            arow = api_meta[1]
            api_meta[1] += 1
            init_api_row(
                api_i64,
                api_hour,
                api_hist,
                api_cls_first,
                api_cls_last,
                api_cls_evid,
                arow,
                akey,
                a_name,
                np.int64(api_version[i]),
            )
            table_insert(api_tkeys, api_tvals, akey, arow)
        ap = np.int64(app[i])
        srow = np.int64(-1)
        if ap != 0:
            skey = (ap << 32) | arow
            srow = table_find(sub_tkeys, sub_tvals, skey)
            if srow < 0:
                srow = alloc_sub(sub_i64, sub_free, sub_meta)
                if srow < 0:
                    return STOP_SUB_FULL, i
                init_sub_row(
                    sub_i64,
                    sub_sw,
                    sub_rw,
                    sub_hour,
                    sub_day,
                    sub_hist,
                    sub_rate,
                    cls_first,
                    cls_last,
                    cls_evid,
                    srow,
                    skey,
                    ap,
                    arow,
                )
                table_insert(sub_tkeys, sub_tvals, skey, srow)

        # ---- what the event is ----
        st = np.int64(status[i])
        ec = np.int64(error_code[i])
        res = np.int64(resource[i])
        me = np.int64(method[i])
        lat = np.int64(latency[i])
        ch = np.int64(channel[i])
        throttled = is_throttled(ec, np.int64(flags[i]))
        is2 = st >= 200 and st < 300
        is3 = st >= 300 and st < 400
        is4 = st >= 400 and st < 500
        is5 = st >= 500 and st < 600
        client_err = is_client_error(st)
        failure = is5 or throttled
        lb = latency_bucket(lat)

        if g[G_OBS_START] == 0 or t < g[G_OBS_START]:
            g[G_OBS_START] = t
        if t > g[G_NOW]:
            g[G_NOW] = t
        g[G_EVENTS] += 1

        # ---- API row ----
        if api_i64[arow, A_FIRST_SEEN] == 0 or t < api_i64[arow, A_FIRST_SEEN]:
            api_i64[arow, A_FIRST_SEEN] = t
        if t > api_i64[arow, A_LAST_SEEN]:
            api_i64[arow, A_LAST_SEEN] = t
        if api_context[i] != 0:
            api_i64[arow, A_CONTEXT] = api_context[i]
        api_i64[arow, A_REQ] += 1
        api_i64[arow, A_2XX] += is2
        api_i64[arow, A_3XX] += is3
        api_i64[arow, A_4XX] += is4
        api_i64[arow, A_5XX] += is5
        api_i64[arow, A_THROTTLED] += throttled
        api_i64[arow, A_LAT_SUM_US] += lat
        api_hist[arow, lb] += 1
        hk = t // HOUR_US
        acur = api_i64[arow, A_HOUR_CUR]
        if hk > acur:
            if acur > 0 and growing_rule(
                api_hour, arow, acur, acur, g[G_OBS_START] // HOUR_US, params, scratch
            ):
                raise_class(
                    api_cls_first,
                    api_cls_last,
                    api_cls_evid,
                    arow,
                    C_GROWING,
                    (acur + 1) * HOUR_US - 1,
                    scratch[0],
                    scratch[1],
                    scratch[2],
                    scratch[3],
                    params,
                    epi,
                    g,
                    1,
                )
            advance_hours(api_hour, arow, acur, hk)
            api_i64[arow, A_HOUR_CUR] = hk
            acur = hk
        if hk > acur - HOUR_SLOTS:
            api_hour[arow, hk % HOUR_SLOTS] += 1

        # ---- route row (API x resource x method x status x error code x channel x throttled) ----
        thr = np.int64(1) if throttled else np.int64(0)
        rkey = route_key(arow, res, me, st, ec, ch, thr)
        rrow = table_find(route_tkeys, route_tvals, rkey)
        if rrow < 0:
            if route_meta[1] < route_i64.shape[0]:
                rrow = route_meta[1]
                route_meta[1] += 1
                route_i64[rrow, :] = 0
                route_hist[rrow] = 0
                route_i64[rrow, R_KEY] = rkey
                route_i64[rrow, R_API] = arow
                route_i64[rrow, R_RESOURCE] = res
                route_i64[rrow, R_METHOD] = me
                route_i64[rrow, R_STATUS] = st
                route_i64[rrow, R_CHANNEL] = ch
                route_i64[rrow, R_ERROR_CODE] = ec
                route_i64[rrow, R_THROTTLED] = thr
                table_insert(route_tkeys, route_tvals, rkey, rrow)
            else:
                rrow = 0
                g[G_ROUTE_OVERFLOW] += 1
        route_i64[rrow, R_REQ] += 1
        route_i64[rrow, R_LAT_SUM_US] += lat
        route_hist[rrow, lb] += 1

        if srow < 0:
            api_i64[arow, A_NOAPP] += 1
            g[G_NO_APP] += 1
            continue

        # ---- subscription row: all-time figures ----
        row = srow
        if sub_i64[row, S_FIRST_SEEN] == 0 or t < sub_i64[row, S_FIRST_SEEN]:
            sub_i64[row, S_FIRST_SEEN] = t
        if t >= sub_i64[row, S_LAST_SEEN]:
            sub_i64[row, S_LAST_SEEN] = t
            if app_name[i] != 0:
                sub_i64[row, S_APP_NAME] = app_name[i]
            if app_owner[i] != 0:
                sub_i64[row, S_APP_OWNER] = app_owner[i]
            if tier[i] != 0:
                sub_i64[row, S_TIER] = tier[i]
            if key_type[i] != 0:
                sub_i64[row, S_KEY_TYPE] = key_type[i]
        sub_i64[row, S_REQ] += 1
        sub_i64[row, S_2XX] += is2
        sub_i64[row, S_3XX] += is3
        sub_i64[row, S_4XX] += is4
        sub_i64[row, S_5XX] += is5
        sub_i64[row, S_CLIENT_ERR] += client_err
        sub_i64[row, S_THROTTLED] += throttled
        sub_i64[row, S_AUTH_ERR] += is_authentication_code(ec)
        sub_i64[row, S_BACKEND_ERR] += is_backend_code(ec)
        if request_bytes[i] > 0:
            sub_i64[row, S_REQ_BYTES] += request_bytes[i]
        if response_bytes[i] > 0:
            sub_i64[row, S_RESP_BYTES] += response_bytes[i]
        sub_i64[row, S_LAT_SUM_US] += lat
        sub_i64[row, S_BLAT_SUM_US] += backend_latency[i]
        if ch < MAX_CHANNELS:
            sub_i64[row, S_CH_REQ + ch] += 1
            sub_i64[row, S_CH_MASK] |= np.int64(1) << ch
        sub_hist[row, lb] += 1
        gen = sub_i64[row, S_GEN]

        # ---- retry detector: a request within the gap after a failure on the same resource
        # (the same API when either record has no resource) ----
        is_retry = False
        ckey = np.int64(0)
        if res != 0 and (failure or t <= sub_i64[row, S_FAIL_MAX_END] + retry_gap):
            ckey = nonzero_key(np.int64(row_salt(row, gen) ^ np.uint64((res << 8) | (me & 255))))
        if res == 0:
            fs = sub_i64[row, S_FAIL_START]
            is_retry = fs > 0 and t >= fs and t <= sub_i64[row, S_FAIL_END] + retry_gap
        elif t <= sub_i64[row, S_FAIL_MAX_END] + retry_gap:  # else no failure is near enough
            e, found = cache_slot(retry_keys, ckey)
            if found:
                fs = retry_vals[e, 0]
                is_retry = t >= fs and t <= retry_vals[e, 1] + retry_gap
            if not is_retry:
                fs = sub_i64[row, S_FAIL_NORES_START]
                is_retry = fs > 0 and t >= fs and t <= sub_i64[row, S_FAIL_NORES_END] + retry_gap
        if failure:
            if t + lat > sub_i64[row, S_FAIL_MAX_END]:
                sub_i64[row, S_FAIL_MAX_END] = t + lat
            if t >= sub_i64[row, S_FAIL_START]:
                sub_i64[row, S_FAIL_START] = t
                sub_i64[row, S_FAIL_END] = t + lat
            if res == 0:
                if t >= sub_i64[row, S_FAIL_NORES_START]:
                    sub_i64[row, S_FAIL_NORES_START] = t
                    sub_i64[row, S_FAIL_NORES_END] = t + lat
            else:
                e, found = cache_slot(retry_keys, ckey)
                if not found:
                    e = cache_victim(retry_keys, retry_vals, e)
                    if retry_keys[e] != 0 and t - retry_vals[e, 1] <= retry_gap:
                        g[G_RETRY_EVICT] += 1
                    retry_keys[e] = ckey
                    retry_vals[e, 0] = t
                    retry_vals[e, 1] = t + lat
                elif t >= retry_vals[e, 0]:
                    retry_vals[e, 0] = t
                    retry_vals[e, 1] = t + lat

        # ---- repeat detector: a successful read identical to one within the gap ----
        is_read = (is2 or st == 304) and (me in (METHOD_GET, METHOD_HEAD))
        is_repeat = False
        if is_read:
            uh = uri_hash[i]
            if uh != 0:
                ident = row_salt(row, gen) ^ mix64(np.uint64(uh))
            else:
                ident = row_salt(row, gen) ^ np.uint64(
                    (res << 20) | ((me & 255) << 12) | (st & 4095)
                )
                if response_bytes[i] >= 0:
                    ident = combine(ident, response_bytes[i] + 1)
            rk = nonzero_key(np.int64(ident))
            e, found = cache_slot(repeat_keys, rk)
            if found:
                prev = repeat_vals[e, 0]
                d = t - prev if t >= prev else prev - t
                is_repeat = d <= red_gap
                if t > prev:
                    repeat_vals[e, 0] = t
            else:
                e = cache_victim(repeat_keys, repeat_vals, e)
                if repeat_keys[e] != 0 and t - repeat_vals[e, 0] <= red_gap:
                    g[G_RETRY_EVICT] += 1
                repeat_keys[e] = rk
                repeat_vals[e, 0] = t
        sub_i64[row, S_RETRIES] += is_retry
        sub_i64[row, S_REPEATS] += is_repeat

        # ---- windows ----
        k = slot_of(t, sw_slot, sub_i64[row, S_SW_CUR])
        advance_short(sub_i64, sub_sw, sub_rate, row, k)
        if k > sub_i64[row, S_SW_CUR] - SHORT_SLOTS:
            s = k % SHORT_SLOTS
            sub_sw[row, s, SW_REQ] += 1
            sub_sw[row, s, SW_CLIENT_ERR] += client_err
            sub_sw[row, s, SW_READS] += is_read
            sub_sw[row, s, SW_REPEATS] += is_repeat
            sub_sw[row, s, SW_THROTTLED] += throttled
            sub_i64[row, S_SW_SUM + SW_REQ] += 1
            sub_i64[row, S_SW_SUM + SW_CLIENT_ERR] += client_err
            sub_i64[row, S_SW_SUM + SW_READS] += is_read
            sub_i64[row, S_SW_SUM + SW_REPEATS] += is_repeat
            sub_i64[row, S_SW_SUM + SW_THROTTLED] += throttled
        else:
            g[G_LATE] += 1
        k = slot_of(t, rw_slot, sub_i64[row, S_RW_CUR])
        advance_retry(sub_i64, sub_rw, row, k)
        if k > sub_i64[row, S_RW_CUR] - RETRY_SLOTS:
            s = k % RETRY_SLOTS
            sub_rw[row, s, RW_REQ] += 1
            sub_rw[row, s, RW_RETRIES] += is_retry
            sub_i64[row, S_RW_SUM + RW_REQ] += 1
            sub_i64[row, S_RW_SUM + RW_RETRIES] += is_retry
        scur = sub_i64[row, S_HOUR_CUR]
        if hk > scur:
            if scur > 0 and growing_rule(
                sub_hour, row, scur, scur, g[G_OBS_START] // HOUR_US, params, scratch
            ):
                raise_class(
                    cls_first,
                    cls_last,
                    cls_evid,
                    row,
                    C_GROWING,
                    (scur + 1) * HOUR_US - 1,
                    scratch[0],
                    scratch[1],
                    scratch[2],
                    scratch[3],
                    params,
                    epi,
                    g,
                    0,
                )
            advance_hours(sub_hour, row, scur, hk)
            sub_i64[row, S_HOUR_CUR] = hk
            scur = hk
        if hk > scur - HOUR_SLOTS:
            sub_hour[row, hk % HOUR_SLOTS] += 1
        if ch < MAX_CHANNELS:
            k = t // DAY_US
            advance_days(sub_i64, sub_day, row, k)
            if k > sub_i64[row, S_DAY_CUR] - DAY_SLOTS:
                sub_day[row, k % DAY_SLOTS, ch] += 1
                sub_i64[row, S_DC_SUM + ch] += 1

        # ---- rules on the windows, at t ----
        rq = sub_i64[row, S_RW_SUM + RW_REQ]
        rr = sub_i64[row, S_RW_SUM + RW_RETRIES]
        if rr >= params[P_RETRY_MIN] and rr >= params[P_RETRY_SHARE] * rq:
            raise_class(
                cls_first,
                cls_last,
                cls_evid,
                row,
                C_RETRY_STORM,
                t,
                rr,
                rq,
                rr / rq,
                0.0,
                params,
                epi,
                g,
                0,
            )
        q = sub_i64[row, S_SW_SUM + SW_REQ]
        ce = sub_i64[row, S_SW_SUM + SW_CLIENT_ERR]
        if q >= params[P_ERR_MIN_REQ] and ce >= params[P_ERR_SHARE] * q:
            raise_class(
                cls_first,
                cls_last,
                cls_evid,
                row,
                C_ERROR_PRONE,
                t,
                ce,
                q,
                ce / q,
                0.0,
                params,
                epi,
                g,
                0,
            )
        reads = sub_i64[row, S_SW_SUM + SW_READS]
        reps = sub_i64[row, S_SW_SUM + SW_REPEATS]
        if q >= params[P_RED_MIN_REQ] and reads > 0 and reps >= params[P_RED_SHARE] * reads:
            raise_class(
                cls_first,
                cls_last,
                cls_evid,
                row,
                C_REDUNDANT,
                t,
                reps,
                reads,
                reps / reads,
                q,
                params,
                epi,
                g,
                0,
            )
        thr = sub_i64[row, S_SW_SUM + SW_THROTTLED]
        if thr >= params[P_THR_MIN]:
            raise_class(
                cls_first,
                cls_last,
                cls_evid,
                row,
                C_THROTTLE_HITTER,
                t,
                thr,
                q,
                thr / q,
                0.0,
                params,
                epi,
                g,
                0,
            )
        registered = np.int64(app_channel[ap]) if ap < len(app_channel) else np.int64(-1)
        mask = sub_i64[row, S_CH_MASK]
        single = (mask & (mask - 1)) == 0 and (registered < 0 or mask == np.int64(1) << registered)
        if (
            ch < MAX_CHANNELS
            and not single
            and wrong_channel_rule(sub_i64, row, registered, params, scratch)
        ):
            raise_class(
                cls_first,
                cls_last,
                cls_evid,
                row,
                C_WRONG_CHANNEL,
                t,
                scratch[0],
                scratch[1],
                scratch[2],
                scratch[3],
                params,
                epi,
                g,
                0,
            )
    return STOP_DONE, n


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
