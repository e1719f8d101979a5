"""The loopback ingest client, run as a separate process, and the gRPC-only server it can be
pointed at instead of a sidecar:

    python -m benchmarks._ingest_client send TARGET EVENTS BATCH STREAMS WINDOW
    python -m benchmarks._ingest_client echo PORT

``send`` opens STREAMS gateway streams (a Hello each) and streams the columnar client's
traffic (``_load.platform_batch``: 2,500 subscriptions over 600 APIs) on each, as fast as the
acks allow: at most WINDOW batches of BATCH events unacknowledged per stream. The messages
are pre-encoded: the first batch of a stream carries its dictionary; every later one is the
same bytes with its sequence and its event times (one second later per batch) appended as
fields, so the client spends a memory
copy per batch, not an encoding. It prints one JSON line: events, seconds (first send to last
ack), events_applied (the acks' own count), and the client's CPU seconds.

``echo`` answers every message of a ``Telemetry/Stream`` call with a pre-encoded Ack, parsing
nothing: what gRPC alone (framing, receiving, the ack) allows over loopback on this machine.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np

from benchmarks._load import T0, platform_batch
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import StreamEncoder

METHOD = "/vigie.v1.Telemetry/Stream"
OPTIONS = [
    ("grpc.max_send_message_length", 256 << 20),
    ("grpc.max_receive_message_length", 256 << 20),
]


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


class Traffic:
    """One stream's messages: ``message(k)`` is the GatewayMessage of its batch ``k`` (1-based)."""

    def __init__(self, batch: int, seed: int) -> None:
        enc = StreamEncoder()
        cols = platform_batch(enc, batch, np.random.default_rng(seed), T0)
        first = enc.batch(cols)  # sequence 1, with the dictionary
        self.first = pb.GatewayMessage(batch=first).SerializeToString()
        rest = pb.EventBatch()
        rest.CopyFrom(first)
        del rest.dictionary_additions[:]
        rest.dictionary_base = first.dictionary_base + len(first.dictionary_additions)
        rest.ClearField("sequence")
        rest.ClearField("event_time_us")
        self.rest = rest.SerializeToString()
        self.ts = cols["event_time_us"].astype("<i8")

    def message(self, k: int) -> bytes:
        if k == 1:
            return self.first
        ts = (self.ts + (k - 1) * 1_000_000).tobytes()
        batch = b"".join(
            (
                self.rest,
                b"\x08",
                _varint(k),
                _field_bytes(pb.EventBatch.EVENT_TIME_US_FIELD_NUMBER, ts),
            )
        )
        return _field_bytes(pb.GatewayMessage.BATCH_FIELD_NUMBER, batch)


def _hello(gateway_id: str) -> bytes:
    hello = pb.Hello(gateway_id=gateway_id, channel="main", protocol_version=1)
    return pb.GatewayMessage(hello=hello).SerializeToString()


class Sender:
    """One stream: sends ``n`` batches, at most ``window`` unacknowledged."""

    def __init__(self, channel: grpc.Channel, index: int, n: int, batch: int, window: int) -> None:
        self.traffic = Traffic(batch, seed=index + 1)
        self.call = channel.stream_stream(
            METHOD,
            request_serializer=lambda b: b,
            response_deserializer=pb.SidecarMessage.FromString,
        )
        self.gateway_id = f"bench-ingest-{index}"
        self.n = n
        self.room = threading.Semaphore(window)
        self.start = threading.Event()
        self.applied = 0
        self.acks = 0
        self.last_ack = 0.0
        self.error = ""
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _requests(self) -> Iterator[bytes]:
        yield _hello(self.gateway_id)
        self.start.wait()
        for k in range(1, self.n + 1):
            self.room.acquire()
            yield self.traffic.message(k)

    def _run(self) -> None:
        try:
            for resp in self.call(self._requests()):
                if resp.WhichOneof("kind") == "ack":
                    self.acks += 1
                    self.applied = resp.ack.events_applied
                    self.last_ack = time.perf_counter()
                    self.room.release()
                    if self.acks == self.n:
                        break
        except grpc.RpcError as exc:
            self.error = f"{exc.code()}: {exc.details()}"


def send(target: str, events: int, batch: int, streams: int, window: int) -> dict[str, Any]:
    per_stream = max(1, events // (batch * streams))
    with grpc.insecure_channel(target, options=OPTIONS) as channel:
        senders = [Sender(channel, i, per_stream, batch, window) for i in range(streams)]
        for s in senders:
            s.thread.start()
        time.sleep(0.5)  # the Hellos answered, the streams open
        cpu = time.process_time()
        start = time.perf_counter()
        for s in senders:
            s.start.set()
        for s in senders:
            s.thread.join()
        cpu = time.process_time() - cpu
    errors = [s.error for s in senders if s.error]
    return {
        "events": per_stream * batch * streams,
        "applied": sum(s.applied for s in senders),
        "acked_batches": sum(s.acks for s in senders),
        "seconds": max(s.last_ack for s in senders) - start,
        "client_cpu_seconds": cpu,
        "streams": streams,
        "window": window,
        "errors": errors,
    }


class _Echo:
    """A Telemetry/Stream that acks every message unread."""

    def __init__(self) -> None:
        self.ack = pb.SidecarMessage(ack=pb.Ack(sequence=1, events_applied=0)).SerializeToString()

    def stream(
        self, request_iterator: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        for _ in request_iterator:
            yield self.ack


def echo(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=OPTIONS)
    handler = grpc.stream_stream_rpc_method_handler(
        _Echo().stream, request_deserializer=lambda b: b, response_serializer=lambda b: b
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("vigie.v1.Telemetry", {"Stream": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def main() -> None:
    mode, *rest = sys.argv[1:]
    if mode == "send":
        target, events, batch, streams, window = rest
        print(json.dumps(send(target, int(events), int(batch), int(streams), int(window))))
    elif mode == "echo":
        echo(int(rest[0]))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
