"""What the security class ``auth_failing`` (``vigie.state._security``) costs, side by side with
the same state without it (``Security.apply`` replaced by nothing), alternated in one run, CPU
time of the measuring thread::

    python -m benchmarks security [--quick]

- per event, on the kernel benchmark's platform (zipf traffic), 8,192-event batches, with no
  authentication failure (the mask alone), and with 5 % of them failing from 20,000 client IPs
  (a few of which flood);
- per batch once the table is full (``max_tracked_clients`` client IPs) and every batch brings
  new addresses (a scan from a botnet): the eviction path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from benchmarks._harness import Result
from benchmarks._load import platform_batch
from vigie.state.engine import State
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import Events, Interner, StreamDecoder, StreamEncoder

T0 = 1_772_409_600_000_000


def _events(n: int, fail_share: float, ips: int, seed: int = 1) -> tuple[Events, Interner]:
    rng = np.random.default_rng(seed)
    enc = StreamEncoder()
    cols = platform_batch(enc, n, rng, T0)
    cols["event_time_us"] = T0 + np.arange(n, dtype=np.int64) * 666  # 1,500 events/s
    ip_ids = np.array([enc.intern(f"h:{k:016x}") for k in range(ips)], dtype=np.uint32)
    pick = np.minimum(rng.zipf(1.3, n) - 1, ips - 1)
    cols["client_ip"] = ip_ids[pick]
    fail = rng.random(n) < fail_share
    cols["http_status"] = np.where(fail, 401, cols["http_status"])
    cols["error_code"] = np.where(fail, 900901, cols.get("error_code", np.zeros(n, np.int64)))
    interner = Interner()
    dec = StreamDecoder(interner, 0, n, 10**7)
    return dec.decode(enc.batch(cols)), interner


def _state(interner: Interner, security: bool, th: Thresholds | None = None) -> State:
    state = State(th)
    state.interner = interner
    state.channel_index("main")
    if not security:
        off: Callable[..., None] = lambda *_: None  # noqa: E731
        state.security.apply = off  # type: ignore[method-assign]
    return state


def _ns_per_event(ev: Events, interner: Interner, security: bool, batch: int = 8192) -> float:
    state = _state(interner, security)
    state.apply(ev.take(slice(0, 20_000)))  # rows created, kernels loaded
    rest = ev.take(slice(20_000, None))
    t = time.thread_time()
    for k in range(0, len(rest), batch):
        state.apply(rest.take(slice(k, k + batch)))
    return (time.thread_time() - t) / len(rest) * 1e9


def _side_by_side(ev: Events, interner: Interner, rounds: int) -> tuple[float, float]:
    with_, without = float("inf"), float("inf")
    for _ in range(rounds):
        with_ = min(with_, _ns_per_event(ev, interner, True))
        without = min(without, _ns_per_event(ev, interner, False))
    return with_, without


def _full_table_ms(limit: int, batches: int) -> float:
    """ms of ``Security.apply`` per 8,192-event batch of failures from new addresses, the
    table full at ``limit`` client IPs."""
    from vigie.state._security import Security  # noqa: PLC0415

    sec = Security()
    n = 8192
    ip = 1
    t_us = T0

    def batch() -> dict[str, np.ndarray]:
        nonlocal ip, t_us
        ids = np.arange(ip, ip + n, dtype=np.int32)
        ip += n
        t_us += 1_000_000
        return {
            "event_time_us": np.full(n, t_us, dtype=np.int64),
            "client_ip": ids,
            "application_id": np.zeros(n, dtype=np.int32),
            "api_name": np.full(n, 3, dtype=np.int32),
            "api_version": np.full(n, 4, dtype=np.int32),
            "http_status": np.full(n, 401, dtype=np.uint16),
            "error_code": np.full(n, 900901, dtype=np.int32),
        }

    while len(sec.index) < limit:
        sec.apply(batch(), 100, limit)
    cols = [batch() for _ in range(batches)]
    t = time.thread_time()
    for c in cols:
        sec.apply(c, 100, limit)
    return (time.thread_time() - t) / batches * 1e3


def run(quick: bool) -> list[Result]:
    n = 200_000 if quick else 1_000_000
    rounds = 2 if quick else 3
    clean, interner = _events(n, 0.0, 20_000)
    c_with, c_without = _side_by_side(clean, interner, rounds)
    failing, interner2 = _events(n, 0.05, 20_000)
    f_with, f_without = _side_by_side(failing, interner2, rounds)
    full = _full_table_ms(100_000, 10 if quick else 40)
    note = "vigie = with auth_failing; naive = the same state without it; ratio = without/with"
    return [
        Result(
            "state.apply, no authentication failure",
            "ns/event",
            c_with,
            c_without,
            "without auth_failing",
            higher_is_better=False,
            notes=note,
        ),
        Result(
            "state.apply, 5 % authentication failures from 20,000 client IPs",
            "ns/event",
            f_with,
            f_without,
            "without auth_failing",
            higher_is_better=False,
            notes=note,
        ),
        Result(
            "Security.apply, table full (100,000 IPs), 8,192 new addresses a batch",
            "ms",
            full,
            None,
            higher_is_better=False,
            notes="the eviction path: coldest first, numpy",
        ),
    ]
