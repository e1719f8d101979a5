"""The kernel's first pass (``_tables.resolve_chunk``) against its definition, one event at a
time: each event's API, subscription and route rows as ``table_find`` / ``find_route`` find
them, its latency bucket and its window slots by plain division.

Whatever the first pass does to be fast (its loop shape, prefetches, what it carries from
one event to the next), it may not change a value. The states here have rows evicted and moved
(subscriptions freed, API rows compacted), routes sharing a key (a method >= 16 and a status
>= 1024 are folded in the key, not in the identity) and events whose rows do not exist yet."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.state.test_kernel_passes import _flood_state, long_stream
from tests.unit.state.test_kernels import SMALL, new_state, to_events
from vigie.state import _evict as E
from vigie.state import _tables as T
from vigie.state import layout as L
from vigie.state.codes import is_throttled
from vigie.state.engine import _APIS, _EVENTS, _ROUTES, _SUBS, State

# the columns of ``resolved`` the first pass fills: X_API, X_SUB, X_ROUTE, X_LAT, X_SW, X_RW
_FIELDS = 6
assert tuple(range(_FIELDS)) == (T.X_API, T.X_SUB, T.X_ROUTE, T.X_LAT, T.X_SW, T.X_RW)


def _columns(state: State, records: list[dict[str, int]]) -> tuple[np.ndarray, ...]:
    ev = to_events(records)
    return (*_EVENTS(state._tenant_keyed(ev.columns)), ev.channel)


def _definition(state: State, events: tuple[np.ndarray, ...], i: int) -> list[int]:
    """resolved[i, :_FIELDS] of event ``i`` by the definitions, one lookup after another."""
    ts, app = int(events[0][i]), int(events[1][i])
    name, version = int(events[4][i]), int(events[5][i])
    res, me, st, ec, lat = (int(events[k][i]) for k in range(7, 12))
    flags, ch = int(events[18][i]), int(events[19][i])
    arow = srow = rrow = -1
    if name != 0:
        arow = int(T.table_find(state.api_tkeys, state.api_tvals, (name << 32) | version))
    if arow >= 0:
        if app != 0:
            srow = int(T.table_find(state.sub_tkeys, state.sub_tvals, (app << 32) | arow))
        thr = 1 if is_throttled(ec, flags) else 0
        key = int(T.route_key(arow, res, me, st, ec, ch, thr))
        rrow = int(T.find_route(_ROUTES(state), key, arow, res, me, st, ec, ch, thr))
    sw = int(state.params[L.P_SW_SLOT_US])
    rw = int(state.params[L.P_RW_SLOT_US])
    return [arow, srow, rrow, int(T.bucket_of_latency(lat)), ts // sw, ts // rw]


def _check(state: State, records: list[dict[str, int]], rng: np.random.Generator) -> int:
    """resolve_chunk over random ranges of ``records`` against the definition; returns how many
    events found all three rows (so that a test can require some)."""
    events = _columns(state, records)
    n = len(records)
    found = 0
    for _ in range(6):
        c0 = int(rng.integers(0, n))
        c1 = min(n, c0 + int(rng.integers(1, T.CHUNK + 1)))
        resolved = np.full((T.CHUNK, T.X_FIELDS), -7, dtype=np.int64)
        args = (_SUBS(state), _APIS(state), _ROUTES(state), state.params, resolved)
        T.resolve_chunk(events, c0, c1, *args)
        for i in range(c0, c1):
            want = _definition(state, events, i)
            got = resolved[i - c0, :_FIELDS].tolist()
            assert got == want, (i, got, want)
            found += min(got[:3]) >= 0
    return found


def _shared_route_keys(records: list[dict[str, int]], rng: np.random.Generator) -> None:
    """Methods 15-17 and statuses 1024-1026 on some records: their routes share keys."""
    for r in records[::3]:
        r["http_method"] = int(rng.choice([15, 16, 17]))
        r["http_status"] = int(rng.choice([200, 1024, 1025, 1026]))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_first_pass_equals_one_lookup_after_another(seed: int) -> None:
    rng = np.random.default_rng(seed)
    records = long_stream(rng, 3 * T.CHUNK)
    _shared_route_keys(records, rng)
    state = new_state(SMALL)
    state._alloc_routes(1 << 13)
    state.apply(to_events(records[: 2 * T.CHUNK]))  # the last third: rows partly new
    keys = state.route_i64[1 : state.n_route_rows, L.R_KEY]
    assert len(np.unique(keys)) < len(keys)  # some routes do share a key
    assert _check(state, records, rng) > 100


def test_first_pass_after_evictions_and_moved_api_rows() -> None:
    """Subscriptions evicted under a small cap, then API rows compacted (rows moved, tables
    rebuilt): the first pass finds what the rebuilt tables say, nothing stale."""
    rng = np.random.default_rng(11)
    records = long_stream(rng, 3 * T.CHUNK)
    _shared_route_keys(records, rng)
    state = _flood_state()
    state.apply(to_events(records[: 2 * T.CHUNK]))
    assert state.evicted > 50
    assert _check(state, records, rng) > 0
    epoch = state.row_epoch
    E.make_api_room(state)  # may evict and compact API rows
    state.apply(to_events(records[T.CHUNK : 2 * T.CHUNK]))
    assert state.row_epoch >= epoch
    assert _check(state, records, rng) > 0
