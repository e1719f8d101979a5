"""The evidence of the health classes (``vigie.state._baselines``) in words and figures: what
``views`` shows for ``degraded``, ``backend_down`` and ``traffic_anomaly`` from the figures the
kernel kept at the last minute the class's rule held (``_baseline_kernels.N_EV`` of them)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vigie.state.thresholds import Thresholds

__all__ = ["degraded_cause", "evidence"]


def _num(x: float, digits: int) -> float | None:
    """``x`` rounded, None when not a number (too few requests, no usable week)."""
    return round(float(x), digits) if math.isfinite(x) else None


def _ms(x: float) -> float | None:
    return round(float(x), 1) if x > 0 and math.isfinite(x) else None


def degraded_cause(ev: np.ndarray, ratio: float) -> str:
    """Which side a ``degraded`` API's figures blame: ``backend`` (its backend p95 >= ratio x
    its baseline: WSO2's "abnormal backend time"), ``gateway`` (the latency rose, the backend
    time did not), ``latency`` (the latency rose; no backend times to tell) or ``errors``."""
    latency = ev[1] > 0 and ev[0] >= ratio * ev[1]
    backend_known = math.isfinite(ev[6]) and ev[7] > 0
    if backend_known and ev[6] >= ratio * ev[7]:
        return "backend"
    if latency:
        return "gateway" if backend_known else "latency"
    return "errors"


def evidence(th: Thresholds, class_name: str, ev: np.ndarray, at: str | None) -> dict[str, Any]:
    """The figures of a health class at ``at`` (the last time its rule held)."""
    if class_name == "traffic_anomaly":
        out: dict[str, Any] = {
            "direction": "surge" if ev[3] > 0 else "drop",
            "requests": int(ev[0]),
            "baseline_requests": round(float(ev[1]), 1),
            "band": round(float(th.anomaly_k * ev[2]), 1),
            "baseline_weeks": int(ev[4]),
            "window_seconds": th.anomaly_window_seconds,
        }
        if not bool((ev[5:9] == 0).all()):  # a subscription's: errors and latency beside
            out |= {
                "server_error_share": _num(ev[5], 4),
                "baseline_error_share": _num(ev[6], 4),
                "hour_p95_ms": _ms(ev[7]),
                "baseline_p95_ms": _ms(ev[8]),
            }
        return out | {"at": at}
    if class_name == "degraded":
        return {
            "p95_ms": _ms(ev[0]),
            "baseline_p95_ms": _ms(ev[1]),
            "server_error_share": round(float(ev[2]), 4),
            "baseline_error_share": round(float(ev[3]), 4),
            "backend_p95_ms": _ms(ev[6]),
            "baseline_backend_p95_ms": _ms(ev[7]),
            "backend_share": _num(ev[8], 3),
            "cause": degraded_cause(ev, th.degraded_latency_ratio),
            "requests": int(ev[4]),
            "baseline_weeks": int(ev[5]),
            "window_seconds": th.degraded_window_seconds,
            "at": at,
        }
    return {  # backend_down
        "consecutive_failures": int(ev[0]),
        "connection_failures": int(ev[1]),
        "requests": int(ev[2]),
        "share": round(float(ev[3]), 4),
        "window_seconds": th.backend_down_window_seconds,
        "at": at,
    }
