"""Hour-of-week baselines and the health classes judged against them (``degraded``,
``backend_down``, ``traffic_anomaly``), in their own arrays, one jitted call per batch.

``State.apply`` calls ``Baselines.apply`` once per batch, after the main kernel: the rows the
events belong to exist by then, and this kernel finds them in the state's row tables (it never
creates nor frees one). What it keeps:

- **per minute, the last 15 minutes** (a ring): requests and 5xx of each subscription;
  requests, 5xx, backend connection failures (``codes.is_connection_failure``), a coarse
  latency histogram (``LAT_BUCKETS`` buckets, four an octave from 1 ms), a backend-time
  histogram and the sums of latency and backend time (of the events carrying a backend time:
  0 is "not carried", left out) of each API;
- **per hour-of-week slot** (168, Monday 00:00 UTC first) **and week** (the last ``WEEKS``):
  the hour's requests, 5xx share and p95 latency (subscriptions and APIs; a subscription's in
  4 bytes, ``_baseline_pieces``), and the backend p95 (APIs). The baseline
  of a slot is the exponentially weighted median of its weeks (weight ``0.5 ** (age /
  baseline_halflife_weeks)``, age 0 = last week), its spread the weighted median absolute
  deviation; it is used only once ``baseline_min_weeks`` weeks of that slot were observed. An
  hour in which the platform sent nothing at all is not observed (the sidecar was down, not
  the consumers).

The rules are evaluated at every minute boundary of event time, for every row, once the
platform sent something in the minute that ended (a silent platform judges no one):

- API ``degraded``: over ``degraded_window_seconds``, at least ``degraded_min_requests`` and
  either p95 latency >= ``degraded_latency_ratio`` x the slot's baseline p95, or the backend
  p95 >= that ratio x the baseline backend p95 (WSO2's "abnormal backend time"), or a 5xx
  share >= ``degraded_error_share`` and >= ``degraded_error_ratio`` x the baseline share; the
  evidence says the backend's share of the latency (backend time / latency, summed);
- API ``backend_down``: ``backend_down_consecutive`` connection failures in a row, or over
  ``backend_down_window_seconds`` at least ``backend_down_min_requests`` requests of which
  ``backend_down_share`` failed so;
- subscription and API ``traffic_anomaly``: the requests of the last ``anomaly_window_seconds``
  outside median +- k x MAD of the slot's baseline (scaled to the window; the MAD is at least
  ``anomaly_min_spread`` x the median and its square root), ``surge`` above, ``drop`` below,
  with ``anomaly_min_requests`` in the window (surge) or in the baseline (drop). A
  subscription's evidence also holds the window's 5xx share and the hour's p95 so far, each
  beside the slot's baseline (a surge of errors is a retry storm, not growth).

A class holds from the first minute its rule held until ``health_hold_seconds`` after the
last; then its episode closes (``Episode`` records, drained into ``State.episodes`` /
``api_episodes`` as the other classes' are).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from vigie.state import layout as L
from vigie.state._arrays import MAX_EPISODES_PER_ROW, Episode
from vigie.state._baseline_kernels import (
    API_CLASS_NAMES,
    B_FIELDS,
    B_GEN,
    LAT_BUCKETS,
    N_EV,
    N_M,
    N_SQ,
    N_U,
    N_W,
    OUT_BUFFER,
    P_AN_K,
    P_AN_MIN,
    P_AN_REQ,
    P_AN_SPREAD,
    P_BD_CONSEC,
    P_BD_MIN,
    P_BD_REQ,
    P_BD_SHARE,
    P_DEG_LAT,
    P_DEG_MIN,
    P_DEG_RATIO,
    P_DEG_REQ,
    P_DEG_SHARE,
    P_FIELDS,
    P_HALFLIFE,
    P_HOLD_US,
    P_MIN_WEEKS,
    Q_FIELDS,
    Q_LATE,
    Q_MINUTE,
    Q_OUT,
    RING,
    SLOTS,
    SUB_CLASS_NAMES,
    WEEKS,
    X_FIELDS,
    apply_baselines,
)
from vigie.state._baseline_pieces import COUNT_MAX_CODE, COUNT_SCALE, NO_CODE
from vigie.state.thresholds import Thresholds

if TYPE_CHECKING:
    from vigie.state.engine import State

__all__ = ["API_CLASS_NAMES", "SUB_CLASS_NAMES", "Baselines", "params", "sub_row_bytes"]


def params(th: Thresholds) -> npt.NDArray[np.float64]:
    """The kernel's parameter vector of ``th`` (windows in minutes)."""
    p = np.zeros(P_FIELDS, dtype=np.float64)
    p[P_MIN_WEEKS] = th.baseline_min_weeks
    p[P_HALFLIFE] = th.baseline_halflife_weeks
    p[P_HOLD_US] = th.health_hold_seconds * 1e6
    p[P_DEG_MIN] = th.degraded_window_seconds // 60
    p[P_DEG_REQ] = th.degraded_min_requests
    p[P_DEG_LAT] = th.degraded_latency_ratio
    p[P_DEG_SHARE] = th.degraded_error_share
    p[P_DEG_RATIO] = th.degraded_error_ratio
    p[P_BD_CONSEC] = th.backend_down_consecutive
    p[P_BD_MIN] = th.backend_down_window_seconds // 60
    p[P_BD_REQ] = th.backend_down_min_requests
    p[P_BD_SHARE] = th.backend_down_share
    p[P_AN_MIN] = th.anomaly_window_seconds // 60
    p[P_AN_K] = th.anomaly_k
    p[P_AN_REQ] = th.anomaly_min_requests
    p[P_AN_SPREAD] = th.anomaly_min_spread
    return p


