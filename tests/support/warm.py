"""Numba's cache, warmed once before the first test that starts a real ``vigie serve``.

The kernels are compiled with ``cache=True``: the compiled code is written beside the sources
(``__pycache__/*.nbi``, ``*.nbc``) and every later process with the same argument types loads
it instead of compiling. In a fresh clone nothing is cached yet, and the first real process
compiles everything itself: minutes on a loaded machine (421 s was seen at load 16), inside
the bound of whichever test started it, which then fails for no fault of its own.

``warm()`` runs the sidecar's own code paths once in the test process, with the types of a
real stream: ``vigie.server.run.warm_up_kernels`` (what ``vigie serve`` calls before it
listens), then an in-process ``Sidecar`` given a few hours of traffic through a gateway stream
(ingest, rules, hour-of-week baselines), its data writer (the rollup kernels, Parquet), a
snapshot, what runs only at a bound (evictions of routes, APIs and subscriptions, the rollups'
tables refreshed, a fleet merge) and the OTLP points of both histogram kinds. The subprocesses
started afterwards find their kernels in the cache (checked with ``NUMBA_DEBUG_CACHE=1``: a
sidecar given traffic, rollups, an export and snapshots afterwards saves no new kernel). Run
alone: ``python -m tests.support.warm`` prints what it took.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from tests.support.policy_traffic import END, MINUTE, Record, error_prone, retry_storm, steady
from tests.support.policy_traffic import throttle_hitter as throttling
from vigie.export import Builder, build_options, collect, encode_request
from vigie.server.core import Sidecar
from vigie.server.run import warm_up_kernels
from vigie.settings import load_settings
from vigie.state import _evict as E
from vigie.state.merge import merge_states
from vigie.store.rollup import Accumulator
from vigie.v1 import telemetry_pb2 as tpb
from vigie.wire.columns import StreamDecoder, StreamEncoder

_done: float | None = None


def _traffic() -> list[list[Record]]:
    """Three hours of traffic ending at ``END`` in batches of a few hundred events: steady
    reads, throttling, a retry storm and client errors, as a gateway would send them."""
    start = END - 180 * MINUTE
    records = [
        *steady("app-warm", start, 180, 6),
        *throttling("app-throttled", start, 180, 4),
        *retry_storm("app-retry", END - 10 * MINUTE),
        *error_prone("app-errors", start),
    ]
    records.sort(key=lambda r: int(r["event_time_us"]))
    return [records[k : k + 500] for k in range(0, len(records), 500)]


def _sidecar_paths(state_dir: Path) -> None:
    settings = load_settings(
        env={}, overrides={"state_dir": str(state_dir), "data_store": "parquet"}
    )
    sc = Sidecar(settings)
    if sc.data is not None:
        sc.data.start()
    hello = tpb.Hello(gateway_id="gw-warm", channel="main", tenant="carbon.super",
                      protocol_version=1)  # fmt: skip
    gs, dec = sc.open_stream(hello, "ipv4:127.0.0.1:1")
    enc = StreamEncoder()
    try:
        for chunk in _traffic():
            sc.apply_batch(gs, dec, enc.batch_from_records(chunk))
    finally:
        sc.close_stream(gs)
    if sc.data is not None:
        sc.data.close()  # flushes: the rollup kernels and the Parquet writer
    sc.write_snapshot()
    _evictions(sc)
    for histogram in ("exponential", "explicit"):
        for delta in (False, True):
            s = load_settings(env={}, overrides={"state_dir": str(state_dir),
                                                 "otel_histogram": histogram})  # fmt: skip
            builder = Builder(build_options(s, delta))
            encode_request(builder.build(collect(sc)))


def _evictions(sc: Sidecar) -> None:
    """What a sidecar runs only when a bound is reached (a flood of APIs, applications or
    routes against ``memory_cap``, the rollups' tables half full) or a fleet merges states:
    rare in one test, but then inside a real sidecar, under its lock, on a busy machine."""
    state = sc.state
    E.evict_routes(state, 1)
    E.evict_apis(state, 1)
    state.evict(1)
    merge_states([state])
    acc = Accumulator()
    enc = StreamEncoder()
    dec = StreamDecoder(state.interner, state.channel_index("warm-up"), 4096, 4096)
    for chunk in _traffic():
        acc.add(dec.decode(enc.batch_from_records(chunk)))
    acc._refresh_tables()  # private: what add() does when its tables are half full


def warm() -> float:
    """Compile (or load from the cache) every kernel a real sidecar runs; the seconds it took
    (0 after the first call in a process)."""
    global _done
    if _done is not None:
        return 0.0
    started = time.perf_counter()
    quiet = logging.getLogger("vigie")  # the evictions' warnings are the warm-up's own
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        warm_up_kernels()
        with tempfile.TemporaryDirectory(prefix="vigie-warm-") as d:
            _sidecar_paths(Path(d) / "state")
    finally:
        quiet.setLevel(level)
    _done = time.perf_counter() - started
    return _done


if __name__ == "__main__":
    print(f"kernels warm in {warm():.1f} s")
