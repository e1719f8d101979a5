"""The groups of arrays the state kernels take: one tuple per row family, documented here once.

The kernels unpack a group by position; ``State`` builds each group from its attributes by the
names below (``attrgetter``), so the order is written once, here. Shapes are per row
(``rows`` = the family's capacity) unless said otherwise; column numbers are in ``layout``.

Time is event time in microseconds. The arrays travel in groups (tuples), in this order:

``events`` (``EVENT_COLUMNS``, then the channel; one entry per event)
    ts, application id, application name, application owner, API name, API version, API
    context, resource template, HTTP method, HTTP status, WSO2 error code, latency (us),
    backend latency (us), request bytes, response bytes, key type, subscription tier, URI hash,
    flags, channel index: the columns of ``vigie.wire.columns.Events``.
``subs`` (``SUB_GROUP``: subscription rows, application x API)
    sub_i64 (rows, S_FIELDS) figures ``S_*``; sub_sw (rows, SHORT_SLOTS, N_SW) and sub_rw
    (rows, RETRY_SLOTS, N_RW) the short and retry rings; sub_hour (rows, HOUR_SLOTS) and
    sub_day (rows, DAY_SLOTS, MAX_CHANNELS) the hour and day rings; sub_hist (rows, LAT_WIDTH)
    latency histogram; sub_rate (rows, RATE_BUCKETS) per-minute rate histogram; cls_first,
    cls_last (rows, N_WINDOWED_CLASSES) and cls_evid (rows, N_WINDOWED_CLASSES, N_EVIDENCE) the
    episodes (``_rules``); sub_tkeys, sub_tvals the row table (key -> row); sub_free the free
    rows, sub_meta = [free rows, high water].
``apis`` (``API_GROUP``: API rows, name x version)
    api_i64 (rows, A_FIELDS) figures ``A_*``; api_hour the hour ring; api_hist the latency
    histogram; api_cls_first, api_cls_last, api_cls_evid the growing episode (one class);
    api_tkeys, api_tvals the row table; api_meta = [unused, rows in use].
``routes`` (``ROUTE_GROUP``: route rows, API x resource x method x status x error code x
channel x throttled)
    route_i64 (rows, R_FIELDS) figures ``R_*``; route_hist the latency histogram; route_tkeys,
    route_tvals the row table; route_meta = [unused, rows in use] (row 0 gathers the overflow).
``detectors`` (``DETECTOR_GROUP``)
    retry_keys, retry_vals (entries, 2) = (start, end) of the retry window per resource
    (``_tables.remember_failure``);
    repeat_keys, repeat_vals (entries, 1) = time of the last identical successful read.
``app_channel``
    registered channel per application id (-1: none).
``params``
    the parameter vector ``P_*`` (float64) of ``vigie.state.thresholds.Thresholds``.
``out`` (``OUT_GROUP``)
    g (G_FIELDS) the global counters ``G_*``; epi (buffer, 5) the closed episodes; scratch
    (N_WINDOWED_CLASSES, N_EVIDENCE) the evidence of the rules being evaluated.
``resolved``
    (CHUNK, X_FIELDS) the rows and slots of a chunk of events found by the kernel's first pass
    (``_kernels.resolve_chunk``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeAlias, TypeVar, cast

import numpy as np
from numba import njit

# the groups, by the names of the columns (events) and of the ``State`` arrays (the others)
EVENT_COLUMNS: Final = (
    "event_time_us",
    "application_id",
    "application_name",
    "application_owner",
    "api_name",
    "api_version",
    "api_context",
    "resource_template",
    "http_method",
    "http_status",
    "error_code",
    "latency_us",
    "backend_latency_us",
    "request_bytes",
    "response_bytes",
    "key_type",
    "subscription_tier",
    "uri_hash",
    "flags",
)
SUB_GROUP: Final = (
    "sub_i64",
    "sub_sw",
    "sub_rw",
    "sub_hour",
    "sub_day",
    "sub_hist",
    "sub_rate",
    "cls_first",
    "cls_last",
    "cls_evid",
    "sub_tkeys",
    "sub_tvals",
    "sub_free",
    "sub_meta",
)
API_GROUP: Final = (
    "api_i64",
    "api_hour",
    "api_hist",
    "api_cls_first",
    "api_cls_last",
    "api_cls_evid",
    "api_tkeys",
    "api_tvals",
    "api_meta",
)
ROUTE_GROUP: Final = ("route_i64", "route_hist", "route_tkeys", "route_tvals", "route_meta")
DETECTOR_GROUP: Final = ("retry_keys", "retry_vals", "repeat_keys", "repeat_vals")
OUT_GROUP: Final = ("g", "_epi", "_scratch")

EventGroup: TypeAlias = tuple[np.ndarray, ...]
SubGroup: TypeAlias = tuple[np.ndarray, ...]
ApiGroup: TypeAlias = tuple[np.ndarray, ...]
RouteGroup: TypeAlias = tuple[np.ndarray, ...]
DetectorGroup: TypeAlias = tuple[np.ndarray, ...]
OutGroup: TypeAlias = tuple[np.ndarray, np.ndarray, np.ndarray]

_F = TypeVar("_F", bound=Callable[..., Any])


def group_kernel(f: _F) -> _F:
    """``@njit(cache=True, nogil=True)`` without Numba's reference counting (its private option
    ``_nrt=False``), for the kernels that unpack the groups: it would count every array in and
    out of a group on each call (see ``_entry``). Such a kernel cannot allocate (Numba refuses
    to compile it)."""
    options: dict[str, Any] = {"cache": True, "nogil": True, "_nrt": False}
    return cast(_F, njit(**options)(f))
