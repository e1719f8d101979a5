"""The sidecar process: the gateway stream service, the admin service, and their one error
boundary each.

``Sidecar`` holds the state, its lock, the directive table and the counters; the two gRPC
servicers are thin. A malformed batch ends only its own stream (INVALID_ARGUMENT, counted by
cause); an unexpected error ends the RPC with INTERNAL and is counted and logged, never the
process.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import secrets
import signal
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vigie import __version__
from vigie.classify import views
from vigie.directives.audit import AuditLog
from vigie.directives.table import DirectiveError, DirectiveTable
from vigie.errors import BatchRefused, ConfigError, VigieError
from vigie.export import MetricsExport, start_export
from vigie.policy.engine import PolicyEngine
from vigie.server import data_admin as data_admin
from vigie.server.policy_admin import PolicyAdmin
from vigie.settings import Settings
from vigie.sources.inventory import load_inventory
from vigie.state import snapshot
from vigie.state.engine import Capacity, State
from vigie.state.thresholds import CLASS_NAMES
from vigie.store import service as data_service
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc
from vigie.v1 import directives_pb2 as dpb
from vigie.v1 import telemetry_pb2 as tpb
from vigie.v1 import telemetry_pb2_grpc as tpb_grpc
from vigie.wire.columns import COLUMNS, StreamDecoder, StreamEncoder

log = logging.getLogger(__name__)

PROTOCOL_VERSION: Final = 1
_END: Final = object()


@dataclass(slots=True)
class GatewayStream:
    stream_id: int
    hello: tpb.Hello
    peer: str
    connected_at_us: int
    batches: int = 0
    events: int = 0
    report: tpb.GatewayReport | None = None


@dataclass(slots=True)
class RateMeter:
    """Events per second over the last few seconds of wall-clock time."""

    window_s: float = 5.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, n: int) -> None:
        self.samples.append((now, n))
        while self.samples and self.samples[0][0] < now - self.window_s:
            self.samples.popleft()

    def rate(self, now: float) -> float:
        while self.samples and self.samples[0][0] < now - self.window_s:
            self.samples.popleft()
        return sum(n for _, n in self.samples) / self.window_s


class Sidecar:
    """Everything the services share. All state access goes through ``lock``."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.lock = threading.Lock()
        self.capacity = Capacity(memory_cap_bytes=settings.memory_cap)
        state_dir = settings.state_path
        state_dir.mkdir(parents=True, exist_ok=True)
        self.state = snapshot.restore_or_fresh(state_dir, settings.thresholds, self.capacity)
        if settings.inventory:
            load_inventory(Path(settings.inventory)).apply_to(self.state)
        self.directives = DirectiveTable(state_dir, clock, AuditLog(settings.audit_path(), clock))
        self.counters: Counter[str] = Counter()
        self.streams: dict[int, GatewayStream] = {}
        self._next_stream = 0
        self.meter = RateMeter()
        self.batches_applied = 0
        self.started_at_us = int(clock() * 1e6)
        self.sidecar_id = f"{socket.gethostname()}-{os.getpid()}"
        self.token = self._admin_token()
        self.data = data_service.for_sidecar(self)  # rollups; None when data_store = off
        self.decoders: dict[int, StreamDecoder] = {}  # open streams' dictionaries
        self._compact_at = settings.max_strings * 3 // 4
        self.policy = PolicyEngine(self)  # suggestions, their lifecycle, tuned thresholds

    # ---- admin token ----
    def _admin_token(self) -> str:
        if self.settings.admin_token:
            return self.settings.admin_token
        path = self.settings.token_path()
        if path.exists():
            token = path.read_text().strip()
            if token:
                return token
        token = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        log.info("generated an admin token in %s", path)
        return token

    # ---- streams ----
    def open_stream(self, hello: tpb.Hello, peer: str) -> tuple[GatewayStream, StreamDecoder]:
        if not hello.gateway_id:
            raise BatchRefused("bad_hello", "Hello.gateway_id is empty")
        if hello.protocol_version not in (0, PROTOCOL_VERSION) and hello.protocol_version < 1:
            raise BatchRefused("bad_hello", f"protocol version {hello.protocol_version}")
        with self.lock:
            if len(self.streams) >= self.settings.max_streams:
                raise BatchRefused(
                    "too_many_streams", f"{self.settings.max_streams} gateway streams already"
                )
            try:
                channel = self.state.channel_index(hello.channel)
            except VigieError as exc:
                raise BatchRefused("bad_channel", str(exc)) from exc
            self._next_stream += 1
            gs = GatewayStream(self._next_stream, hello, peer, int(self.clock() * 1e6))
            self.streams[gs.stream_id] = gs
            dec = StreamDecoder(
                self.state.interner,
                channel,
                self.settings.max_batch_events,
                self.settings.max_dictionary_entries,
            )
            self.decoders[gs.stream_id] = dec
        log.info(
            "gateway %s connected from %s (channel %s)",
            hello.gateway_id,
            peer,
            hello.channel or "default",
        )
        return gs, dec

    def close_stream(self, gs: GatewayStream) -> None:
        with self.lock:
            self.streams.pop(gs.stream_id, None)
            self.decoders.pop(gs.stream_id, None)
        log.info("gateway %s disconnected", gs.hello.gateway_id)

    def apply_batch(self, gs: GatewayStream, dec: StreamDecoder, batch: tpb.EventBatch) -> tpb.Ack:
        with self.lock:
            adds = len(batch.dictionary_additions)
            if adds and self.state.interner.live + adds > self._compact_at:
                self.compact_strings()
                if self.state.interner.live + adds > self.settings.max_strings:
                    raise BatchRefused(
                        "strings_full",
                        f"{self.state.interner.live} strings held, all in use, and the batch "
                        f"brings {adds} more (max_strings {self.settings.max_strings}); "
                        "reconnect to start a new dictionary",
                    )
            ev = dec.decode(batch)  # interns strings: under the lock
            self.state.apply(ev)
            if self.data is not None:
                self.data.offer(ev)  # a queue put: the rollups are written off this path
            gs.batches += 1
            gs.events += len(ev)
            self.batches_applied += 1
            self.meter.add(self.clock(), len(ev))
        return tpb.Ack(sequence=batch.sequence, events_applied=dec.events_applied)

    def record_report(self, gs: GatewayStream, report: tpb.GatewayReport) -> None:
        with self.lock:
            gs.report = report
        self.directives.record_hits(gs.hello.gateway_id, list(report.directive_hits))

    # ---- bounding the strings ----
    def _string_epoch(self) -> int:
        return self.data.sink.batches_offered if self.data is not None else 0

    def settle_strings(self) -> None:
        """Released ids the data writer can no longer hold become reusable (under the lock)."""
        done = self.data.sink.batches_settled if self.data is not None else 0
        self.state.interner.settle(done, time.monotonic())

    def compact_strings(self) -> int:
        """Release the strings nothing refers to (the state's rows, the open streams'
        dictionaries); call under the lock. Evicted subscriptions leave their application ids
        here: this is what keeps the interner bounded by ``max_strings``."""
        n = self.state.release_strings(
            [d.referenced() for d in self.decoders.values()],
            self._string_epoch(),
            time.monotonic(),
        )
        self.settle_strings()
        cap = self.settings.max_strings
        self._compact_at = min(cap, max(cap * 3 // 4, self.state.interner.live + cap // 10))
        self.counters["string_compactions"] += 1
        if n:
            log.info(
                "released %d strings no subscription or stream refers to (%d held)",
                n,
                self.state.interner.live,
            )
        return n

    # ---- reading ----
    def status(self) -> apb.Status:
        with self.lock:
            st = self.state
            now = st.now_us
            held, _ = st.held(now)
            rows = st.sub_rows()
            classes = {name: int(held[rows, i].sum()) for i, name in enumerate(CLASS_NAMES)}
            classes["normal"] = int((~held[rows].any(axis=1)).sum())
            counters = dict(self.counters) | st.counters()
            gateways = [self._gateway_info(gs) for gs in self.streams.values()]
            out = apb.Status(
                sidecar_id=self.sidecar_id,
                version=__version__,
                started_at_us=self.started_at_us,
                now_us=now,
                events_applied=int(st.counters()["events_applied"]),
                batches_applied=self.batches_applied,
                ingest_rate=self.meter.rate(self.clock()),
                counters={k: int(v) for k, v in counters.items()},
                gateways=gateways,
                subscriptions=len(rows),
                apis=st.n_api_rows,
                classes=classes,
                state_bytes=st.nbytes(),
                state_bytes_cap=self.capacity.memory_cap_bytes,
            )
        out.active_directives = len(self.directives)
        data = data_admin.data_status(self)
        if data is not None:
            out.data.CopyFrom(data)
        out.suggestions.update(self.policy.counts())
        return out

    @staticmethod
    def _gateway_info(gs: GatewayStream) -> apb.GatewayInfo:
        h = gs.hello
        info = apb.GatewayInfo(
            gateway_id=h.gateway_id,
            channel=h.channel or "default",
            tenant=h.tenant,
            region=h.region,
            handler_version=h.handler_version,
            peer=gs.peer,
            connected_at_us=gs.connected_at_us,
            batches=gs.batches,
            events=gs.events,
        )
        if gs.report is not None:
            r = gs.report
            info.handler_offered = r.offered
            info.handler_sent = r.sent
            info.handler_dropped = (
                r.dropped_queue_full
                + r.dropped_disconnected
                + r.dropped_send_failed
                + r.dropped_other
            )
            info.handler_reconnects = r.reconnects
        return info

    def subscriptions(self, req: apb.ListSubscriptionsRequest) -> apb.SubscriptionList:
        with self.lock:
            now = req.now_us or self.state.now_us
            subs = views.subscriptions(self.state, now)
        out = apb.SubscriptionList(now_us=now)
        if req.class_name:
            subs = [s for s in subs if req.class_name in s.classes]
        if req.application:
            subs = [s for s in subs if req.application in (s.application_id, s.application)]
        if req.api:
            subs = [s for s in subs if s.api == req.api]
        subs.sort(key=lambda s: -s.requests)
        if req.limit:
            subs = subs[: req.limit]
        for s in subs:
            out.subscriptions.append(to_proto(s))
        return out

    def apis(self, req: apb.ListApisRequest) -> apb.ApiList:
        with self.lock:
            now = req.now_us or self.state.now_us
            items = views.apis(self.state, now)
        out = apb.ApiList(now_us=now)
        for a in items:
            if req.class_name and req.class_name not in a.classes:
                continue
            out.apis.append(
                apb.ApiInfo(
                    api=a.api,
                    api_version=a.api_version,
                    context=a.context,
                    requests=a.requests,
                    classes=a.classes,
                    first_seen_us=a.first_seen_us,
                    last_seen_us=a.last_seen_us,
                    evidence=_evidence(a.evidence),
                )
            )
        return out

    # ---- background work ----
    def write_snapshot(self) -> Path:
        with self.lock:
            frozen = snapshot.freeze(self.state)  # rows in use only: a short lock
        path = snapshot.write_snapshot(frozen, self.settings.state_path)
        self.counters["snapshots_written"] += 1
        return path


def _evidence(evidence: dict[str, dict[str, Any]]) -> list[apb.ClassEvidence]:
    out = []
    for cname, figures in evidence.items():
        ce = apb.ClassEvidence(class_name=cname)
        for k, v in figures.items():
            if isinstance(v, int | float):  # bool is an int
                ce.figures[k] = float(v)
            elif isinstance(v, str):
                ce.labels[k] = v
        out.append(ce)
    return out


def to_proto(s: views.SubscriptionView) -> apb.SubscriptionInfo:
    return apb.SubscriptionInfo(
        application_id=s.application_id,
        application_name=s.application,
        application_owner=s.owner,
        api=s.api,
        api_version=s.api_version,
        tier=s.tier,
        requests=s.requests,
        classes=s.classes,
        evidence=_evidence(s.evidence),
        episodes=[
            apb.Episode(class_name=e.class_name, first_us=e.first_us, last_us=e.last_us)
            for e in s.episodes
        ],
        first_seen_us=s.first_seen_us,
        last_seen_us=s.last_seen_us,
        client_errors=s.client_errors,
        server_errors=s.server_errors,
        throttled=s.throttled,
        channels=s.channels,
    )


class TelemetryService(tpb_grpc.TelemetryServicer):
    def __init__(self, sidecar: Sidecar) -> None:
        self.sc = sidecar

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
            sc.counters["stream_refused:no_hello"] += 1
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a Hello")
        try:
            gs, dec = sc.open_stream(first.hello, context.peer())
        except BatchRefused as exc:
            sc.counters[f"stream_refused:{exc.cause}"] += 1
            code = (
                grpc.StatusCode.RESOURCE_EXHAUSTED
                if exc.cause == "too_many_streams"
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            context.abort(code, str(exc))
        out: queue.Queue[Any] = queue.Queue()
        failure: list[tuple[grpc.StatusCode, str]] = []
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
                sc.counters[f"batch_refused:{exc.cause}"] += 1
                log.warning("gateway %s: batch refused: %s", gs.hello.gateway_id, exc)
                failure.append((grpc.StatusCode.INVALID_ARGUMENT, f"batch refused: {exc}"))
            except grpc.RpcError:
                pass  # the gateway went away
            except Exception as exc:  # the stream's error boundary
                sc.counters["stream_internal_error"] += 1
                log.exception("gateway %s: internal error", gs.hello.gateway_id)
                failure.append((grpc.StatusCode.INTERNAL, f"internal error: {exc}"))
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


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Refuses admin calls without ``authorization: Bearer <token>`` (counted)."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sc = sidecar

        def deny(request: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong admin token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        method: str = handler_call_details.method
        if not method.startswith("/vigie.v1.Admin/"):
            return continuation(handler_call_details)
        if self.sc.settings.admin_auth == "mtls":
            # the TLS handshake already required a client certificate signed by
            # admin_tls_client_ca_file (start() refuses mtls without it)
            return continuation(handler_call_details)
        md = dict(handler_call_details.invocation_metadata or ())
        expected = f"Bearer {self.sc.token}"
        if secrets.compare_digest(md.get("authorization", ""), expected):
            return continuation(handler_call_details)
        self.sc.counters["admin_unauthenticated"] += 1
        return self._deny


class AdminService(PolicyAdmin, apb_grpc.AdminServicer):
    def __init__(self, sidecar: Sidecar) -> None:
        self.sc = sidecar

    def _guard(self, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except DirectiveError as exc:
            self.sc.counters["admin_refused:directive"] += 1
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except VigieError as exc:
            self.sc.counters[f"admin_refused:{type(exc).__name__}"] += 1
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except Exception as exc:  # the admin error boundary
            self.sc.counters["admin_internal_error"] += 1
            log.exception("admin call failed")
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {exc}")

    def GetStatus(self, request: apb.StatusRequest, context: grpc.ServicerContext) -> apb.Status:
        return self._guard(context, self.sc.status)  # type: ignore[no-any-return]

    def ListSubscriptions(
        self, request: apb.ListSubscriptionsRequest, context: grpc.ServicerContext
    ) -> apb.SubscriptionList:
        return self._guard(context, lambda: self.sc.subscriptions(request))  # type: ignore[no-any-return]

    def ListApis(self, request: apb.ListApisRequest, context: grpc.ServicerContext) -> apb.ApiList:
        return self._guard(context, lambda: self.sc.apis(request))  # type: ignore[no-any-return]

    def _directive_list(self) -> apb.DirectiveList:
        version, items = self.sc.directives.snapshot()
        return apb.DirectiveList(version=version, directives=items, hits=self.sc.directives.hits())

    def ListDirectives(
        self, request: apb.ListDirectivesRequest, context: grpc.ServicerContext
    ) -> apb.DirectiveList:
        return self._guard(context, self._directive_list)  # type: ignore[no-any-return]

    def PutDirective(
        self, request: apb.PutDirectiveRequest, context: grpc.ServicerContext
    ) -> apb.DirectiveList:
        def put() -> apb.DirectiveList:
            d = dpb.Directive()
            d.CopyFrom(request.directive)
            if not d.error_code:
                d.error_code = 900805 if d.action == dpb.DIRECTIVE_ACTION_BLOCK else 900806
            self.sc.directives.put(d, request.actor, request.reason)
            self.sc.policy.audit_directive(request.actor, "directive put", d.id, request.reason, d)
            log.info(
                "directive %s put by %s: %s", d.id, request.actor or "?", request.reason or "-"
            )
            return self._directive_list()

        return self._guard(context, put)  # type: ignore[no-any-return]

    def RemoveDirective(
        self, request: apb.RemoveDirectiveRequest, context: grpc.ServicerContext
    ) -> apb.DirectiveList:
        def remove() -> apb.DirectiveList:
            if not self.sc.directives.remove(request.directive_id, request.actor, request.reason):
                raise DirectiveError(f"no directive {request.directive_id!r}")
            self.sc.policy.audit_directive(
                request.actor, "directive removed", request.directive_id, request.reason
            )
            log.info("directive %s removed by %s", request.directive_id, request.actor or "?")
            return self._directive_list()

        return self._guard(context, remove)  # type: ignore[no-any-return]

    def ExportState(
        self, request: apb.ExportStateRequest, context: grpc.ServicerContext
    ) -> Iterator[apb.StateChunk]:
        yield from self._guard(context, lambda: data_admin.export_state(self.sc))

    def QueryData(self, request: apb.DataQuery, context: grpc.ServicerContext) -> apb.DataAnswer:
        return self._guard(context, lambda: data_admin.query_data(self.sc, request))  # type: ignore[no-any-return]

    def ListChanges(
        self, request: apb.ListChangesRequest, context: grpc.ServicerContext
    ) -> apb.ChangeList:
        return self._guard(context, lambda: data_admin.list_changes(self.sc, request))  # type: ignore[no-any-return]


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what}: {path}: {exc.strerror or exc}") from None


def server_credentials(
    cert: str, key: str, client_ca: str, what: str
) -> grpc.ServerCredentials | None:
    """TLS (and mTLS with a client CA) from PEM files; None for plaintext."""
    if not cert and not key and not client_ca:
        return None
    if not cert or not key:
        raise ConfigError(f"{what}: a TLS certificate and its key go together")
    ca = _read(client_ca, f"{what} client CA") if client_ca else None
    return grpc.ssl_server_credentials(
        [(_read(key, f"{what} TLS key"), _read(cert, f"{what} TLS certificate"))],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


def _add_port(
    server: grpc.Server, address: str, creds: grpc.ServerCredentials | None = None
) -> int:
    port: int = (
        server.add_insecure_port(address)
        if creds is None
        else server.add_secure_port(address, creds)
    )
    if port == 0 and not address.startswith("unix:"):
        raise VigieError(f"cannot listen on {address}")
    return port


@dataclass(slots=True)
class Running:
    """A started sidecar: its servers, the ports they got, and how to stop it."""

    sidecar: Sidecar
    telemetry: grpc.Server
    admin: grpc.Server
    health: health.HealthServicer
    telemetry_port: int
    admin_port: int
    stop_event: threading.Event = field(default_factory=threading.Event)
    export: MetricsExport | None = None  # OTLP metrics export, when enabled

    def stop(self, grace: float = 5.0) -> None:
        if self.stop_event.is_set():
            return
        self.stop_event.set()
        self.health.enter_graceful_shutdown()
        a = self.telemetry.stop(grace)
        b = self.admin.stop(grace)
        a.wait()
        b.wait()
        if self.export is not None:
            self.export.stop()
        if self.sidecar.data is not None:
            self.sidecar.data.close()
        path = self.sidecar.write_snapshot()
        log.info("stopped; state written to %s", path)


def warm_up_kernels() -> float:
    """Compile the kernels (or load them from Numba's cache) for the exact array types of a
    gateway batch, so that the first real batch is not held up; return the seconds it took."""
    started = time.perf_counter()
    state = State(
        capacity=Capacity(
            initial_subscriptions=64, initial_apis=4, max_routes=64, detector_entries=1024
        )
    )
    record = {spec.name: spec.default for spec in COLUMNS} | {
        "event_time_us": 1_700_000_000_000_000,
        "application_id": "a",
        "api_name": "b",
        "api_version": "c",
        "http_status": 200,
        "latency_us": 1000,
    }
    for spec in COLUMNS:
        if spec.dictionary and not record[spec.name]:
            record[spec.name] = spec.name
    batch = StreamEncoder().batch_from_records([record])
    dec = StreamDecoder(state.interner, state.channel_index("warm-up"), 16, 64)
    state.apply(dec.decode(batch))
    state.held(state.now_us)
    state.api_held(state.now_us)
    return time.perf_counter() - started


# The gateway streams share the GIL with background work written in Python (suggestions,
# export, rollups). Python lets a thread that wants the GIL wait up to the switch interval (5 ms
# by default) each time: a batch takes several turns, so a busy background thread would add tens
# of milliseconds to it. A shorter interval bounds that wait (DESIGN: freshness p99 <= 10 ms).
SWITCH_INTERVAL_S: Final = 0.0005


def start(settings: Settings) -> Running:
    """Start both servers and the background work; return once they serve."""
    gateway_creds = server_credentials(
        settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file, "listen"
    )
    admin_creds = server_credentials(
        settings.admin_tls_cert_file,
        settings.admin_tls_key_file,
        settings.admin_tls_client_ca_file,
        "admin_listen",
    )
    if settings.admin_auth in ("mtls", "both") and not settings.admin_tls_client_ca_file:
        raise ConfigError(f"admin_auth = {settings.admin_auth} needs admin_tls_client_ca_file")
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    log.info("kernels ready in %.1f s", warm_up_kernels())
    sc = Sidecar(settings)
    export = start_export(sc, settings)  # OTLP metrics; a bad OTEL_* variable stops here
    health_servicer = health.HealthServicer()
    telemetry = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_streams + 4, thread_name_prefix="rpc"),
        options=[
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=settings.max_streams + 4,
    )
    tpb_grpc.add_TelemetryServicer_to_server(TelemetryService(sc), telemetry)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, telemetry)
    admin = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="admin"),
        interceptors=[AuthInterceptor(sc)],
        options=[("grpc.so_reuseport", 0)],
    )
    apb_grpc.add_AdminServicer_to_server(AdminService(sc), admin)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, admin)
    names = (
        tpb.DESCRIPTOR.services_by_name["Telemetry"].full_name,
        apb.DESCRIPTOR.services_by_name["Admin"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, telemetry)
    reflection.enable_server_reflection(names, admin)
    if sc.data is not None:
        sc.data.start()
    tport = _add_port(telemetry, settings.listen, gateway_creds)
    aport = _add_port(admin, settings.admin_listen, admin_creds)
    telemetry.start()
    admin.start()
    for name in ("", names[0], names[1]):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    running = Running(sc, telemetry, admin, health_servicer, tport, aport, export=export)
    threading.Thread(target=_background, args=(running,), name="background", daemon=True).start()
    log.info(
        "vigie %s serving gateways on %s (%s) and the admin service on %s (%s, auth: %s)",
        __version__,
        settings.listen,
        _tls_mode(settings.tls_cert_file, settings.tls_client_ca_file),
        settings.admin_listen,
        _tls_mode(settings.admin_tls_cert_file, settings.admin_tls_client_ca_file),
        settings.admin_auth,
    )
    return running


def _tls_mode(cert: str, client_ca: str) -> str:
    return "mTLS" if cert and client_ca else "TLS" if cert else "plaintext"


def _background(running: Running) -> None:
    sc = running.sidecar
    interval = sc.settings.snapshot_interval_seconds
    next_snapshot = time.monotonic() + interval
    while not running.stop_event.wait(1.0):
        try:
            with sc.lock:
                sc.settle_strings()
            gone = sc.directives.expire()
            if gone:
                log.info("directives expired: %s", ", ".join(gone))
            sc.policy.tick()
            if time.monotonic() >= next_snapshot:
                sc.write_snapshot()
                next_snapshot = time.monotonic() + interval
        except Exception:  # background error boundary: log, count, keep going
            sc.counters["background_error"] += 1
            log.exception("background work failed")


def serve_forever(settings: Settings) -> None:
    """``vigie serve``: run until SIGTERM/SIGINT, then stop gracefully."""
    running = start(settings)
    # A full collection walks every object the process holds, with the GIL held: Numba, LLVM
    # and gRPC bring ~140,000, a 60 ms stall of every stream each time the suggestions' garbage
    # sets one off. What exists once the sidecar serves lives as long as the process: keep it
    # out of the collector's way (new objects are collected as usual).
    gc.collect()
    gc.freeze()
    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log.info("signal %d: shutting down", signum)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    done.wait()
    running.stop()
