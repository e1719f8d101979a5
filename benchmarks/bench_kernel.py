"""The ingest kernel's cost per event, side by side with the naive ways: an OpenTelemetry SDK
call per event (a counter and a histogram, what an instrumented gateway plugin would do), and
the same rules in plain Python (tests/naive.py)."""

from __future__ import annotations

import time

import numpy as np
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from benchmarks._harness import Result
from benchmarks._load import platform_batch
from tests.support import naive
from vigie.state.engine import State
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import COLUMNS, Events, Interner, StreamDecoder, StreamEncoder

T0 = 1_772_409_600_000_000


def _events(n: int, seed: int = 1) -> tuple[Events, Interner]:
    rng = np.random.default_rng(seed)
    enc = StreamEncoder()
    cols = platform_batch(enc, n, rng, T0)
    cols["event_time_us"] = T0 + np.arange(n, dtype=np.int64) * 666  # 1,500 events/s
    interner = Interner()
    dec = StreamDecoder(interner, 0, n, 10**6)
    return dec.decode(enc.batch(cols)), interner


def _kernel_ns(ev: Events, interner: Interner, batch: int) -> float:
    state = State()
    state.interner = interner
    state.channel_index("main")
    state.apply(ev.take(slice(0, 20_000)))  # rows created, kernels loaded
    rest = ev.take(slice(20_000, None))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for k in range(0, len(rest), batch):
            state.apply(rest.take(slice(k, k + batch)))
        best = min(best, (time.perf_counter() - t) / len(rest) * 1e9)
    return best


def _otel_ns(ev: Events, interner: Interner, n: int) -> float:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("naive")
    requests = meter.create_counter("requests")
    latency = meter.create_histogram("latency", unit="s")
    app, api, st, lat = (
        ev[c][:n].tolist() for c in ("application_id", "api_name", "http_status", "latency_us")
    )
    t = time.perf_counter()
    for k in range(n):
        attrs = {
            "application": interner.string(app[k]),
            "api": interner.string(api[k]),
            "status": st[k] // 100,
        }
        requests.add(1, attrs)
        latency.record(lat[k] / 1e6, attrs)
    return (time.perf_counter() - t) / n * 1e9


def _python_ns(ev: Events, n: int) -> float:
    nv = naive.NaiveState(Thresholds().params())
    cols = {c.name: ev[c.name][:n].tolist() for c in COLUMNS}
    t = time.perf_counter()
    nv.apply(cols, [0] * n)
    return (time.perf_counter() - t) / n * 1e9


def run(quick: bool) -> list[Result]:
    n = 300_000 if quick else 2_000_000
    ev, interner = _events(n)
    kernel = _kernel_ns(ev, interner, 8192)
    kernel_small = _kernel_ns(ev, interner, 8)
    otel = _otel_ns(ev, interner, 20_000 if quick else 100_000)
    python = _python_ns(ev, 3_000 if quick else 10_000)
    return [
        Result(
            "kernel, 8,192-event batches, 2,500 subscriptions",
            "ns/event",
            kernel,
            otel,
            "an OTel SDK counter + histogram call per event",
            target=30,
            higher_is_better=False,
            extra={"plain_python_rules_ns": python},
        ),
        Result(
            "kernel, 8-event batches (a 1,500 TPS gateway flushing every 5 ms)",
            "ns/event",
            kernel_small,
            python,
            "the same rules in plain Python",
            higher_is_better=False,
        ),
    ]
