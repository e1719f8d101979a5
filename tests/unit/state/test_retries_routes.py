"""Issue 16's two defects: retries of overlapping failures of different latencies (the rule as
written, against the naive twin that keeps every failure) and routes keyed exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import naive
from tests.unit.state.test_kernels import (
    SMALL,
    T0,
    apply_both,
    compare,
    event_streams,
    new_state,
    route_counts,
    to_events,
)
from vigie.state import _tables as T
from vigie.state import layout as L
from vigie.state import primitives as P
from vigie.state.thresholds import Thresholds

SEC = 1_000_000


def record(t: int, status: int = 200, latency: int = 1000, **kw: int) -> dict[str, int]:
    r = {
        "event_time_us": t,
        "application_id": 1,
        "api_name": 10,
        "api_version": 20,
        "resource_template": 1,
        "http_method": 1,
        "http_status": status,
        "error_code": 0,
        "latency_us": latency,
        "response_bytes": -1,
        "uri_hash": 0,
        "flags": 0,
        "channel": 0,
    }
    r.update(kw)
    return r


def retries(records: list[dict[str, int]]) -> tuple[int, int]:
    """(kernel's retries, the exact twin's) of one subscription fed ``records``."""
    state = new_state(Thresholds())
    state.apply(to_events(records))
    nv = naive.NaiveState(Thresholds().params())
    apply_both(new_state(Thresholds()), nv, records, [])
    (row,) = state.sub_rows()
    return int(state.sub_i64[row, L.S_RETRIES]), nv.subs[(1, 10, 20)].counts["retries"]


def test_fast_failure_during_a_slow_one_keeps_the_slow_ones_retries() -> None:
    """A 504 after 10 s, a 503 in 5 ms while it is outstanding: the requests up to 2 s after the
    504's response are its retries (today's detector forgot the 504 at the 503)."""
    recs = [
        record(T0, 504, 10 * SEC),
        record(T0 + SEC, 503, 5000),  # itself a retry of the 504
        record(T0 + 11 * SEC),  # 1 s after the 504's response: a retry
        record(T0 + 12 * SEC - 1),  # just within the 504's gap
        record(T0 + 12 * SEC + 1),  # past both gaps
    ]
    assert retries(recs) == (3, 3)


def test_request_between_two_disjoint_failure_windows_is_not_a_retry() -> None:
    recs = [
        record(T0, 503, 5000),
        record(T0 + 3 * SEC),  # past the first failure's gap, before the second failure
        record(T0 + 10 * SEC, 503, 5000),
        record(T0 + 11 * SEC),  # a retry of the second
    ]
    assert retries(recs) == (1, 1)


def test_a_late_failure_apart_from_the_remembered_window_is_forgotten_and_counted() -> None:
    """The documented bound (vigie.state._tables.remember_failure): one window per resource;
    a failure arriving late, older than it and apart from it, is forgotten (its late retries
    do not count) and counted as a detector replacement. The rule would count one."""
    recs = [
        record(T0 + 100 * SEC, 503, 5000),
        record(T0, 503, 5000),  # late, 100 s before: forgotten
        record(T0 + SEC),  # late request in the forgotten failure's window
    ]
    state = new_state(Thresholds())
    state.apply(to_events(recs))
    (row,) = state.sub_rows()
    assert state.sub_i64[row, L.S_RETRIES] == 0
    assert state.g[L.G_RETRY_EVICT] == 2  # the resource's window and the subscription's
    assert retries(recs)[1] == 1  # the rule as written
    bounded = naive.NaiveState(Thresholds().params(), bounded_retries=True)
    apply_both(new_state(Thresholds()), bounded, recs, [])
    assert bounded.subs[(1, 10, 20)].counts["retries"] == 0


@st.composite
def failure_storms(draw: Any) -> list[dict[str, int]]:
    """Mixed fast and slow failures overlapping each other and the requests after them, in
    request-time order, on two resources (and records without one) of one or two subscriptions."""
    t = T0 + draw(st.integers(0, 10**6))
    out = []
    for _ in range(draw(st.integers(1, 120))):
        t += draw(st.sampled_from([0, 1, 1000, 300_000, 900_000, 1_999_999, 2_000_001, 5 * SEC]))
        out.append(
            record(
                t,
                draw(st.sampled_from([200, 200, 404, 500, 503, 504, 429])),
                draw(st.sampled_from([0, 5000, 400_000, 2 * SEC, 10 * SEC, 30 * SEC])),
                application_id=draw(st.sampled_from([1, 1, 2])),
                resource_template=draw(st.sampled_from([0, 1, 1, 2])),
                http_method=draw(st.sampled_from([1, 1, 3])),
                flags=draw(st.sampled_from([0, 0, 0, 1])),
            )
        )
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(failure_storms(), event_streams(in_order=True)),
    st.lists(st.integers(0, 200), max_size=6),
)
def test_kernel_matches_the_rule_as_written_in_request_time_order(
    records: list[dict[str, int]], cuts: list[int]
) -> None:
    """In request-time order the kernel agrees with the twin that keeps every failure, on every
    figure (retries, the retry window, the classes), whatever the batch cuts."""
    state = new_state(SMALL)
    nv = naive.NaiveState(SMALL.params(), app_channel={2: 1})
    state.app_channel[2] = 1
    apply_both(state, nv, records, cuts)
    compare(state, nv)


def test_routes_that_shared_a_key_stay_apart() -> None:
    """Methods 16 and 17 packed to one route key (and one row) before; both identities now
    have their own row, and the twin agrees."""
    recs = [record(T0, http_method=16), record(T0 + 1, http_method=17), record(T0 + 2)]
    state = new_state(SMALL)
    nv = naive.NaiveState(SMALL.params())
    apply_both(state, nv, recs, [1])
    got = route_counts(state)
    assert got == dict(nv.routes)
    assert {k[3] for k in got} == {16, 17, 1}


def test_route_row_is_exact_for_colliding_keys() -> None:
    """API row 2^18 with resource 0 and API row 0 with resource 1 have the same packed key;
    State.route_row (the merge's path) gives them two rows, found again after the table grows."""
    assert T.route_key(1 << 18, 0, 1, 200, 0, 0, 0) == T.route_key(0, 1, 1, 200, 0, 0, 0)
    state = new_state(SMALL)
    a = state.route_row(1 << 18, 0, 1, 200, 0, 0, 0)
    b = state.route_row(0, 1, 1, 200, 0, 0, 0)
    assert a != b
    state._alloc_routes(2 * len(state.route_i64))  # rebuilds the table from the rows
    assert state.route_row(1 << 18, 0, 1, 200, 0, 0, 0) == a
    assert state.route_row(0, 1, 1, 200, 0, 0, 0) == b
    assert np.count_nonzero(state.route_i64[: state.n_route_rows, L.R_KEY]) == 2
    assert P.nonzero_key(1) == 1
