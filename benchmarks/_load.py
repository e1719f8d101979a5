"""Load clients for the ingest benchmarks, run as a separate process:

    python -m benchmarks._load columnar TARGET EVENTS BATCH
    python -m benchmarks._load per-event TARGET EVENTS
    python -m benchmarks._load freshness TARGET TPS SECONDS FLUSH_MS [WARM_EVENTS]

Each prints one JSON line with what it measured. The traffic is a realistic platform mix
(2,500 subscriptions over 600 APIs, statuses and latencies of a real gateway), pre-built so the
client spends its time sending, not generating.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np

from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import StreamEncoder

T0 = 1_772_409_600_000_000


def platform_batch(enc: StreamEncoder, n: int, rng: np.random.Generator, t0: int) -> dict[str, Any]:
    """Columns of n events of a 2,500-subscription platform (ids interned in ``enc``)."""
    apps = np.array([enc.intern(f"app-{k:04d}") for k in range(600)], dtype=np.uint32)
    apis = np.array([enc.intern(f"api-{k:03d}") for k in range(600)], dtype=np.uint32)
    ver = enc.intern("v1")
    res = np.array([enc.intern(f"/r{k}") for k in range(10)], dtype=np.uint32)
    platform = np.random.default_rng(2500)  # the same 2,500 subscriptions in every batch
    sub_app = platform.integers(0, 600, size=2500)
    sub_api = platform.integers(0, 600, size=2500)
    sub = rng.zipf(1.3, size=n) % 2500
    return {
        "event_time_us": t0 + np.sort(rng.integers(0, 1_000_000, size=n)),
        "application_id": apps[sub_app[sub]],
        "application_name": apps[sub_app[sub]],
        "api_name": apis[sub_api[sub]],
        "api_version": np.full(n, ver, dtype=np.uint32),
        "resource_template": res[rng.integers(0, 10, size=n)],
        "http_method": rng.choice([1, 1, 1, 3], size=n),
        "http_status": rng.choice([200] * 95 + [404, 401, 429, 500, 503], size=n),
        "error_code": np.zeros(n, dtype=np.int32),
        "latency_us": rng.lognormal(10.5, 0.7, size=n).astype(np.uint32),
        "backend_latency_us": rng.lognormal(10.3, 0.7, size=n).astype(np.uint32),
        "request_bytes": np.zeros(n, dtype=np.int64),
        "response_bytes": rng.integers(100, 5000, size=n),
        "key_type": np.ones(n, dtype=np.uint8),
        "uri_hash": rng.integers(1, 2**62, size=n).astype(np.uint64),
        "flags": np.zeros(n, dtype=np.uint8),
    }


class Stream:
    """One gateway stream sending pre-serialised messages."""

    def __init__(self, target: str, gateway_id: str) -> None:
        self.channel = grpc.insecure_channel(
            target, options=[("grpc.max_send_message_length", 256 << 20)]
        )
        self.call = self.channel.stream_stream(
            "/vigie.v1.Telemetry/Stream",
            request_serializer=lambda b: b,
            response_deserializer=pb.SidecarMessage.FromString,
        )
        self.q: queue.Queue[bytes | None] = queue.Queue(maxsize=256)
        self.acks: dict[int, float] = {}
        self.applied = 0
        self.hello = pb.GatewayMessage(
            hello=pb.Hello(gateway_id=gateway_id, channel="main", protocol_version=1)
        ).SerializeToString()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _requests(self) -> Iterator[bytes]:
        yield self.hello
        while (m := self.q.get()) is not None:
            yield m

    def _run(self) -> None:
        for resp in self.call(self._requests()):
            if resp.WhichOneof("kind") == "ack":
                self.acks[resp.ack.sequence] = time.perf_counter()
                self.applied = resp.ack.events_applied
        self.done.set()

    def send(self, payload: bytes) -> None:
        self.q.put(payload)

    def close(self) -> None:
        self.q.put(None)
        self.done.wait(120)
        self.channel.close()


def columnar(target: str, events: int, batch: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    enc = StreamEncoder()
    cols = platform_batch(enc, batch, rng, T0)
    first = enc.batch(cols)  # carries the dictionary
    template = pb.EventBatch()
    template.CopyFrom(first)
    del template.dictionary_additions[:]
    ts = cols["event_time_us"].astype("<i8")
    n_batches = events // batch
    s = Stream(target, "bench-columnar")
    start = time.perf_counter()
    for k in range(n_batches):
        if k == 0:
            msg = first
        else:
            msg = template
            msg.sequence = k + 1
            msg.dictionary_base = first.dictionary_base + len(first.dictionary_additions)
            msg.event_time_us = (ts + k * 1_000_000).tobytes()
        s.send(pb.GatewayMessage(batch=msg).SerializeToString())
    sent_at = time.perf_counter()
    while n_batches not in s.acks and not s.done.is_set():
        time.sleep(0.001)
    end = s.acks.get(n_batches, time.perf_counter())
    s.close()
    return {
        "events": n_batches * batch,
        "applied": s.applied,
        "seconds": end - start,
        "send_seconds": sent_at - start,
    }


def per_event(target: str, events: int) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    enc = StreamEncoder()
    cols = platform_batch(enc, events, rng, T0)
    payloads = []
    for k in range(events):
        one = {name: np.asarray(v)[k : k + 1] for name, v in cols.items()}
        payloads.append(pb.GatewayMessage(batch=enc.batch(one)).SerializeToString())
    s = Stream(target, "bench-per-event")
    start = time.perf_counter()
    for p in payloads:
        s.send(p)
    while events not in s.acks and not s.done.is_set():
        time.sleep(0.001)
    end = s.acks.get(events, time.perf_counter())
    s.close()
    return {"events": events, "applied": s.applied, "seconds": end - start}


def freshness(
    target: str, tps: float, seconds: float, flush_ms: float, warm_events: int = 0
) -> dict[str, Any]:
    """Send like a gateway at ``tps``: a batch every ``flush_ms`` (1 event per batch when
    flush_ms is 0: the per-event way); latency from handing the batch to gRPC to its Ack.
    ``warm_events`` of the same traffic go first, untimed, in large batches: the sidecar's
    arrays reach the size this traffic needs (a doubling holds one batch up once in a
    sidecar's life; the figure is the steady state)."""
    rng = np.random.default_rng(3)
    enc = StreamEncoder()
    s = Stream(target, f"bench-fresh-{flush_ms}")
    seq = 0
    for k in range(0, warm_events, 8192):
        cols = platform_batch(enc, min(8192, warm_events - k), rng, T0 - 60_000_000 + k)
        s.send(pb.GatewayMessage(batch=enc.batch(cols)).SerializeToString())
        seq += 1
    while seq and seq not in s.acks and not s.done.is_set():
        time.sleep(0.001)
    if seq:
        time.sleep(3.0)  # the rollup writer folds the burst meanwhile
    per_batch = max(1, round(tps * flush_ms / 1000)) if flush_ms > 0 else 1
    interval = per_batch / tps
    n = int(seconds * tps / per_batch)
    sent: dict[int, float] = {}
    start = time.perf_counter()
    for k in range(n):
        due = start + k * interval
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.0005, due - now))
        cols = platform_batch(enc, per_batch, rng, T0 + int((now - start) * 1e6))
        payload = pb.GatewayMessage(batch=enc.batch(cols)).SerializeToString()
        sent[seq + k + 1] = time.perf_counter()
        s.send(payload)
    while seq + n not in s.acks and not s.done.is_set():
        time.sleep(0.001)
    s.close()
    lat = np.array([(s.acks[k] - sent[k]) * 1000 for k in sent if k in s.acks])
    return {
        "batches": n,
        "events_per_batch": per_batch,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
    }


def main() -> None:
    mode, target, *rest = sys.argv[1:]
    if mode == "columnar":
        out = columnar(target, int(rest[0]), int(rest[1]))
    elif mode == "per-event":
        out = per_event(target, int(rest[0]))
    elif mode == "freshness":
        warm = int(rest[3]) if len(rest) > 3 else 0
        out = freshness(target, float(rest[0]), float(rest[1]), float(rest[2]), warm)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
