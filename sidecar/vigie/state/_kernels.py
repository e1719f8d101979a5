"""The batch kernel: ``apply_events`` folds a batch of events into the state arrays.

Nothing here allocates per event, touches Python objects or holds the GIL. The arrays are owned
and validated by ``vigie.state.engine.State``, the only caller (through ``_entry``, which
passes the groups flat across the Python boundary); their geometry is in ``layout``.
The pieces live beside it: hashing and buckets in ``primitives``, the row tables and detector
caches in ``_tables``, the rings in ``_windows``, the rules and episodes in ``_rules``. Every
kernel family has a slow, obvious twin in ``tests/support/naive.py`` that property tests
compare it with.

Time is event time in microseconds. The arrays travel in groups (tuples of arrays, one per row
family), each documented once in ``_groups``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vigie.state._groups import (
    ApiGroup,
    DetectorGroup,
    EventGroup,
    OutGroup,
    RouteGroup,
    SubGroup,
    group_kernel,
)
from vigie.state._rules import evaluate_growing, evaluate_rules
from vigie.state._tables import (
    AHEAD,
    CHUNK,
    DETECT_AHEAD,
    X_API,
    X_LAT,
    X_ROUTE,
    X_RW,
    X_SUB,
    X_SW,
    alloc_sub,
    api_key,
    cache_set,
    cache_slot,
    cache_victim,
    find_route,
    in_failure_window,
    init_api_row,
    init_sub_row,
    new_route_row,
    prefetch,
    remember_failure,
    resolve_chunk,
    route_key,
    sub_key,
    table_find,
    table_insert,
)
from vigie.state._windows import advance_days, advance_hours, advance_retry, advance_short
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
    A_LAST_SEEN,
    A_LAT_SUM_US,
    A_NOAPP,
    A_REQ,
    A_THROTTLED,
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
    HOUR_SLOTS,
    HOUR_US,
    MAX_CHANNELS,
    N_WINDOWED_CLASSES,
    P_RED_GAP_US,
    P_RETRY_GAP_US,
    R_LAT_SUM_US,
    R_REQ,
    RETRY_SLOTS,
    RW_REQ,
    RW_RETRIES,
    S_2XX,
    S_3XX,
    S_4XX,
    S_5XX,
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
    S_FIELDS,
    S_FIRST_SEEN,
    S_GEN,
    S_HOUR_CUR,
    S_KEY_TYPE,
    S_LAST_SEEN,
    S_LAT_SUM_US,
    S_REPEATS,
    S_REQ,
    S_REQ_BYTES,
    S_RESP_BYTES,
    S_RETRIES,
    S_RW_CUR,
    S_RW_MASK,
    S_RW_SUM,
    S_SW_CUR,
    S_SW_MASK,
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
from vigie.state.primitives import combine, mix64, nonzero_key, row_salt

METHOD_GET = 1
METHOD_HEAD = 2


@njit(cache=True, nogil=True, inline="always")
def is_successful_read(status: int, method: int) -> bool:
    """A successful (2xx, 304) GET or HEAD: what the repeat detector looks at."""
    return ((status >= 200 and status < 300) or status == 304) and (
        method in (METHOD_GET, METHOD_HEAD)
    )


@njit(cache=True, nogil=True, inline="always")
def read_key(
    row: int, gen: int, uri_hash: int, res: int, method: int, status: int, response_bytes: int
) -> int:
    """The repeat detector's key of a successful read by subscription row ``row`` (generation
    ``gen``): its URI hash, else its resource, method, status and response size."""
    if uri_hash != 0:
        ident = row_salt(row, gen) ^ mix64(np.uint64(uri_hash))
    else:
        ident = row_salt(row, gen) ^ np.uint64(
            (res << 20) | ((method & 255) << 12) | (status & 4095)
        )
        if response_bytes >= 0:
            ident = combine(ident, response_bytes + 1)
    return nonzero_key(np.int64(ident))


@njit(cache=True, nogil=True, inline="always")
def prefetch_sub(subs: SubGroup, row: int, x: np.ndarray, t: int) -> None:
    """Prefetch what the event resolved in ``x`` will touch of subscription row ``row``."""
    sub_i64, sub_sw, sub_rw, sub_hour, sub_day, sub_hist = subs[:6]
    for c in range(0, S_FIELDS, 8):
        prefetch(sub_i64, (row, c))
    prefetch(sub_i64, (row, S_FIELDS - 1))
    prefetch(sub_hist, (row, x[X_LAT]))
    prefetch(sub_sw, (row, x[X_SW] % SHORT_SLOTS, 0))
    prefetch(sub_rw, (row, x[X_RW] % RETRY_SLOTS, 0))
    prefetch(sub_hour, (row, (t // HOUR_US) % HOUR_SLOTS))
    prefetch(sub_day, (row, (t // DAY_US) % DAY_SLOTS, 0))


@group_kernel
def apply_events(
    events: EventGroup,
    start: int,
    subs: SubGroup,
    apis: ApiGroup,
    routes: RouteGroup,
    detectors: DetectorGroup,
    app_channel: np.ndarray,
    params: np.ndarray,
    out: OutGroup,
    resolved: np.ndarray,
) -> tuple[int, int]:
    """Apply events ``start..`` to the state, evaluating every windowed rule as it goes, a
    chunk at a time: its rows resolved (``resolve_chunk``), then its events applied in order
    (``apply_chunk``). ``resolved`` is the scratch of pass 1 (CHUNK, X_FIELDS).

    Returns (STOP_*, index of the first event not applied). The caller grows or evicts and
    calls again from that index: nothing of an event is applied before all its rows exist.
    """
    n = len(events[0])
    c0 = start
    while c0 < n:
        c1 = min(c0 + CHUNK, n)
        resolve_chunk(events, c0, c1, subs, apis, routes, params, resolved)
        stop, i = apply_chunk(
            events, c0, c1, subs, apis, routes, detectors, app_channel, params, out, resolved
        )
        if stop != STOP_DONE:
            return stop, i
        c0 = c1
    return STOP_DONE, n


@group_kernel
def apply_chunk(
    events: EventGroup,
    c0: int,
    c1: int,
    subs: SubGroup,
    apis: ApiGroup,
    routes: RouteGroup,
    detectors: DetectorGroup,
    app_channel: np.ndarray,
    params: np.ndarray,
    out: OutGroup,
    resolved: np.ndarray,
) -> tuple[int, int]:
    """Pass 2 over events ``c0..c1`` in order: every figure of every event, rows not resolved
    by pass 1 found or created here. Returns (STOP_*, index of the first event not applied)."""
    (
        ts,
        app,
        app_name,
        app_owner,
        api_name,
        api_version,
        api_context,
        resource,
        method,
        status,
        error_code,
        latency,
        backend_latency,
        request_bytes,
        response_bytes,
        key_type,
        tier,
        uri_hash,
        flags,
        channel,
    ) = events
    sub_i64, sub_sw, sub_rw, sub_hour, sub_day, sub_hist, sub_rate = subs[:7]
    cls = subs[7:10]
    sub_tkeys, sub_tvals, sub_free, sub_meta = subs[10:]
    api_i64, api_hour, api_hist = apis[:3]
    api_cls = apis[3:6]
    api_tkeys, api_tvals, api_meta = apis[6:]
    route_i64, route_hist = routes[:2]
    retry_keys, retry_vals, repeat_keys, repeat_vals = detectors
    g, epi = out[0], out[1]
    retry_gap = np.int64(params[P_RETRY_GAP_US])
    red_gap = np.int64(params[P_RED_GAP_US])
    epi_room = len(epi) - (N_WINDOWED_CLASSES + 1)
    # the global figures touched by every event, in locals (written back on every return)
    obs, now, applied = g[G_OBS_START], g[G_NOW], g[G_EVENTS]
    for i in range(c0, c1):
        if g[G_EPISODES_OUT] > epi_room:
            g[G_OBS_START], g[G_NOW], g[G_EVENTS] = obs, now, applied
            return STOP_EPISODES_FULL, i
        j = i + AHEAD
        if j < c1:
            ahead = resolved[j - c0]
            if ahead[X_SUB] >= 0:
                prefetch_sub(subs, ahead[X_SUB], ahead, np.int64(ts[j]))
        j = i + DETECT_AHEAD  # its row prefetched AHEAD - DETECT_AHEAD events ago: its read key
        if j < c1 and resolved[j - c0, X_SUB] >= 0:
            st_j = np.int64(status[j])
            me_j = np.int64(method[j])
            if is_successful_read(st_j, me_j):
                r = resolved[j - c0, X_SUB]
                rk = read_key(
                    r,
                    sub_i64[r, S_GEN],
                    uri_hash[j],
                    np.int64(resource[j]),
                    me_j,
                    st_j,
                    np.int64(response_bytes[j]),
                )
                base = cache_set(repeat_keys, rk)
                prefetch(repeat_keys, (base,))
                prefetch(repeat_vals, (base, 0))
        x = resolved[i - c0]
        t = np.int64(ts[i])
        a_name = np.int64(api_name[i])
        if a_name == 0:
            g[G_SKIPPED_NO_API] += 1
            continue

        # ---- rows: find or create everything before changing anything ----
        akey = api_key(a_name, api_version[i])
        arow = x[X_API]
        if arow < 0:
            arow = table_find(api_tkeys, api_tvals, akey)
        if arow < 0:
            if api_meta[1] >= api_i64.shape[0]:
                g[G_OBS_START], g[G_NOW], g[G_EVENTS] = obs, now, applied
                return STOP_API_FULL, i
            arow = api_meta[1]
            api_meta[1] += 1
            init_api_row(apis, arow, akey, a_name, np.int64(api_version[i]))
            table_insert(api_tkeys, api_tvals, akey, arow)
        ap = np.int64(app[i])
        srow = x[X_SUB]
        if ap != 0 and srow < 0:
            skey = sub_key(ap, arow)
            srow = table_find(sub_tkeys, sub_tvals, skey)
            if srow < 0:
                srow = alloc_sub(sub_i64, sub_free, sub_meta)
                if srow < 0:
                    g[G_OBS_START], g[G_NOW], g[G_EVENTS] = obs, now, applied
                    return STOP_SUB_FULL, i
                init_sub_row(subs, srow, skey, ap, arow)
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
        lb = x[X_LAT]

        if obs == 0 or t < obs:
            obs = t
        if t > now:
            now = t
        applied += 1

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
            evaluate_growing(api_hour, api_cls, arow, acur, obs // HOUR_US, params, out, 1)
            advance_hours(api_hour, arow, acur, hk)
            api_i64[arow, A_HOUR_CUR] = hk
            acur = hk
        if hk > acur - HOUR_SLOTS:
            api_hour[arow, hk % HOUR_SLOTS] += 1

        # ---- route row (API x resource x method x status x error code x channel x throttled) ----
        thr = np.int64(1) if throttled else np.int64(0)
        rrow = x[X_ROUTE]
        if rrow < 0:
            rkey = route_key(arow, res, me, st, ec, ch, thr)
            rrow = find_route(routes, rkey, arow, res, me, st, ec, ch, thr)
        if rrow < 0:
            rrow = new_route_row(routes, rkey, arow, res, me, st, ch, ec, thr)
            if rrow < 0:
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
            is_retry = in_failure_window(
                sub_i64[row, S_FAIL_START], sub_i64[row, S_FAIL_END], t, retry_gap
            )
        elif t <= sub_i64[row, S_FAIL_MAX_END] + retry_gap:  # else no failure is near enough
            e, found = cache_slot(retry_keys, ckey)
            if found:
                is_retry = in_failure_window(retry_vals[e, 0], retry_vals[e, 1], t, retry_gap)
            if not is_retry:
                is_retry = in_failure_window(
                    sub_i64[row, S_FAIL_NORES_START], sub_i64[row, S_FAIL_NORES_END], t, retry_gap
                )
        if failure:
            fe = t + lat
            if fe > sub_i64[row, S_FAIL_MAX_END]:
                sub_i64[row, S_FAIL_MAX_END] = fe
            ws, we, lost = remember_failure(
                sub_i64[row, S_FAIL_START], sub_i64[row, S_FAIL_END], t, fe, retry_gap
            )
            sub_i64[row, S_FAIL_START] = ws
            sub_i64[row, S_FAIL_END] = we
            g[G_RETRY_EVICT] += lost
            if res == 0:
                ws, we, lost = remember_failure(
                    sub_i64[row, S_FAIL_NORES_START],
                    sub_i64[row, S_FAIL_NORES_END],
                    t,
                    fe,
                    retry_gap,
                )
                sub_i64[row, S_FAIL_NORES_START] = ws
                sub_i64[row, S_FAIL_NORES_END] = we
            else:
                e, found = cache_slot(retry_keys, ckey)
                if not found:
                    e = cache_victim(retry_keys, retry_vals, e)
                    if retry_keys[e] != 0 and t - retry_vals[e, 1] <= retry_gap:
                        g[G_RETRY_EVICT] += 1
                    retry_keys[e] = ckey
                    retry_vals[e, 0] = 0
                ws, we, lost = remember_failure(
                    retry_vals[e, 0], retry_vals[e, 1], t, fe, retry_gap
                )
                retry_vals[e, 0] = ws
                retry_vals[e, 1] = we
            g[G_RETRY_EVICT] += lost

        # ---- repeat detector: a successful read identical to one within the gap ----
        is_read = is_successful_read(st, me)
        is_repeat = False
        if is_read:
            rk = read_key(row, gen, uri_hash[i], res, me, st, np.int64(response_bytes[i]))
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
        k = x[X_SW]
        advance_short(sub_i64, sub_sw, sub_rate, row, k)
        if k > sub_i64[row, S_SW_CUR] - SHORT_SLOTS:
            s = k % SHORT_SLOTS
            sub_i64[row, S_SW_MASK] |= np.int64(1) << s
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
        k = x[X_RW]
        advance_retry(sub_i64, sub_rw, row, k)
        if k > sub_i64[row, S_RW_CUR] - RETRY_SLOTS:
            s = k % RETRY_SLOTS
            sub_i64[row, S_RW_MASK] |= np.int64(1) << s
            sub_rw[row, s, RW_REQ] += 1
            sub_rw[row, s, RW_RETRIES] += is_retry
            sub_i64[row, S_RW_SUM + RW_REQ] += 1
            sub_i64[row, S_RW_SUM + RW_RETRIES] += is_retry
        scur = sub_i64[row, S_HOUR_CUR]
        if hk > scur:
            evaluate_growing(sub_hour, cls, row, scur, obs // HOUR_US, params, out, 0)
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
        registered = np.int64(app_channel[ap]) if ap < len(app_channel) else np.int64(-1)
        evaluate_rules(sub_i64, cls, row, t, registered, ch < MAX_CHANNELS, False, params, out)
    g[G_OBS_START], g[G_NOW], g[G_EVENTS] = obs, now, applied
    return STOP_DONE, c1
