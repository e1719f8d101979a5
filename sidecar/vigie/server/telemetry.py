"""The gateway stream service (``vigie.v1.Telemetry/Stream``) and its error boundary.

A stream starts with a Hello, answered by a Welcome; then the gateway sends batches (each
answered by an Ack) and reports, while the sidecar pushes directive updates. Three threads per
stream: gRPC's, which yields what the two others queue: the reader (batches, reports) and the
directive pump. A refused Hello or batch ends only its own stream, with the error type's status
(INVALID_ARGUMENT for a broken contract, FAILED_PRECONDITION for an unsupported protocol
version, RESOURCE_EXHAUSTED when the streams are all taken), counted by cause
(``stream_refused:*`` before the stream starts, ``batch_refused:*`` after); an unexpected error
ends it with INTERNAL (``stream_internal_error``), logged; never the process.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any, Final

import grpc

from vigie.errors import BatchRefused
from vigie.server.boundary import Boundary, Status
from vigie.server.core import PROTOCOL_VERSION, Sidecar
from vigie.v1 import telemetry_pb2 as tpb
from vigie.v1 import telemetry_pb2_grpc as tpb_grpc

log = logging.getLogger(__name__)

_END: Final = object()


class TelemetryService(tpb_grpc.TelemetryServicer):
    def __init__(self, sidecar: Sidecar) -> None:
        self.sc = sidecar
        # refusals before the stream starts count as stream_refused:*, after as batch_refused:*
        self._boundary = Boundary(sidecar.counters, "stream_refused", "stream_internal_error")

    def Stream(
        self, request_iterator: Iterator[tpb.GatewayMessage], context: grpc.ServicerContext
    ) -> Iterator[tpb.SidecarMessage]:
        sc = self.sc
        try:
            first = next(request_iterator)
        except StopIteration:
            return
        except grpc.RpcError:
            return
        if first.WhichOneof("kind") != "hello":
            context.abort(
                *self._boundary.refusal(
                    BatchRefused("no_hello", "the first message must be a Hello")
                )
            )
        try:
            gs, dec = sc.open_stream(first.hello, context.peer())
        except BatchRefused as exc:
            context.abort(*self._boundary.refusal(exc))
        out: queue.Queue[Any] = queue.Queue()
        failure: list[Status] = []
        directive_q = sc.directives.subscribe()
        context.add_callback(lambda: out.put(_END))

        def pump_directives() -> None:
            while True:
                upd = directive_q.get()
                if upd is None:
                    return
                out.put(tpb.SidecarMessage(directives=upd))

        def read() -> None:
            try:
                for msg in request_iterator:
                    kind = msg.WhichOneof("kind")
                    if kind == "batch":
                        ack = sc.apply_batch(gs, dec, msg.batch)
                        out.put(tpb.SidecarMessage(ack=ack))
                    elif kind == "report":
                        sc.record_report(gs, msg.report)
                    else:
                        raise BatchRefused("unexpected_hello", "a second Hello on the stream")
            except BatchRefused as exc:
                log.warning("gateway %s: batch refused: %s", gs.hello.gateway_id, exc)
                failure.append(self._boundary.refusal(exc, "batch refused: ", "batch_refused"))
            except grpc.RpcError:
                pass  # the gateway went away
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
            sc.close_stream(gs)
        if failure:
            context.abort(*failure[0])