# ---------------------------------------------------------------------------------------------
# the arrays, and what State and the views call
# ---------------------------------------------------------------------------------------------
SUB_SPEC: Final[dict[str, tuple[tuple[int, ...], Any]]] = {
    "bs_i64": ((B_FIELDS,), np.int64),
    "bs_min": ((RING, 2), np.int32),  # requests, 5xx
    "bs_hlat": ((LAT_BUCKETS,), np.int32),  # the current hour's latencies
    "bs_week": ((SLOTS, WEEKS), np.uint16),  # count codes (_baseline_pieces)
    "bs_wq": ((SLOTS, WEEKS, N_SQ), np.uint8),  # 5xx share codes, p95 buckets
    "bs_first": ((1,), np.int64),
    "bs_last": ((1,), np.int64),
    "bs_evid": ((1, N_EV), np.float64),
}
API_SPEC: Final[dict[str, tuple[tuple[int, ...], Any]]] = {
    "ba_i64": ((X_FIELDS,), np.int64),
    "ba_min": ((RING, N_M), np.int32),
    "ba_lsum": ((RING, N_U), np.int64),  # latency and backend time of those carrying one
    "ba_lat": ((RING, LAT_BUCKETS), np.int32),
    "ba_blat": ((RING, LAT_BUCKETS), np.int32),  # backend times
    "ba_hlat": ((LAT_BUCKETS,), np.int64),
    "ba_hblat": ((LAT_BUCKETS,), np.int64),
    "ba_week": ((SLOTS, WEEKS, N_W), np.float64),  # p95 edges compared exactly
    "ba_first": ((len(API_CLASS_NAMES),), np.int64),
    "ba_last": ((len(API_CLASS_NAMES),), np.int64),
    "ba_evid": ((len(API_CLASS_NAMES), N_EV), np.float64),
}


def _row_bytes(spec: dict[str, tuple[tuple[int, ...], Any]], name: str) -> int:
    shape, dt = spec[name]
    return int(np.prod(shape)) * int(np.dtype(dt).itemsize)


