"""OpenTelemetry export: the cost of one export cycle for ~10,000 series, and the longest stall it
causes on the ingest thread, side by side with the SDK-instrument way (an OTel Counter and
Histogram updated for every event, collected by the SDK).

Platform (about the seed's shape, sized for ~10,000 exported series): 111 APIs x 10 resources,
4 channels, 6 status / WSO2 code outcomes (200, 404, 401 900901, 429 900800 and 900804,
503 101503), 2,000 subscriptions, log-normal latencies. Every route is used from every
channel, so the state holds ~26,600 route rows behind the ~10,000 series.

vigie's cycle = collect (chunked copies under the sidecar's lock) + build the points + encode
the OTLP request; the SDK exporters take those bytes as they are (the parse + serialize that
passing a protobuf message would cost is measured apart), and the network send depends on the
backend. The stall is the longest time the ingest thread waited for the sidecar's lock while
export cycles ran back to back, against the same loop without export; the whole delay of each
batch (GIL, lock, and the OS scheduling other processes on the 2 cores) is in extra, with and
without export. The SDK way's stall is the time its per-event instrument calls add to one
1,024-event batch while the SDK collects (that work sits on the ingest thread).
"""

from __future__ import annotations

import gc
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

from benchmarks._harness import Result
from vigie.export import Builder, BuildOptions, collect, encode_request, to_metrics_data
from vigie.export._series import METHODS
from vigie.server import SWITCH_INTERVAL_S, Sidecar
from vigie.settings import load_settings
from vigie.state.engine import State
from vigie.wire.columns import ENGINE_DTYPES, Events

T0 = 1_767_225_600_000_000
CHANNELS = ("main", "sale", "preparation", "delivery")
OUTCOMES = (  # status, WSO2 code, share
    (200, 0, 0.88),
    (404, 0, 0.04),
    (401, 900901, 0.02),
    (429, 900800, 0.02),
    (429, 900804, 0.02),
    (503, 101503, 0.02),
)


