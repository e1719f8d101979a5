"""Jitted kernels of the rollups: fold events into per-minute rows, and rows into coarser rows.

A minute row is one minute x API x version x resource x method x application x channel x HTTP
status x WSO2 error code. ``accumulate`` runs in the data writer's thread (never on the ingest
path) and releases the GIL, so the sidecar's ingest thread keeps the other core.

Memory per event is what makes this fast: a row's key is packed in four int64 words, and
latency histograms are *sparse*: one open-addressing table of (row, bucket) -> count holds the
rows' non-empty buckets (a minute row sees a few requests, so a dense 233-bucket histogram
per row would be almost all zeros). Events come in time order, so only the rows of the last
minutes need to be found again: ``evict`` takes the older rows out of the hash tables (their
rows and histogram entries stay, for the drain), which keeps the tables small enough to stay
in the processor's caches however long the rows stay open. An event later than that makes a
second row with the same key; the drain then folds the rows (``fold``).

Outcomes (mutually exclusive, they add up to ``requests``):
  throttled      throttled as the state reads it (``vigie.state.codes.is_throttled``): a WSO2
                 throttling code 900800-900899 or vigie's throttled flag
  server_errors  5xx, and responses without an HTTP status (the request did not complete)
  client_errors  4xx (a bare 429, without a throttling code or the flag, included)
  successes      1xx, 2xx, 3xx
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numba import njit

from vigie.state.codes import is_throttled
from vigie.state.primitives import combine, latency_bucket, mix64, nonzero_key

# key fields of an unpacked minute row: keys[row, K_*]
K_MINUTE: Final = 0  # start of the minute, us
K_API: Final = 1  # gid
K_VERSION: Final = 2
K_RESOURCE: Final = 3
K_METHOD: Final = 4  # HttpMethod number
K_APP: Final = 5  # application id gid
K_APP_NAME: Final = 6
K_CHANNEL: Final = 7  # channel index
K_STATUS: Final = 8
K_ERROR: Final = 9
N_KEYS: Final = 10

# a minute row's key packed in N_WORDS int64 (every field keeps its full int32/uint16/uint8):
#   w0 = minute number (t // MINUTE_US) << 32 | status << 16 | method << 8 | channel
#   w1 = api << 32 | version         w2 = resource << 32 | application id
#   w3 = application name << 32 | WSO2 error code
N_WORDS: Final = 4

# measures: rvals[row, M_*]
M_REQUESTS: Final = 0
M_SUCCESSES: Final = 1
M_CLIENT_ERRORS: Final = 2
M_SERVER_ERRORS: Final = 3
M_THROTTLED: Final = 4
M_LATENCY_SUM_US: Final = 5
M_BACKEND_LATENCY_SUM_US: Final = 6
M_REQUEST_BYTES: Final = 7
M_RESPONSE_BYTES: Final = 8
N_MEASURES: Final = 9
# then a row's first two latency buckets, inline (most minute rows have no more): bucket + 1
# (0 = none) and count; further buckets go to the histogram table
V_B0: Final = 9
V_C0: Final = 10
V_B1: Final = 11
V_C1: Final = 12
N_VALS: Final = 13

MINUTE_US: Final = 60_000_000
HIST_SHIFT: Final = 8  # a histogram entry's key: row << HIST_SHIFT | bucket (buckets < 256)

# meta[META_*] of the accumulator
META_ROWS: Final = 0  # rows in use
META_SKIPPED: Final = 1  # events without an API (skipped)
META_OLDEST: Final = 2  # oldest minute (us), 0 = none yet
META_NEWEST: Final = 3  # newest minute (us)
META_ENTRIES: Final = 4  # histogram entries in the histogram table
META_ACTIVE: Final = 5  # rows in the row table
META_CLOSED: Final = 6  # histogram entries of evicted rows (in ``closed``)
META_HORIZON: Final = 7  # rows of minutes before this (us) were evicted
META_SCAN_FROM: Final = 8  # rows before this index are all evicted
META_DUPES: Final = 9  # 1: a row was made for an evicted minute (the drain folds)
N_META: Final = 10

EVICT_SLACK_US: Final = 2 * 60_000_000  # rows of the newest minute and the two before stay

STOP_DONE: Final = 0
STOP_FULL: Final = 1

_LOW32: Final = 0xFFFFFFFF


@njit(cache=True, nogil=True, inline="always")
def outcome(status: int, error_code: int, flags: int) -> int:
    """The measure column an event counts in (M_SUCCESSES .. M_THROTTLED)."""
    if is_throttled(error_code, flags):
        return M_THROTTLED
    if status >= 500 or status < 100:
        return M_SERVER_ERRORS
    if status >= 400:
        return M_CLIENT_ERRORS
    return M_SUCCESSES


@njit(cache=True, nogil=True, inline="always")
def _pair(hi: int, lo: int) -> int:
    return (np.int64(hi) << 32) | (np.int64(lo) & _LOW32)


@njit(cache=True, nogil=True, inline="always")
def _words_key(w0: int, w1: int, w2: int, w3: int) -> int:
    return nonzero_key(combine(combine(combine(mix64(np.uint64(w0)), w1), w2), w3))


@njit(cache=True, nogil=True, inline="always")
def _hist_add(htab: np.ndarray, key: int, count: int, meta: np.ndarray) -> None:
    """Add ``count`` to entry ``key`` (row << HIST_SHIFT | bucket) of a histogram table:
    htab[slot] = (key + 1, count); a new entry counts in meta[META_ENTRIES]."""
    mask = np.int64(len(htab) - 1)
    k = np.int64(key) + 1
    slot = np.int64(mix64(np.uint64(k))) & mask
    while True:
        cur = htab[slot, 0]
        if cur == k:
            htab[slot, 1] += count
            return
        if cur == 0:
            htab[slot, 0] = k
            htab[slot, 1] = count
            meta[META_ENTRIES] += 1
            return
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def accumulate(
    ts: np.ndarray,
    api_name: np.ndarray,
    api_version: np.ndarray,
    resource: np.ndarray,
    method: np.ndarray,
    app: np.ndarray,
    app_name: np.ndarray,
    channel: np.ndarray,
    status: np.ndarray,
    error_code: np.ndarray,
    flags: np.ndarray,
    latency: np.ndarray,
    backend_latency: np.ndarray,
    request_bytes: np.ndarray,
    response_bytes: np.ndarray,
    start: int,
    rtab: np.ndarray,
    words: np.ndarray,
    rvals: np.ndarray,
    htab: np.ndarray,
    meta: np.ndarray,
) -> tuple[int, int]:
    """Fold events ``start..`` into the rows; return (STOP_*, first event not folded).

    ``rtab[slot] = (hash key, row)`` finds a row by its packed key ``words[row]``; a row's
    first two latency buckets are counted in ``rvals[row, V_*]``, others in ``htab``
    (``_hist_add``). STOP_FULL asks the caller to grow the rows, or to evict/grow the tables
    (half full), and to call again from the index.
    """
    n = len(ts)
    rmask = np.int64(len(rtab) - 1)
    cap = words.shape[0]
    rlimit = len(rtab) // 2
    hlimit = len(htab) // 2
    for i in range(start, n):
        if api_name[i] == 0:
            meta[META_SKIPPED] += 1
            continue
        if meta[META_ROWS] >= cap or meta[META_ACTIVE] >= rlimit or meta[META_ENTRIES] >= hlimit:
            return STOP_FULL, i
        t = np.int64(ts[i])
        minute = t // MINUTE_US
        st = np.int64(status[i])
        ec = np.int64(error_code[i])
        w0 = (minute << 32) | (st << 16) | (np.int64(method[i]) << 8) | np.int64(channel[i])
        w1 = _pair(api_name[i], api_version[i])
        w2 = _pair(resource[i], app[i])
        w3 = _pair(app_name[i], ec)
        hk = _words_key(w0, w1, w2, w3)
        slot = hk & rmask
        row = np.int64(-1)
        while True:
            k = rtab[slot, 0]
            if k == 0:
                break
            if k == hk:
                r = rtab[slot, 1]
                if (
                    words[r, 0] == w0
                    and words[r, 1] == w1
                    and words[r, 2] == w2
                    and words[r, 3] == w3
                ):
                    row = r
                    break
            slot = (slot + 1) & rmask
        if row < 0:
            row = meta[META_ROWS]
            meta[META_ROWS] += 1
            words[row, 0] = w0
            words[row, 1] = w1
            words[row, 2] = w2
            words[row, 3] = w3
            rtab[slot, 0] = hk
            rtab[slot, 1] = row
            meta[META_ACTIVE] += 1
            m0 = minute * MINUTE_US
            if m0 < meta[META_HORIZON]:
                meta[META_DUPES] = 1  # its key may have an evicted row too
            if meta[META_OLDEST] == 0 or m0 < meta[META_OLDEST]:
                meta[META_OLDEST] = m0
            if m0 > meta[META_NEWEST]:
                meta[META_NEWEST] = m0
        rvals[row, M_REQUESTS] += 1
        rvals[row, outcome(st, ec, np.int64(flags[i]))] += 1
        lat = np.int64(latency[i])
        rvals[row, M_LATENCY_SUM_US] += lat
        rvals[row, M_BACKEND_LATENCY_SUM_US] += backend_latency[i]
        if request_bytes[i] > 0:
            rvals[row, M_REQUEST_BYTES] += request_bytes[i]
        if response_bytes[i] > 0:
            rvals[row, M_RESPONSE_BYTES] += response_bytes[i]
        b = latency_bucket(lat) + 1
        if rvals[row, V_B0] == b:
            rvals[row, V_C0] += 1
        elif rvals[row, V_B0] == 0:
            rvals[row, V_B0] = b
            rvals[row, V_C0] = 1
        elif rvals[row, V_B1] == b:
            rvals[row, V_C1] += 1
        elif rvals[row, V_B1] == 0:
            rvals[row, V_B1] = b
            rvals[row, V_C1] = 1
        else:
            _hist_add(htab, (row << HIST_SHIFT) | (b - 1), 1, meta)
    return STOP_DONE, n


@njit(cache=True, nogil=True, inline="always")
def _minute_us(words: np.ndarray, row: int) -> int:
    return (words[row, 0] >> 32) * MINUTE_US


@njit(cache=True, nogil=True)
def count_active(
    words: np.ndarray, n: int, htab: np.ndarray, meta: np.ndarray, horizon: int
) -> tuple[int, int]:
    """(rows, histogram entries) that stay in the tables if rows before ``horizon`` go."""
    rows = 0
    for r in range(meta[META_SCAN_FROM], n):
        if _minute_us(words, r) >= horizon:
            rows += 1
    entries = 0
    for s in range(len(htab)):
        k = htab[s, 0]
        if k != 0 and _minute_us(words, (k - 1) >> HIST_SHIFT) >= horizon:
            entries += 1
    return rows, entries


@njit(cache=True, nogil=True)
def evict(
    words: np.ndarray,
    n: int,
    horizon: int,
    rtab: np.ndarray,
    htab: np.ndarray,
    new_htab: np.ndarray,
    closed: np.ndarray,
    meta: np.ndarray,
) -> None:
    """Refill ``rtab`` (cleared here) with the rows of minutes from ``horizon`` on, and move
    ``htab``'s entries into ``new_htab`` (empty), those of older rows into ``closed``."""
    rmask = np.int64(len(rtab) - 1)
    rtab[:] = 0
    first = n
    active = 0
    for r in range(meta[META_SCAN_FROM], n):
        if _minute_us(words, r) < horizon:
            continue
        if first == n:
            first = r
        hk = _words_key(words[r, 0], words[r, 1], words[r, 2], words[r, 3])
        slot = hk & rmask
        while rtab[slot, 0] != 0:
            slot = (slot + 1) & rmask
        rtab[slot, 0] = hk
        rtab[slot, 1] = r
        active += 1
    nc = meta[META_CLOSED]
    kept = np.zeros(N_META, dtype=np.int64)
    for s in range(len(htab)):
        k = htab[s, 0]
        if k == 0:
            continue
        if _minute_us(words, (k - 1) >> HIST_SHIFT) >= horizon:
            _hist_add(new_htab, k - 1, htab[s, 1], kept)
        else:
            closed[nc, 0] = k - 1
            closed[nc, 1] = htab[s, 1]
            nc += 1
    meta[META_ACTIVE] = active
    meta[META_ENTRIES] = kept[META_ENTRIES]
    meta[META_CLOSED] = nc
    meta[META_SCAN_FROM] = first
    meta[META_HORIZON] = horizon


