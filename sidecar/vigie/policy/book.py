"""The suggestion book: each suggestion's lifecycle, persisted, with an audit trail.

Lifecycle::

    proposed ──approve──> approved ──export──> exported
        │                    (no directive)        │
        │      ──approve──> pushed ──TTL──> expired │
        │                    (directive)           │
        ├──reject──> rejected                      │
        └──withdraw──> withdrawn <── withdraw (pushed/approved/exported)

A proposal whose class went quiet before anyone decided on it leaves the book (its audit trail
stays, ``withdrawn``) and is proposed again under the same id if the class holds again: the
book is the decisions plus what the state shows now, whatever moments the refreshes fell at.

``suggestions.json`` holds the records (written atomically on every change); ``audit.jsonl``
holds the audit trail, one JSON line per event (who, when, what, why), written by the one audit
writer (``vigie.directives.audit.AuditLog``) and on disk before the call returns. Both are read
back on start: a restart loses neither.

The fleet (``vigie.server.fleet``): a decision (every transition but the ones the system makes
by itself on each instance, ``LOCAL_ACTORS``) gets a fleet-wide version (a Lamport clock, the
instance it was made on breaking ties) and is numbered in this process (``seq``);
``decisions_since`` lists them for a peer, ``apply_remote`` applies a peer's newer decision
(its audit line says where it was made and where it was replicated). A suggestion's id depends
only on what it is about (``vigie.policy.model.suggestion_id``), so instances seeing the same
traffic propose the same ids and a suggestion is never proposed twice in the fleet.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from vigie.clock import SYSTEM, Clock, wall_us
from vigie.directives.audit import AuditLog
from vigie.errors import VigieError
from vigie.files import write_private
from vigie.policy.suggest import Suggestion

log = logging.getLogger(__name__)

RECORDS_FILE: Final = "suggestions.json"
AUDIT_FILE: Final = "audit.jsonl"
STATES: Final = ("proposed", "approved", "rejected", "pushed", "exported", "expired", "withdrawn")
LIVE_STATES: Final = ("approved", "pushed", "exported")
FORMAT: Final = 1
# the actors of transitions each instance makes by itself (expiry, reconciliation): not replicated
LOCAL_ACTORS: Final = frozenset({"vigie"})


class LifecycleError(VigieError):
    """A transition the suggestion's state does not allow; the message says why."""

    exit_code = 2
    cause = "lifecycle"


class SuggestionNotFound(VigieError):
    """No suggestion has the id asked for."""

    exit_code = 2
    grpc_status = "NOT_FOUND"


@dataclass(slots=True)
class AuditEntry:
    at_us: int
    subject: str
    actor: str
    action: str
    from_state: str = ""
    to_state: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "at_us": self.at_us,
            "subject": self.subject,
            "actor": self.actor,
            "action": self.action,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "reason": self.reason,
            "details": self.details,
        }

    @staticmethod
    def from_json(doc: dict[str, Any]) -> AuditEntry:
        return AuditEntry(
            at_us=int(doc["at_us"]),
            subject=str(doc["subject"]),
            actor=str(doc.get("actor", "")),
            action=str(doc["action"]),
            from_state=str(doc.get("from_state", "")),
            to_state=str(doc.get("to_state", "")),
            reason=str(doc.get("reason", "")),
            details=dict(doc.get("details") or {}),
        )


@dataclass(slots=True)
class Record:
    """A suggestion and where it stands."""

    suggestion: Suggestion
    state: str
    created_at_us: int
    updated_at_us: int
    mode: int = 0  # DirectiveMode of the pushed directive
    expires_at_us: int = 0
    pushed_at_us: int = 0
    exported: bool = False
    auto: bool = False  # approved by auto-approval
    promotion_checked: bool = False
    # hits of the directive when it was promoted to enforce (enforced_hits, passed)
    baseline: tuple[int, int] = (0, 0)
    # requests the state had counted in the directive's scope when it was pushed (-1: unknown);
    # the hits gateways report since are plausible only up to what the state counted since
    scope_requests_at_push: int = -1
    # the fleet: version and origin of the latest decision, who made it (actor, action, reason,
    # at_us), and this process's number of it (not persisted)
    fleet_version: int = 0
    fleet_origin: str = ""
    fleet_last: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    @property
    def id(self) -> str:
        return self.suggestion.id

    def to_json(self) -> dict[str, Any]:
        return {
            "suggestion": self.suggestion.to_json(),
            "state": self.state,
            "created_at_us": self.created_at_us,
            "updated_at_us": self.updated_at_us,
            "mode": self.mode,
            "expires_at_us": self.expires_at_us,
            "pushed_at_us": self.pushed_at_us,
            "exported": self.exported,
            "auto": self.auto,
            "promotion_checked": self.promotion_checked,
            "baseline": list(self.baseline),
            "scope_requests_at_push": self.scope_requests_at_push,
            "fleet": {
                "version": self.fleet_version,
                "origin": self.fleet_origin,
                "last": self.fleet_last,
            },
        }

    @staticmethod
    def from_json(doc: dict[str, Any]) -> Record:
        state = str(doc["state"])
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        base = doc.get("baseline") or [0, 0]
        fleet = doc.get("fleet") or {}
        return Record(
            suggestion=Suggestion.from_json(doc["suggestion"]),
            state=state,
            created_at_us=int(doc["created_at_us"]),
            updated_at_us=int(doc["updated_at_us"]),
            mode=int(doc.get("mode", 0)),
            expires_at_us=int(doc.get("expires_at_us", 0)),
            pushed_at_us=int(doc.get("pushed_at_us", 0)),
            exported=bool(doc.get("exported", False)),
            auto=bool(doc.get("auto", False)),
            promotion_checked=bool(doc.get("promotion_checked", False)),
            baseline=(int(base[0]), int(base[1])),
            scope_requests_at_push=int(doc.get("scope_requests_at_push", -1)),
            fleet_version=int(fleet.get("version", 0)),
            fleet_origin=str(fleet.get("origin", "")),
            fleet_last=dict(fleet.get("last") or {}),
        )


