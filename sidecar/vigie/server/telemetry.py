"""The gateway stream service (``vigie.v1.Telemetry/Stream``) and its error boundary.

A stream starts with a Hello, answered by a Welcome; then the gateway sends batches (each
answered by an Ack) and reports, while the sidecar pushes directive updates. Three threads per
stream: gRPC's, which yields what the two others queue: the reader (batches, reports) and the
directive pump. A refused Hello or batch ends only its own stream, with the error type's status
(INVALID_ARGUMENT for a broken contract, FAILED_PRECONDITION for an unsupported protocol
version, RESOURCE_EXHAUSTED when the streams are all taken), counted by cause
(``stream_refused:*`` before the stream starts, ``batch_refused:*`` after). A stream waits for
its Hello at most ``hello_timeout_seconds`` (DEADLINE_EXCEEDED, ``stream_refused:hello_timeout``)
and at most ``max_streams`` streams wait at once: a newcomer makes the oldest give way
(RESOURCE_EXHAUSTED, ``stream_refused:hello_evicted``), so silent connections can neither take
the workers that health checks need nor keep a real gateway out; a message
that does not decode (a string not UTF-8) is refused (``*:undecodable``). An unexpected error
ends it with INTERNAL (``stream_internal_error``), logged; never the process.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Final

import grpc
from google.protobuf.message import DecodeError

from vigie.errors import BatchRefused
from vigie.server.boundary import Boundary, Status, loggable
from vigie.server.core import PROTOCOL_VERSION, Sidecar
from vigie.server.credentials import cert_identity
from vigie.server.quota import REBALANCE, Rebalancer
from vigie.v1 import telemetry_pb2 as tpb
from vigie.v1 import telemetry_pb2_grpc as tpb_grpc

log = logging.getLogger(__name__)

_END: Final = object()
_EVICTED: Final = object()
_TIMED_OUT: Final = object()
READER_JOIN_S: Final = 5.0
CANCEL_WAIT_S: Final = 0.2  # a call ended under the reader is terminated within this


class HelloTimeout(BatchRefused):
    """A stream sent no Hello within ``hello_timeout_seconds``."""

    grpc_status = "DEADLINE_EXCEEDED"


class HelloEvicted(BatchRefused):
    """A stream still waiting for its Hello gave way to a newer connection."""

    grpc_status = "RESOURCE_EXHAUSTED"


class MessageTooLarge(BatchRefused):
    """A message over the stream's message limit (refused before it is parsed)."""

    grpc_status = "RESOURCE_EXHAUSTED"


class Undecodable:
    """A message that is not a valid ``GatewayMessage`` (e.g. a string field not UTF-8), or
    one over the message limit (``size``): the deserializer returns this instead of raising,
    so the stream is refused with a clear status and counted instead of ending in a gRPC
    traceback."""

    __slots__ = ("error", "limit", "size")

    def __init__(self, error: str, size: int = 0, limit: int = 0) -> None:
        self.error = error
        self.size = size
        self.limit = limit


def decode_message(data: bytes, limit: int = 0) -> tpb.GatewayMessage | Undecodable:
    """The request deserializer of the Stream method: a message over ``limit`` bytes (0: no
    limit) is refused before it is parsed."""
    if limit and len(data) > limit:
        return Undecodable("too large", len(data), limit)
    try:
        return tpb.GatewayMessage.FromString(data)
    except DecodeError as exc:
        return Undecodable(str(exc))


def undecodable(msg: Undecodable) -> BatchRefused:
    if msg.size:
        return MessageTooLarge(
            "message_too_large",
            f"a message of {msg.size:,} bytes, over the limit of {msg.limit:,} "
            "(max_batch_events events of at most 1 KiB, and 4 MiB)",
        )
    return BatchRefused(
        "undecodable",
        f"a message that is not a valid GatewayMessage ({loggable(msg.error)}); are all its "
        "strings UTF-8?",
    )


