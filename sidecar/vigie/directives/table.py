"""The directive table: what every connected gateway enforces. Persisted, versioned, pushed.

Changes are broadcast as ``DirectiveUpdate`` deltas to every subscriber (a gateway stream); a
new subscriber gets the full table. The table fills a directive's defaults (the WSO2 error code
of its action), validates it, and sweeps the expired ones (``expire``). Every change (put,
replace, remove, expire) is written to the directives' audit trail here, once, whoever asked
for it (an operator, a suggestion approved, the TTL).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Final

from google.protobuf import json_format

from vigie.clock import SYSTEM, Clock, wall_us
from vigie.directives.audit import AuditLog
from vigie.errors import VigieError
from vigie.v1 import directives_pb2 as dpb

log = logging.getLogger(__name__)

FILE_NAME: Final = "directives.json"
DEFAULT_BLOCK_CODE: Final = 900805
DEFAULT_LIMIT_CODE: Final = 900806


class DirectiveError(VigieError):
    """A directive that cannot be accepted, or one that is not in the table; the message says
    why. The request is wrong whatever the table holds: INVALID_ARGUMENT."""

    exit_code = 2
    grpc_status = "INVALID_ARGUMENT"
    cause = "directive"


def default_error_code(action: int) -> int:
    """The WSO2 error code a gateway answers with when a directive refuses a request and the
    directive names none: 900805 for a BLOCK, 900806 for a LIMIT."""
    return DEFAULT_BLOCK_CODE if action == dpb.DIRECTIVE_ACTION_BLOCK else DEFAULT_LIMIT_CODE


def with_defaults(d: dpb.Directive) -> dpb.Directive:
    """``d`` with the defaults of the fields it leaves unset (a copy; ``d`` is not changed)."""
    out = dpb.Directive()
    out.CopyFrom(d)
    if not out.error_code:
        out.error_code = default_error_code(out.action)
    return out


def validate(d: dpb.Directive, now_us: int) -> None:
    if not d.id:
        raise DirectiveError("directive id is empty")
    if d.mode not in (dpb.DIRECTIVE_MODE_SHADOW, dpb.DIRECTIVE_MODE_ENFORCE):
        raise DirectiveError(f"directive {d.id}: mode must be SHADOW or ENFORCE")
    if d.action not in (dpb.DIRECTIVE_ACTION_BLOCK, dpb.DIRECTIVE_ACTION_LIMIT):
        raise DirectiveError(f"directive {d.id}: action must be BLOCK or LIMIT")
    if not (d.application_id or d.api_name or d.channel):
        raise DirectiveError(
            f"directive {d.id}: scope is empty (set an application, an API or a channel)"
        )
    if d.api_version and not d.api_name:
        raise DirectiveError(f"directive {d.id}: api_version needs api_name")
    if d.action == dpb.DIRECTIVE_ACTION_LIMIT and (
        d.limit_requests == 0 or d.limit_period_seconds == 0
    ):
        raise DirectiveError(
            f"directive {d.id}: a LIMIT needs limit_requests and limit_period_seconds"
        )
    if d.expires_at_us <= now_us:
        raise DirectiveError(
            f"directive {d.id}: expires_at_us is not in the future (a TTL is required)"
        )


Subscriber = queue.Queue[dpb.DirectiveUpdate]


def _summary(d: dpb.Directive) -> dict[str, object]:
    doc: dict[str, object] = json_format.MessageToDict(d)
    return doc


class DirectiveTable:
    def __init__(
        self,
        directory: Path | None,
        clock: Clock = SYSTEM,
        audit: AuditLog | None = None,
    ) -> None:
        self._dir = directory
        self._clock = clock
        self.audit = audit
        self._lock = threading.Lock()
        self._table: dict[str, dpb.Directive] = {}
        self._subscribers: list[Subscriber] = []
        self.version = 0
        # hits reported by gateways: gateway id -> directive id -> hits
        self._hits: dict[str, dict[str, dpb.DirectiveHits]] = {}
        if directory is not None:
            self._load()

    def _now_us(self) -> int:
        return wall_us(self._clock)

    def _load(self) -> None:
        assert self._dir is not None
        path = self._dir / FILE_NAME
        if not path.exists():
            return
        try:
            doc = json.loads(path.read_text())
            for item in doc["directives"]:
                d = json_format.ParseDict(item, dpb.Directive())
                self._table[d.id] = d
            self.version = int(doc["version"])
        except (OSError, ValueError, KeyError, TypeError, json_format.ParseError) as exc:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(self._clock.wall()))
            aside = path.with_name(f"{FILE_NAME}.unusable-{stamp}")
            os.replace(path, aside)
            log.error("%s unreadable (%s); set aside as %s", path, exc, aside.name)
            self._table.clear()

    def _save(self) -> None:
        if self._dir is None:
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / FILE_NAME
        tmp = path.with_suffix(".tmp")
        doc = {
            "version": self.version,
            "directives": [json_format.MessageToDict(d) for d in self._table.values()],
        }
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, path)

    def _broadcast(self, update: dpb.DirectiveUpdate) -> None:
        for q in self._subscribers:
            q.put(update)

    def snapshot(self) -> tuple[int, list[dpb.Directive]]:
        with self._lock:
            return self.version, list(self._table.values())

    def put(self, d: dpb.Directive, actor: str = "", reason: str = "") -> dpb.Directive:
        """Validate ``d`` with its defaults filled, publish it, persist it, audit it; return
        the directive as stored."""
        d = with_defaults(d)
        validate(d, self._now_us())
        with self._lock:
            action = "replace" if d.id in self._table else "put"
            self._table[d.id] = d
            self.version += 1
            # gateways first: a write to a busy disk can take hundreds of ms (measured by
            # benchmarks/bench_policy.py); a crash in between costs nothing, a reconnecting
            # gateway gets the full table
            self._broadcast(dpb.DirectiveUpdate(version=self.version, upserts=[d]))
            self._save()
            if self.audit is not None:  # before the call returns: an acknowledged change
                self.audit.record(f"directive:{d.id}", action, actor, reason, _summary(d))
        return d

    def remove(self, directive_id: str, actor: str = "", reason: str = "") -> bool:
        with self._lock:
            if directive_id not in self._table:
                return False
            gone = self._table.pop(directive_id)
            self.version += 1
            self._broadcast(dpb.DirectiveUpdate(version=self.version, removals=[directive_id]))
            self._save()
            if self.audit is not None:
                self.audit.record(
                    f"directive:{directive_id}", "remove", actor, reason, _summary(gone)
                )
            return True

    def expire(self) -> list[str]:
        """Remove directives whose time has passed; return their ids."""
        now = self._now_us()
        with self._lock:
            gone = [k for k, d in self._table.items() if d.expires_at_us <= now]
            if not gone:
                return []
            for k in gone:
                del self._table[k]
                if self.audit is not None:
                    self.audit.record(f"directive:{k}", "expire", "vigie", "its TTL ran out")
            self.version += 1
            self._broadcast(dpb.DirectiveUpdate(version=self.version, removals=gone))
            self._save()
        return gone

    def subscribe(self) -> Subscriber:
        """A queue that first receives the full table, then every change."""
        q: Subscriber = queue.Queue()
        with self._lock:
            q.put(
                dpb.DirectiveUpdate(
                    version=self.version, full=True, upserts=list(self._table.values())
                )
            )
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: Subscriber) -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    def record_hits(self, gateway_id: str, hits: list[dpb.DirectiveHits]) -> None:
        """A gateway's latest hits; none forgets the gateway."""
        with self._lock:
            if hits:
                self._hits[gateway_id] = {h.directive_id: h for h in hits}
            else:
                self._hits.pop(gateway_id, None)

    def hits(self) -> list[dpb.DirectiveHits]:
        """Hits summed over gateways, per directive id."""
        with self._lock:
            total: dict[str, dpb.DirectiveHits] = {}
            for per_gw in self._hits.values():
                for did, h in per_gw.items():
                    t = total.setdefault(did, dpb.DirectiveHits(directive_id=did))
                    t.shadow_hits += h.shadow_hits
                    t.enforced_hits += h.enforced_hits
                    t.passed += h.passed
            return sorted(total.values(), key=lambda h: h.directive_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._table)
