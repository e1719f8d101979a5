"""The kernel's two passes (rows resolved a chunk at a time, then applied in order), its
latency table and its slot bitmaps, against the naive twin and the plain definitions.

The property tests of test_kernels.py feed streams shorter than a chunk; here the streams are
long enough for many chunks, with batches cut anywhere (inside chunks too) and capacities small
enough that rows are created and the arrays grown in the middle of a chunk."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from tests.support import naive
from tests.unit.state.test_kernels import SMALL, apply_both, compare, new_state, to_events
from vigie.state import _tables as T
from vigie.state import _windows as W
from vigie.state import layout as L
from vigie.state import primitives as P
from vigie.state.engine import Capacity, State

T0 = 1_772_409_600_000_000


def long_stream(rng: np.random.Generator, n: int) -> list[dict[str, int]]:
    """``n`` records over up to 156 subscriptions (39 applications x 4 APIs), mostly in time
    order with jumps back, bursts of retries and long silences."""
    gaps = rng.choice(
        [0, 1_000, 300_000, 2_500_000, 70_000_000, L.HOUR_US, -3_000_000_000],
        p=[0.1, 0.3, 0.3, 0.15, 0.1, 0.03, 0.02],
        size=n,
    )
    t = T0 + np.cumsum(gaps + rng.integers(0, 1000, size=n))
    lat = rng.choice([0, 1, 7, 999, 1000, 5_000, 250_000, 2_000_000, 10_000_000, 2**32 - 1], size=n)
    return [
        {
            "event_time_us": int(max(t[k], 1)),
            "application_id": int(rng.choice([0, *range(1, 40)])),
            "api_name": int(rng.choice([0, 10, 10, 11])),
            "api_version": int(rng.choice([20, 21])),
            "resource_template": int(rng.integers(0, 3)),
            "http_method": int(rng.choice([0, 1, 1, 2, 3])),
            "http_status": int(rng.choice([200, 200, 200, 201, 304, 404, 401, 429, 500, 503])),
            "error_code": int(rng.choice([0, 0, 0, 900803, 900800, 101503, 900901])),
            "latency_us": int(min(2**32 - 1, lat[k] + rng.integers(0, 4))),
            "response_bytes": int(rng.choice([-1, 0, 512])),
            "uri_hash": int(rng.choice([0, 0, 7, 8])),
            "flags": int(rng.choice([0, 0, 1])),
            "channel": int(rng.integers(0, 3)),
        }
        for k in range(n)
    ]


def assert_masks_exact(state: State) -> None:
    """Each slot bitmap marks exactly the non-empty slots of its ring."""
    n = state.n_sub_rows
    sw = state.sub_sw[:n, :, L.SW_REQ] != 0
    rw = state.sub_rw[:n, :, L.RW_REQ] != 0
    bits = 1 << np.arange(L.SHORT_SLOTS, dtype=np.int64)
    np.testing.assert_array_equal(state.sub_i64[:n, L.S_SW_MASK], (sw * bits).sum(axis=1))
    bits = 1 << np.arange(L.RETRY_SLOTS, dtype=np.int64)
    np.testing.assert_array_equal(state.sub_i64[:n, L.S_RW_MASK], (rw * bits).sum(axis=1))
    # no field of a slot whose request count is 0 is set (what the bitmap may skip is empty)
    assert not state.sub_sw[:n][~sw].any() and not state.sub_rw[:n][~rw].any()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_long_streams_cut_anywhere_match_the_naive_twin(seed: int) -> None:
    rng = np.random.default_rng(seed)
    records = long_stream(rng, 3 * T.CHUNK + 77)
    cuts = [int(c) for c in rng.integers(0, len(records), size=int(rng.integers(0, 6)))]
    state = new_state(SMALL)  # 2 subscription rows, 1 API row: grown mid-chunk
    # route rows grow between batches only (a batch's new routes beyond half the rows go to
    # the overflow row): room for all of them, so that each is compared
    state._alloc_routes(1 << 13)
    nv = naive.NaiveState(SMALL.params(), app_channel={2: 1}, bounded_retries=True)
    state.app_channel[2] = 1
    apply_both(state, nv, records, cuts)
    assert len(records) > 3 * T.CHUNK and state.n_sub_rows > 100
    assert state.g[L.G_ROUTE_OVERFLOW] == 0
    compare(state, nv)
    assert_masks_exact(state)


def _flood_state() -> State:
    state = State(SMALL, Capacity(memory_cap_bytes=1, initial_subscriptions=8, initial_apis=1))
    for k in range(40):
        state.interner.intern(f"s{k}")
    for ch in ("main", "sale", "preparation"):
        state.channel_index(ch)
    state._alloc_routes(1 << 13)  # no route overflow in one batch (rows grow between batches)
    return state


def test_one_batch_equals_one_event_at_a_time_through_evictions() -> None:
    """A memory cap of 64 rows for 156 subscriptions: the kernel stops mid-chunk, rows are
    evicted and it resumes at that event, its first pass done again. Every array ends equal to
    the state fed one event per call (whose first pass resolves that event alone)."""
    records = long_stream(np.random.default_rng(7), 3 * T.CHUNK)
    whole, single = _flood_state(), _flood_state()
    whole.apply(to_events(records))
    for r in records:
        single.apply(to_events([r]))
    assert whole.evicted > 100 and whole.evicted == single.evicted
    a, b = whole.used_arrays(), single.used_arrays()
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert whole.episodes == single.episodes
    for row in whole.sub_rows().tolist():
        key = int(whole.sub_i64[row, L.S_KEY])
        assert int(T.table_find(whole.sub_tkeys, whole.sub_tvals, key)) == row
    assert_masks_exact(whole)


def test_latency_table_agrees_with_the_log2_definition() -> None:
    rng = np.random.default_rng(5)
    upper = T._UPPER[: L.LAT_BUCKETS]
    lats = np.concatenate(
        [
            np.arange(0, 1 << 16),
            upper,
            upper + 1,
            np.maximum(upper - 1, 0),
            rng.integers(0, 1 << 32, size=200_000),
            rng.lognormal(10.5, 2.0, size=200_000).astype(np.int64),
            [(1 << 32) - 1, (1 << 32) - 2],
        ]
    ).astype(np.int64)
    lats = lats[(lats >= 0) & (lats < 1 << 32)]
    fast = np.array([T.bucket_of_latency(int(v)) for v in lats[:5000]])
    slow = np.array([P.latency_bucket(int(v)) for v in lats[:5000]])
    np.testing.assert_array_equal(fast, slow)
    assert _mismatches(lats) == 0
    assert T.bucket_of_latency(0) == 0 and T.bucket_of_latency(-5) == 0


@njit(cache=False)
def _count_mismatches(xs: np.ndarray) -> int:
    bad = 0
    for x in xs:
        bad += T.bucket_of_latency(x) != P.latency_bucket(x)
    return bad


def _mismatches(lats: np.ndarray) -> int:
    return int(_count_mismatches(lats))


def test_passed_slots_are_the_slots_between() -> None:
    for slots in (L.SHORT_SLOTS, L.RETRY_SLOTS, 7):
        for cur in range(0, 3 * slots, 5):
            for k in range(cur + 1, cur + slots):
                want = sum(1 << ((cur + j) % slots) for j in range(1, k - cur + 1))
                assert W.passed_slots(cur, k, slots) == want, (cur, k, slots)
