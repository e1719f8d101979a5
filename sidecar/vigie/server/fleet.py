"""The fleet of vigie instances: each one takes the others' directive and suggestion changes.

Every gateway streams to every instance (``vigie.sidecar.addresses``), so each instance sees
all the traffic and judges it whole; what is decided on one instance (a directive put,
replaced or removed; a suggestion approved, rejected, withdrawn, exported) must be in force on
all of them. Each instance asks each of its peers (``fleet_peers``) every
``fleet_sync_seconds`` for what changed since its last call (``PeerSync``, on the admin service
with the shared admin token, or mTLS): the peer answers with the changes numbered after the
asker's ``since_seq`` in its own process (``epoch``; a restarted peer answers everything). The
asker applies the changes newer than its own (``DirectiveTable.apply_remote``,
``SuggestionBook.apply_remote``: fleet-wide versions, a Lamport clock, ties broken by the
instance id), which pushes them to its gateways at once. A change made on C reaches A through
B as well as directly: an instance that was down catches up from whichever peer answers.

At start (``start_from_peers``), before the gateway listener opens, an instance asks its peers
once: the first that answers gives its directives, decisions and (when this instance has none)
its audit trails, merged over this instance's own snapshot; then it starts from its snapshot;
then empty. It says which in its log and in ``vigie status`` (``started_from``). Before that,
before the sidecar restores its state (``take_peer_state``), it takes the state snapshot of the
first peer of the same vigie version that answers (its own kept as the older generation):
``state_from``.

A peer is ``connected`` (its last call answered), ``catching up`` (it answered after being
unreachable or restarted; its changes are being applied) or ``unreachable`` (with the reason).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import grpc
import orjson

from vigie import __version__
from vigie.clock import SYSTEM, Clock, wall_us
from vigie.directives.changes import Change
from vigie.directives.table import DirectiveTable
from vigie.errors import ConfigError, VigieError
from vigie.policy.book import SuggestionBook
from vigie.server.convert import query_to_proto, rows_from_proto
from vigie.server.credentials import admin_token
from vigie.settings import Settings
from vigie.settings.fleet import parse_peers
from vigie.state import snapshot
from vigie.store.query import AggQuery, AggRow, Store, StoreUnavailable, merge_rows
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc

log = logging.getLogger(__name__)

CALL_TIMEOUT_S: Final = 2.0
# the newest audit lines a starting peer is sent, per trail (under gRPC's 4 MiB message)
AUDIT_BYTES_MAX: Final = 1 << 20
UNREACHABLE_RETRY_S: Final = 1.0  # between two calls to a peer that did not answer
STATE_STATUS_TIMEOUT_S: Final = 10.0  # a peer's first status compiles its class kernels
STATE_EXPORT_TIMEOUT_S: Final = 120.0
# the peers' QueryData calls of one read (its data writer's settling, 5 s at most, included),
# all together: a forced refresh answers within the CLI's 10 s call timeout
PEER_READ_BUDGET_S: Final = 8.0
MINUTE_US: Final = 60_000_000
DAY_US: Final = 86_400_000_000
# gRPC backs off up to 2 minutes between connection attempts by default: a peer that comes back
# is found within a couple of seconds instead
CHANNEL_OPTIONS: Final = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what}: {path}: {exc.strerror or exc}") from None


def peer_channel(address: str, settings: Settings) -> grpc.Channel:
    """A channel to a peer's admin service: plaintext, or TLS with ``fleet_tls_ca_file``
    (this instance's admin certificate as client certificate, for mTLS)."""
    if not settings.fleet_tls_ca_file:
        return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    cert, key = settings.admin_tls_cert_file, settings.admin_tls_key_file
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(settings.fleet_tls_ca_file, "fleet_tls_ca_file"),
        private_key=_read(key, "admin_tls_key_file") if key else None,
        certificate_chain=_read(cert, "admin_tls_cert_file") if cert else None,
    )
    name = settings.fleet_tls_server_name
    options = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.secure_channel(address, creds, options=CHANNEL_OPTIONS + options)


@dataclass(slots=True)
class PeerState:
    """What ``take_peer_state`` took: where from (``"peer <id> (<address>)"``, "" when no peer
    gave its state), the positions its state holds (``server.positions``), its detectors'
    caches (npz bytes) and its events_applied."""

    source: str = ""
    positions: list[apb.StreamPosition] = field(default_factory=list)
    detectors: bytes = b""
    events_applied: int = 0


