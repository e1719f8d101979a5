"""The sidecar core: the live state, its lock, the gateway streams, and applying their batches.

``Sidecar`` owns the state and the one lock that guards it, the directive table, the counters,
the open streams and their decoders. It composes the data store and the policy engine, handing
each only what it uses (``LiveState``: itself, seen as the state and its lock; the directive
table; settings values; the clock). The gRPC services (``telemetry``, ``admin``) are thin layers
over it. Time comes from the injected ``Clock``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from vigie import __version__, alerts
from vigie.classify import security, views
from vigie.clock import SYSTEM, Clock, wall_us
from vigie.directives.audit import AuditLog
from vigie.directives.table import MAX_HIT_GATEWAYS, DirectiveTable
from vigie.errors import BatchRefused, TooManyStreams, UnsupportedProtocol, VigieError
from vigie.policy.codes import ThrottleCodes
from vigie.policy.engine import PolicyEngine
from vigie.server import convert
from vigie.server.boundary import loggable
from vigie.server.credentials import admin_token, gateway_identity
from vigie.server.fleet import Fleet
from vigie.server.hits import NO_GROUPS, GatewayScopes
from vigie.server.hits import group as scope_groups
from vigie.server.positions import Positions
from vigie.settings import Settings
from vigie.settings.policy import PolicyConfig
from vigie.sources.inventory import load_inventory
from vigie.state import snapshot
from vigie.state.engine import Capacity
from vigie.state.layout import MAX_CHANNELS
from vigie.store import service as data_service
from vigie.store.codes import WINDOW_US as CODES_WINDOW_US
from vigie.store.codes import CodesCache, throttle_codes
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import telemetry_pb2 as tpb
from vigie.wire import tenants
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
    clock_skew_us: int | None = None  # Hello.clock_us minus the sidecar's clock; None: not sent
    channel: int = 0  # its channel slot
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


# a history stream's batch (``Hello.history``: a backfill, a replay) waits at most this long for
# room in the data writer's queue; live gateway streams never wait
BACKFILL_WAIT_S: Final = 60.0
DAY_US: Final = 86_400_000_000
# a forced policy refresh waits this long for the data writer to store every applied batch
SETTLE_TIMEOUT_S: Final = 5.0


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
        # the last event applied per handler run (a peer's when started from its state)
        self.positions = Positions(self.counters)
        # per directive, per gateway: the requests it sent in the scope (plausible hits)
        self.gateway_scopes = GatewayScopes(wall_us(clock), clock.monotonic)
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
        # the throttle codes of the own store, read again after it was written
        self._codes = CodesCache(lambda: self.data.sink.generation if self.data else 0)
        self.decoders: dict[int, StreamDecoder] = {}  # open streams' dictionaries
        # channel slot -> the data writer's batch count after its last batch was queued
        self._channel_epoch: dict[int, int] = {}
        self._compact_at = settings.max_strings * 3 // 4
        self._compact_at_bytes = settings.max_string_bytes * 3 // 4
        if self.state.interner.bytes > self._compact_at_bytes:  # e.g. an older, bigger snapshot
            self.compact_strings()
        # suggestions, their lifecycle, tuned thresholds
        self.policy = PolicyEngine(
            self,
            self.directives,
            PolicyConfig.from_settings(settings),
            settings.thresholds,
            state_dir,
            settings.policy_refresh_seconds,
            clock,
            throttle_codes=self._throttle_codes if self.data is not None else None,
            settle_store=self._settle_data if self.data is not None else None,
        )
        # alerts to Alertmanager; None when alertmanager_urls is empty
        self.alerts = alerts.for_sidecar(self, settings, self.counters, clock)
        # the other instances (fleet_peers): replication of directives and decisions
        self.fleet = Fleet(settings, self.directives, self.policy.book, self.token,
                           self.sidecar_id, self.counters, clock)  # fmt: skip
        self.policy.decides_auto = self.fleet.decides_auto  # one decider for the fleet

    def _settle_data(self) -> bool:
        """Every applied batch written to the store (at most ``SETTLE_TIMEOUT_S``)."""
        assert self.data is not None
        return self.data.sink.settle(SETTLE_TIMEOUT_S)

    def _throttle_codes(self, now_us: int) -> ThrottleCodes:
        """The WSO2 throttle codes of the hours before ``now_us``, from the data store."""
        assert self.data is not None
        own = self.data.store
        # the codes read from a day before the window (the daily fallback reads whole days)
        store = self.fleet.store_for(own, now_us - CODES_WINDOW_US - DAY_US)
        if store is not own:
            try:
                return ThrottleCodes.from_json(throttle_codes(store, now_us))
            except VigieError as exc:
                log.warning("throttle codes from the fleet unavailable, own store read: %s", exc)
        return ThrottleCodes.from_json(self._codes.get(own, now_us))

    # ---- streams ----
    def open_stream(
        self, hello: tpb.Hello, peer: str, certified: str = ""
    ) -> tuple[GatewayStream, StreamDecoder]:
        """A stream for ``hello``; ``certified``: the verified client certificate's identity
        (mTLS), which the stream's gateway id follows (``credentials.gateway_identity``)."""
        check_hello(hello)
        identity = gateway_identity(certified, hello.gateway_id)
        if identity != hello.gateway_id:
            self.counters["gateway_id_mismatch"] += 1
            log.warning(
                "gateway stream from %s: its certificate is %s but its Hello claims %s; "
                "counted as %s",
                peer, loggable(certified), loggable(hello.gateway_id), loggable(identity),
            )  # fmt: skip
            claimed, hello = hello, tpb.Hello()
            hello.CopyFrom(claimed)
            hello.gateway_id = identity
        with self.lock:
            if len(self.streams) >= self.settings.max_streams:
                raise TooManyStreams(f"{self.settings.max_streams} gateway streams already")
            channel = self._channel_slot(hello.channel)
            self._next_stream += 1
            now = wall_us(self.clock)
            gs = GatewayStream(self._next_stream, hello, peer, now, channel=channel)
            if hello.clock_us:
                gs.clock_skew_us = hello.clock_us - now
            self.streams[gs.stream_id] = gs
            dec = StreamDecoder(
                self.state.interner,
                channel,
                self.settings.max_batch_events,
                self.settings.max_dictionary_entries,
                hello.tenant,  # the tenant of events that name none
            )
            self.decoders[gs.stream_id] = dec
        log.info(
            "gateway %s connected from %s (channel %s)",
            hello.gateway_id,
            peer,
            hello.channel or "default",
        )
        if gs.clock_skew_us is not None and self._skewed(gs.clock_skew_us):
            self.counters["stream_clock_skewed"] += 1
            log.warning(
                "gateway %s: its clock is %+.0f s off this sidecar's (max_clock_skew_seconds "
                "%g): events it dates that far ahead will be refused",
                loggable(hello.gateway_id),
                gs.clock_skew_us / 1e6,
                self.settings.max_clock_skew_seconds,
            )
        return gs, dec

    def _skewed(self, skew_us: int) -> bool:
        return abs(skew_us) > self.settings.max_clock_skew_seconds * 1e6

    def _channel_slot(self, name: str) -> int:
        """The channel slot of ``name`` (under the lock). When all are taken, the slots no
        open stream, no row and no batch still queued for the data writer uses are released
        first (``channels_released``); ``BatchRefused`` (``bad_channel``) when none is."""
        try:
            return self.state.channel_index(name)
        except VigieError as exc:
            settled = self.data.sink.batches_settled if self.data is not None else 0
            keep = {gs.channel for gs in self.streams.values()}
            keep |= {c for c, epoch in self._channel_epoch.items() if epoch > settled}
            released = self.state.release_channels(keep)
            if not released:
                raise BatchRefused("bad_channel", str(exc)) from exc
            self.counters["channels_released"] += len(released)
            log.info(
                "channel slots released (no stream or row uses them): %s",
                loggable(", ".join(released)),
            )
            for c in [c for c, _ in self._channel_epoch.items() if not self.state.channels[c]]:
                del self._channel_epoch[c]
            return self.state.channel_index(name)

    def close_stream(self, gs: GatewayStream) -> None:
        """Forget the stream. The gateway's directive hits stay (evidence for the directives
        they name, bounded by the directive table: ``DirectiveTable.record_hits``)."""
        with self.lock:
            self.streams.pop(gs.stream_id, None)
            self.decoders.pop(gs.stream_id, None)
        log.info("gateway %s disconnected", gs.hello.gateway_id)

    def apply_batch(self, gs: GatewayStream, dec: StreamDecoder, batch: tpb.EventBatch) -> tpb.Ack:
        """Apply ``batch`` whole, or refuse it whole (``BatchRefused``) before any of it is
        applied: every cap it could hit (strings, bytes of strings, API rows) is checked first,
        so an Ack always covers whole batches and "acked + dropped = offered" holds. A batch
        of a history stream (``Hello.history``: a backfill, a replay) first takes a place in
        the data writer's queue, waiting for it outside the lock (backpressure: its Ack comes
        later); a live gateway's batch never waits."""
        self.gateway_scopes.follow(self.directives)
        reserved = False
        if self.data is not None and gs.hello.history:
            self.counters["backfill_batches"] += 1
            reserved = self.data.sink.reserve(BACKFILL_WAIT_S)
            if not reserved:
                self.counters["backfill_wait_timeouts"] += 1
        try:
            return self._apply(gs, dec, batch, reserved)
        except BaseException:
            if reserved and self.data is not None:  # refused before it was offered
                self.data.sink.release()
            raise

    def _apply(
        self, gs: GatewayStream, dec: StreamDecoder, batch: tpb.EventBatch, reserved: bool
    ) -> tpb.Ack:
        # validated, viewed and its ids mapped outside the lock (the stream's own: see
        # StreamDecoder): another stream's kernel, which runs without the GIL, goes on meanwhile
        checked = dec.check(batch)
        if checked.additions:  # new strings: interned under the lock, with room made first
            with self.lock:
                self._make_string_room(checked.additions)
                dec.intern(checked)
        dec.map(checked)
        scoped = NO_GROUPS
        with self.lock:
            ev = dec.finish(checked)  # may intern: under the lock
            if batch.first_event:  # what this instance applied already (or its peer did)
                done = self.positions.skip(
                    gs.hello.gateway_id, gs.hello.run_id, batch.first_event, len(ev)
                )
                if done:
                    ev = ev.take(slice(done, None))
            ev = self._confine_time(gs, ev)
            if len(ev):
                self._check_api_room(ev)
                if not self.state.observed_since_us:
                    # the first batch's newest event, never later than the clock: a backfill
                    # sent in time order counts its history, an odd old event moves nothing
                    ts = int(ev["event_time_us"].max())
                    self.state.observed_since_us = min(ts, wall_us(self.clock))
                self.state.apply(ev)
                if self.gateway_scopes.watching:  # named here, counted after the lock
                    scoped = scope_groups(ev, self.state.interner)
                if self.data is not None and self.data.offer(ev, reserved):  # a put, no wait
                    # the slot is not released before the writer has resolved this batch
                    self._channel_epoch[gs.channel] = self.data.sink.batches_offered
            elif reserved and self.data is not None:  # nothing to offer: the place goes back
                self.data.sink.release()
            gs.batches += 1
            gs.events += len(ev)
            self.batches_applied += 1
            self.meter.add(self.clock.monotonic(), len(ev))
            applied = dec.events_applied - gs.refused
        # the plausibility counts, under their own lock: ingest does not wait for them
        self.gateway_scopes.add(gs.hello.gateway_id, gs.hello.channel, scoped)
        return tpb.Ack(sequence=batch.sequence, events_applied=applied)

    def _make_string_room(self, additions: Sequence[str]) -> None:
        """Room in the interner for the strings of ``additions`` it does not hold yet, by
        releasing those nothing refers to; ``BatchRefused`` when they would still go over
        ``max_strings`` or ``max_string_bytes`` (call under the lock)."""
        it = self.state.interner
        n, nbytes = it.unknown(additions)
        if not n:
            return
        if it.live + n > self._compact_at or it.bytes + nbytes > self._compact_at_bytes:
            self.compact_strings()
        if it.live + n > self.settings.max_strings:
            raise BatchRefused(
                "strings_full",
                f"{it.live} strings held, all in use, and the batch brings {n} more "
                f"(max_strings {self.settings.max_strings}); reconnect to start a new dictionary",
            )
        if it.bytes + nbytes > self.settings.max_string_bytes:
            raise BatchRefused(
                "string_bytes_full",
                f"{it.bytes} bytes of strings held, all in use, and the batch brings {nbytes} "
                f"more (max_string_bytes {self.settings.max_string_bytes}); reconnect to start "
                "a new dictionary",
            )

    def _check_api_room(self, ev: Events) -> None:
        """``BatchRefused`` (``api_rows_full``) when ``ev`` brings more new APIs than the state
        has rows left: refused before any event of it is applied."""
        if self.state.n_api_rows + len(ev) <= self.capacity.max_apis:
            return  # not even one new API per event would go over (nothing looked up)
        new = self.state.new_api_rows(ev)
        if not new:
            return
        room = self.state.api_room()  # every row but the inventory's can be evicted for it
        if new > room:
            raise BatchRefused(
                "api_rows_full",
                f"the batch brings {new} new APIs, {room} more fit (at most "
                f"{self.capacity.max_apis} APIs, the inventory's kept)",
            )

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
        self.gateway_scopes.follow(self.directives)
        with self.lock:
            gs.report = report
        # each entry counts only up to what this gateway sent in the directive's scope
        hits = self.gateway_scopes.cap(gs.hello.gateway_id, hits)
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
        cap, held = self.settings.max_strings, self.state.interner.live
        self._compact_at = min(cap, max(cap * 3 // 4, held + cap // 10))
        cap, held = self.settings.max_string_bytes, self.state.interner.bytes
        self._compact_at_bytes = min(cap, max(cap * 3 // 4, held + cap // 10))
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
            classes = views.class_counts(st, now) | security.security_counts(st)
            counters = dict(self.counters) | st.counters() | st.security.counters()
            counters["string_bytes_held"] = st.interner.bytes
            counters["directive_hits_implausible"] = self.gateway_scopes.total_implausible()
            implausible = self.gateway_scopes.named()
            gateways = [self._gateway_info(gs) for gs in self.streams.values()]
            slots = self._channel_slots()
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
        out.channel_slots.extend(slots)
        out.implausible_hit_reports.update(implausible)
        out.channel_slots_max = MAX_CHANNELS
        out.hit_tables.extend(
            apb.HitTable(gateway_id=gw, directives=n) for gw, n in self.directives.hit_tables()
        )
        out.hit_tables_max = MAX_HIT_GATEWAYS
        out.active_directives = len(self.directives)
        if self.data is not None:
            out.data.CopyFrom(convert.data_status_to_proto(self.data.status()))
        out.suggestions.update(self.policy.counts())
        self.fleet.status_into(out)
        return out

    def _gateway_info(self, gs: GatewayStream) -> apb.GatewayInfo:
        info = convert.gateway_info(
            gs.hello, gs.peer, gs.connected_at_us, gs.batches, gs.events, gs.report
        )
        info.events_refused_future = gs.refused
        if gs.clock_skew_us is not None:
            info.clock_known = True
            info.clock_skew_us = gs.clock_skew_us
            info.clock_skewed = self._skewed(gs.clock_skew_us)
        return info

    def _channel_slots(self) -> list[apb.ChannelSlot]:
        """The channel slots, with the streams open on each and whether rows use it."""
        streams = Counter(gs.channel for gs in self.streams.values())
        rows = self.state.channels_in_use()
        return [
            apb.ChannelSlot(name=name, streams=streams[i], rows=bool(rows[i]))
            for i, name in enumerate(self.state.channels)
        ]

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
        if req.tenant:
            subs = [s for s in subs if tenants.matches(req.tenant, s.tenant)]
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
            if req.tenant and not tenants.matches(req.tenant, a.tenant):
                continue
            out.apis.append(convert.api_to_proto(a))
        return out

    def clients(self, req: apb.ListClientsRequest) -> apb.ClientList:
        """The rows of the security class auth_failing (``vigie.classify.security``)."""
        with self.lock:
            items = security.clients(self.state, held_only=req.held_only)
            now = self.state.now_us
        if req.kind:
            items = [c for c in items if c.kind == req.kind]
        if req.limit:
            items = items[: req.limit]
        return apb.ClientList(now_us=now, client_json=[json.dumps(c.as_dict()) for c in items])

    # ---- background work ----
    def write_snapshot(self) -> Path:
        with self.lock:
            self.compact_strings()  # what closed streams left unused is not worth keeping
            frozen = snapshot.freeze(self.state)  # rows in use only: a short lock
        path = snapshot.write_snapshot(frozen, self.settings.state_path)
        self.counters["snapshots_written"] += 1
        return path
