"""The baselines kernel (``vigie.state._baselines``, ``_baseline_kernels``) against its naive twin
(``tests.support.naive.naive_health``): random traffic over three weeks, with surges, drops,
slow and failing stretches, dead backends, silent hours of the whole platform and late events,
through the real wire path; every episode of every health class, and the evidence of the open
ones, must be the twin's. Plus the pieces (buckets, weighted median), the thresholds' checks,
the snapshot round trip and the views."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tests.support import naive
from tests.support.policy_traffic import DAY, MINUTE
from vigie.classify import views
from vigie.errors import ConfigError
from vigie.state import _baseline_kernels as K
from vigie.state import _baselines as B
from vigie.state.engine import State
from vigie.state.snapshot import read_snapshot, write_snapshot
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import StreamDecoder, StreamEncoder

T0 = 1_767_571_200_000_000  # 2026-01-05T00:00:00Z, a Monday
APPS = (("app-a", "Stock"), ("app-b", "Stock"), ("app-c", "Orders"), ("", "Orders"))


def _events(seed: int, weeks: float = 2.6) -> list[tuple[Any, ...]]:
    """(t, app, api, status, error_code, latency_us, backend_latency_us) in arrival order:
    Poisson traffic whose rate follows the hour of the day, random incidents (a slow backend,
    a slow gateway: the latency up, not the backend time), platform-wide silent hours, and some
    events arriving late (a few seconds to 20 minutes); failed connections carry no backend
    time."""
    rng = np.random.default_rng(seed)
    minutes = int(weeks * 7 * 1440)
    silent = set(rng.integers(0, minutes // 60, 6).tolist())  # hours nobody sends anything
    incidents = []  # (start minute, length, kind, row)
    kinds = ["surge", "drop", "slow", "gwslow", "errors", "down"] * 2  # each at least twice
    for kind in [*kinds, *rng.choice(kinds, int(rng.integers(0, 4))).tolist()]:
        start = int(rng.integers(minutes // 2, minutes - 60))
        incidents.append((start, int(rng.integers(5, 40)), kind, int(rng.integers(0, 4))))
    out: list[tuple[Any, ...]] = []
    for m in range(minutes):
        if m // 60 in silent:
            continue
        hour_factor = 1.0 + 0.8 * math.sin(2 * math.pi * (m % 1440) / 1440)
        for r, (app, api) in enumerate(APPS):
            rate, slow, gw, err, down = (2.0 + r) * hour_factor, 1.0, 0, 0.002, False
            for start, length, kind, row in incidents:
                if row == r and start <= m < start + length:
                    rate *= 30 if kind == "surge" else (0 if kind == "drop" else 1)
                    slow = 4.0 if kind == "slow" else slow
                    gw = 60_000 if kind == "gwslow" else gw
                    err = 0.3 if kind == "errors" else err
                if kind == "down" and APPS[row][1] == api and start <= m < start + length:
                    down = True  # a backend is the API's: every consumer of it fails
            for _ in range(int(rng.poisson(rate))):
                t = T0 + m * MINUTE + int(rng.integers(0, MINUTE))
                back = int(rng.lognormal(math.log(12_000), 0.4) * slow)
                lat = back + int(rng.integers(500, 4000)) + gw
                status, code = (500, 0) if rng.random() < err else (200, 0)
                if down:
                    status, code = 503, int(rng.choice([101503, 101504, 101505, 303001]))
                    back = 0
                out.append((t, app, api, status, code, lat, back))
    out.sort()
    # late arrivals: some events swapped a little later, a few by 20 minutes
    for _ in range(len(out) // 200):
        i = int(rng.integers(0, len(out) - 40))
        j = i + int(rng.integers(1, 40))
        out[i], out[j] = out[j], out[i]
    for _ in range(5):
        i = int(rng.integers(0, len(out) - 2000))
        out.insert(i + 1500, out.pop(i))
    return out


def _feed(state: State, events: list[tuple[Any, ...]]) -> None:
    enc = StreamEncoder()
    dec = StreamDecoder(state.interner, state.channel_index("main"), 1 << 16, 1 << 20)
    for i in range(0, len(events), 3000):
        chunk = events[i : i + 3000]
        cols = {
            "event_time_us": [e[0] for e in chunk],
            "application_id": [enc.intern(e[1]) for e in chunk],
            "api_name": [enc.intern(e[2]) for e in chunk],
            "api_version": [enc.intern("v1")] * len(chunk),
            "http_status": [e[3] for e in chunk],
            "error_code": [e[4] for e in chunk],
            "latency_us": [e[5] for e in chunk],
            "backend_latency_us": [e[6] if len(e) > 6 else 0 for e in chunk],
            "uri_hash": list(range(i + 1, i + 1 + len(chunk))),
        }
        state.apply(dec.decode(enc.batch(cols)))


def _kernel_episodes(
    state: State,
) -> tuple[dict[tuple[Any, ...], list[tuple[int, int]]], dict[tuple[Any, ...], list[float]]]:
    s = state.string
    out: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    figures: dict[tuple[Any, ...], list[float]] = {}
    health = {*B.SUB_CLASS_NAMES, *B.API_CLASS_NAMES}
    for (app, api, _ver), eps in state.episodes.items():
        for e in eps:
            if e.class_name in health:
                out.setdefault(("sub", s(app), s(api), e.class_name), []).append(
                    (e.first_us, e.last_us)
                )
    for (api, _ver), eps in state.api_episodes.items():
        for e in eps:
            if e.class_name in health:
                out.setdefault(("api", s(api), e.class_name), []).append((e.first_us, e.last_us))
    for row in state.sub_rows().tolist():
        first, last, ev = state.baselines.sub_record(row)
        if first:
            app, api, _ = state._sub_identity(row)
            sub_key = ("sub", s(app), s(api), "traffic_anomaly")
            out.setdefault(sub_key, []).append((first, last))
            figures[sub_key] = ev.tolist()
    for row in state.api_rows().tolist():
        for c, name in enumerate(B.API_CLASS_NAMES):
            first, last, ev = state.baselines.api_record(row, c)
            if first:
                key = ("api", s(int(state.api_i64[row, 1])), name)
                out.setdefault(key, []).append((first, last))
                figures[key] = ev.tolist()
    return out, figures


THRESHOLDS = {  # low volumes: the random consumers send a few requests a minute
    "anomaly_min_requests": 10,
    "degraded_min_requests": 15,
    "backend_down_min_requests": 4,
    "backend_down_consecutive": 12,
    "health_hold_seconds": 300,
}


@pytest.mark.parametrize(
    ("seed", "changes"),
    [
        (1, {}),
        (2, {"baseline_min_weeks": 1, "anomaly_k": 4, "degraded_window_seconds": 300}),
        (3, {"baseline_halflife_weeks": 0.5, "anomaly_window_seconds": 600}),
    ],
)  # fmt: skip
def test_every_episode_and_its_evidence_is_the_naive_twins(
    seed: int, changes: dict[str, float]
) -> None:
    th = Thresholds().replace(**THRESHOLDS, **changes)
    events = _events(seed)
    state = State(th)
    _feed(state, events)
    got, got_figures = _kernel_episodes(state)
    want, want_figures = naive.naive_health(events, th)
    assert sum(len(v) for v in want.values()) >= 5  # the incidents did raise classes
    assert {k[-1] for k in want} >= {"traffic_anomaly", "degraded", "backend_down"}
    assert got == want
    assert got_figures.keys() == want_figures.keys()
    for key, figs in want_figures.items():
        np.testing.assert_allclose(got_figures[key], figs, rtol=1e-6, err_msg=str(key))
    assert state.baselines.late >= 1  # the 20-minute-late ones: counted, in no window


def test_buckets_and_weighted_median_agree_with_the_twin() -> None:
    rng = np.random.default_rng(7)
    for lat in [0, 999, 1000, 1001, 2000, 4000, *rng.integers(0, 10**9, 500).tolist()]:
        assert K.latency_bucket(int(lat)) == naive.health_bucket(int(lat)), lat
    for _ in range(300):
        n = int(rng.integers(1, K.WEEKS + 1))
        v = rng.integers(0, 5, n).astype(np.float64)  # ties on purpose
        w = rng.random(n) + 0.01
        assert K.weighted_median(v, w, n) == naive.lower_weighted_median(
            list(zip(v, w, strict=True))
        )


def test_a_baseline_is_not_used_before_min_weeks_nor_on_hours_nobody_sent_anything() -> None:
    """A consumer 40x its usual rate: anomalous with two weeks of baseline, not with one week
    (min 2), and not when the hours of the earlier week were silent for the whole platform."""
    th = Thresholds().replace(anomaly_min_requests=10)

    def run(weeks: int, silent_week: int | None) -> list[str]:
        ev = []
        for m in range(weeks * 7 * 1440 + 30):
            week = m // (7 * 1440)
            if week == silent_week:
                continue
            rate = 40 if m >= weeks * 7 * 1440 + 10 else 1
            for k in range(rate):
                ev.append((T0 + m * MINUTE + k * 1000, "app-a", "Stock", 200, 0, 10_000))
        state = State(th)
        _feed(state, ev)
        (view,) = views.subscriptions(state)
        return view.classes

    assert run(2, None) == ["traffic_anomaly"]
    assert run(1, None) == ["normal"]
    assert run(2, 0) == ["normal"]  # week 0 unobserved: one week of baseline only


def test_the_views_say_it_and_a_snapshot_keeps_it(tmp_path: Any) -> None:
    th = Thresholds().replace(**THRESHOLDS)
    events = _events(4)
    state = State(th)
    _feed(state, events)
    # a dead backend now: the API holds backend_down with its evidence
    now = max(e[0] for e in events) + MINUTE
    tail = [(now + k * 1_000_000, "app-c", "Orders", 503, 101503, 900) for k in range(30)]
    tail.append((now + 2 * MINUTE, "app-a", "Stock", 200, 0, 900))
    _feed(state, tail)
    (orders,) = [a for a in views.apis(state) if a.api == "Orders"]
    assert "backend_down" in orders.classes
    ev = orders.evidence["backend_down"]
    assert ev["consecutive_failures"] >= 30 and ev["requests"] >= 1
    assert views.headline("backend_down", ev).startswith("backend_down: consecutive_failures=")
    path = write_snapshot(state, tmp_path)
    back = read_snapshot(path, th, state.capacity)
    assert [a.classes for a in views.apis(back)] == [a.classes for a in views.apis(state)]
    for name, arr in state.baselines.arrays.items():
        n = len(back.baselines.arrays[name])
        assert n >= 1
        rows = state.n_sub_rows if name.startswith("bs") else state.n_api_rows
        np.testing.assert_array_equal(back.baselines.arrays[name][:rows], arr[:rows])


def test_thresholds_refuse_absurd_values_in_one_line() -> None:
    for change, message in (
        ({"baseline_min_weeks": 5}, "baseline_min_weeks: must be at most 4"),
        ({"anomaly_window_seconds": 90}, "anomaly_window_seconds: must be whole minutes"),
        ({"degraded_window_seconds": 1800}, "degraded_window_seconds: must be at most 900"),
        ({"anomaly_k": float("nan")}, "anomaly_k: expected a number"),
    ):
        with pytest.raises(ConfigError, match=message):
            Thresholds().replace(**change)


def test_nothing_is_judged_while_the_platform_is_silent() -> None:
    """A whole platform silent for a day (the sidecar was cut off) is no drop: the boundaries
    of minutes in which nothing arrived are not evaluated. Once another consumer sends again,
    the silent one is judged: a drop from then on, not from the start of the silence."""
    th = Thresholds()
    ev = [
        (T0 + m * MINUTE + k * 1000, "app-a", "Stock", 200, 0, 10_000)
        for m in range(15 * 1440)
        for k in range(10)
    ]
    gap_end = T0 + 16 * DAY
    ev += [(gap_end + m * MINUTE, "app-b", "Stock", 200, 0, 10_000) for m in range(5)]
    state = State(th)
    _feed(state, ev)
    by_app = {v.application_id: v for v in views.subscriptions(state)}
    assert by_app["app-a"].classes == ["traffic_anomaly"]
    assert by_app["app-a"].evidence["traffic_anomaly"]["direction"] == "drop"
    (episode,) = [e for e in by_app["app-a"].episodes if e.class_name == "traffic_anomaly"]
    assert episode.first_us > gap_end
    assert by_app["app-b"].classes == ["normal"]
    counts = views.class_counts(state, state.now_us)  # what vigie status shows
    assert (counts["traffic_anomaly"], counts["normal"]) == (1, 1)
    assert state.counters()["events_late_for_baselines"] == 0
    assert state.baselines.bg[K.Q_EVALUATIONS] <= 15 * 1440 + 5


def test_a_row_freed_and_given_to_another_consumer_starts_a_fresh_baseline() -> None:
    """Eviction frees a subscription's row; the consumer that gets it next inherits neither
    its baseline nor its open episode (the row's generation tells them apart)."""
    th = Thresholds().replace(anomaly_min_requests=10)
    ev = [
        (T0 + m * MINUTE + k * 1000, "app-a", "Stock", 200, 0, 10_000)
        for m in range(15 * 1440)
        for k in range(3)
    ]
    end = T0 + 15 * DAY
    ev += [(end + m * MINUTE, "app-b", "Stock", 200, 0, 10_000) for m in range(20)]
    state = State(th)
    _feed(state, ev)
    assert {v.application_id: v.classes for v in views.subscriptions(state)} == {
        "app-a": ["traffic_anomaly"],  # silent for 20 minutes: a drop
        "app-b": ["normal"],
    }
    old_rows = set(state.sub_rows().tolist())
    state.evict(2)
    _feed(state, [(end + (20 + m) * MINUTE, "app-c", "Stock", 200, 0, 10_000) for m in range(3)])
    (view,) = views.subscriptions(state)
    assert (view.application_id, view.classes) == ("app-c", ["normal"])
    (row,) = state.sub_rows().tolist()
    assert row in old_rows  # the same row, another consumer
    assert not state.baselines.arrays["bs_week"][row].any()
    assert state.baselines.sub_record(row)[0] == 0
    assert (
        state.baselines.arrays["bs_i64"][row, K.B_SINCE] == (end + 19 * MINUTE) // (60 * MINUTE) + 1
    )