class TelemetryService(tpb_grpc.TelemetryServicer):
    def __init__(self, sidecar: Sidecar) -> None:
        self.sc = sidecar
        # refusals before the stream starts count as stream_refused:*, after as batch_refused:*
        self._boundary = Boundary(sidecar.counters, "stream_refused", "stream_internal_error")
        # streams waiting for their Hello, oldest first: at most max_streams; a newcomer makes
        # the oldest give way, so silent connections cannot keep a real gateway out
        self._waiting: OrderedDict[int, queue.Queue[Any]] = OrderedDict()
        self._waiting_lock = threading.Lock()
        self._next_wait = 0
        # each gateway's local quota of every LIMIT (a fleet-wide budget), pushed by the pumps
        self._quotas = Rebalancer(sidecar)

    def _wait_slot(self) -> tuple[int, queue.Queue[Any]]:
        got: queue.Queue[Any] = queue.Queue()
        with self._waiting_lock:
            if len(self._waiting) >= self.sc.settings.max_streams:
                _, oldest = self._waiting.popitem(last=False)
                oldest.put(_EVICTED)
            self._next_wait += 1
            self._waiting[self._next_wait] = got
            return self._next_wait, got

    def _first(
        self, request_iterator: Iterator[Any], context: grpc.ServicerContext
    ) -> tpb.GatewayMessage | None:
        """The stream's first message, waited for at most ``hello_timeout_seconds``; None when
        the gateway went away first."""
        sc = self.sc
        key, got = self._wait_slot()

        def read_first() -> None:
            try:
                got.put(next(request_iterator))
            except Exception:  # went away, or the call was ended: nothing to read
                got.put(None)

        threading.Thread(target=read_first, name="hello", daemon=True).start()
        timeout = sc.settings.hello_timeout_seconds
        try:
            first = got.get(timeout=timeout)
        except queue.Empty:
            first = _TIMED_OUT
        finally:
            with self._waiting_lock:
                self._waiting.pop(key, None)
        if first is _TIMED_OUT:
            exc: BatchRefused = HelloTimeout("hello_timeout", f"no Hello within {timeout:g} s")
            context.abort(*self._boundary.refusal(exc))
        if first is _EVICTED:
            exc = HelloEvicted(
                "hello_evicted",
                f"{sc.settings.max_streams} newer streams are waiting for their Hello "
                "(the oldest gives way)",
            )
            context.abort(*self._boundary.refusal(exc))
        if isinstance(first, Undecodable):
            context.abort(*self._boundary.refusal(undecodable(first)))
        if not isinstance(first, tpb.GatewayMessage):
            # went away, or gRPC refused a message over twice the limit
            sc.counters["stream_cancelled"] += 1
            return None
        return first

    def Stream(
        self, request_iterator: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[tpb.SidecarMessage]:
        sc = self.sc
        first = self._first(request_iterator, context)
        if first is None:
            return
        if first.WhichOneof("kind") != "hello":
            context.abort(
                *self._boundary.refusal(
                    BatchRefused("no_hello", "the first message must be a Hello")
                )
            )
        try:
            gs, dec = sc.open_stream(first.hello, context.peer(), cert_identity(context))
        except BatchRefused as exc:
            context.abort(*self._boundary.refusal(exc))
        out: queue.Queue[Any] = queue.Queue()
        failure: list[Status] = []
        directive_q = sc.directives.subscribe()
        self._quotas.join(directive_q)
        terminated = threading.Event()

        def on_termination() -> None:
            terminated.set()
            out.put(_END)

        context.add_callback(on_termination)

        def pump_directives() -> None:
            # directive changes as they come, each with this gateway's quotas of the LIMITs it
            # brings; at every re-balancing epoch, this gateway's quotas alone
            while True:
                try:
                    upd = directive_q.get(timeout=self._quotas.timeout())
                except queue.Empty:
                    upd = REBALANCE
                if upd is REBALANCE:  # an epoch began, or a gateway came or went
                    quotas = self._quotas.periodic(gs)
                    if quotas is not None:
                        out.put(tpb.SidecarMessage(directives=quotas))
                    continue
                if upd is None:
                    return
                out.put(tpb.SidecarMessage(directives=self._quotas.with_quotas(gs, upd)))

        def read() -> None:
            try:
                for msg in request_iterator:
                    if isinstance(msg, Undecodable):
                        raise undecodable(msg)
                    kind = msg.WhichOneof("kind")
                    if kind == "batch":
                        ack = sc.apply_batch(gs, dec, msg.batch)
                        out.put(tpb.SidecarMessage(ack=ack))
                    elif kind == "report":
                        sc.record_report(gs, msg.report)
                    else:
                        raise BatchRefused("unexpected_hello", "a second Hello on the stream")
                # the gateway closed its side, or the call was ended (cancelled, or a message
                # gRPC refused as over twice the limit): then the termination follows at once
                if terminated.wait(CANCEL_WAIT_S):
                    sc.counters["stream_cancelled"] += 1
            except BatchRefused as exc:
                log.warning(
                    "gateway %s: batch refused: %s", gs.hello.gateway_id, loggable(str(exc))
                )
                failure.append(self._boundary.refusal(exc, "batch refused: ", "batch_refused"))
            except grpc.RpcError:
                # the gateway went away, or gRPC refused a message over twice the limit
                sc.counters["stream_cancelled"] += 1
            except Exception as exc:  # the stream's error boundary
                failure.append(self._boundary.internal(exc, f"gateway {gs.hello.gateway_id}"))
            out.put(_END)

        welcome = tpb.Welcome(
            sidecar_id=sc.sidecar_id,
            protocol_version=PROTOCOL_VERSION,
            max_batch_events=sc.settings.max_batch_events,
            max_dictionary_entries=sc.settings.max_dictionary_entries,
        )
        reader = threading.Thread(target=read, name=f"stream-{gs.stream_id}", daemon=True)
        pump = threading.Thread(target=pump_directives, name=f"dir-{gs.stream_id}", daemon=True)
        try:
            yield tpb.SidecarMessage(welcome=welcome)
            reader.start()
            pump.start()
            while True:
                item = out.get()
                if item is _END:
                    break
                yield item
        finally:
            sc.directives.unsubscribe(directive_q)
            directive_q.put(None)  # type: ignore[arg-type]
            # the call is over, so the reader's next read ends at once: its counters are in
            # when the stream is gone from the status
            if reader.ident is not None:
                reader.join(READER_JOIN_S)
            sc.close_stream(gs)
            self._quotas.leave(directive_q)
        if failure:
            context.abort(*failure[0])