def take_peer_state(settings: Settings) -> PeerState:
    """Before the sidecar restores its state: the snapshot of the first peer of the same vigie
    version that answers, taken in one hold of the peer's lock with the gateway positions it
    applied (``ExportState`` with ``consistent``), written as this instance's ``state.npz``
    (its own kept as ``state.npz.1``, the fallback when the peer's does not read)."""
    peers = parse_peers(settings.fleet_peers)
    if not peers:
        return PeerState()
    token = admin_token(settings)
    md = (("authorization", f"Bearer {token}"),) if token else ()
    for address in peers:
        ch = peer_channel(address, settings)
        try:
            stub = apb_grpc.AdminStub(ch)
            st = stub.GetStatus(apb.StatusRequest(), metadata=md, timeout=STATE_STATUS_TIMEOUT_S)
            if st.version != __version__:
                log.info("peer %s runs vigie %s, this is %s: its state is not taken", address,
                         st.version, __version__)  # fmt: skip
                continue
            chunks = list(stub.ExportState(apb.ExportStateRequest(consistent=True), metadata=md,
                                           timeout=STATE_EXPORT_TIMEOUT_S))  # fmt: skip
            data = b"".join(c.data for c in chunks)
        except grpc.RpcError as exc:
            log.info("no state from peer %s: %s", address, exc.code().name)
            continue
        finally:
            ch.close()
        _keep_state(settings.state_path, data)
        who = st.instance_id or st.sidecar_id
        head = chunks[0] if chunks else apb.StateChunk()
        log.info("state snapshot taken from peer %s (%s): %d bytes, %d subscriptions, %d events, "
                 "the positions of %d gateway runs", who, address, len(data), st.subscriptions,
                 head.events_applied, len(head.positions))  # fmt: skip
        return PeerState(
            f"peer {who} ({address})", list(head.positions),
            b"".join(c.detectors for c in chunks), head.events_applied,
        )  # fmt: skip
    return PeerState()


