"""Ingest + classify from a separate client process over loopback, and freshness at the
platform's peak, side by side with one gRPC message per event; and where the time of ingest
goes, stage by stage (``stages``: the sidecar's work on a batch, timed in this process, and the
rest of the loopback figure: gRPC, the hand-off between threads, the client's share of the
cores)."""

from __future__ import annotations

import time

import numpy as np

from benchmarks._harness import Result
from benchmarks._load import T0, platform_batch
from benchmarks._sidecar import load, sidecar
from vigie.state.engine import State
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import (
    COLUMNS,
    DICTIONARY_COLUMNS,
    ENGINE_DTYPES,
    Interner,
    StreamDecoder,
    StreamEncoder,
)

WARM_EVENTS = 2_000_000
BATCH = 8192


def _payloads(n_batches: int) -> list[bytes]:
    """The messages of the columnar load client (``_load.columnar``): its traffic, serialised."""
    enc = StreamEncoder()
    cols = platform_batch(enc, BATCH, np.random.default_rng(1), T0)
    first = enc.batch(cols)
    template = pb.EventBatch()
    template.CopyFrom(first)
    del template.dictionary_additions[:]
    ts = cols["event_time_us"].astype("<i8")
    out = [pb.GatewayMessage(batch=first).SerializeToString()]
    for k in range(1, n_batches):
        template.sequence = k + 1
        template.dictionary_base = first.dictionary_base + len(first.dictionary_additions)
        template.event_time_us = (ts + k * 1_000_000).tobytes()
        out.append(pb.GatewayMessage(batch=template).SerializeToString())
    return out


def stages(quick: bool) -> dict[str, float]:
    """ns/event of each stage of the sidecar's work on the columnar client's batches, in this
    process, one stage at a time over all the batches (CPU time of this thread): protobuf
    parse, the columns' checks and copies (``np.frombuffer`` + a writable copy), the
    dictionary mapping (stream ids -> the state's), the whole decode, the kernel."""
    payloads = _payloads(40 if quick else 200)
    n = len(payloads) * BATCH
    clock = time.thread_time
    t = clock()
    msgs = [pb.GatewayMessage.FromString(p) for p in payloads]
    parse = clock() - t
    batches = [m.batch for m in msgs]
    t = clock()
    for b in batches:
        for spec in COLUMNS:
            raw = getattr(b, spec.name)
            if raw and not spec.dictionary:
                np.frombuffer(raw, dtype=spec.wire_dtype).astype(ENGINE_DTYPES[spec.name])
    columns = clock() - t
    interner = Interner()
    dec = StreamDecoder(interner, 0, BATCH, 10**6)
    t = clock()
    decoded = [dec.decode(b) for b in batches]
    decode = clock() - t
    l2g = np.arange(1 << 16, dtype=np.int32)
    ids = [[np.frombuffer(getattr(b, c), dtype="<u4") for c in DICTIONARY_COLUMNS] for b in batches]
    t = clock()
    for cols in ids:
        for col in cols:
            l2g[col]
    mapping = clock() - t
    state = State()
    state.interner = interner
    state.channel_index("main")
    for ev in decoded[:4]:  # rows created, kernels loaded
        state.apply(ev)
    t = clock()
    for ev in decoded[4:]:
        state.apply(ev)
    kernel = (clock() - t) / ((len(decoded) - 4) * BATCH)
    per = {
        "parse_ns": parse / n,
        "columns_ns": columns / n,
        "mapping_ns": mapping / n,
        "decode_ns": decode / n,
        "kernel_ns": kernel,
    }
    return {k: v * 1e9 for k, v in per.items()}


def run(quick: bool) -> list[Result]:
    events = 1_000_000 if quick else 8_000_000
    per_event_n = 3_000 if quick else 20_000
    seconds = "8" if quick else "30"
    with sidecar(env={"VIGIE_DATA_STORE": "off"}) as s:  # the state alone
        load("columnar", s.telemetry, "100000", "8192")  # warm-up: rows created
        col = load("columnar", s.telemetry, str(events), "8192")
        one = load("per-event", s.telemetry, str(per_event_n))
        assert col["applied"] == col["events"] and one["applied"] == one["events"]
        applied = s.status().events_applied
    with sidecar() as s:  # everything on, as deployed: rollup store, suggestions
        load("columnar", s.telemetry, "100000", "8192")
        stored = load("columnar", s.telemetry, str(events), "8192")
    # Freshness at the platform's peak, in a sidecar that is not still writing the rollups of
    # the burst above (8 M events is an hour and a half of peak traffic in a few seconds)
    with sidecar() as s:
        # the same traffic first, untimed: rows created, arrays at their size
        fresh = load("freshness", s.telemetry, "1500", seconds, "5", str(WARM_EVENTS))
        fresh_one = load("freshness", s.telemetry, "1500", seconds, "0")
    col_rate = col["events"] / col["seconds"]
    st = stages(quick)
    inproc = st["parse_ns"] + st["decode_ns"] + st["kernel_ns"]
    st["loopback_ns"] = 1e9 / col_rate
    st["rest_ns"] = st["loopback_ns"] - inproc  # gRPC, threads, GIL, the client's share
    profile = ", ".join(f"{k.removesuffix('_ns')} {v:.0f}" for k, v in st.items())
    return [
        Result(
            "ingest stages in the sidecar (parse + decode + kernel), in-process",
            "events/s",
            1e9 / inproc,
            col_rate,
            "the same traffic from a client process over loopback",
            notes=f"ns/event: {profile} (columns and mapping are parts of decode)",
            extra=st,
        ),
        Result(
            "ingest+classify, client process over loopback",
            "events/s",
            col_rate,
            one["events"] / one["seconds"],
            "one gRPC message per event",
            target=4_000_000,
            notes=f"8192 events per batch; {col['events']:,} events; sidecar applied {applied:,}",
        ),
        Result(
            "ingest+classify with the rollup store and suggestions on (default)",
            "events/s",
            stored["events"] / stored["seconds"],
            col_rate,
            "the state alone",
            notes="the store's writer thread shares the 2 cores",
        ),
        Result(
            "freshness at 1,500 TPS (batch handed to gRPC -> state updated), p99",
            "ms",
            fresh["p99_ms"],
            fresh_one["p99_ms"],
            "one message per event",
            target=10.0,
            higher_is_better=False,
            notes=f"a batch every 5 ms ({fresh['events_per_batch']} events), everything on, "
            f"after {WARM_EVENTS:,} events of the same traffic; "
            f"p50 {fresh['p50_ms']:.2f} ms; per-event p50 {fresh_one['p50_ms']:.2f} ms",
            extra={"columnar": fresh, "per_event": fresh_one},
        ),
    ]
