"""What the hour-of-week baselines and the health classes (``vigie.state._baselines``) cost, side
by side with the same state without them (``Baselines.apply`` replaced by nothing), alternated
in one run, CPU time of the measuring thread::

    python -m benchmarks baselines [--quick]

- per event, on the kernel benchmark's platform (2,500 subscriptions, 600 APIs, zipf traffic)
  at 1,500 events/s of event time: the per-event work plus the minute sweeps, amortised;
- per event when event time runs fast and the events are few per minute (a replay of a quiet
  platform: 150 events a minute of event time), where the minute sweep over every row
  dominates;
- per minute boundary, the sweep alone, per 1,000 subscription rows (one event that starts a
  new minute, on a state of 10,000 subscriptions).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from benchmarks._harness import Result
from benchmarks._load import platform_batch
from vigie.state.engine import State
from vigie.wire.columns import Events, Interner, StreamDecoder, StreamEncoder

T0 = 1_772_409_600_000_000
MINUTE = 60_000_000


def _events(n: int, gap_us: int, seed: int = 1) -> tuple[Events, Interner]:
    rng = np.random.default_rng(seed)
    enc = StreamEncoder()
    cols = platform_batch(enc, n, rng, T0)
    cols["event_time_us"] = T0 + np.arange(n, dtype=np.int64) * gap_us
    interner = Interner()
    dec = StreamDecoder(interner, 0, n, 10**6)
    return dec.decode(enc.batch(cols)), interner


def _state(interner: Interner, baselines: bool) -> State:
    state = State()
    state.interner = interner
    state.channel_index("main")
    if not baselines:
        off: Callable[..., None] = lambda *_: None  # noqa: E731
        state.baselines.apply = off  # type: ignore[method-assign]
    return state


def _ns_per_event(ev: Events, interner: Interner, batch: int, baselines: bool) -> float:
    state = _state(interner, baselines)
    state.apply(ev.take(slice(0, 20_000)))  # rows created, kernels loaded
    rest = ev.take(slice(20_000, None))
    t = time.thread_time()
    for k in range(0, len(rest), batch):
        state.apply(rest.take(slice(k, k + batch)))
    return (time.thread_time() - t) / len(rest) * 1e9


def _side_by_side(ev: Events, interner: Interner, batch: int, rounds: int) -> tuple[float, float]:
    """(with, without) ns/event, the best of ``rounds`` alternated runs each."""
    with_, without = float("inf"), float("inf")
    for _ in range(rounds):
        with_ = min(with_, _ns_per_event(ev, interner, batch, True))
        without = min(without, _ns_per_event(ev, interner, batch, False))
    return with_, without


def _sweep_us_per_1k_rows(subs: int, boundaries: int) -> tuple[float, float]:
    """(with, without) microseconds of one minute boundary per 1,000 subscription rows."""
    enc = StreamEncoder()
    apps = [enc.intern(f"app-{k}") for k in range(subs)]
    api = enc.intern("api")
    ver = enc.intern("v1")
    cols: dict[str, np.ndarray] = {
        "event_time_us": T0 + np.arange(subs, dtype=np.int64),
        "application_id": np.array(apps, dtype=np.uint32),
        "api_name": np.full(subs, api, dtype=np.uint32),
        "api_version": np.full(subs, ver, dtype=np.uint32),
        "http_status": np.full(subs, 200),
        "latency_us": np.full(subs, 20_000),
    }
    interner = Interner()
    dec = StreamDecoder(interner, 0, max(subs, 1024), 10**6)
    first = dec.decode(enc.batch(cols))
    ticks = []
    for b in range(1, boundaries + 1):  # one event a minute, each starts a new minute
        one = {k: v[:1] for k, v in cols.items()} | {
            "event_time_us": np.array([T0 + b * MINUTE], dtype=np.int64)
        }
        ticks.append(dec.decode(enc.batch(one)))
    out = []
    for baselines in (True, False):
        state = _state(interner, baselines)
        state.apply(first)
        state.apply(ticks[0])
        t = time.thread_time()
        for tick in ticks[1:]:
            state.apply(tick)
        out.append((time.thread_time() - t) / (len(ticks) - 1) * 1e6 / (subs / 1000))
    return out[0], out[1]


def run(quick: bool) -> list[Result]:
    n = 300_000 if quick else 2_000_000
    rounds = 2 if quick else 3
    dense, interner = _events(n, 666)  # 1,500 events/s
    big_with, big_without = _side_by_side(dense, interner, 8192, rounds)
    small_with, small_without = _side_by_side(dense, interner, 8, rounds)
    sparse, interner2 = _events(n // 4, 400_000)  # 150 events a minute of event time
    sparse_with, sparse_without = _side_by_side(sparse, interner2, 8192, rounds)
    sweep_with, sweep_without = _sweep_us_per_1k_rows(10_000, 60 if quick else 200)
    note = "vigie = with the baselines; naive = the same state without them; ratio = without/with"
    return [
        Result(
            "state.apply with baselines, 8,192-event batches, 1,500 events/s",
            "ns/event",
            big_with,
            big_without,
            "without baselines",
            higher_is_better=False,
            notes=note,
        ),
        Result(
            "state.apply with baselines, 8-event batches, 1,500 events/s",
            "ns/event",
            small_with,
            small_without,
            "without baselines",
            higher_is_better=False,
            notes=note,
        ),
        Result(
            "state.apply with baselines, 150 events per minute of event time (quiet replay)",
            "ns/event",
            sparse_with,
            sparse_without,
            "without baselines",
            higher_is_better=False,
            notes=note + "; 2,500 subscriptions swept each minute",
        ),
        Result(
            "one minute boundary (the sweep), per 1,000 subscription rows",
            "us",
            sweep_with,
            sweep_without,
            "without baselines",
            higher_is_better=False,
            notes="10,000 subscriptions, one event per minute",
        ),
    ]
