"""What the baselines learn besides counts: a subscription's hour-of-week error share and p95
(in a compact 4-byte table), an API's backend time apart from its latency, and the evidence the
views draw from them (a backend slowing down, a gateway slowing down, latency without backend
times, a subscription surging with errors). The naive twin covers the same figures on random
traffic (``test_baselines``); these pin the meaning on a scenario whose answer is known."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tests.support.policy_traffic import DAY, MINUTE
from tests.unit.state.test_baselines import T0, _feed
from vigie.classify import health, views
from vigie.state import _baseline_pieces as P
from vigie.state._baselines import SUB_SPEC, sub_row_bytes
from vigie.state.engine import State
from vigie.state.snapshot import read_snapshot, write_snapshot
from vigie.state.thresholds import Thresholds

WEEK = 7 * DAY
TH = {"anomaly_min_requests": 10, "degraded_min_requests": 15, "health_hold_seconds": 300}


def test_the_compact_codes_give_the_figures_back() -> None:
    for n in range(0, 1471):  # exact while the code's step is under half a request
        assert P.count_value(P.count_code(n)) == n
    for n in (1_500, 65_535, 10**6, 123_456_789, 4_000_000_000):
        assert abs(P.count_value(P.count_code(n)) - n) / n < 2e-4, n
    assert P.count_code(10**12) == P.COUNT_MAX_CODE  # saturates, never wraps
    for share in np.linspace(0.0, 1.0, 2001):
        back = P.share_value(P.share_code(float(share)))
        assert abs(math.sqrt(back) - math.sqrt(share)) <= 0.5 / P.SHARE_SCALE + 1e-12
    assert P.share_code(math.nan) == P.NO_CODE and math.isnan(P.share_value(P.NO_CODE))
    assert P.share_code(0.0) == 0 and P.share_code(1.0) == 254
    for b in range(P.LAT_BUCKETS):  # a p95 is a bucket's edge: its index is lossless
        hist = np.zeros(P.LAT_BUCKETS, dtype=np.int64)
        hist[b] = 7
        assert P.bucket_value(P.p95_bucket(hist)) == P.p95_ms(hist)
    assert math.isnan(P.bucket_value(P.NO_CODE))


def test_a_subscription_row_carries_three_measures_in_four_bytes_a_slot() -> None:
    table = sum(
        int(np.prod(SUB_SPEC[k][0])) * np.dtype(SUB_SPEC[k][1]).itemsize
        for k in ("bs_week", "bs_wq")
    )
    assert table == 168 * 4 * 4
    assert sub_row_bytes() == 3192 + 80  # with the minute ring, the hour's histogram, the evidence


def _minute(
    t: int, app: str, api: str, n: int, rng: np.random.Generator, **kw: Any
) -> list[tuple[Any, ...]]:
    """n events of one minute: backend ~12 ms (x ``backend_x``), latency = backend + 2 ms
    (+ ``gateway_ms``), a 5xx share ``errors``; ``backend=False``: no backend time carried."""
    out = []
    for _ in range(n):
        back = int(rng.lognormal(math.log(12_000), 0.2) * kw.get("backend_x", 1.0))
        lat = back + 2_000 + int(kw.get("gateway_ms", 0) * 1000)
        status = 500 if rng.random() < kw.get("errors", 0.001) else 200
        out.append((t + int(rng.integers(0, MINUTE)), app, api, status, 0, lat,
                    back if kw.get("backend", True) else 0))  # fmt: skip
    return out


CONSUMERS = (("app-a", "Pay"), ("app-b", "Search"), ("app-c", "Orders"), ("app-d", "Plain"))
INCIDENT: dict[
    str, dict[str, Any]
] = {  # what each API's consumer does in week 2, Monday 11:00-11:20
    "Pay": {"backend_x": 4.0},
    "Search": {"gateway_ms": 60},
    "Orders": {"n": 200, "errors": 0.4},
    "Plain": {"backend": False, "backend_x": 4.0},
}


def scenario(
    consumers: tuple[tuple[str, str], ...], incident: dict[str, dict[str, Any]], seed: int = 7
) -> tuple[State, int]:
    """Mondays 10:00-12:00 of three weeks (the platform silent otherwise), 20 requests a
    minute per consumer; in the third, ``incident[api]`` from 11:00 to 11:20 (``n``: requests
    a minute, ``down``: every request a WSO2 101503), the state read at 11:21 (its classes
    still held)."""
    rng = np.random.default_rng(seed)
    state = State(Thresholds().replace(**TH))
    events: list[tuple[Any, ...]] = []
    for week in range(3):
        for m in range(600, 720 if week < 2 else 681):  # the last week: up to the incident's end
            t = T0 + week * WEEK + m * MINUTE
            for app, api in consumers:
                kw: dict[str, Any] = {"backend": api != "Plain"}
                if week == 2 and 660 <= m < 680:
                    kw |= incident.get(api, {})
                down = kw.pop("down", False)
                batch = _minute(t, app, api, int(kw.pop("n", 20)), rng, **kw)
                if down:
                    batch = [(e[0], app, api, 503, 101503, 900, 0) for e in batch]
                events += batch
    events.sort()
    _feed(state, events)
    return state, T0 + 2 * WEEK + 681 * MINUTE


@pytest.fixture(scope="module")
def incident() -> tuple[State, int]:
    return scenario(CONSUMERS, INCIDENT)


def test_a_slow_backend_is_told_from_a_slow_gateway(incident: tuple[State, int]) -> None:
    state, now = incident
    apis = {a.api: a for a in views.apis(state, now)}
    pay, search, plain = (apis[k].evidence.get("degraded") for k in ("Pay", "Search", "Plain"))
    assert pay and search and plain, {k: a.classes for k, a in apis.items()}
    assert pay["cause"] == "backend"
    assert pay["backend_p95_ms"] >= 2 * pay["baseline_backend_p95_ms"]
    assert pay["backend_share"] > 0.8  # the backend is ~48 ms of ~50
    assert search["cause"] == "gateway"
    assert search["p95_ms"] >= 2 * search["baseline_p95_ms"]
    assert search["backend_p95_ms"] < 2 * search["baseline_backend_p95_ms"]
    assert search["backend_share"] < 0.25  # ~12 ms of ~74
    assert plain["cause"] == "latency"  # no backend times: the side is not known
    assert plain["backend_p95_ms"] is None and plain["backend_share"] is None
    assert (
        "degraded" not in apis["Orders"].classes
        or apis["Orders"].evidence["degraded"]["cause"] == "errors"
    )
    assert views.headline("degraded", pay).startswith("degraded: cause=backend p95_ms=")


def test_a_subscription_surge_carries_its_errors_and_latency_beside_its_baseline(
    incident: tuple[State, int],
) -> None:
    state, now = incident
    subs = {s.api: s for s in views.subscriptions(state, now)}
    ev = subs["Orders"].evidence["traffic_anomaly"]
    assert ev["direction"] == "surge" and ev["requests"] >= 10 * ev["baseline_requests"]
    assert 0.3 < ev["server_error_share"] < 0.5
    assert ev["baseline_error_share"] is not None and ev["baseline_error_share"] < 0.01
    assert ev["hour_p95_ms"] is not None and ev["baseline_p95_ms"] is not None
    assert ev["hour_p95_ms"] == pytest.approx(ev["baseline_p95_ms"], rel=0.5)
    for api in ("Pay", "Search", "Plain"):  # same volume: no anomaly
        assert "traffic_anomaly" not in subs[api].classes, (api, subs[api].evidence)
    # the API's anomaly holds no subscription figures
    orders = next(a for a in views.apis(state, now) if a.api == "Orders")
    assert "server_error_share" not in orders.evidence["traffic_anomaly"]


def test_degraded_cause_reads_the_figures() -> None:
    ev = np.zeros(10)
    ev[[0, 1, 6, 7]] = [100.0, 20.0, 90.0, 15.0]
    assert health.degraded_cause(ev, 2.0) == "backend"
    ev[6] = 16.0
    assert health.degraded_cause(ev, 2.0) == "gateway"
    ev[6] = math.nan
    assert health.degraded_cause(ev, 2.0) == "latency"
    ev[0] = 21.0
    assert health.degraded_cause(ev, 2.0) == "errors"


def _old_layout(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The baselines' arrays as the counts-only layout (before this one) wrote them."""
    out = {k: v for k, v in arrays.items() if not k.startswith("bl_")}
    out |= {k: arrays[k] for k in ("bl_g", "bl_slot_week", "bl_bs_first", "bl_bs_last")}
    out |= {k: arrays[k] for k in ("bl_ba_i64", "bl_ba_min", "bl_ba_lat", "bl_ba_hlat")}
    out |= {k: arrays[k] for k in ("bl_ba_first", "bl_ba_last")}
    decode = np.vectorize(P.count_value)
    out["bl_bs_week"] = decode(arrays["bl_bs_week"]).astype(np.float32)
    out["bl_bs_i64"] = arrays["bl_bs_i64"][:, :3]
    out["bl_bs_min"] = arrays["bl_bs_min"][:, :, 0]
    out["bl_ba_week"] = arrays["bl_ba_week"][..., :3]
    out["bl_bs_evid"] = arrays["bl_bs_evid"][..., :6]
    out["bl_ba_evid"] = arrays["bl_ba_evid"][..., :6]
    return out