def sub_row_bytes() -> int:
    """Bytes the baselines add to one subscription row (3,272: the hour-of-week table 2,688
    of them, 4 bytes a slot and week, and its share, 2 records, of the episode buffer ``out``,
    which grows with the rows)."""
    per = sum(int(np.prod(s)) * int(np.dtype(d).itemsize) for s, d in SUB_SPEC.values())
    return per + 2 * 5 * 8


class Baselines:
    """The baselines' arrays (rows follow the state's capacity) and their one call per batch."""

    def __init__(self) -> None:
        self.bg = np.zeros(Q_FIELDS, dtype=np.int64)
        self.bg[Q_MINUTE] = -1
        self.slot_week = np.full((SLOTS, WEEKS), -1, dtype=np.int64)
        self.out = np.zeros((OUT_BUFFER, 5), dtype=np.int64)
        self._params_of: Thresholds | None = None
        self.bp = np.zeros(P_FIELDS, dtype=np.float64)
        self.arrays: dict[str, npt.NDArray[Any]] = {}
        self._own: tuple[npt.NDArray[Any], ...] = ()  # the arrays in the kernel's order
        self._grow(SUB_SPEC, 0)
        self._grow(API_SPEC, 0)

    def _grow(self, spec: dict[str, tuple[tuple[int, ...], Any]], rows: int) -> None:
        for name, (shape, dt) in spec.items():
            new = np.zeros((rows, *shape), dtype=dt)
            old = self.arrays.get(name)
            if old is not None:
                new[: len(old)] = old[:rows]
            self.arrays[name] = new
        order = (*SUB_SPEC, *API_SPEC)  # the kernel's order
        self._own = tuple(self.arrays[k] for k in order if k in self.arrays)

    def _fit(self, state: State) -> None:
        if len(self.arrays["bs_i64"]) < len(state.sub_i64):
            self._grow(SUB_SPEC, len(state.sub_i64))
        if len(self.arrays["ba_i64"]) < len(state.api_i64):
            self._grow(API_SPEC, len(state.api_i64))

    def nbytes(self, sub_rows: int = 0, api_rows: int = 0) -> int:
        """Bytes of the baselines' arrays, the row arrays counted for at least ``sub_rows``
        / ``api_rows`` rows: what they take once grown with the state's (at the end of the
        batch), so that a cap check before then does not undercount them."""
        fixed = sum(a.nbytes for a in (self.bg, self.slot_week, self.bp))
        fixed += max(len(self.out), 2 * (sub_rows + 3 * api_rows) + 16) * 5 * 8  # see ``apply``
        for spec, rows in ((SUB_SPEC, sub_rows), (API_SPEC, api_rows)):
            for name in spec:
                fixed += max(len(self.arrays[name]), rows) * _row_bytes(spec, name)
        return int(fixed)

    @property
    def late(self) -> int:
        return int(self.bg[Q_LATE])

    def apply(self, state: State, columns: Mapping[str, npt.NDArray[Any]]) -> None:
        """A batch (its ``Events.columns``, as the main kernel read them: already applied to
        the state's rows) into the baselines."""
        self._fit(state)
        if self._params_of is not state.thresholds:
            self.bp = params(state.thresholds)
            self._params_of = state.thresholds
        c = columns
        cols: tuple[Any, ...] = (
            c["event_time_us"], c["application_id"], c["api_name"], c["api_version"],
            c["http_status"], c["error_code"], c["latency_us"], c["backend_latency_us"],
        )  # fmt: skip
        n = len(cols[0])
        n_sub, n_api = int(state.sub_meta[1]), int(state.api_meta[1])
        need = 2 * (n_sub + 3 * n_api) + 16
        if len(self.out) < need:
            self.out = np.zeros((need, 5), dtype=np.int64)
        rows: tuple[Any, ...] = (state.sub_i64, state.sub_tkeys, state.sub_tvals, n_sub,
                state.api_i64, state.api_tkeys, state.api_tvals, n_api)  # fmt: skip
        tail: tuple[Any, ...] = (*rows, *self._own, self.slot_week, self.bg, self.bp, self.out)
        start = 0
        while start < n:
            args: tuple[Any, ...] = (*cols, start, *tail)
            start = apply_baselines(*args)
            if self.bg[Q_OUT]:
                self._drain(state)

    def _drain(self, state: State) -> None:
        n = int(self.bg[Q_OUT])
        for kind, row, c, first, last in self.out[:n].tolist():
            if kind == 0:
                lst = state.episodes[state._sub_identity(row)]
                ep = Episode(SUB_CLASS_NAMES[c], first, last)
            else:
                key = (int(state.api_i64[row, L.A_NAME]), int(state.api_i64[row, L.A_VERSION]))
                lst = state.api_episodes[key]
                ep = Episode(API_CLASS_NAMES[c], first, last)
            lst.append(ep)
            if len(lst) > MAX_EPISODES_PER_ROW:
                del lst[0]
        self.bg[Q_OUT] = 0

    # ---- reading ----------------------------------------------------------------------------
    def _held(self, first: np.ndarray, last: np.ndarray, now: int, hold_s: float) -> np.ndarray:
        return (first > 0) & (first <= now) & (now - last < hold_s * 1e6)

    def sub_held(self, state: State, now: int) -> npt.NDArray[np.bool_]:
        """(rows, len(SUB_CLASS_NAMES)): the subscription health classes held at ``now``."""
        n = state.n_sub_rows
        a = self.arrays
        rows = min(n, len(a["bs_i64"]))
        out = np.zeros((n, len(SUB_CLASS_NAMES)), dtype=np.bool_)
        mine = (a["bs_i64"][:rows, B_GEN] == state.sub_i64[:rows, L.S_GEN]) & (
            state.sub_i64[:rows, L.S_KEY] != 0
        )
        held = self._held(
            a["bs_first"][:rows], a["bs_last"][:rows], now, state.thresholds.health_hold_seconds
        )
        out[:rows] = held & mine[:, None]
        return out

    def api_held(self, state: State, now: int) -> npt.NDArray[np.bool_]:
        """(rows, len(API_CLASS_NAMES)): the API health classes held at ``now``."""
        n = state.n_api_rows
        a = self.arrays
        rows = min(n, len(a["ba_i64"]))
        out = np.zeros((n, len(API_CLASS_NAMES)), dtype=np.bool_)
        out[:rows] = self._held(
            a["ba_first"][:rows], a["ba_last"][:rows], now, state.thresholds.health_hold_seconds
        )
        return out

    def sub_record(self, row: int) -> tuple[int, int, npt.NDArray[np.float64]]:
        """(first, last, evidence figures) of a subscription's traffic_anomaly."""
        a = self.arrays
        if row >= len(a["bs_first"]):  # a state these baselines never saw (a merged one)
            return 0, 0, np.zeros(N_EV)
        return int(a["bs_first"][row, 0]), int(a["bs_last"][row, 0]), a["bs_evid"][row, 0]

    def api_record(self, row: int, c: int) -> tuple[int, int, npt.NDArray[np.float64]]:
        """(first, last, evidence figures) of API class ``c`` (``API_CLASS_NAMES`` order)."""
        a = self.arrays
        if row >= len(a["ba_first"]):
            return 0, 0, np.zeros(N_EV)
        return int(a["ba_first"][row, c]), int(a["ba_last"][row, c]), a["ba_evid"][row, c]

    # ---- snapshots --------------------------------------------------------------------------
    def used_arrays(self, state: State) -> dict[str, npt.NDArray[Any]]:
        """The arrays cut to the rows in use, named ``bl_*`` for a snapshot."""
        out = {f"bl_{k}": v[: state.n_sub_rows] for k, v in self.arrays.items() if k[1] == "s"}
        out |= {f"bl_{k}": v[: state.n_api_rows] for k, v in self.arrays.items() if k[1] == "a"}
        out["bl_g"] = self.bg
        out["bl_slot_week"] = self.slot_week
        return out

    def restore(self, state: State, arrays: dict[str, npt.NDArray[Any]]) -> bool:
        """Load what ``used_arrays`` wrote (False, and fresh baselines, when it is absent or
        does not fit this layout: they are learnt again). The layout before error shares and
        latency per subscription and backend times per API is upgraded (``_upgrade``)."""
        specs = {**SUB_SPEC, **API_SPEC}
        arrays = _upgrade(arrays)
        ok = "bl_g" in arrays and arrays["bl_g"].shape == self.bg.shape
        ok = ok and arrays.get("bl_slot_week", np.zeros(0)).shape == self.slot_week.shape
        for name, (shape, dt) in specs.items():
            got = arrays.get(f"bl_{name}")
            ok = ok and got is not None and got.shape[1:] == shape and got.dtype == dt
        if not ok:
            return False
        self.bg = arrays["bl_g"].copy()
        self.slot_week = arrays["bl_slot_week"].copy()
        for name in specs:
            self.arrays[name] = arrays[f"bl_{name}"].copy()
        self._own = tuple(self.arrays[k] for k in (*SUB_SPEC, *API_SPEC))
        self._fit(state)
        return True


