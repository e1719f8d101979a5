"""A gateway-side stream that records the directives the sidecar pushes, and when.

It speaks the gateway stream contract (Hello, then batches and reports) like a handler would,
keeps the directive table the updates describe (full on connect, deltas after) and timestamps
each update on arrival (``time.perf_counter``). The tests and the policy benchmark use it to
see a directive reach a connected gateway; it can send event batches and a ``GatewayReport``
with directive hits too.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from vigie import __version__
from vigie.v1 import directives_pb2 as dpb
from vigie.v1 import telemetry_pb2 as tpb
from vigie.v1 import telemetry_pb2_grpc as tpb_grpc
from vigie.wire.columns import StreamEncoder


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # time.perf_counter() when the update arrived
    update: dpb.DirectiveUpdate


class GatewayProbe:
    def __init__(self, target: str, gateway_id: str = "probe", channel: str = "main") -> None:
        self._chan = grpc.insecure_channel(target)
        self._stub = tpb_grpc.TelemetryStub(self._chan)
        self._out: queue.Queue[tpb.GatewayMessage | None] = queue.Queue()
        self._cond = threading.Condition()
        self.encoder = StreamEncoder()
        self.arrivals: list[Arrival] = []
        self.table: dict[str, dpb.Directive] = {}
        self.version = 0
        self.acked_events = 0
        self.welcome: tpb.Welcome | None = None
        self.error: str | None = None
        self._hello = tpb.Hello(
            gateway_id=gateway_id,
            channel=channel,
            tenant="carbon.super",
            handler_version=f"vigie-probe {__version__}",
            protocol_version=1,
        )
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-{gateway_id}", daemon=True)
        self._thread.start()

    def _requests(self) -> Iterator[tpb.GatewayMessage]:
        yield tpb.GatewayMessage(hello=self._hello)
        while True:
            msg = self._out.get()
            if msg is None:
                return
            yield msg

    def _run(self) -> None:
        try:
            for msg in self._stub.Stream(self._requests()):
                kind = msg.WhichOneof("kind")
                now = time.perf_counter()
                with self._cond:
                    if kind == "welcome":
                        self.welcome = msg.welcome
                    elif kind == "ack":
                        self.acked_events = msg.ack.events_applied
                    elif kind == "directives":
                        upd = msg.directives
                        if upd.full:
                            self.table = {d.id: d for d in upd.upserts}
                        else:
                            for d in upd.upserts:
                                self.table[d.id] = d
                            for rid in upd.removals:
                                self.table.pop(rid, None)
                        self.version = upd.version
                        self.arrivals.append(Arrival(now, upd))
                    self._cond.notify_all()
        except grpc.RpcError as exc:
            if not self._done.is_set():
                self.error = f"{exc.code().name}: {exc.details()}"
        finally:
            with self._cond:
                self._cond.notify_all()

    # ---- waiting ----
    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Wait until ``predicate(self)`` holds (checked on every message)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0 or self.error is not None:
                    return bool(predicate(self))
                self._cond.wait(left)
            return True

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """True once the full table arrived (the sidecar sends it right after the Hello)."""
        return self.wait_for(lambda p: any(a.update.full for a in p.arrivals), timeout)

    def arrival_of(self, directive_id: str, after: float = 0.0) -> float | None:
        """When an update upserting ``directive_id`` first arrived after ``after``."""
        with self._cond:
            for a in self.arrivals:
                if a.at >= after and any(d.id == directive_id for d in a.update.upserts):
                    return a.at
        return None

    # ---- sending ----
    def send_records(self, records: Sequence[Mapping[str, Any]]) -> None:
        batch = self.encoder.batch_from_records(records, sent_at_us=int(time.time() * 1e6))
        self._out.put(tpb.GatewayMessage(batch=batch))

    def send_report(
        self, hits: Sequence[dpb.DirectiveHits], rejected: Sequence[dpb.RejectedDirective] = ()
    ) -> None:
        """A GatewayReport with these hits and (as a handler does) the upserts it refused."""
        report = tpb.GatewayReport(
            at_us=int(time.time() * 1e6),
            directive_hits=hits,
            rejected_directives=rejected,
            directives_rejected=len(rejected),
        )
        self._out.put(tpb.GatewayMessage(report=report))

    def close(self, timeout: float = 5.0) -> None:
        self._done.set()
        self._out.put(None)
        self._thread.join(timeout)
        self._chan.close()

    def __enter__(self) -> GatewayProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
