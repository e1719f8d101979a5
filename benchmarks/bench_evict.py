"""What evicting API rows costs (``vigie.state._evict.evict_apis``: an eighth of a full table,
the sidecar's lock held meanwhile), side by side with the naive way of keeping the rows dense,
moving every kept row down in order (``_evict._compact`` over the same arrays); and what
evicting route rows costs (``evict_routes``: half a full table) with the ``RouteFold`` it
leaves for the export, side by side with the same eviction leaving none (before it)::

    python -m benchmarks evict [--quick]

On a state of N API rows, one subscription and one route each, one request each (so the
victims are the oldest rows, the first ones: the worst case for an in-order compaction).
Wall time of the first eviction (the jitted helpers warmed on a small state): most pages of the
rows' baselines were never touched, as in a sidecar, and writing zeros to them costs their
allocation.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from benchmarks._harness import Result
from vigie.state import _evict as E
from vigie.state._arrays import API_ARRAYS
from vigie.state._baselines import API_SPEC
from vigie.state.engine import Capacity, State
from vigie.wire.columns import COLUMN_NAMES, ENGINE_DTYPES, Events

T0 = 1_772_409_600_000_000


def _state(n: int) -> State:
    st = State(capacity=Capacity(max_apis=n, initial_apis=n, memory_cap_bytes=8 << 30))
    st.channel_index("main")
    it = st.interner
    cols = {c: np.zeros(n, dtype=ENGINE_DTYPES[c]) for c in COLUMN_NAMES}
    cols["event_time_us"][:] = T0 + np.arange(n)
    cols["application_id"][:] = [it.intern(f"app-{k}") for k in range(n)]
    cols["api_name"][:] = [it.intern(f"api-{k}") for k in range(n)]
    cols["api_version"][:] = it.intern("v1")
    cols["http_status"][:] = 200
    cols["request_bytes"][:] = cols["response_bytes"][:] = -1
    st.apply(Events(cols, np.zeros(n, dtype=np.uint8)))
    return st


def _naive(st: State, count: int) -> int:
    """The in-order compaction of the API rows and their baselines (references not rewritten:
    the cheaper part, the same in both)."""
    n = st.n_api_rows
    kept = np.arange(count, n)
    for name in API_ARRAYS:
        E._compact(getattr(st, name), kept, n)
    for name in API_SPEC:
        E._compact(st.baselines.arrays[name], kept, n)
    st.api_meta[1] = len(kept)
    return count


def _route_state(n: int) -> State:
    """A full route table of ``n`` rows: one API, ``n - 1`` resources, 1 to 3 requests each."""
    st = State(capacity=Capacity(max_routes=n, memory_cap_bytes=8 << 30))
    st.channel_index("main")
    it = st.interner
    m = n - 1
    cols = {c: np.zeros(m, dtype=ENGINE_DTYPES[c]) for c in COLUMN_NAMES}
    cols["event_time_us"][:] = T0 + np.arange(m)
    cols["application_id"][:] = it.intern("app")
    cols["api_name"][:] = it.intern("api")
    cols["api_version"][:] = it.intern("v1")
    cols["resource_template"][:] = [it.intern(f"/r/{k}") for k in range(m)]
    cols["http_status"][:] = 200
    cols["latency_us"][:] = 1000 + np.arange(m) % 5000
    cols["request_bytes"][:] = cols["response_bytes"][:] = -1
    st._alloc_routes(n)  # the table at its size: the batch fills it, no eviction yet
    st.apply(Events(cols, np.zeros(m, dtype=np.uint8)))
    return st


_WITH_FOLD = E._fold


def _empty_fold(
    state: State, victims: npt.NDArray[np.intp], hist: npt.NDArray[np.int64]
) -> E.RouteFold:
    return _WITH_FOLD(state, victims[:0], hist[:0])


def _route_results(quick: bool) -> list[Result]:
    out = []
    for n in (8192,) if quick else (8192, 65536):
        times = []
        for fold in (True, False):
            if not fold:  # before: no RouteFold (its names and figures not copied)
                setattr(E, "_fold", _empty_fold)  # noqa: B010
            try:
                E.evict_routes(_route_state(64), 8)  # warmed
                st = _route_state(n)
                t = time.perf_counter()
                E.evict_routes(st, n // 2)
                times.append((time.perf_counter() - t) * 1e3)
            finally:
                setattr(E, "_fold", _WITH_FOLD)  # noqa: B010
            del st
        out.append(
            Result(
                f"evict {n // 2:,} of {n:,} route rows",
                "ms",
                times[0],
                naive=times[1],
                naive_label="without the RouteFold (before)",
                higher_is_better=False,
                notes="the lock is held meanwhile; the fold's copy is the difference",
            )
        )
    return out


def run(quick: bool) -> list[Result]:
    out = _route_results(quick)
    for n in (4096,) if quick else (4096, 32768):
        count = n // 8
        times = []
        for fn in (E.evict_apis, _naive):
            fn(_state(64), 8)  # the jitted helpers compiled
            st = _state(n)
            t = time.perf_counter()
            fn(st, count)
            times.append((time.perf_counter() - t) * 1e3)
            del st
        out.append(
            Result(
                f"evict {count:,} of {n:,} API rows",
                "ms",
                times[0],
                naive=times[1],
                naive_label="in-order compaction",
                higher_is_better=False,
                notes="the lock is held meanwhile; one eviction per n/8 new APIs",
            )
        )
    return out
