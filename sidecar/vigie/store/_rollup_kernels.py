"""Jitted kernel of the rollups: fold a batch of events into per-minute rows.

A row is one minute x API x version x resource x method x application x channel x HTTP status x
WSO2 error code. The kernel runs in the data writer's thread (never on the ingest path) and
releases the GIL, so the sidecar's ingest thread keeps the other core.

Outcomes (mutually exclusive, they add up to ``requests``):
  throttled      WSO2 throttle codes 900800-900899, the handler's throttled flag, or HTTP 429
  server_errors  5xx, and responses without an HTTP status (the request did not complete)
  client_errors  other 4xx
  successes      1xx, 2xx, 3xx
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numba import njit

from vigie.state._kernels import combine, latency_bucket, mix64, nonzero_key

# key fields of a minute row: rkeys[row, K_*]
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

MINUTE_US: Final = 60_000_000

STOP_DONE: Final = 0
STOP_FULL: Final = 1


@njit(cache=True, nogil=True, inline="always")
def outcome(status: int, error_code: int, flags: int) -> int:
    """The measure column an event counts in (M_SUCCESSES .. M_THROTTLED)."""
    if (flags & 1) != 0 or (error_code >= 900800 and error_code <= 900899) or status == 429:
        return M_THROTTLED
    if status >= 500 or status < 100:
        return M_SERVER_ERRORS
    if status >= 400:
        return M_CLIENT_ERRORS
    return M_SUCCESSES


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
    tkeys: np.ndarray,
    tvals: np.ndarray,
    rkeys: np.ndarray,
    rvals: np.ndarray,
    rhist: np.ndarray,
    meta: np.ndarray,
) -> tuple[int, int]:
    """Fold events ``start..`` into the rows; return (STOP_*, first event not folded).

    ``meta``: [rows in use, events without an API (skipped), oldest minute, newest minute].
    STOP_FULL asks the caller to grow the arrays and call again from the returned index.
    """
    n = len(ts)
    mask = np.int64(len(tkeys) - 1)
    cap = rkeys.shape[0]
    key = np.zeros(N_KEYS, dtype=np.int64)
    for i in range(start, n):
        if api_name[i] == 0:
            meta[1] += 1
            continue
        t = np.int64(ts[i])
        key[K_MINUTE] = t - t % MINUTE_US
        key[K_API] = api_name[i]
        key[K_VERSION] = api_version[i]
        key[K_RESOURCE] = resource[i]
        key[K_METHOD] = method[i]
        key[K_APP] = app[i]
        key[K_APP_NAME] = app_name[i]
        key[K_CHANNEL] = channel[i]
        key[K_STATUS] = status[i]
        key[K_ERROR] = error_code[i]
        h = mix64(np.uint64(key[0]))
        for f in range(1, N_KEYS):
            h = combine(h, key[f])
        hk = nonzero_key(h)
        slot = np.int64(mix64(np.uint64(hk))) & mask
        row = np.int64(-1)
        while True:
            k = tkeys[slot]
            if k == 0:
                break
            if k == hk:
                r = tvals[slot]
                same = True
                for f in range(N_KEYS):
                    if rkeys[r, f] != key[f]:
                        same = False
                        break
                if same:
                    row = r
                    break
            slot = (slot + 1) & mask
        if row < 0:
            if meta[0] >= cap:
                return STOP_FULL, i
            row = meta[0]
            meta[0] += 1
            for f in range(N_KEYS):
                rkeys[row, f] = key[f]
            tkeys[slot] = hk
            tvals[slot] = row
            if meta[2] == 0 or key[K_MINUTE] < meta[2]:
                meta[2] = key[K_MINUTE]
            if key[K_MINUTE] > meta[3]:
                meta[3] = key[K_MINUTE]
        rvals[row, M_REQUESTS] += 1
        rvals[row, outcome(np.int64(status[i]), np.int64(error_code[i]), np.int64(flags[i]))] += 1
        lat = np.int64(latency[i])
        rvals[row, M_LATENCY_SUM_US] += lat
        rvals[row, M_BACKEND_LATENCY_SUM_US] += backend_latency[i]
        if request_bytes[i] > 0:
            rvals[row, M_REQUEST_BYTES] += request_bytes[i]
        if response_bytes[i] > 0:
            rvals[row, M_RESPONSE_BYTES] += response_bytes[i]
        rhist[row, latency_bucket(lat)] += 1
    return STOP_DONE, n


@njit(cache=True, nogil=True)
def rebuild_table(tkeys: np.ndarray, tvals: np.ndarray, rkeys: np.ndarray, n: int) -> None:
    """Refill the hash table from rows 0..n-1 (after the arrays grew)."""
    mask = np.int64(len(tkeys) - 1)
    tkeys[:] = 0
    tvals[:] = -1
    for row in range(n):
        h = mix64(np.uint64(rkeys[row, 0]))
        for f in range(1, N_KEYS):
            h = combine(h, rkeys[row, f])
        hk = nonzero_key(h)
        slot = np.int64(mix64(np.uint64(hk))) & mask
        while tkeys[slot] != 0:
            slot = (slot + 1) & mask
        tkeys[slot] = hk
        tvals[slot] = row
