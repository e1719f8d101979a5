"""Running the sidecar: ``start`` (both gRPC servers, the export, the background loop),
``Running.stop``, ``serve_forever`` (``vigie serve``), and the background loop itself.

The background loop runs once a second (monotonic time, from the sidecar's ``Clock``): it
settles released strings, sweeps expired directives, lets the policy engine move its
suggestions on, wakes the alerts' thread, and writes a snapshot every
``snapshot_interval_seconds``; it also starts the inventory's refresh from WSO2 when due
(``inventory_refresh``). Its error boundary logs and counts (``background_error``) and carries
on.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vigie import __version__
from vigie.errors import ConfigError, VigieError
from vigie.export import MetricsExport, start_export
from vigie.server.admin import AdminService
from vigie.server.core import Sidecar
from vigie.server.credentials import (
    AuthInterceptor,
    CallLimit,
    server_credentials,
    tls_mode,
)
from vigie.server.fleet import PeerState, take_peer_state
from vigie.server.inventory_refresh import InventoryRefresh
from vigie.server.positions import read_detectors, restore_detectors
from vigie.server.telemetry import TelemetryService, decode_message
from vigie.settings import Settings, loopback
from vigie.state.engine import Capacity, State
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc
from vigie.v1 import telemetry_pb2 as tpb
from vigie.wire.columns import COLUMNS, StreamDecoder, StreamEncoder

log = logging.getLogger(__name__)

# The gateway streams share the GIL with background work written in Python (suggestions,
# export, rollups). Python lets a thread that wants the GIL wait up to the switch interval (5 ms
# by default) each time: a batch takes several turns, so a busy background thread would add tens
# of milliseconds to it. A shorter interval bounds that wait (the freshness target: p99 <= 10 ms).
SWITCH_INTERVAL_S: Final = 0.0005
BACKGROUND_PERIOD_S: Final = 1.0
RESERVED_WORKERS: Final = 8  # gateway port: health checks and refusals, whatever the streams
ADMIN_WORKERS: Final = 8  # admin port: the operators' calls
REFLECTION_CALLS: Final = 4  # reflection calls open at once, per port
REFLECTION_PREFIX: Final = "/grpc.reflection."  # its v1alpha and v1 services
# the largest gRPC message a gateway may send: a bound per event (19 columns of at most 8
# bytes, and room for the strings it brings) times max_batch_events, plus headroom; gRPC
# refuses a larger one (RESOURCE_EXHAUSTED, counted: ``*:message_too_large``) before it is
# parsed. gRPC itself receives up to twice that (it refuses a larger one unseen by vigie, whose
# stream then counts as ``stream_cancelled``), so that a message over the limit is counted
EVENT_BYTES_MAX: Final = 1024
MESSAGE_HEADROOM_BYTES: Final = 4 << 20
GRPC_MAX_LENGTH: Final = (1 << 31) - 1  # gRPC takes an int32


def max_message_bytes(max_batch_events: int) -> int:
    return max_batch_events * EVENT_BYTES_MAX + MESSAGE_HEADROOM_BYTES


def stream_handler(service: TelemetryService, limit: int = 0) -> grpc.GenericRpcHandler:
    """``vigie.v1.Telemetry/Stream`` with the deserializer that does not raise (a message
    that does not decode, or is over ``limit`` bytes, is refused by the service, with its
    status and counter)."""
    return grpc.method_handlers_generic_handler(
        tpb.DESCRIPTOR.services_by_name["Telemetry"].full_name,
        {
            "Stream": grpc.stream_stream_rpc_method_handler(
                service.Stream,
                request_deserializer=functools.partial(decode_message, limit=limit),
                response_serializer=tpb.SidecarMessage.SerializeToString,
            )
        },
    )


def _add_port(
    server: grpc.Server, address: str, creds: grpc.ServerCredentials | None = None
) -> int:
    """Bind ``address``; one clear line (``vigie: cannot listen on ...``, exit status of a
    ``VigieError``) when it cannot be: gRPC raises a bare ``RuntimeError`` for a port in use
    (older versions returned 0)."""
    refused = VigieError(f"cannot listen on {address}: the address is in use or not available")
    try:
        port: int = (
            server.add_insecure_port(address)
            if creds is None
            else server.add_secure_port(address, creds)
        )
    except RuntimeError:
        raise refused from None
    if port == 0 and not address.startswith("unix:"):
        raise refused
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
    background: threading.Thread | None = None

    def stop(self, grace: float = 5.0) -> None:
        """Stop serving, let the background loop finish its turn (a snapshot it is writing
        completes), then write the last snapshot."""
        if self.stop_event.is_set():
            return
        self.stop_event.set()
        self.health.enter_graceful_shutdown()
        a = self.telemetry.stop(grace)
        b = self.admin.stop(grace)
        a.wait()
        b.wait()
        if self.background is not None:
            self.background.join()
        self.sidecar.fleet.stop()
        if self.export is not None:
            self.export.stop()
        if self.sidecar.alerts is not None:
            self.sidecar.alerts.stop()
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


def took_over(sc: Sidecar, peer: PeerState) -> None:
    """The peer's gateway positions and detectors' caches, when the state restored is the one
    it sent (not the older snapshot a peer's unreadable one falls back to): from here on, each
    gateway stream's events the peer had applied are skipped, the others applied."""
    events = int(sc.state.counters()["events_applied"])
    if events != peer.events_applied:
        sc.counters["fleet_positions_not_taken"] += 1
        log.warning("the state restored (%d events) is not the peer's (%d): its gateway "
                    "positions are not taken", events, peer.events_applied)  # fmt: skip
        return
    n = sc.positions.take(peer.positions)
    detectors = restore_detectors(sc.state, read_detectors(peer.detectors))
    log.info("from the peer's state on: the positions of %d gateway runs%s", n,
             ", its detectors' caches" if detectors else "")  # fmt: skip


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
    peer = take_peer_state(settings)  # a live peer's state, before the own snapshot
    sc = Sidecar(settings)
    if peer.source:
        sc.fleet.state_from = peer.source
        took_over(sc, peer)
        # its store lacks what the peer saw alone: read from the peer's (Fleet.store_for)
        sc.fleet.started_from_peer_state(sc.state.now_us, sc.data.store if sc.data else None)
    export = start_export(sc, settings)  # OTLP metrics; a bad OTEL_* variable stops here
    health_servicer = health.HealthServicer()
    # grpc's servicer answers SERVING for "" from the start: not before the fleet's start and
    # the gateway listener (a probe that says ready must find the instance's started_from)
    health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    limit = max_message_bytes(settings.max_batch_events)
    telemetry = grpc.server(
        # open streams, streams waiting for their Hello (each at most max_streams: a newer
        # connection makes the oldest waiting one give way), and workers left for health
        # checks and refusals, which a flood of silent connections cannot take
        futures.ThreadPoolExecutor(
            max_workers=2 * settings.max_streams + RESERVED_WORKERS, thread_name_prefix="rpc"
        ),
        interceptors=[
            CallLimit(REFLECTION_PREFIX, REFLECTION_CALLS, sc.counters, "reflection_busy")
        ],
        options=[
            ("grpc.max_receive_message_length", min(2 * limit, GRPC_MAX_LENGTH)),
            ("grpc.so_reuseport", 0),
        ],
    )
    telemetry.add_generic_rpc_handlers((stream_handler(TelemetryService(sc), limit),))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, telemetry)
    admin = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=ADMIN_WORKERS + REFLECTION_CALLS, thread_name_prefix="admin"
        ),
        interceptors=[
            CallLimit(REFLECTION_PREFIX, REFLECTION_CALLS, sc.counters, "reflection_busy"),
            AuthInterceptor(sc.token, settings.admin_auth, sc.counters),
        ],
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
    # reflection (no token) on loopback listeners only: beyond, it is off
    for server, address in ((telemetry, settings.listen), (admin, settings.admin_listen)):
        if loopback(address):
            reflection.enable_server_reflection(names, server)
    if sc.data is not None:
        sc.data.start()
    if sc.alerts is not None:
        sc.alerts.start()
    tport = _add_port(telemetry, settings.listen, gateway_creds)
    aport = _add_port(admin, settings.admin_listen, admin_creds)
    admin.start()
    sc.fleet.start_from_peers()  # before any gateway hears of the directives
    telemetry.start()
    sc.fleet.start()
    for name in ("", names[0], names[1]):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    running = Running(sc, telemetry, admin, health_servicer, tport, aport, export=export)
    running.background = threading.Thread(
        target=background, args=(running,), name="background", daemon=True
    )
    running.background.start()
    log.info(
        "vigie %s serving gateways on %s (%s) and the admin service on %s (%s, auth: %s)",
        __version__,
        settings.listen,
        tls_mode(settings.tls_cert_file, settings.tls_client_ca_file),
        settings.admin_listen,
        tls_mode(settings.admin_tls_cert_file, settings.admin_tls_client_ca_file),
        settings.admin_auth,
    )
    return running


