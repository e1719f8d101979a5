"""``server.positions``: which events of a handler run were applied, against a naive twin (the
set of every event number seen), on random schedules of overlapping, repeated and gapped
batches; and the peer's detectors' caches taken only when they fit."""

from __future__ import annotations

import io
import random
from collections import Counter

import numpy as np
import pytest

from vigie.server.positions import (
    DETECTOR_ARRAYS,
    Positions,
    read_detectors,
    restore_detectors,
)
from vigie.state.engine import Capacity, State
from vigie.v1 import admin_pb2 as apb


def naive(seen: set[int], first: int, count: int) -> tuple[list[int], int]:
    """The batch's events not seen yet (all after the highest seen), and the missing ones."""
    top = max(seen, default=0)
    fresh = [n for n in range(first, first + count) if n > top]
    missed = max(0, first - top - 1) if seen else 0
    seen.update(range(first, first + count))
    return fresh, missed


@pytest.mark.parametrize("seed", range(20))
def test_skip_matches_the_naive_twin(seed: int) -> None:
    rnd = random.Random(seed)
    counters: Counter[str] = Counter()
    pos = Positions(counters)
    seen: set[int] = set()
    applied: list[int] = []
    want: list[int] = []
    missed_want = 0
    nxt = 1
    sent = 0
    for _ in range(300):
        count = rnd.randint(1, 40)
        sent += count
        kind = rnd.random()
        if kind < 0.2 and nxt > 1:  # sent again: a batch overlapping what was sent
            first = max(1, nxt - rnd.randint(1, 60))
        elif kind < 0.3:  # events dropped for this instance
            first = nxt + rnd.randint(1, 30)
        else:
            first = nxt
        done = pos.skip("gw", "run-1", first, count)
        applied.extend(range(first + done, first + count))
        fresh, missed = naive(seen, first, count)
        want.extend(fresh)
        missed_want += missed
        nxt = max(nxt, first + count)
    assert applied == want
    assert len(applied) == len(set(applied)), "no event applied twice"
    assert counters["stream_events_missed"] == missed_want
    assert counters["stream_events_already_applied"] + len(applied) == sent


def test_a_peer_position_is_taken_and_unnumbered_batches_pass() -> None:
    counters: Counter[str] = Counter()
    pos = Positions(counters)
    assert pos.take([apb.StreamPosition(gateway_id="gw", run_id="r", last_event=100)]) == 1
    assert pos.skip("gw", "r", 61, 50) == 40  # 61..100 the peer applied
    assert pos.skip("gw", "r", 111, 5) == 0
    assert pos.skip("gw", "r", 120, 5) == 0  # 116..119 missing: counted
    assert counters["stream_events_missed"] == 4
    assert pos.skip("gw", "other-run", 1, 5) == 0  # another run of the gateway: its own count
    assert pos.skip("gw", "", 1, 5) == 0  # an older handler: not numbered, nothing skipped
    assert pos.skip("gw", "r", 0, 5) == 0
    assert {(p.run_id, p.last_event) for p in pos.to_proto()} == {("r", 124), ("other-run", 5)}


def test_the_peers_detectors_are_restored_only_with_this_instances_shape() -> None:
    peer = State(capacity=Capacity(detector_entries=1024))
    for name in DETECTOR_ARRAYS:
        getattr(peer, name)[...] = np.arange(getattr(peer, name).size).reshape(
            getattr(peer, name).shape
        )
    buf = io.BytesIO()
    np.savez(buf, **{n: getattr(peer, n) for n in DETECTOR_ARRAYS})
    arrays = read_detectors(buf.getvalue())
    same = State(capacity=Capacity(detector_entries=1024))
    assert restore_detectors(same, arrays)
    for name in DETECTOR_ARRAYS:
        assert np.array_equal(getattr(same, name), getattr(peer, name))
    other = State(capacity=Capacity(detector_entries=4096))
    assert not restore_detectors(other, arrays)
    assert not other.retry_keys.any()
    assert read_detectors(b"not an npz") == {}
    assert read_detectors(b"") == {}
