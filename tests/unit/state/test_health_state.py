"""The baselines and health classes in the state's other paths: copies (``State.copy``,
``copy_chunked``) own their baselines, the fleet merge carries the health classes, the WSO2
apiId and ``observed_since_us``, and ``memory_cap_bytes`` counts the baselines' arrays."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from tests.support.policy_traffic import MINUTE
from tests.unit.state.test_baselines import T0, _feed
from tests.unit.state.test_bounds import _flood
from tests.unit.state.test_kernels import to_events
from vigie.classify import views
from vigie.state import _baseline_kernels as K
from vigie.state import _baselines as B
from vigie.state import merge
from vigie.state._arrays import SUB_ARRAYS
from vigie.state.engine import Capacity, State, sub_row_bytes
from vigie.state.thresholds import Thresholds

WEEK_MIN = 7 * 1440
TH = Thresholds().replace(anomaly_min_requests=10, backend_down_consecutive=12)


def _history(app: str, api: str, surge: bool) -> list[tuple[Any, ...]]:
    """Two weeks at one request a minute, then (``surge``) 40 a minute for 20 minutes."""
    ev = []
    for m in range(2 * WEEK_MIN + 30):
        rate = 40 if surge and m >= 2 * WEEK_MIN + 10 else 1
        ev += [(T0 + m * MINUTE + k * 1000, app, api, 200, 0, 10_000) for k in range(rate)]
    return ev


def _dead_backend(api: str, at: int) -> list[tuple[Any, ...]]:
    """30 connection failures in a row, then a minute boundary (the rules are judged there)."""
    ev = [(at + k * 1_000_000, "app-dead", api, 503, 101503, 900) for k in range(30)]
    return [*ev, (at + 2 * MINUTE, "app-a", "Stock", 200, 0, 900)]


@pytest.fixture(scope="module")
def surging() -> State:
    """app-a surges on Stock; Orders' backend is dead (backend_down)."""
    state = State(TH)
    ev = _history("app-a", "Stock", surge=True)
    _feed(state, ev + _dead_backend("Orders", ev[-1][0] + 1))
    assert [v.classes for v in views.subscriptions(state) if v.application_id == "app-a"] == [
        ["traffic_anomaly"]
    ]
    assert [a.classes for a in views.apis(state) if a.api == "Orders"] == [["backend_down"]]
    return state


def _class_view(state: State) -> tuple[Any, ...]:
    subs = sorted((v.application_id, v.api, tuple(v.classes)) for v in views.subscriptions(state))
    apis = sorted((a.api, tuple(a.classes), str(a.evidence)) for a in views.apis(state))
    return tuple(subs), tuple(apis)


# ---------------------------------------------------------------------------------------------
# copies
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["copy", "chunked"])
def test_a_copy_owns_its_baselines_and_does_not_see_later_events(how: str) -> None:
    state = State(TH)
    ev = _history("app-a", "Stock", surge=True)
    _feed(state, ev)
    lock = threading.Lock()  # chunked: ranges of a few rows, several holds of the lock
    cp = state.copy() if how == "copy" else state.copy_chunked(lock, chunk_bytes=4096)
    live, mine = state.baselines, cp.baselines
    assert mine is not live
    for name, arr in live.arrays.items():
        rows = state.n_sub_rows if name in B.SUB_SPEC else state.n_api_rows
        assert not np.shares_memory(mine.arrays[name], arr), name
        np.testing.assert_array_equal(mine.arrays[name][:rows], arr[:rows], err_msg=name)
    for a, b in ((mine.bg, live.bg), (mine.slot_week, live.slot_week)):
        assert not np.shares_memory(a, b)
        np.testing.assert_array_equal(a, b)
    assert mine._own and all(
        x is mine.arrays[k] for x, k in zip(mine._own, B.SUB_SPEC, strict=False)
    )
    before = _class_view(cp)
    frozen = {k: v.copy() for k, v in mine.arrays.items()}
    # the live state goes on: the surge ends, Orders' backend dies
    end = ev[-1][0]
    _feed(state, [(end + m * MINUTE, "app-a", "Stock", 200, 0, 10_000) for m in range(1, 40)])
    _feed(state, _dead_backend("Orders", end + 40 * MINUTE))
    assert _class_view(state) != before  # the live one changed
    assert _class_view(cp) == before  # the copy did not
    for name, arr in frozen.items():
        np.testing.assert_array_equal(cp.baselines.arrays[name], arr, err_msg=name)


