"""Route rows are bounded by ``memory_cap_bytes`` like API rows: a flood of new routes on one
API (ever-new resources) grows the route table only while the state stays under the cap, then
evicts the coldest routes into route 0 (``vigie.state._evict.make_route_room``); nothing is lost
from the totals, the API rows are untouched and the busy route keeps its figures."""

from __future__ import annotations

import pytest

from tests.unit.state.test_api_evict import SECOND, Twin, _check_consistent, _ev, _feed
from tests.unit.state.test_kernels import T0
from vigie.state import _evict as E
from vigie.state import layout as L
from vigie.state.engine import Capacity, State
from vigie.state.thresholds import Thresholds


@pytest.mark.parametrize("cap_mb", [16, 24])
def test_a_flood_of_new_routes_stays_under_the_memory_cap(cap_mb: int) -> None:
    cap = cap_mb << 20
    state = State(
        Thresholds(),
        Capacity(memory_cap_bytes=cap, initial_subscriptions=64, detector_entries=1 << 12),
    )
    state.channel_index("main")
    twin = Twin()
    applied = 0
    largest = 0
    for b in range(40):
        t = T0 + b * SECOND
        batch = [_ev(state, t + k, "Orders", "app", "/hot") for k in range(10)]
        batch += [_ev(state, t + 100 + k, "Orders", "app", f"/r-{b}-{k}") for k in range(1000)]
        _feed(state, twin, batch)
        applied += len(batch)
        assert state.nbytes() <= cap, (b, state.nbytes(), cap)
        largest = max(largest, len(state.route_i64))
    c = state.counters()
    assert c["route_rows_evicted"] > 0
    assert c["api_rows_evicted"] == 0 and c["evicted_subscriptions"] == 0
    # the table grew as far as the cap let it, no further: one more doubling would not fit
    assert largest >= 1024
    assert not E.may_grow(state, "route", 2 * len(state.route_i64))
    assert largest * E.route_row_bytes() <= cap
    # nothing lost from the totals; what was evicted is in route 0; the busy route is whole
    n = state.n_route_rows
    assert state.route_i64[:n, L.R_REQ].sum() == applied
    assert state.route_hist[:n].sum() == applied
    hot = [r for r in range(1, n) if state.string(int(state.route_i64[r, L.R_RESOURCE])) == "/hot"]
    assert len(hot) == 1 and state.route_i64[hot[0], L.R_REQ] == 400
    assert state.route_i64[0, L.R_REQ] == c["route_rows_evicted"] + c["route_overflow"]
    assert state.n_route_rows + c["route_rows_evicted"] == 1 + 1 + 40_000 - c["route_overflow"]
    _check_consistent(state)