def background_step(sc: Sidecar, next_snapshot: float) -> float:
    """One turn of the background loop; return when the next snapshot is due (monotonic)."""
    with sc.lock:
        sc.settle_strings()
    gone = sc.directives.expire()
    if gone:
        log.info("directives expired: %s", ", ".join(gone))
    sc.policy.tick()
    if sc.alerts is not None:
        sc.alerts.tick()  # wakes the alerts' own thread when a check is due
    if sc.clock.monotonic() >= next_snapshot:
        sc.write_snapshot()
        next_snapshot = sc.clock.monotonic() + sc.settings.snapshot_interval_seconds
    return next_snapshot


def background(running: Running) -> None:
    """The background loop of a started sidecar, until it stops."""
    sc = running.sidecar
    next_snapshot = sc.clock.monotonic() + sc.settings.snapshot_interval_seconds
    inventory = InventoryRefresh(sc)  # inventory_source = wso2
    while not running.stop_event.wait(BACKGROUND_PERIOD_S):
        try:
            inventory.tick()
            next_snapshot = background_step(sc, next_snapshot)
        except Exception:  # background error boundary: log, count, keep going
            sc.counters["background_error"] += 1
            log.exception("background work failed")


def serve_forever(settings: Settings) -> None:
    """``vigie serve``: run until SIGTERM/SIGINT, then stop gracefully (exit status 0). A
    signal that arrives while the sidecar starts stops it as soon as it serves."""
    done = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log.info("signal %d: shutting down", signum)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # everything the sidecar writes (state, directives, audit trails, suggestions, rollups) is
    # the operator's alone, whatever umask it was started with
    os.umask(0o077)
    running = start(settings)
    # A full collection walks every object the process holds, with the GIL held: Numba, LLVM
    # and gRPC bring ~140,000, a 60 ms stall of every stream each time the suggestions' garbage
    # sets one off. What exists once the sidecar serves lives as long as the process: keep it
    # out of the collector's way (new objects are collected as usual).
    gc.collect()
    gc.freeze()
    while not done.wait(1.0):  # a timed wait: the signal handler runs between two waits
        pass
    running.stop()
