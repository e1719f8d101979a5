"""The suggestion book: each suggestion's lifecycle, persisted, with an audit trail.

Lifecycle::

    proposed ──approve──> approved ──export──> exported
        │                    (no directive)        │
        │      ──approve──> pushed ──TTL──> expired │
        │                    (directive)           │
        ├──reject──> rejected                      │
        └──withdraw (or the class went quiet)──> withdrawn <── withdraw (pushed/approved/exported)

``suggestions.json`` holds the records (written atomically on every change); ``audit.jsonl``
holds the audit trail, one JSON line per event (who, when, what, why), written by the one audit
writer (``vigie.directives.audit.AuditLog``) and on disk before the call returns. Both are read
back on start: a restart loses neither.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
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
        }

    @staticmethod
    def from_json(doc: dict[str, Any]) -> Record:
        state = str(doc["state"])
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        base = doc.get("baseline") or [0, 0]
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
        doc = {"format": FORMAT, "records": [r.to_json() for r in self.records.values()]}
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
            raise SuggestionNotFound(f"no suggestion {sid!r} (see `vigie suggestions list`)")
        return rec

    def transition(
        self, rec: Record, to_state: str, actor: str, action: str, reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        before = rec.state
        rec.state = to_state
        rec.updated_at_us = self.now_us()
        self.audit(rec.id, actor, action, before, to_state, reason, details)

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self.records.values()))

    def counts(self) -> dict[str, int]:
        with self.lock:
            out: dict[str, int] = {}
            for r in self.records.values():
                out[r.state] = out.get(r.state, 0) + 1
            return out
