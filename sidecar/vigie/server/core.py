"""The sidecar core: the live state, its lock, the gateway streams, and applying their batches.

``Sidecar`` owns the state and the one lock that guards it, the directive table, the counters,
the open streams and their decoders. It composes the data store and the policy engine, handing
each only what it uses (``LiveState``: itself, seen as the state and its lock; the directive
table; settings values; the clock). The gRPC services (``telemetry``, ``admin``) are thin layers
over it. Time comes from the injected ``Clock``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from vigie import __version__, alerts
from vigie.classify import views
from vigie.clock import SYSTEM, Clock, wall_us
from vigie.directives.audit import AuditLog
from vigie.directives.table import DirectiveTable
from vigie.errors import BatchRefused, TooManyStreams, UnsupportedProtocol, VigieError
from vigie.policy.engine import PolicyEngine
from vigie.server import convert
from vigie.server.boundary import loggable
from vigie.server.credentials import admin_token
from vigie.server.fleet import Fleet
from vigie.settings import Settings
from vigie.settings.policy import PolicyConfig
from vigie.sources.inventory import load_inventory
from vigie.state import snapshot
from vigie.state.engine import Capacity
from vigie.store import service as data_service
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import telemetry_pb2 as tpb
from vigie.wire.columns import Events, StreamDecoder

log = logging.getLogger(__name__)

PROTOCOL_VERSION: Final = 1
# the Hello.protocol_version values a sidecar accepts: 0 (unset, an early handler) reads as 1
SUPPORTED_PROTOCOL_VERSIONS: Final = (0, PROTOCOL_VERSION)


@dataclass(slots=True)
class GatewayStream:
    stream_id: int
    hello: tpb.Hello
    peer: str
    connected_at_us: int
    batches: int = 0
    events: int = 0
    refused: int = 0  # events refused on this stream (dated too far ahead)
    report: tpb.GatewayReport | None = None


@dataclass(slots=True)
class RateMeter:
    """Events per second over the last few seconds of monotonic time."""

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


HELLO_FIELD_MAX: Final = 256  # characters of each Hello text field
HELLO_FIELDS: Final = ("gateway_id", "channel", "tenant", "handler_version", "region")


def check_hello(hello: tpb.Hello) -> None:
    """Refuse a Hello that no stream can start with (``BatchRefused``, with the reason): each
    text field at most ``HELLO_FIELD_MAX`` characters, printable (no control characters)."""
    for name in HELLO_FIELDS:
        value: str = getattr(hello, name)
        if len(value) > HELLO_FIELD_MAX:
            raise BatchRefused(
                "hello_too_long",
                f"Hello.{name} has {len(value)} characters, at most {HELLO_FIELD_MAX}",
            )
        if not value.isprintable():
            raise BatchRefused(
                "hello_bad_characters",
                f"Hello.{name} holds control characters: {loggable(value)}",
            )
    if not hello.gateway_id:
        raise BatchRefused("bad_hello", "Hello.gateway_id is empty")
    if hello.protocol_version not in SUPPORTED_PROTOCOL_VERSIONS:
        raise UnsupportedProtocol(
            f"Hello.protocol_version {hello.protocol_version} is not supported: this sidecar "
            f"speaks version {PROTOCOL_VERSION} (0, unset, is read as {PROTOCOL_VERSION})"
        )


class Sidecar:
    """Everything the services share. All state access goes through ``lock``."""

    def __init__(self, settings: Settings, clock: Clock = SYSTEM) -> None:
        self.settings = settings
        self.clock = clock
        self.lock = threading.Lock()
        self.capacity = Capacity(memory_cap_bytes=settings.memory_cap)
        state_dir = settings.state_path
        state_dir.mkdir(parents=True, exist_ok=True)
        if state_dir.stat().st_mode & 0o077:  # snapshots, the token, directives: private
            state_dir.chmod(0o700)
            log.info("state directory %s made private (0700)", state_dir)
        self.state = snapshot.restore_or_fresh(state_dir, settings.thresholds, self.capacity)
        if settings.inventory:
            load_inventory(Path(settings.inventory)).apply_to(self.state)
        self.directives = DirectiveTable(
            state_dir, clock, AuditLog(settings.audit_path(), clock),
            settings.max_directive_ttl_seconds,
        )  # fmt: skip
        self.counters: Counter[str] = Counter()
        self.streams: dict[int, GatewayStream] = {}
        self._next_stream = 0
        self.meter = RateMeter()
        self.batches_applied = 0
        self.started_at_us = wall_us(clock)
        # this process: host name and process id
        self.sidecar_id = f"{socket.gethostname()}-{os.getpid()}"
        self.token = admin_token(settings)
        # rollups; None when data_store = off
        self.data = data_service.for_sidecar(self, self.directives, settings, clock)
        self.decoders: dict[int, StreamDecoder] = {}  # open streams' dictionaries
        self._compact_at = settings.max_strings * 3 // 4
        # suggestions, their lifecycle, tuned thresholds
        self.policy = PolicyEngine(
            self,
            self.directives,
            PolicyConfig.from_settings(settings),
            settings.thresholds,
            state_dir,
            settings.policy_refresh_seconds,
            clock,
        )
        # alerts to Alertmanager; None when alertmanager_urls is empty
        self.alerts = alerts.for_sidecar(self, settings, self.counters, clock)
        # the other instances (fleet_peers): replication of directives and decisions
        self.fleet = Fleet(settings, self.directives, self.policy.book, self.token,
                           self.sidecar_id, self.counters, clock)  # fmt: skip

    # ---- streams ----
    def open_stream(self, hello: tpb.Hello, peer: str) -> tuple[GatewayStream, StreamDecoder]:
        check_hello(hello)
        with self.lock:
            if len(self.streams) >= self.settings.max_streams:
                raise TooManyStreams(f"{self.settings.max_streams} gateway streams already")
            try:
                channel = self.state.channel_index(hello.channel)
            except VigieError as exc:
                raise BatchRefused("bad_channel", str(exc)) from exc
            self._next_stream += 1
            gs = GatewayStream(self._next_stream, hello, peer, wall_us(self.clock))
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
        """Forget the stream. The gateway's directive hits stay (evidence for the directives
        they name, bounded by the directive table: ``DirectiveTable.record_hits``)."""
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
            ev = self._confine_time(gs, dec.decode(batch))  # interns strings: under the lock
            if len(ev):
                if not self.state.observed_since_us:
                    # the first batch's newest event, never later than the clock: a backfill
                    # sent in time order counts its history, an odd old event moves nothing
                    ts = int(ev["event_time_us"].max())
                    self.state.observed_since_us = min(ts, wall_us(self.clock))
                self.state.apply(ev)
                if self.data is not None:
                    self.data.offer(ev)  # a queue put: the rollups are written off this path
            gs.batches += 1
            gs.events += len(ev)
            self.batches_applied += 1
            self.meter.add(self.clock.monotonic(), len(ev))
            applied = dec.events_applied - gs.refused
        return tpb.Ack(sequence=batch.sequence, events_applied=applied)

    def _confine_time(self, gs: GatewayStream, ev: Events) -> Events:
        """``ev`` without the events dated more than ``max_clock_skew_seconds`` ahead of the
        sidecar's clock, each counted (``event_refused:future``, and on the stream): one
        stream's clock cannot move the state's "now", judge consumers or delete rollups."""
        ts = ev["event_time_us"]
        ahead = ts > wall_us(self.clock) + int(self.settings.max_clock_skew_seconds * 1e6)
        n = int(ahead.sum())
        if not n:
            return ev
        if not gs.refused:
            log.warning(
                "gateway %s: %d events dated up to %.0f s ahead of this sidecar's clock "
                "refused (max_clock_skew_seconds %g); is its clock right?",
                loggable(gs.hello.gateway_id),
                n,
                (int(ts.max()) - wall_us(self.clock)) / 1e6,
                self.settings.max_clock_skew_seconds,
            )
        gs.refused += n
        self.counters["event_refused:future"] += n
        return ev.take(np.flatnonzero(~ahead))

    def record_report(self, gs: GatewayStream, report: tpb.GatewayReport) -> None:
        """Keep a gateway's report; its directive hits only for directives in the table (a
        report naming others, forged or expired, cannot grow what ``ListDirectives`` sends)."""
        _, table = self.directives.snapshot()
        known = {d.id for d in table}
        hits = [h for h in report.directive_hits if h.directive_id in known]
        if len(hits) < len(report.directive_hits):
            self.counters["directive_hits_unknown"] += len(report.directive_hits) - len(hits)
        with self.lock:
            gs.report = report
        self.directives.record_hits(gs.hello.gateway_id, hits)

    # ---- bounding the strings ----
    def _string_epoch(self) -> int:
        return self.data.sink.batches_offered if self.data is not None else 0

    def settle_strings(self) -> None:
        """Released ids the data writer can no longer hold become reusable (under the lock)."""
        done = self.data.sink.batches_settled if self.data is not None else 0
        self.state.interner.settle(done, self.clock.monotonic())

    def compact_strings(self) -> int:
        """Release the strings nothing refers to (the state's rows, the open streams'
        dictionaries); call under the lock. Evicted subscriptions leave their application ids
        here: this is what keeps the interner bounded by ``max_strings``."""
        n = self.state.release_strings(
            [d.referenced() for d in self.decoders.values()],
            self._string_epoch(),
            self.clock.monotonic(),
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
            rows = st.sub_rows()
            classes = views.class_counts(st, now)
            counters = dict(self.counters) | st.counters()
            gateways = [
                convert.gateway_info(
                    gs.hello, gs.peer, gs.connected_at_us, gs.batches, gs.events, gs.report
                )
                for gs in self.streams.values()
            ]
            out = apb.Status(
                sidecar_id=self.sidecar_id,
                version=__version__,
                started_at_us=self.started_at_us,
                now_us=now,
                events_applied=int(st.counters()["events_applied"]),
                batches_applied=self.batches_applied,
                ingest_rate=self.meter.rate(self.clock.monotonic()),
                counters={k: int(v) for k, v in counters.items()},
                gateways=gateways,
                subscriptions=len(rows),
                apis=st.n_api_rows,
                classes=classes,
                state_bytes=st.nbytes(),
                state_bytes_cap=self.capacity.memory_cap_bytes,
            )
        out.active_directives = len(self.directives)
        if self.data is not None:
            out.data.CopyFrom(convert.data_status_to_proto(self.data.status()))
        out.suggestions.update(self.policy.counts())
        self.fleet.status_into(out)
        return out

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
            out.subscriptions.append(convert.subscription_to_proto(s))
        return out

    def apis(self, req: apb.ListApisRequest) -> apb.ApiList:
        with self.lock:
            now = req.now_us or self.state.now_us
            items = views.apis(self.state, now)
        out = apb.ApiList(now_us=now)
        for a in items:
            if req.class_name and req.class_name not in a.classes:
                continue
            out.apis.append(convert.api_to_proto(a))
        return out

    # ---- background work ----
    def write_snapshot(self) -> Path:
        with self.lock:
            frozen = snapshot.freeze(self.state)  # rows in use only: a short lock
        path = snapshot.write_snapshot(frozen, self.settings.state_path)
        self.counters["snapshots_written"] += 1
        return path