@njit(cache=True, nogil=True)
def unpack(words: np.ndarray, n: int, keys: np.ndarray) -> None:
    """The packed keys of rows 0..n-1 as N_KEYS columns (keys[row, K_*])."""
    for r in range(n):
        w0, w1, w2, w3 = words[r, 0], words[r, 1], words[r, 2], words[r, 3]
        keys[r, K_MINUTE] = (w0 >> 32) * MINUTE_US
        keys[r, K_STATUS] = (w0 >> 16) & 0xFFFF
        keys[r, K_METHOD] = (w0 >> 8) & 0xFF
        keys[r, K_CHANNEL] = w0 & 0xFF
        keys[r, K_API] = w1 >> 32
        keys[r, K_VERSION] = np.int32(w1 & _LOW32)
        keys[r, K_RESOURCE] = w2 >> 32
        keys[r, K_APP] = np.int32(w2 & _LOW32)
        keys[r, K_APP_NAME] = w3 >> 32
        keys[r, K_ERROR] = np.int32(w3 & _LOW32)


@njit(cache=True, nogil=True)
def hist_csr(
    htab: np.ndarray, closed: np.ndarray, n_closed: int, rvals: np.ndarray, n_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The histograms of rows 0..n_rows-1 as CSR: row r has buckets idx[off[r]:off[r+1]]
    (ascending) with counts cnt[...]. They are held in a histogram table, in
    ``closed[:n_closed]`` (``(key, count)``, key = row << HIST_SHIFT | bucket) and inline in
    ``rvals[row, V_*]`` (when ``rvals`` has those columns)."""
    inline = rvals.shape[1] == N_VALS
    off = np.zeros(n_rows + 1, dtype=np.int64)
    if inline:
        for r in range(n_rows):
            off[r + 1] = (rvals[r, V_B0] != 0) + (rvals[r, V_B1] != 0)
    for s in range(len(htab)):
        if htab[s, 0] != 0:
            off[((htab[s, 0] - 1) >> HIST_SHIFT) + 1] += 1
    for s in range(n_closed):
        off[(closed[s, 0] >> HIST_SHIFT) + 1] += 1
    for r in range(n_rows):
        off[r + 1] += off[r]
    total = off[n_rows]
    fill = off[:-1].copy()
    idx = np.empty(total, dtype=np.int16)
    cnt = np.empty(total, dtype=np.int64)
    for s in range(len(htab) + n_closed):
        if s < len(htab):
            k, c = htab[s, 0] - 1, htab[s, 1]
            if k < 0:
                continue
        else:
            k, c = closed[s - len(htab), 0], closed[s - len(htab), 1]
        r = k >> HIST_SHIFT
        p = fill[r]
        fill[r] += 1
        idx[p] = k & ((1 << HIST_SHIFT) - 1)
        cnt[p] = c
    if inline:
        for r in range(n_rows):
            for vb in (V_B0, V_B1):
                if rvals[r, vb] != 0:
                    p = fill[r]
                    fill[r] += 1
                    idx[p] = rvals[r, vb] - 1
                    cnt[p] = rvals[r, vb + 1]
    for r in range(n_rows):  # a row holds a few buckets: insertion sort
        for p in range(off[r] + 1, off[r + 1]):
            b, c = idx[p], cnt[p]
            q = p - 1
            while q >= off[r] and idx[q] > b:
                idx[q + 1] = idx[q]
                cnt[q + 1] = cnt[q]
                q -= 1
            idx[q + 1] = b
            cnt[q + 1] = c
    return off, idx, cnt


@njit(cache=True, nogil=True)
def _table_size(n: int) -> int:
    size = 16
    while size < 2 * n:
        size *= 2
    return size


@njit(cache=True, nogil=True)
def fold(
    keys: np.ndarray,
    vals: np.ndarray,
    off: np.ndarray,
    idx: np.ndarray,
    cnt: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows with equal keys as one: (group keys, summed measures, CSR histograms, group of each
    row). Groups come in the order of their first row."""
    n, k = keys.shape
    tab = np.zeros((_table_size(n), 2), dtype=np.int64)
    mask = np.int64(len(tab) - 1)
    group = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    g = 0
    for r in range(n):
        h = mix64(np.uint64(keys[r, 0]))
        for f in range(1, k):
            h = combine(h, keys[r, f])
        hk = nonzero_key(h)
        slot = np.int64(mix64(np.uint64(hk))) & mask
        found = np.int64(-1)
        while True:
            sk = tab[slot, 0]
            if sk == 0:
                break
            if sk == hk:
                cand = tab[slot, 1]
                fr = first[cand]
                same = True
                for f in range(k):
                    if keys[fr, f] != keys[r, f]:
                        same = False
                        break
                if same:
                    found = cand
                    break
            slot = (slot + 1) & mask
        if found < 0:
            found = g
            first[g] = r
            g += 1
            tab[slot, 0] = hk
            tab[slot, 1] = found
        group[r] = found
    gkeys = np.empty((g, k), dtype=np.int64)
    gvals = np.zeros((g, vals.shape[1]), dtype=np.int64)
    for j in range(g):
        gkeys[j] = keys[first[j]]
    for r in range(n):
        gvals[group[r]] += vals[r]
    htab = np.zeros((_table_size(len(idx)), 2), dtype=np.int64)
    meta = np.zeros(N_META, dtype=np.int64)
    for r in range(n):
        base = group[r] << HIST_SHIFT
        for p in range(off[r], off[r + 1]):
            _hist_add(htab, base | np.int64(idx[p]), cnt[p], meta)
    goff, gidx, gcnt = hist_csr(htab, np.zeros((0, 2), dtype=np.int64), 0, gvals, g)
    return gkeys, gvals, goff, gidx, gcnt, group