class SuggestionBook:
    """Records by id and the audit trail. Callers hold ``lock`` across read-modify-write."""

    def __init__(self, directory: Path | None, clock: Clock = SYSTEM) -> None:
        self._dir = directory
        self._clock = clock
        self.lock = threading.RLock()
        self.records: dict[str, Record] = {}
        self._audit: dict[str, list[AuditEntry]] = defaultdict(list)
        self.audit_entries = 0
        self._trail: AuditLog | None = None
        # the fleet (see the module's comment)
        self.instance_id = ""
        self.epoch = secrets.token_hex(8)
        self.seq = 0
        self.fleet_clock = 0
        self.loaded_from_file = False
        # decisions made here (seq, id, version), and up to which seq each peer took them
        self._mine: deque[tuple[int, str, int]] = deque(maxlen=10_000)
        self._acked: dict[str, int] = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._load()
            self._trail = AuditLog(directory / AUDIT_FILE, clock)

    def now_us(self) -> int:
        return wall_us(self._clock)

    # ---- persistence ----
    def _set_aside(self, path: Path, exc: Exception) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(self._clock.wall()))
        aside = path.with_name(f"{path.name}.unusable-{stamp}")
        os.replace(path, aside)
        log.error("%s unreadable (%s); set aside as %s", path, exc, aside.name)

    def _load(self) -> None:
        assert self._dir is not None
        path = self._dir / RECORDS_FILE
        if path.exists():
            try:
                doc = orjson.loads(path.read_bytes())
                if doc.get("format") != FORMAT:
                    raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT}")
                records = [Record.from_json(r) for r in doc["records"]]
                self.records = {r.id: r for r in records}
                self.fleet_clock = int(doc.get("fleet_clock", 0))
                self.loaded_from_file = True
                for r in records:
                    if r.fleet_version:
                        self.seq += 1
                        r.seq = self.seq
            except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
                self.records = {}
                self._set_aside(path, exc)
        audit = self._dir / AUDIT_FILE
        if audit.exists():
            with audit.open("rb") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        e = AuditEntry.from_json(orjson.loads(line))
                    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
                        # a torn last line after a crash: keep the rest, say so
                        log.error("%s:%d: unreadable audit line skipped (%s)", audit, n, exc)
                        continue
                    self._audit[e.subject].append(e)
                    self.audit_entries += 1

    def save(self) -> None:
        if self._dir is None:
            return
        path = self._dir / RECORDS_FILE
        tmp = path.with_suffix(".tmp")
        doc = {
            "format": FORMAT,
            "fleet_clock": self.fleet_clock,
            "records": [r.to_json() for r in self.records.values()],
        }
        write_private(tmp, orjson.dumps(doc))
        os.replace(tmp, path)

    def audit(
        self,
        subject: str,
        actor: str,
        action: str,
        from_state: str = "",
        to_state: str = "",
        reason: str = "",
        details: dict[str, Any] | None = None,
        sync: bool = True,
    ) -> AuditEntry:
        """Append an entry; with ``sync`` it is on disk (fsync) when this returns, else at the
        next ``sync()`` (used when many entries are written at once)."""
        e = AuditEntry(
            self.now_us(), subject, actor or "?", action, from_state, to_state, reason,
            details or {},
        )  # fmt: skip
        with self.lock:
            self._audit[subject].append(e)
            self.audit_entries += 1
            if self._trail is not None:
                self._trail.append(e.to_json(), sync=sync)
        return e

    def sync(self) -> None:
        """Put the audit entries written without ``sync`` on disk."""
        if self._trail is not None:
            self._trail.sync()

    def trail(self, subject: str) -> list[AuditEntry]:
        with self.lock:
            return list(self._audit.get(subject, ()))

    # ---- records ----
    def get(self, sid: str) -> Record:
        rec = self.records.get(sid)
        if rec is None:
            trail = self._audit.get(sid)
            if trail:  # a proposal nobody decided on, gone with its class (engine.merge)
                last = trail[-1]
                raise SuggestionNotFound(
                    f"suggestion {sid!r} is no longer in the book: {last.to_state}: "
                    f"{last.reason} (`vigie audit` has its trail)"
                )
            raise SuggestionNotFound(f"no suggestion {sid!r} (see `vigie suggestions list`)")
        return rec

    def transition(
        self, rec: Record, to_state: str, actor: str, action: str, reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        before = rec.state
        rec.state = to_state
        rec.updated_at_us = self.now_us()
        if actor not in LOCAL_ACTORS:  # a decision: the fleet's
            with self.lock:
                self.fleet_clock += 1
                self.seq += 1
                rec.fleet_version, rec.fleet_origin, rec.seq = (
                    self.fleet_clock, self.instance_id, self.seq)  # fmt: skip
                rec.fleet_last = {"actor": actor, "action": action, "reason": reason,
                                  "at_us": rec.updated_at_us}  # fmt: skip
                self._mine.append((self.seq, rec.id, rec.fleet_version))
            if self.instance_id:
                details = dict(details or {}) | {
                    "version": rec.fleet_version, "made_on": self.instance_id}  # fmt: skip
        self.audit(rec.id, actor, action, before, to_state, reason, details)

    # ---- the fleet ----
    def decisions_since(
        self, epoch: str, since_seq: int, peer: str = ""
    ) -> tuple[int, list[Record]]:
        """This book's seq and the records decided after ``since_seq`` (all decided ones when
        ``epoch`` is not this process's). ``peer`` (its instance id) has taken every decision
        up to ``since_seq``: the ones made here it had not taken yet are audited "replicated"."""
        if epoch != self.epoch:
            since_seq = 0
        with self.lock:
            if peer and epoch == self.epoch:
                before = self._acked.get(peer, 0)
                for seq, sid, version in list(self._mine):
                    if before < seq <= since_seq and sid in self.records:
                        state = self.records[sid].state
                        self.audit(sid, "vigie", "replicated", state, state, f"in force on {peer}",
                                   {"version": version, "made_on": self.instance_id,
                                    "replicated_to": peer})  # fmt: skip
                self._acked[peer] = max(before, since_seq)
            out = [r for r in self.records.values() if r.fleet_version and r.seq > since_seq]
            return self.seq, sorted(out, key=lambda r: r.seq)

    def apply_remote(self, doc: dict[str, Any], version: int, origin: str, via: str) -> bool:
        """Apply a peer's decision: ``doc`` its record after it (``Record.to_json``), made on
        ``origin`` at fleet ``version``, heard from peer ``via``; False when this book holds a
        newer (or the same) decision. A record this book lacks is taken whole; otherwise its
        lifecycle (state, mode, expiry, export) is, the evidence stays this instance's.
        Raises ValueError for a record that does not read."""
        if not 0 < version < 1 << 53:
            raise ValueError(f"version {version} outside 1..2^53")
        theirs = Record.from_json(doc)
        with self.lock:
            self.fleet_clock = max(self.fleet_clock, version)
            rec = self.records.get(theirs.id)
            if rec is not None and (rec.fleet_version, rec.fleet_origin) >= (version, origin):
                return False
            before = rec.state if rec is not None else ""
            if rec is None:
                rec = theirs
                self.records[rec.id] = rec
            else:
                rec.state, rec.mode = theirs.state, theirs.mode
                rec.expires_at_us = theirs.expires_at_us
                rec.pushed_at_us = rec.pushed_at_us or theirs.pushed_at_us
                rec.exported, rec.auto = theirs.exported, theirs.auto
                rec.updated_at_us = self.now_us()
            self.seq += 1
            rec.fleet_version, rec.fleet_origin, rec.seq = version, origin, self.seq
            last = theirs.fleet_last
            rec.fleet_last = last
            self.audit(rec.id, str(last.get("actor", "")), str(last.get("action", "replicated")),
                       before, rec.state, str(last.get("reason", "")),
                       {"version": version, "made_on": origin, "replicated_to": self.instance_id,
                        "via": via})  # fmt: skip
            self.save()
            return True

    def audit_lines(self) -> list[bytes]:
        """The audit trail's lines as stored (a starting peer takes them)."""
        if self._trail is None or not self._trail.path.exists():
            return []
        return [ln for ln in self._trail.path.read_bytes().splitlines() if ln.strip()]

    def import_audit(self, lines: list[bytes]) -> int:
        """Take a peer's audit trail (this book has none yet); return the entries taken."""
        n = 0
        with self.lock:
            for line in lines:
                try:
                    e = AuditEntry.from_json(orjson.loads(line))
                except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                    continue
                self._audit[e.subject].append(e)
                self.audit_entries += 1
                if self._trail is not None:
                    self._trail.append(e.to_json(), sync=False)
                n += 1
            self.sync()
        return n

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self.records.values()))

    def counts(self) -> dict[str, int]:
        with self.lock:
            out: dict[str, int] = {}
            for r in self.records.values():
                out[r.state] = out.get(r.state, 0) + 1
            return out
