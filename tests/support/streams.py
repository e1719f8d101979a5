"""A plain gateway stream client for the tests: sends what it is given, keeps what it gets."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import grpc

from tests.support.waiting import wait_for
from vigie.v1 import telemetry_pb2 as pb
from vigie.v1 import telemetry_pb2_grpc as pb_grpc

WAIT_S = 120.0  # an acknowledgement on a loaded machine: a batch waits behind other work


class StreamClient:
    def __init__(
        self,
        target: str,
        channel: str = "main",
        gateway_id: str = "gw-test",
        hello: pb.Hello | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._out: queue.Queue[pb.GatewayMessage | None] = queue.Queue()
        self.received: list[pb.SidecarMessage] = []
        self.error: grpc.RpcError | None = None
        self.done = threading.Event()
        self._chan = (
            grpc.secure_channel(target, credentials)
            if credentials is not None
            else grpc.insecure_channel(target)
        )
        self._hello = hello or pb.Hello(gateway_id=gateway_id, channel=channel, protocol_version=1)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _requests(self) -> Iterator[pb.GatewayMessage]:
        yield pb.GatewayMessage(hello=self._hello)
        while (m := self._out.get()) is not None:
            yield m

    def _run(self) -> None:
        try:
            for msg in pb_grpc.TelemetryStub(self._chan).Stream(self._requests()):
                with self._lock:
                    self.received.append(msg)
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.done.set()

    def send(self, batch: pb.EventBatch) -> None:
        self._out.put(pb.GatewayMessage(batch=batch))

    def send_raw(self, msg: pb.GatewayMessage) -> None:
        self._out.put(msg)

    def of_kind(self, kind: str) -> list[pb.SidecarMessage]:
        with self._lock:
            return [m for m in self.received if m.WhichOneof("kind") == kind]

    def wait_for(self, predicate: Callable[..., object], timeout: float = WAIT_S) -> None:
        """Until ``predicate`` holds (what the sidecar sent so far); fails at once when the
        stream ended without it, and after ``timeout`` seconds."""

        def held() -> bool:
            if predicate():
                return True
            if self.done.is_set() and not predicate():
                raise AssertionError(f"stream ended: {self.error}")
            return False

        wait_for(held, timeout, "the stream's answer", every=0.01)

    def wait_ack(self, sequence: int, timeout: float = WAIT_S) -> pb.Ack:
        def acked() -> bool:
            return any(m.ack.sequence >= sequence for m in self.of_kind("ack"))

        self.wait_for(acked, timeout)
        return next(m.ack for m in self.of_kind("ack") if m.ack.sequence >= sequence)

    def close(self) -> None:
        self._out.put(None)
        self.done.wait(10)
        self._chan.close()
