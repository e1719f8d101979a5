"""What the series of every metric family share: the attribute values of OTel's semantic
conventions and of WSO2 (methods, error code families, outcomes), the map from the state's
latency columns to explicit buckets, and the options of a build. ``_builder`` builds the
points; ``_routes``, ``_subscriptions`` and ``_platform`` hold one family each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from vigie.export._points import AttrValue
from vigie.state import layout as L
from vigie.state.codes import error_family

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# OTel semantic conventions: the known HTTP methods, "_OTHER" for the rest
METHODS: Final = ("_OTHER", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "_OTHER")
OVERFLOW: Final = "_OTHER"
# semconv's advice for http.server.request.duration (seconds)
DEFAULT_BOUNDS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


def outcome(status: int, throttled: int, code: int) -> str:
    """wso2.outcome: throttled first, then 5xx (or no status but an error code), then 4xx."""
    if throttled:
        return "throttled"
    if status >= 500 or (status < 100 and code):
        return "server_error"
    if 400 <= status < 500:
        return "client_error"
    return "success"


def latency_bucket_uppers() -> F64:
    """Upper bound (seconds) of each latency column (column 0, latency 0, bounds 0)."""
    cols = np.arange(L.LAT_WIDTH, dtype=np.float64)
    up = np.exp2((cols + L.LAT_MIN_INDEX) / 2**L.LAT_SCALE)
    up[0] = 0.0
    return up


def explicit_map(bounds: Sequence[float]) -> I64:
    """Explicit bucket of each latency column: the one holding the column's upper bound (an
    exponential bucket straddling a bound is counted above it, at most one base-2 bucket,
    2^(1/8) = 9 %, too high)."""
    return np.searchsorted(np.asarray(bounds, dtype=np.float64), latency_bucket_uppers()).astype(
        np.int64
    )


@dataclass(frozen=True, slots=True)
class BuildOptions:
    histogram: str = "exponential"  # or "explicit"
    bounds: tuple[float, ...] = DEFAULT_BOUNDS
    top_k: int = 20
    delta: bool = False
    resource: Mapping[str, AttrValue] = field(default_factory=dict)
    gateway: str = ""
    channel: str = ""
    tenant: str = ""


__all__ = [
    "DEFAULT_BOUNDS",
    "F64",
    "I64",
    "METHODS",
    "OVERFLOW",
    "BuildOptions",
    "error_family",
    "explicit_map",
    "latency_bucket_uppers",
    "outcome",
]