class Platform:
    def __init__(self, state: State, apis: int, seed: int = 5) -> None:
        self.rng = np.random.default_rng(seed)
        self.apis, self.res, self.subs = apis, 10, 2000
        it = state.interner
        self.api_ids = np.array([it.intern(f"API{i}") for i in range(apis)], dtype=np.int32)
        self.version = it.intern("1.0.0")
        self.res_ids = np.array([it.intern(f"/resource/{r}") for r in range(10)], dtype=np.int32)
        self.app_ids = np.array([it.intern(f"app-{a}") for a in range(600)], dtype=np.int32)
        self.sub_app = self.rng.integers(0, 600, self.subs)
        self.sub_api = self.rng.integers(0, apis, self.subs)
        self.chan = np.array([state.channel_index(c) for c in CHANNELS], dtype=np.uint8)
        self.t = T0

    def events(self, n: int) -> Events:
        rng = self.rng
        cols = {name: np.zeros(n, dtype=dt) for name, dt in ENGINE_DTYPES.items()}
        sub = rng.integers(0, self.subs, n)
        cols["event_time_us"] = self.t + np.arange(n, dtype=np.int64) * 300
        self.t += n * 300
        cols["application_id"] = self.app_ids[self.sub_app[sub]]
        cols["application_name"] = cols["application_id"]
        cols["api_name"] = self.api_ids[self.sub_api[sub]]
        cols["api_version"] = np.full(n, self.version, dtype=np.int32)
        res = rng.integers(0, self.res, n)
        cols["resource_template"] = self.res_ids[res]
        cols["http_method"] = (1 + res % 5).astype(np.uint8)
        k = rng.choice(len(OUTCOMES), n, p=[o[2] for o in OUTCOMES])
        cols["http_status"] = np.array([o[0] for o in OUTCOMES], dtype=np.uint16)[k]
        cols["error_code"] = np.array([o[1] for o in OUTCOMES], dtype=np.int32)[k]
        cols["flags"] = (cols["error_code"] // 100 == 9008).astype(np.uint8)
        cols["latency_us"] = np.minimum(rng.lognormal(10.3, 0.9, n), 4e9).astype(np.uint32)
        cols["uri_hash"] = rng.integers(1, 2**62, n).astype(np.uint64)
        return Events(cols, self.chan[rng.integers(0, 4, n)])


def _platform(apis: int, events: int) -> tuple[Sidecar, Platform]:
    settings = load_settings(env={}, overrides={"state_dir": tempfile.mkdtemp(prefix="vigie-")})
    sc = Sidecar(settings)
    p = Platform(sc.state, apis)
    for _ in range(events // 8192):
        sc.state.apply(p.events(8192))
    return sc, p


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    out = []
    last = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        last = fn()
        out.append(time.perf_counter() - t0)
    return out, last


def _ingest_loop(
    sc: Sidecar, batches: list[Events], seconds: float
) -> tuple[list[float], list[float]]:
    """The ingest loop of a gateway stream. Per batch: the wait for the sidecar's lock (once
    the thread runs), and the whole delay between ready-to-go and holding the lock (the GIL to
    wake up and run Python, the lock, and the OS scheduling other processes)."""
    waits, delays = [], []
    end = time.perf_counter() + seconds
    i = 0
    nap = 0.0005  # gateways send batches a few ms apart
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        time.sleep(nap)
        t1 = time.perf_counter()
        with sc.lock:
            t2 = time.perf_counter()
            sc.state.apply(batches[i % len(batches)])
        waits.append(t2 - t1)
        delays.append(max(0.0, t2 - t0 - nap))
        i += 1
    return waits, delays


def _vigie(quick: bool, apis: int, events: int) -> dict[str, Any]:
    sc, p = _platform(apis, events)
    builder = Builder(BuildOptions(top_k=20))

    buffers: dict[str, Any] = {}  # reused from cycle to cycle, as MetricsExport does
    hold = [0.0]

    def cycle() -> tuple[bytes, int]:
        frame = collect(sc, buffers=buffers)
        hold[0] = max(hold[0], frame.lock_hold_max_s)
        batch = builder.build(frame)
        return encode_request(batch), batch.n_points

    cycle()  # first cycle: new series get their attributes encoded once; jit warm-up
    times, (payload, points) = _timed(cycle, 3 if quick else 10)
    frame = collect(sc)
    t_collect, _ = _timed(lambda: collect(sc), 3 if quick else 10)
    t_build, batch = _timed(lambda: builder.build(frame), 3 if quick else 10)
    t_encode, _ = _timed(lambda: encode_request(batch), 3 if quick else 10)
    t_handoff, _ = _timed(
        lambda: ExportMetricsServiceRequest.FromString(payload).SerializeToString(), 3
    )
    t_sdk_encode, _ = _timed(lambda: encode_metrics(to_metrics_data(batch)), 1 if quick else 3)

    # the stall: the ingest loop alone and with export cycles back to back, in turns (the
    # machine's other load drifts; turns expose both modes to the same drift)
    batches = [p.events(1024) for _ in range(16)]
    for b in batches:  # the routes they use exist already
        sc.state.apply(b)
    turn = 1.0 if quick else 2.0
    alone: tuple[list[float], list[float]] = ([], [])
    with_export: tuple[list[float], list[float]] = ([], [])
    cycles = [0]
    for _ in range(2 if quick else 4):
        for mode in (alone, with_export):
            stop = threading.Event()

            def exporting(stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    cycle()
                    cycles[0] += 1

            th = threading.Thread(target=exporting, daemon=True)
            if mode is with_export:
                th.start()
            waits, delays = _ingest_loop(sc, batches, turn)
            stop.set()
            if mode is with_export:
                th.join()
            mode[0].extend(waits)
            mode[1].extend(delays)
    return {
        "points": points,
        "route_rows": sc.state.n_route_rows,
        "bytes": len(payload),
        "cycle": times,
        "collect": t_collect,
        "build": t_build,
        "encode": t_encode,
        "handoff": t_handoff,
        "sdk_encode": t_sdk_encode,
        "wait_alone": alone,
        "wait_export": with_export,
        "cycles_during": cycles[0],
        "lock_hold_max": hold[0],
    }


def _sdk_way(quick: bool, apis: int, events: int) -> dict[str, Any]:
    """Instruments updated per event; the SDK collects and encodes."""
    st = State()
    p = Platform(st, apis)
    reader = InMemoryMetricReader(
        preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation(max_scale=3)},
        cardinality_limits={Counter: 1_000_000, Histogram: 1_000_000},  # default: 2,000
    )
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("vigie-bench")
    requests = meter.create_counter("wso2.api.requests")
    errors = meter.create_counter("wso2.api.errors")
    throttled = meter.create_counter("wso2.api.throttled")
    duration = meter.create_histogram("http.server.request.duration", unit="s")
    s = st.interner.string
    attr_cache: dict[tuple[int, ...], tuple[dict[str, Any], ...]] = {}

    def record(ev: Events) -> None:
        c = ev.columns
        cols = zip(
            c["api_name"].tolist(),
            c["resource_template"].tolist(),
            c["http_method"].tolist(),
            c["http_status"].tolist(),
            c["error_code"].tolist(),
            ev.channel.tolist(),
            (c["latency_us"] / 1e6).tolist(),
            strict=True,
        )
        for api, res, me, status, code, ch, lat in cols:
            key = (api, res, me, status, code, ch)
            attrs = attr_cache.get(key)
            if attrs is None:
                outcome = (
                    "throttled"
                    if code // 100 == 9008
                    else "server_error"
                    if status >= 500
                    else "client_error"
                    if status >= 400
                    else "success"
                )
                base = {"wso2.api.name": s(api), "wso2.api.version": "1.0.0"}
                http = {
                    "http.request.method": METHODS[me],
                    "http.route": s(res),
                    "http.response.status_code": status,
                } | base
                if status >= 500:
                    http["error.type"] = str(status)
                api_ch = base | {"wso2.channel": CHANNELS[ch]}
                attrs = attr_cache[key] = (
                    api_ch | {"wso2.outcome": outcome},
                    http,
                    api_ch | {"wso2.error.code": code},
                )
            requests.add(1, attrs[0])
            duration.record(lat, attrs[1])
            if code:
                errors.add(1, attrs[2])
                if code // 100 == 9008:
                    throttled.add(1, attrs[2])

    n_feed = events // 8192
    t0 = time.perf_counter()
    for _ in range(n_feed):
        record(p.events(8192))
    per_event = (time.perf_counter() - t0) / (n_feed * 8192)

    def cycle() -> int:
        data = reader.get_metrics_data()
        assert data is not None
        encode_metrics(data)
        return sum(
            len(m.data.data_points) for m in data.resource_metrics[0].scope_metrics[0].metrics
        )

    times, points = _timed(cycle, 2 if quick else 5)
    # the per-event work lands on the ingest thread: time per 1,024-event batch, while the SDK
    # collects concurrently (its collection takes the instruments' locks)
    batches = [p.events(1024) for _ in range(8)]
    stop = threading.Event()

    def collecting() -> None:
        while not stop.is_set():
            reader.get_metrics_data()

    th = threading.Thread(target=collecting, daemon=True)
    th.start()
    per_batch, _ = _timed(lambda: record(batches[0]), 4 if quick else 12)
    stop.set()
    th.join()
    provider.shutdown()
    return {"points": points, "cycle": times, "per_event": per_event, "per_batch": per_batch}


def _ms(xs: list[float]) -> float:
    return float(np.median(xs)) * 1e3


def _p(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) * 1e3


def run(quick: bool) -> list[Result]:
    apis, events = (12, 60_000) if quick else (111, 420_000)
    # both ways run as `vigie serve` runs: its thread switch interval, and what exists once it
    # serves kept out of the garbage collector's way (vigie.server.core.serve_forever)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    try:
        v = _vigie(quick, apis, events)
        sdk = _sdk_way(quick, apis, events)
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)
    (wait_alone, delay_alone), (wait_export, delay_export) = v["wait_alone"], v["wait_export"]
    common = {"series": v["points"], "route_rows": v["route_rows"]}
    return [
        Result(
            f"export cycle, {v['points']:,} series (collect+build+encode)",
            "ms",
            _ms(v["cycle"]),
            naive=_ms(sdk["cycle"]),
            naive_label="SDK instruments: collect + encode",
            target=50.0,
            higher_is_better=False,
            notes="median; vigie's collect/build/encode split in extra",
            extra=common
            | {
                "collect_ms": _ms(v["collect"]),
                "build_ms": _ms(v["build"]),
                "encode_ms": _ms(v["encode"]),
                "max_cycle_ms": max(v["cycle"]) * 1e3,
                "request_bytes": v["bytes"],
                "sdk_points": sdk["points"],
            },
        ),
        Result(
            "OTLP encoding of the same points",
            "ms",
            _ms(v["encode"]),
            naive=_ms(v["sdk_encode"]),
            naive_label="SDK encoder (MetricsData)",
            higher_is_better=False,
            extra={"avoided_parse_serialize_ms": _ms(v["handoff"])},
        ),
        Result(
            "longest ingest stall during export",
            "ms",
            max(wait_export) * 1e3,
            naive=max(sdk["per_batch"]) * 1e3,
            naive_label="SDK instruments: per-event calls in one 1,024-event batch",
            target=1.0,
            higher_is_better=False,
            notes=(
                f"lock wait, export cycles back to back ({max(wait_alone) * 1e3:.3f} ms "
                "without export); GIL and OS delays in extra"
            ),
            extra={
                "batches": len(wait_export),
                "export_cycles_meanwhile": v["cycles_during"],
                "longest_lock_hold_ms": v["lock_hold_max"] * 1e3,
                "wait_p99_ms": _p(wait_export, 99),
                "wait_p999_ms": _p(wait_export, 99.9),
                "wait_alone_max_ms": max(wait_alone) * 1e3,
                "delay_p99_ms": _p(delay_export, 99),
                "delay_p999_ms": _p(delay_export, 99.9),
                "delay_max_ms": max(delay_export) * 1e3,
                "delay_alone_p99_ms": _p(delay_alone, 99),
                "delay_alone_p999_ms": _p(delay_alone, 99.9),
                "delay_alone_max_ms": max(delay_alone) * 1e3,
                "sdk_us_per_event": sdk["per_event"] * 1e6,
            },
        ),
    ]