def _keep_state(directory: Path, data: bytes) -> None:
    """``data`` as ``directory/state.npz`` (fsynced; the current one becomes the older)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="state.peer.", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    path = directory / snapshot.FILE_NAME
    if path.exists():
        os.replace(path, directory / snapshot.OLDER_NAME)
    os.replace(name, path)


def default_instance_id(settings: Settings, fallback: str) -> str:
    """``fleet_instance_id``, else ``<host name>:<admin port>`` (``fallback`` for port 0)."""
    if settings.fleet_instance_id:
        return settings.fleet_instance_id
    port = settings.admin_listen.rpartition(":")[2]
    if settings.admin_listen.startswith("unix:") or port in ("", "0"):
        return fallback
    return f"{socket.gethostname()}:{port}"


@dataclass(slots=True)
class Peer:
    address: str
    channel: grpc.Channel
    stub: apb_grpc.AdminStub
    instance_id: str = ""
    state: str = "unreachable"
    error: str = "not asked yet"
    last_contact_us: int = 0
    changes_applied: int = 0
    epoch: str = ""
    seq: int = 0
    decision_seq: int = 0

    def info(self) -> apb.PeerInfo:
        return apb.PeerInfo(
            address=self.address,
            instance_id=self.instance_id,
            state=self.state,
            last_contact_us=self.last_contact_us,
            error=self.error if self.state == "unreachable" else "",
            changes_applied=self.changes_applied,
        )


def newest(lines: list[bytes], budget: int) -> list[str]:
    """The newest of ``lines`` (non-empty, UTF-8) that fit in ``budget`` bytes, oldest first."""
    out: list[str] = []
    for ln in reversed(lines):
        if not ln.strip():
            continue
        budget -= len(ln) + 1
        if budget < 0:
            break
        out.append(ln.decode(errors="replace"))
    return out[::-1]


def change_to_proto(c: Change) -> apb.PeerDirectiveChange:
    out = apb.PeerDirectiveChange(
        removed=c.directive is None, version=c.version, origin=c.origin, at_us=c.at_us,
        actor=c.actor, reason=c.reason,
    )  # fmt: skip
    if c.directive is not None:
        out.directive.CopyFrom(c.directive)
    else:
        out.directive.id = c.directive_id
    return out


def change_from_proto(m: apb.PeerDirectiveChange) -> Change:
    d = None if m.removed else m.directive
    return Change(m.directive.id, d, m.version, m.origin, m.at_us, m.actor, m.reason)


class PeerStore:
    """The data store of the first of ``peers`` that answers, read through its admin service
    (``QueryData``, ``settle`` on the first query: that peer answers once it has stored every
    batch it applied); ``StoreUnavailable`` when none answers."""

    def __init__(self, peers: list[Peer], metadata: tuple[tuple[str, str], ...]) -> None:
        self.peers = peers
        self._md = metadata
        self._settled: Peer | None = None
        self._deadline = time.monotonic() + PEER_READ_BUDGET_S

    def aggregate(self, q: AggQuery) -> list[AggRow]:
        errors = []
        for p in [self._settled] if self._settled is not None else self.peers:
            left = self._deadline - time.monotonic()
            if left <= 0:
                errors.append(f"the peers took more than {PEER_READ_BUDGET_S:g} s")
                break
            m = query_to_proto(q)
            m.settle = self._settled is None
            try:
                ans = p.stub.QueryData(m, metadata=self._md, timeout=left)
            except grpc.RpcError as exc:
                errors.append(f"peer {p.address}: {exc.code().name}: {exc.details()}")
                continue
            self._settled = p  # the same peer answers the rest of the queries
            return rows_from_proto(q, ans)
        raise StoreUnavailable("; ".join(errors) or "no peer")

    def changes(self, from_us: int, to_us: int) -> list[dict[str, object]]:
        return []  # not read for the advice

    def extent(self) -> tuple[int, int]:
        return 0, 0


class SplitStore:
    """This instance's store from ``split_us`` (a minute) on and before ``gap_from_us``, a
    peer's in between: what an instance that started from that peer's state reads for the
    period it did not store (from the last day its own store had to that state's time)."""

    def __init__(self, peer: Store, own: Store, split_us: int, gap_from_us: int = 0) -> None:
        self.peer, self.own, self.split_us, self.gap_from_us = peer, own, split_us, gap_from_us

    def aggregate(self, q: AggQuery) -> list[AggRow]:
        if q.from_us >= self.split_us or q.to_us <= self.gap_from_us:
            return self.own.aggregate(q)
        if q.to_us <= self.split_us:
            return self.peer.aggregate(q)
        if q.table != "minute":  # whole days: the peer's (it saw the period this one missed)
            return self.peer.aggregate(q)
        before = self.peer.aggregate(replace(q, to_us=self.split_us).validate())
        after = self.own.aggregate(replace(q, from_us=self.split_us).validate())
        return merge_rows([before, after])

    def changes(self, from_us: int, to_us: int) -> list[dict[str, object]]:
        return self.own.changes(from_us, to_us)

    def extent(self) -> tuple[int, int]:
        return self.own.extent()


class Fleet:
    """This instance's part in the fleet: the answers it gives its peers (``serve``) and the
    calls it makes to them (one thread per peer, ``start``/``stop``)."""

    def __init__(
        self,
        settings: Settings,
        table: DirectiveTable,
        book: SuggestionBook,
        token: str,
        fallback_id: str,
        counters: Counter[str],
        clock: Clock = SYSTEM,
    ) -> None:
        self.settings = settings
        self.table = table
        self.book = book
        self.counters = counters
        self.clock = clock
        self.instance_id = default_instance_id(settings, fallback_id)
        table.instance_id = book.instance_id = self.instance_id
        book.epoch = table.epoch  # one numbering per process for both
        self._md = (("authorization", f"Bearer {token}"),) if token else ()
        had_snapshot = (
            table.loaded_from_file
            or book.loaded_from_file
            or (settings.state_path / snapshot.FILE_NAME).exists()
        )
        self.started_from = "snapshot" if had_snapshot else "empty"
        # where the classes' state came from (set by run.start after take_peer_state)
        self.state_from = (
            "snapshot" if (settings.state_path / snapshot.FILE_NAME).exists() else "empty"
        )
        # the period this instance's own store misses (it started from a peer's state, set by
        # started_from_peer_state): from the last day its store held to that state's time
        self.own_store_from_us = 0
        self.own_store_gap_from_us = 0
        self.peers = [
            Peer(a, ch, apb_grpc.AdminStub(ch))
            for a in parse_peers(settings.fleet_peers)
            for ch in (peer_channel(a, settings),)
        ]
        self._lock = threading.Lock()
        self._decider: bool | None = None  # whether decides_auto last said this instance
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- answering a peer ----
    def serve(self, req: apb.PeerSyncRequest) -> apb.PeerSyncAnswer:
        """What changed here since the peer's last call. Decisions are read before directives:
        a decision a peer receives has its directive (put before it) in the same answer."""
        decision_seq, records = self.book.decisions_since(
            req.epoch, req.since_decision_seq, req.instance_id
        )
        seq, changes = self.table.changes_since(req.epoch, req.since_seq, req.instance_id)
        out = apb.PeerSyncAnswer(
            instance_id=self.instance_id, epoch=self.table.epoch, seq=seq,
            decision_seq=decision_seq, clock=self.table.version,
        )  # fmt: skip
        out.directives.extend(change_to_proto(c) for c in changes)
        for r in records:
            m = apb.PeerDecision(suggestion_id=r.id, version=r.fleet_version, to_state=r.state,
                                 origin=r.fleet_origin)  # fmt: skip
            m.record_json = orjson.dumps(r.to_json()).decode()
            out.decisions.append(m)
        if req.with_audit:
            if self.table.audit is not None and self.table.audit.path.exists():
                lines = self.table.audit.path.read_bytes().splitlines()
                out.directive_audit_json.extend(newest(lines, AUDIT_BYTES_MAX))
            out.suggestion_audit_json.extend(newest(self.book.audit_lines(), AUDIT_BYTES_MAX))
        return out

    # ---- asking the peers ----
    def _apply(self, peer: Peer, ans: apb.PeerSyncAnswer) -> int:
        via = ans.instance_id or peer.address
        n = self.table.apply_remote([change_from_proto(m) for m in ans.directives], via)
        for m in ans.decisions:
            try:
                doc = orjson.loads(m.record_json)
                n += self.book.apply_remote(doc, m.version, m.origin, via)
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
                self.counters["fleet_refused:decision"] += 1
                log.error("decision %s from peer %s refused: %s", m.suggestion_id, via, exc)
        peer.epoch, peer.seq, peer.decision_seq = ans.epoch, ans.seq, ans.decision_seq
        return n

    def sync(self, peer: Peer, timeout: float = CALL_TIMEOUT_S, with_audit: bool = False) -> bool:
        """One call to ``peer`` and its changes applied; False when it did not answer."""
        req = apb.PeerSyncRequest(
            instance_id=self.instance_id, epoch=peer.epoch, since_seq=peer.seq,
            since_decision_seq=peer.decision_seq, with_audit=with_audit,
        )  # fmt: skip
        try:
            ans = peer.stub.PeerSync(req, metadata=self._md, timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            why = (
                "it refused the admin token (the fleet's instances share admin_token)"
                if code == grpc.StatusCode.UNAUTHENTICATED
                else f"{code.name}: {exc.details()}"
            )
            if peer.state != "unreachable" or peer.error != why:
                log.warning("peer %s unreachable: %s", peer.address, why)
            peer.state, peer.error = "unreachable", why
            self.counters["fleet_peer_unreachable"] += 1
            return False
        if ans.instance_id == self.instance_id:
            peer.state, peer.error = "unreachable", "that address is this instance"
            return False
        if peer.state == "unreachable" or ans.epoch != peer.epoch:
            peer.state = "catching up"
            if peer.instance_id != ans.instance_id or peer.error:
                log.info("peer %s (%s) answers; catching up", peer.address, ans.instance_id)
        peer.instance_id = ans.instance_id
        if with_audit:
            taken = self._import_audit(ans)
            log.info("took %d audit entries from peer %s", taken, ans.instance_id)
        n = self._apply(peer, ans)
        peer.changes_applied += n
        peer.last_contact_us = wall_us(self.clock)
        peer.state, peer.error = "connected", ""
        return True

    def _import_audit(self, ans: apb.PeerSyncAnswer) -> int:
        n = self.book.import_audit([s.encode() for s in ans.suggestion_audit_json])
        trail = self.table.audit
        if trail is not None:
            for line in ans.directive_audit_json:
                try:
                    trail.append(orjson.loads(line), sync=False)
                    n += 1
                except orjson.JSONDecodeError:
                    continue
            trail.sync()
        return n

    def _no_audit_yet(self) -> bool:
        trail = self.table.audit
        empty_trail = trail is None or not trail.path.exists() or trail.path.stat().st_size == 0
        return empty_trail and self.book.audit_entries == 0

    def start_from_peers(self) -> str:
        """At start: take a reachable peer's directives, decisions and audit; say where this
        instance started from (``started_from``) and return it."""
        timeout = self.settings.fleet_start_timeout_seconds
        for peer in self.peers:
            if self.sync(peer, timeout, with_audit=self._no_audit_yet()):
                self.started_from = f"peer {peer.instance_id} ({peer.address})"
                break
        n_dir, n_sug = len(self.table), len(self.book.records)
        if self.started_from.startswith("peer"):
            log.info("started from %s: %d directives, %d suggestions", self.started_from,
                     n_dir, n_sug)  # fmt: skip
        elif self.peers:
            log.warning("no peer answered (%s): started from %s", "; ".join(
                f"{p.address}: {p.error}" for p in self.peers), self.started_from)  # fmt: skip
        else:
            log.info("a fleet of one: started from %s", self.started_from)
        return self.started_from

    def _run(self, peer: Peer) -> None:
        interval = self.settings.fleet_sync_seconds
        while not self._stop.is_set():
            try:
                ok = self.sync(peer)
            except VigieError as exc:  # e.g. directive not saved (disk full): asked again
                self.counters["fleet_error"] += 1
                log.error("changes of peer %s not applied: %s", peer.address, exc)
                ok = False
            except Exception:  # the fleet's error boundary: log, count, keep going
                self.counters["fleet_error"] += 1
                log.exception("sync with peer %s failed", peer.address)
                ok = False
            self._stop.wait(interval if ok else max(interval, UNREACHABLE_RETRY_S))

    def start(self) -> None:
        for peer in self.peers:
            t = threading.Thread(
                target=self._run, args=(peer,), name=f"fleet-{peer.address}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(CALL_TIMEOUT_S + 1)
        for p in self.peers:
            p.channel.close()

    # ---- auto-approvals ----
    def decides_auto(self) -> bool:
        """Whether this instance takes the fleet's auto-approvals now: the one with the
        smallest instance id among itself and its connected peers (the others receive its
        decisions by replication, so two instances never auto-approve different things). A
        peer that stops answering hands the role on at the next refresh; while two instances
        cannot reach each other, each decides for its side, and their decisions merge when
        they meet again (the newer version of a suggestion wins)."""
        ids = [p.instance_id for p in self.peers if p.state == "connected" and p.instance_id]
        decider = min([self.instance_id, *ids])
        mine = decider == self.instance_id
        if mine != self._decider:
            self._decider = mine
            if self.peers:
                log.info("auto-approvals of the fleet: %s", "taken by this instance" if mine
                         else f"left to {decider}")  # fmt: skip
        return mine

    # ---- the store ----
    def started_from_peer_state(self, state_now_us: int, own: Store | None) -> None:
        """This instance took a peer's state whose event time is ``state_now_us``: its own
        store (``own``) misses what it was down for, from (at the latest) the start of the
        last day it holds."""
        self.own_store_from_us = state_now_us
        if own is None:
            return
        try:
            last = own.extent()[1]
        except (VigieError, OSError) as exc:  # unreadable: before the state, the peer's
            log.warning("own store's extent unknown (%s): the peer's is read before it", exc)
            last = 0
        self.own_store_gap_from_us = max(0, last - DAY_US) if last else 0

    def store_for(self, own: Store, from_us: int) -> Store:
        """The store to read from ``from_us`` on: ``own``, or, when this instance started from
        a peer's state later than ``from_us`` (its own store misses the events it was down
        for), one that reads a peer's for that period (``SplitStore``: each query by its own
        range, a daily one too) and ``own`` for the rest."""
        if from_us >= self.own_store_from_us or not self.peers:
            return own
        split = self.own_store_from_us + (-self.own_store_from_us) % MINUTE_US
        # the connected first, but each is tried: a peer missing one sync is still asked
        peers = sorted(self.peers, key=lambda p: p.state != "connected")
        return SplitStore(PeerStore(peers, self._md), own, split, self.own_store_gap_from_us)

    # ---- status ----
    def status_into(self, out: apb.Status) -> None:
        if self.table.remote_refused:
            out.counters["fleet_refused:directive"] = self.table.remote_refused
        out.instance_id = self.instance_id
        out.started_from = self.started_from
        out.state_from = self.state_from
        out.peers.extend(p.info() for p in self.peers)
        out.directives.extend(
            apb.DirectiveRef(id=c.directive_id, version=c.version, origin=c.origin)
            for c in self.table.in_force()
        )