def _upgrade(arrays: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    """The arrays of a snapshot of the counts-only layout (subscription weeks as float32
    counts, a requests-only minute ring, 6 evidence figures, 3 API week fields) in this one:
    the counts coded, what that layout did not keep marked not known (NaN, ``NO_CODE``) or
    zero. Other arrays are returned as they are (``restore`` checks them)."""
    old = arrays.get("bl_bs_week")
    if old is None or old.dtype != np.float32 or old.shape[1:] != (SLOTS, WEEKS):
        return arrays
    out = dict(arrays)
    n_sub = len(old)
    codes = np.log2(1.0 + np.maximum(old.astype(np.float64), 0.0)) * COUNT_SCALE + 0.5
    out["bl_bs_week"] = np.minimum(np.floor(codes), COUNT_MAX_CODE).astype(np.uint16)
    out["bl_bs_wq"] = np.full((n_sub, SLOTS, WEEKS, N_SQ), NO_CODE, dtype=np.uint8)
    out["bl_bs_hlat"] = np.zeros((n_sub, LAT_BUCKETS), dtype=np.int32)
    i64 = np.zeros((n_sub, B_FIELDS), dtype=np.int64)
    i64[:, : arrays["bl_bs_i64"].shape[1]] = arrays["bl_bs_i64"]
    out["bl_bs_i64"] = i64
    ring = np.zeros((n_sub, RING, 2), dtype=np.int32)
    ring[:, :, 0] = arrays["bl_bs_min"]
    out["bl_bs_min"] = ring
    n_api = len(arrays["bl_ba_i64"])
    week = np.full((n_api, SLOTS, WEEKS, N_W), np.nan, dtype=np.float64)
    week[..., : arrays["bl_ba_week"].shape[-1]] = arrays["bl_ba_week"]
    out["bl_ba_week"] = week
    out["bl_ba_lsum"] = np.zeros((n_api, RING, N_U), dtype=np.int64)
    out["bl_ba_blat"] = np.zeros((n_api, RING, LAT_BUCKETS), dtype=np.int32)
    out["bl_ba_hblat"] = np.zeros((n_api, LAT_BUCKETS), dtype=np.int64)
    for name in ("bl_bs_evid", "bl_ba_evid"):
        ev = arrays[name]
        grown = np.zeros((*ev.shape[:-1], N_EV), dtype=np.float64)
        grown[..., : ev.shape[-1]] = ev
        out[name] = grown
    return out
