"""Geometry of the state arrays: column numbers, ring sizes, histogram buckets, parameters.

Plain module-level integers: Numba treats them as compile-time constants inside the kernels.
Everything about where a figure lives in the arrays is here and nowhere else.
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------------------------------------
# Behaviour classes (bit numbers; also indices of the per-class arrays)
# ---------------------------------------------------------------------------------------------
C_GROWING: Final = 0
C_RETRY_STORM: Final = 1
C_ERROR_PRONE: Final = 2
C_REDUNDANT: Final = 3
C_WRONG_CHANNEL: Final = 4
C_THROTTLE_HITTER: Final = 5
N_WINDOWED_CLASSES: Final = 6  # classes raised by a windowed rule (held, with episodes)
WINDOWED_CLASS_NAMES: Final = (
    "growing",
    "retry_storm",
    "error_prone",
    "redundant",
    "wrong_channel",
    "throttle_hitter",
)
N_EVIDENCE: Final = 4  # figures kept per class at the last time its rule held

# ---------------------------------------------------------------------------------------------
# Rings (sliding windows made of slots; the slot width is a parameter)
# ---------------------------------------------------------------------------------------------
SHORT_SLOTS: Final = 60  # 1 h window of 1-minute slots: error_prone, redundant, throttle_hitter
SW_REQ: Final = 0  # requests
SW_CLIENT_ERR: Final = 1  # 4xx except 429
SW_READS: Final = 2  # successful (2xx/304) GET/HEAD
SW_REPEATS: Final = 3  # successful reads repeating an identical successful read
SW_THROTTLED: Final = 4  # throttled responses (900800-900899 or flagged)
N_SW: Final = 5

RETRY_SLOTS: Final = 60  # 5 min window of 5-second slots: retry_storm
RW_REQ: Final = 0
RW_RETRIES: Final = 1
N_RW: Final = 2

HOUR_SLOTS: Final = 336  # 14 days of hourly request counts: growing (7 days vs 7 before)
HALF_HOURS: Final = 168

DAY_SLOTS: Final = 7  # 7 days of daily request counts per channel: wrong_channel
MAX_CHANNELS: Final = 8

# ---------------------------------------------------------------------------------------------
# Latency histograms: base-2 exponential, OTLP scale 3, values in seconds
#   bucket b in 1..LAT_BUCKETS covers (2^(i/8), 2^((i+1)/8)] s, i = b - 1 + LAT_MIN_INDEX
#   bucket 0 counts latencies of 0 (unknown or below a microsecond): OTLP zero_count
#   values below the first bucket go to bucket 1, above the last to the last
# ---------------------------------------------------------------------------------------------
LAT_SCALE: Final = 3
LAT_MIN_INDEX: Final = -17 * 8  # 2^-17 s = 7.6 us
LAT_MAX_INDEX: Final = 12 * 8  # 2^12 s = 68 min (uint32 microseconds end at 71.6 min)
LAT_BUCKETS: Final = LAT_MAX_INDEX - LAT_MIN_INDEX  # 232
LAT_WIDTH: Final = LAT_BUCKETS + 1

# Per-minute request rate histogram (minutes with traffic), OTLP scale 2 over counts
RATE_SCALE: Final = 2
RATE_BUCKETS: Final = 84  # counts 1 .. 2^21 per minute

# ---------------------------------------------------------------------------------------------
# Subscription rows: sub_i64[row, S_*]
# ---------------------------------------------------------------------------------------------
# the fields touched by every event come first (4-5 cache lines), the rest after
S_GEN: Final = 0  # generation: +1 each time the row is (re)allocated
S_FIRST_SEEN: Final = 1  # us, 0 = never
S_LAST_SEEN: Final = 2
S_REQ: Final = 3  # cumulative counters from here
S_2XX: Final = 4
S_3XX: Final = 5
S_4XX: Final = 6
S_5XX: Final = 7
S_CLIENT_ERR: Final = 8  # 4xx except 429
S_THROTTLED: Final = 9
S_AUTH_ERR: Final = 10  # WSO2 900900-900999
S_BACKEND_ERR: Final = 11  # WSO2 101500-101599, 303001
S_REQ_BYTES: Final = 12
S_RESP_BYTES: Final = 13
S_LAT_SUM_US: Final = 14
S_BLAT_SUM_US: Final = 15
S_RETRIES: Final = 16  # cumulative retries / repeats seen by the detectors
S_REPEATS: Final = 17
S_SW_CUR: Final = 18  # current slot index of each ring
S_RW_CUR: Final = 19
S_HOUR_CUR: Final = 20
S_DAY_CUR: Final = 21
S_SW_SUM: Final = 22  # .. S_SW_SUM + N_SW - 1: running sums of the short window
S_RW_SUM: Final = S_SW_SUM + N_SW  # .. + N_RW - 1: running sums of the retry window
S_FAIL_MAX_END: Final = S_RW_SUM + N_RW  # latest end of any failure (retry pre-check)
S_CH_MASK: Final = S_FAIL_MAX_END + 1  # bit set of the channels the subscription ever used
S_APP_NAME: Final = S_CH_MASK + 1  # gid, last seen
S_APP_OWNER: Final = S_APP_NAME + 1
S_TIER: Final = S_APP_NAME + 2
S_KEY_TYPE: Final = S_APP_NAME + 3
S_CH_REQ: Final = S_KEY_TYPE + 1  # .. + MAX_CHANNELS - 1: requests per channel, all time
S_DC_SUM: Final = S_CH_REQ + MAX_CHANNELS  # .. + MAX_CHANNELS - 1: per channel, day window
S_KEY: Final = S_DC_SUM + MAX_CHANNELS  # (application gid << 32) | api row; 0 = free row
S_APP: Final = S_KEY + 1  # application id gid
S_API: Final = S_KEY + 2  # api row
S_FLAGS: Final = S_KEY + 3  # ROW_* bits
S_FAIL_START: Final = S_KEY + 4  # retry window of any failure (5xx/throttled): start, end
S_FAIL_END: Final = S_FAIL_START + 1
S_FAIL_NORES_START: Final = S_FAIL_START + 2  # same, failures whose record had no resource
S_FAIL_NORES_END: Final = S_FAIL_START + 3
S_MAX_RPM: Final = S_FAIL_START + 4  # highest requests in one minute
S_SW_MASK: Final = S_MAX_RPM + 1  # bit s: short-window slot s may be non-empty (else all 0)
S_RW_MASK: Final = S_MAX_RPM + 2  # the same for the retry window's slots
S_FIELDS: Final = S_MAX_RPM + 3

ROW_PINNED: Final = 1  # known from the inventory: never evicted

# ---------------------------------------------------------------------------------------------
# API rows: api_i64[row, A_*]
# ---------------------------------------------------------------------------------------------
A_KEY: Final = 0  # (api name gid << 32) | version gid
A_NAME: Final = 1
A_VERSION: Final = 2
A_CONTEXT: Final = 3
A_FLAGS: Final = 4
A_FIRST_SEEN: Final = 5
A_LAST_SEEN: Final = 6
A_REQ: Final = 7
A_2XX: Final = 8
A_3XX: Final = 9
A_4XX: Final = 10
A_5XX: Final = 11
A_THROTTLED: Final = 12
A_LAT_SUM_US: Final = 13
A_HOUR_CUR: Final = 14
A_NOAPP: Final = 15  # events without an application (unauthenticated)
A_FIELDS: Final = 16

# ---------------------------------------------------------------------------------------------
# Route rows (API x resource x method x status x WSO2 error code x channel x throttled), for
# http.server.request.duration and the per-API figures of the OTel export (vigie.export)
# ---------------------------------------------------------------------------------------------
R_KEY: Final = 0  # hash of the identity (never 0, not unique: _kernels.find_route checks)
R_API: Final = 1
R_RESOURCE: Final = 2
R_METHOD: Final = 3
R_STATUS: Final = 4
R_REQ: Final = 5
R_LAT_SUM_US: Final = 6
R_CHANNEL: Final = 7  # identity: channel index
R_ERROR_CODE: Final = 8  # identity: WSO2 error code (0 = none)
R_THROTTLED: Final = 9  # identity: 1 when the responses were throttled (flag or 900800-900899)
R_FIELDS: Final = 10

# ---------------------------------------------------------------------------------------------
# Globals: g[G_*]
# ---------------------------------------------------------------------------------------------
G_NOW: Final = 0  # latest event time seen (us)
G_OBS_START: Final = 1  # earliest event time seen (us), 0 = none yet
G_EVENTS: Final = 2  # events applied
G_SKIPPED_NO_API: Final = 3  # events without an API name (not applied to rows)
G_NO_APP: Final = 4  # events without an application (API rows only)
G_LATE: Final = 5  # events older than a window (counted all-time, not in windows)
G_ROUTE_OVERFLOW: Final = 6  # events whose route did not fit (counted on route 0)
G_EPISODES_OUT: Final = 7  # closed episodes written to the episode buffer
G_RETRY_EVICT: Final = 8  # detector cache replacements of a live entry; late failures forgotten
G_FIELDS: Final = 16

# Kernel stop reasons (returned with the index of the first event not applied)
STOP_DONE: Final = 0
STOP_SUB_FULL: Final = 1
STOP_API_FULL: Final = 2
STOP_EPISODES_FULL: Final = 3

# ---------------------------------------------------------------------------------------------
# Parameters: params[P_*] (float64), set from vigie.classify.Thresholds
# ---------------------------------------------------------------------------------------------
P_HOLD_US: Final = 0
P_SW_SLOT_US: Final = 1  # width of a short-window slot (60 s -> 1 h window)
P_RW_SLOT_US: Final = 2  # width of a retry-window slot (5 s -> 5 min window)
P_RETRY_GAP_US: Final = 3
P_RETRY_MIN: Final = 4
P_RETRY_SHARE: Final = 5
P_ERR_MIN_REQ: Final = 6
P_ERR_SHARE: Final = 7
P_RED_MIN_REQ: Final = 8
P_RED_SHARE: Final = 9
P_RED_GAP_US: Final = 10
P_THR_MIN: Final = 11
P_THR_LOOKBACK_US: Final = 12
P_GROW_RATIO: Final = 13
P_GROW_MIN_REQ: Final = 14
P_GROW_MIN_PREV_HOURS: Final = 15
P_WC_MIN_REQ: Final = 16
P_WC_MIN_SHARE: Final = 17
P_WC_DOMINANT_SHARE: Final = 18
P_WC_MINOR_SHARE: Final = 19
P_FIELDS: Final = 24

HOUR_US: Final = 3_600_000_000
DAY_US: Final = 86_400_000_000

# Detector caches: set-associative, WAYS entries per set, keyed by a 64-bit hash
CACHE_WAYS: Final = 4