def test_a_snapshot_of_the_counts_only_layout_keeps_its_baselines(tmp_path: Any) -> None:
    """An upgraded sidecar does not forget weeks of baselines: the counts are coded, the
    figures that layout did not keep are not known (and learnt from then on)."""
    state, now = scenario(CONSUMERS[:2], {}, seed=3)
    path = write_snapshot(state, tmp_path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    old = tmp_path / "old" / "state.npz"
    old.parent.mkdir()
    with old.open("wb") as f:
        np.savez(f, **_old_layout(arrays))  # type: ignore[arg-type]
    back = read_snapshot(old, state.thresholds, state.capacity)
    got, want = back.baselines.arrays, state.baselines.arrays
    rows = state.n_sub_rows
    np.testing.assert_array_equal(got["bs_week"][:rows], want["bs_week"][:rows])
    np.testing.assert_array_equal(got["bs_min"][:rows, :, 0], want["bs_min"][:rows, :, 0])
    assert (got["bs_wq"][:rows] == P.NO_CODE).all() and not got["bs_min"][:rows, :, 1].any()
    n_api = state.n_api_rows
    np.testing.assert_array_equal(got["ba_week"][:n_api, ..., :3], want["ba_week"][:n_api, ..., :3])
    assert np.isnan(got["ba_week"][:n_api, ..., 3]).all()
    assert got["bs_evid"].shape[-1] == want["bs_evid"].shape[-1]
    # and it judges as before: a surge of the first consumer, on the restored baselines
    for s in (state, back):
        t = now + 7 * DAY - 60 * MINUTE  # next Monday 10:21
        rng = np.random.default_rng(5)
        ev = [e for m in range(20) for e in _minute(t + m * MINUTE, "app-a", "Pay", 200, rng)]
        ev += _minute(t + 20 * MINUTE, "app-b", "Search", 20, rng)
        _feed(s, sorted(ev))
    assert [v.classes for v in views.subscriptions(back)] == [
        v.classes for v in views.subscriptions(state)
    ]
    assert "traffic_anomaly" in views.subscriptions(back)[0].classes