# ---------------------------------------------------------------------------------------------
# the fleet merge
# ---------------------------------------------------------------------------------------------
def test_the_merge_carries_the_health_classes_their_evidence_and_episodes(surging: State) -> None:
    quiet = State(TH)
    _feed(quiet, _history("app-b", "Stock", surge=False))
    merged = merge.merge_states([surging, quiet])
    by_app = {v.application_id: v for v in views.subscriptions(merged)}
    assert by_app["app-a"].classes == ["traffic_anomaly"]
    assert by_app["app-b"].classes == ["normal"]
    (want,) = [v for v in views.subscriptions(surging) if v.application_id == "app-a"]
    assert by_app["app-a"].evidence == want.evidence
    apis = {a.api: a for a in views.apis(merged)}
    (orders,) = [a for a in views.apis(surging) if a.api == "Orders"]
    assert "backend_down" in apis["Orders"].classes
    assert apis["Orders"].evidence["backend_down"] == orders.evidence["backend_down"]
    counts = views.class_counts(merged, merged.now_us)  # what vigie status --admin x2 shows
    assert counts["traffic_anomaly"] == 1
    # the same state twice (a replica): the same classes, not doubled episodes
    twice = merge.merge_states([surging, surging])
    assert _class_view(twice)[1] == _class_view(surging)[1]
    for key, eps in surging.episodes.items():
        assert len(twice.episodes[key]) == len(eps)


def test_a_class_held_by_a_former_owner_of_a_row_is_not_carried() -> None:
    state = State(TH)
    _feed(state, _history("app-a", "Stock", surge=True))
    (row,) = state.sub_rows().tolist()
    state.baselines.arrays["bs_i64"][row, K.B_GEN] += 1  # the figures are another row's
    merged = merge.merge_states([state])
    assert [v.classes for v in views.subscriptions(merged)] == [["normal"]]


def test_the_merge_carries_the_api_id_and_the_earliest_observed_since() -> None:
    a, b, c = State(TH), State(TH), State(TH)
    a.ensure_api("Stock", "v1", "/stock", api_id="6a1f-stock", tenant="acme.com")
    b.ensure_api("Orders", "v2", "/orders", api_id="77aa-orders")
    c.ensure_api("Stock", "v1", "/stock", tenant="acme.com")  # no apiId known to this one
    a.observed_since_us, b.observed_since_us, c.observed_since_us = T0 + 50, T0 + 10, 0
    merged = merge.merge_states([a, b, c])
    ids = {merged.api_identity(r) for r in merged.api_rows().tolist()}
    assert ids == {
        ("acme.com", "Stock", "v1", "6a1f-stock"),
        ("carbon.super", "Orders", "v2", "77aa-orders"),
    }
    assert merged.observed_since_us == T0 + 10
    assert merge.merge_states([c]).observed_since_us == 0  # none set: the events' earliest


# ---------------------------------------------------------------------------------------------
# the memory cap
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cap_mb", [12, 24])
def test_the_subscription_rows_and_their_baselines_stay_under_the_cap(cap_mb: int) -> None:
    """``memory_cap_bytes`` bounds the subscription rows (the bulk): counted with the
    baselines' arrays, which grow with them (2.8 KB a row), the rows' real bytes fit the cap.
    With the row cost of the arrays alone (6.3 KB) they would reach 1.45 x the cap."""
    cap = cap_mb << 20
    state = State(Thresholds(), Capacity(memory_cap_bytes=cap, initial_subscriptions=64))
    state.channel_index("main")
    for k in range(4):
        state.apply(to_events(_flood(state, k * 10_000, 10_000, T0 + k * 10_000)))
    assert state.evicted > 0
    bl = state.baselines.arrays
    assert len(bl["bs_i64"]) == len(state.sub_i64)  # grown with the rows
    rows = sum(getattr(state, name).nbytes for name in SUB_ARRAYS)
    rows += sum(bl[name].nbytes for name in B.SUB_SPEC)
    assert rows <= len(state.sub_i64) * sub_row_bytes() <= cap, (rows, cap)
    assert state.nbytes() <= cap
