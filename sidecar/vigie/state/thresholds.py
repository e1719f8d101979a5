"""The behaviour classes' thresholds: one typed object, each field documented, validated.

Defaults are DESIGN.md's rules. Window lengths are fixed when the state is created (they shape
the rings); the other thresholds can change at run time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vigie.errors import ConfigError
from vigie.state import layout as L

SECOND_US: Final = 1_000_000
CLASS_NAMES: Final = (
    "growing",
    "retry_storm",
    "error_prone",
    "redundant",
    "dormant",
    "wrong_channel",
    "throttle_hitter",
)
API_CLASS_NAMES: Final = ("retired", "growing")
# judged against the hour-of-week baselines (vigie.state._baselines), held in their own arrays
HEALTH_CLASS_NAMES: Final = ("traffic_anomaly",)
API_HEALTH_CLASS_NAMES: Final = ("degraded", "backend_down", "traffic_anomaly")
# per client IP, application key and API, in its own table (vigie.state._security)
SECURITY_CLASS_NAMES: Final = ("auth_failing",)


def _f(
    default: float,
    doc: str,
    *,
    minimum: float = 0.0,
    maximum: float | None = None,
    window: bool = False,
) -> Any:
    return field(
        default=default,
        metadata={"doc": doc, "min": minimum, "max": maximum, "window": window},
    )


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every threshold of DESIGN.md's behaviour classes (times in seconds)."""

    hold_seconds: float = _f(86_400, "a windowed class stays this long after its rule went quiet")
    # retry_storm
    retry_window_seconds: float = _f(
        300, "retry_storm window (60 slots)", minimum=60, maximum=3600, window=True
    )
    retry_gap_seconds: float = _f(
        2, "a retry comes at most this long after a 5xx/throttled response"
    )
    retry_min_retries: float = _f(30, "retry_storm needs at least this many retries in the window")
    retry_min_share: float = _f(
        0.5, "... and retries at least this share of the requests", maximum=1
    )
    # short window shared by error_prone, redundant, throttle_hitter
    short_window_seconds: float = _f(
        3600,
        "error_prone / redundant / throttle_hitter window (60 slots)",
        minimum=60,
        maximum=86_400,
        window=True,
    )
    error_min_requests: float = _f(
        100, "error_prone needs at least this many requests in the window"
    )
    error_min_share: float = _f(
        0.25, "... and at least this share of 4xx other than 429", maximum=1
    )
    redundant_min_requests: float = _f(
        100, "redundant needs at least this many requests in the window"
    )
    redundant_min_share: float = _f(
        0.5,
        "... and at least this share of successful GET/HEAD repeating an identical one",
        maximum=1,
    )
    redundant_gap_seconds: float = _f(
        10, "an identical successful read within this long is a repeat"
    )
    throttle_min_per_window: float = _f(10, "throttle_hitter: throttled responses in one window")
    throttle_lookback_seconds: float = _f(
        86_400, "throttle_hitter looks back this far for such a window"
    )
    # growing
    growing_ratio: float = _f(
        1.5, "growing: last 7 days at least this times the 7 days before", minimum=1
    )
    growing_min_requests: float = _f(
        1000, "growing needs at least this many requests in the last 7 days"
    )
    growing_min_previous_hours: float = _f(
        144,
        "hours of the earlier week vigie must have observed before judging growth",
        maximum=168,
    )
    # dormant / retired
    dormant_seconds: float = _f(30 * 86_400, "dormant subscription: no request for this long")
    retired_seconds: float = _f(30 * 86_400, "retired API: no request for this long")
    # wrong_channel
    wrong_channel_min_requests: float = _f(10, "wrong_channel: requests through the other channel")
    wrong_channel_min_share: float = _f(
        0.01, "... and at least this share of the traffic", maximum=1
    )
    wrong_channel_dominant_share: float = _f(
        0.95, "without registration: the expected channel carries at least this share", maximum=1
    )
    wrong_channel_minor_share: float = _f(
        0.05, "without registration: the other channel carries less than this share", maximum=1
    )
    # hour-of-week baselines and the health classes (vigie.state._baselines)
    baseline_min_weeks: float = _f(
        2, "a baseline slot is used once this many weeks of it were observed", minimum=1, maximum=4
    )
    baseline_halflife_weeks: float = _f(
        2, "weight of a baseline week: 0.5 ** (its age in weeks / this)", minimum=0.25
    )
    health_hold_seconds: float = _f(
        600, "degraded / backend_down / traffic_anomaly stay this long after their rule went quiet"
    )
    degraded_window_seconds: float = _f(
        600, "API degraded looks at this long (whole minutes)", minimum=60, maximum=900
    )
    degraded_min_requests: float = _f(100, "API degraded needs this many requests in its window")
    degraded_latency_ratio: float = _f(
        2, "... and p95 latency at least this times the baseline's for that hour", minimum=1
    )
    degraded_error_share: float = _f(0.05, "... or a 5xx share at least this", maximum=1)
    degraded_error_ratio: float = _f(
        5, "... and at least this times the baseline's 5xx share for that hour", minimum=1
    )
    backend_down_consecutive: float = _f(
        20,
        "API backend_down: this many connection failures in a row (101503-101505, 303001)",
        minimum=1,
    )
    backend_down_window_seconds: float = _f(
        120, "... or over this long (whole minutes)", minimum=60, maximum=900
    )
    backend_down_share: float = _f(
        0.9, "... at least this share of the requests failing so", maximum=1
    )
    backend_down_min_requests: float = _f(10, "... with at least this many requests", minimum=1)
    anomaly_window_seconds: float = _f(
        900,
        "traffic_anomaly compares this long (whole minutes) with the baseline",
        minimum=60,
        maximum=900,
    )
    anomaly_k: float = _f(6, "traffic_anomaly band: baseline median +- this x MAD", minimum=1)
    anomaly_min_requests: float = _f(
        100, "traffic_anomaly needs this many requests in the window (surge) or baseline (drop)"
    )
    anomaly_min_spread: float = _f(
        0.1, "the MAD used is at least this share of the median (and its square root)", maximum=10
    )

    # the security class auth_failing (vigie.state._security)
    auth_min_failures: float = _f(
        100,
        "auth_failing: this many authentication failures in an hour (by minute) from one "
        "client IP or one application key (or to one API)",
        minimum=1,
        maximum=1_000_000_000,
    )
    max_tracked_clients: float = _f(
        100_000,
        "auth_failing tracks at most this many client IPs (and as many application keys and "
        "APIs); the coldest are evicted first, counted",
        minimum=16,
        maximum=10_000_000,
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
                raise ConfigError(f"{f.name}: expected a number, got {v!r}")
            lo, hi = f.metadata["min"], f.metadata["max"]
            if v < lo:
                raise ConfigError(f"{f.name}: must be at least {lo:g}, got {v:g}")
            if hi is not None and v > hi:
                raise ConfigError(f"{f.name}: must be at most {hi:g}, got {v:g}")
        for name in ("retry_window_seconds", "short_window_seconds"):
            if (getattr(self, name) * SECOND_US) % 60 != 0:
                raise ConfigError(f"{name}: must be a multiple of 60 microseconds")
        for name in ("degraded_window_seconds", "backend_down_window_seconds",
                     "anomaly_window_seconds"):  # fmt: skip
            if getattr(self, name) % 60 != 0:
                raise ConfigError(f"{name}: must be whole minutes, got {getattr(self, name):g}")

    @staticmethod
    def field_docs() -> dict[str, str]:
        return {f.name: f.metadata["doc"] for f in dataclasses.fields(Thresholds)}

    @staticmethod
    def window_fields() -> set[str]:
        return {f.name for f in dataclasses.fields(Thresholds) if f.metadata["window"]}

    def replace(self, **changes: float) -> Thresholds:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown threshold(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    def params(self) -> npt.NDArray[np.float64]:
        """The kernel's parameter vector."""
        p = np.zeros(L.P_FIELDS, dtype=np.float64)
        us = SECOND_US
        p[L.P_HOLD_US] = self.hold_seconds * us
        p[L.P_SW_SLOT_US] = self.short_window_seconds * us / L.SHORT_SLOTS
        p[L.P_RW_SLOT_US] = self.retry_window_seconds * us / L.RETRY_SLOTS
        p[L.P_RETRY_GAP_US] = self.retry_gap_seconds * us
        p[L.P_RETRY_MIN] = self.retry_min_retries
        p[L.P_RETRY_SHARE] = self.retry_min_share
        p[L.P_ERR_MIN_REQ] = self.error_min_requests
        p[L.P_ERR_SHARE] = self.error_min_share
        p[L.P_RED_MIN_REQ] = self.redundant_min_requests
        p[L.P_RED_SHARE] = self.redundant_min_share
        p[L.P_RED_GAP_US] = self.redundant_gap_seconds * us
        p[L.P_THR_MIN] = self.throttle_min_per_window
        p[L.P_THR_LOOKBACK_US] = self.throttle_lookback_seconds * us
        p[L.P_GROW_RATIO] = self.growing_ratio
        p[L.P_GROW_MIN_REQ] = self.growing_min_requests
        p[L.P_GROW_MIN_PREV_HOURS] = self.growing_min_previous_hours
        p[L.P_WC_MIN_REQ] = self.wrong_channel_min_requests
        p[L.P_WC_MIN_SHARE] = self.wrong_channel_min_share
        p[L.P_WC_DOMINANT_SHARE] = self.wrong_channel_dominant_share
        p[L.P_WC_MINOR_SHARE] = self.wrong_channel_minor_share
        return p
