"""The bounds that hold under a cardinality flood, in-process: eviction keeps the established
consumers, the interner releases what no row or stream refers to and hands the ids out again
only once settled, the state's arrays stay under the memory cap."""

from __future__ import annotations

import numpy as np

from tests.unit.state.test_kernels import T0, to_events
from vigie.state import layout as L
from vigie.state.engine import Capacity, State, sub_row_bytes
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import RELEASE_GRACE_S, Interner, StreamDecoder, StreamEncoder


def _flood(state: State, start: int, n: int, t0: int) -> list[dict[str, int]]:
    return [
        {
            "event_time_us": t0 + k,
            "application_id": state.interner.intern(f"flood-{start + k}"),
            "api_name": state.interner.intern("Orders"),
            "api_version": state.interner.intern("v1"),
            "http_status": 200,
            "channel": 0,
        }
        for k in range(n)
    ]


def test_a_flood_evicts_itself_not_the_busy_consumers() -> None:
    state = State(Thresholds(), Capacity(memory_cap_bytes=1, initial_subscriptions=64))
    state.channel_index("main")
    busy = [
        {
            "event_time_us": T0 + k,
            "application_id": state.interner.intern(f"busy-{k % 4}"),
            "api_name": state.interner.intern("Orders"),
            "api_version": state.interner.intern("v1"),
            "http_status": 200,
            "channel": 0,
        }
        for k in range(400)
    ]
    state.apply(to_events(busy))
    # the flood comes later in time: by recency alone the busy rows would be the coldest
    state.apply(to_events(_flood(state, 0, 2000, T0 + 10**9)))
    assert state.evicted > 1900
    for k in range(4):
        gid = state.interner.lookup(f"busy-{k}")
        rows = state.sub_rows()
        mine = rows[state.sub_i64[rows, L.S_APP] == gid]
        assert len(mine) == 1 and state.sub_i64[mine[0], L.S_REQ] == 100


def test_evicted_applications_strings_are_released_then_reused_once_settled() -> None:
    state = State(Thresholds(), Capacity(memory_cap_bytes=1, initial_subscriptions=64))
    state.channel_index("main")
    state.ensure_subscription("inventory-app", "Orders", "v1", "Gold")
    state.apply(to_events(_flood(state, 0, 1000, T0)))
    # a stream whose dictionary still names an evicted application keeps that string
    enc = StreamEncoder()
    dec = StreamDecoder(state.interner, 0, 100, 100)
    dec.decode(
        enc.batch_from_records(
            [
                {
                    "event_time_us": T0,
                    "application_id": "flood-3",
                    "api_name": "Orders",
                    "api_version": "v1",
                    "http_status": 200,
                }
            ]
        )
    )
    held = state.interner.live
    released = state.release_strings([dec.referenced()], epoch=5, now=1000.0)
    assert released >= 1000 - 64 - 1
    assert state.interner.live == held - released
    for name in ("inventory-app", "Orders", "v1", "Gold", "flood-3", "flood-999"):
        assert state.interner.lookup(name) is not None, name
    assert state.interner.lookup("flood-0") is None
    # released ids read as "" and come back only after settle(epoch >= 5), a grace later
    size = len(state.interner)
    state.interner.intern("new-before-settle")
    assert len(state.interner) == size + 1
    assert state.interner.settle(4, now=1e9) == 0  # the data writer still holds them
    assert state.interner.settle(5, now=1000.0 + RELEASE_GRACE_S - 1) == 0  # grace not over
    assert state.interner.settle(5, now=1000.0 + RELEASE_GRACE_S) == released
    gid = state.interner.intern("new-after-settle")
    assert gid < size and len(state.interner) == size + 1
    # every live row still names its application
    rows = state.sub_rows()
    names = {state.string(int(g)) for g in state.sub_i64[rows, L.S_APP]}
    assert "" not in names and "inventory-app" in names


def test_holes_survive_a_snapshot_of_the_strings() -> None:
    i = Interner()
    ids = [i.intern(f"s{k}") for k in range(5)]
    i.release(ids[1:3])
    j = Interner(i.strings())
    assert j.live == i.live and j.reusable == 2
    assert j.lookup("s0") == ids[0] and j.lookup("s3") == ids[3] and j.lookup("") == 0
    assert j.intern("x") in ids[1:3]


def test_the_state_grows_only_while_all_of_it_fits_the_cap() -> None:
    cap = 24 << 20
    state = State(Thresholds(), Capacity(memory_cap_bytes=cap, initial_subscriptions=64))
    state.channel_index("main")
    state.apply(to_events(_flood(state, 0, 20_000, T0)))
    assert state.evicted > 0
    assert state.nbytes() <= cap
    assert len(state.sub_i64) * sub_row_bytes() < cap
    assert np.count_nonzero(state.sub_i64[: state.n_sub_rows, L.S_KEY]) == len(state.sub_rows())
