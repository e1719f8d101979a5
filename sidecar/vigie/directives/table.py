"""The directive table: what every connected gateway enforces. Persisted, versioned, pushed.

Changes are broadcast as ``DirectiveUpdate`` deltas to every subscriber (a gateway stream); a
new subscriber gets the full table. The table fills a directive's defaults (the WSO2 error code
of its action), validates it, and sweeps the expired ones (``expire``). Every change (put,
replace, remove, expire) is written to the directives' audit trail here, once, whoever asked
for it (an operator, a suggestion approved, the TTL).

Kept, then pushed: a change is written to ``directives.json`` (the file and its directory
fsynced) and audited before any gateway hears of it. When it cannot be kept, the table is left
as it was, nothing is broadcast and the caller gets ``DirectiveNotSaved`` ("directive not
saved: No space left on device"). The previous file is kept as ``directives.json.prev``: an
unreadable file falls back to it, loudly; each entry is checked on load by ``validate``.

The numeric ranges (``LIMITS``) are the gateway handler's ``DirectiveLimits``: what the sidecar
accepts, the handler can apply (tests/unit/policy/test_directive_limits.py compares them).

The fleet (``vigie.server.fleet``): every change has a fleet-wide version, a Lamport clock (the
highest version this instance knows of, plus one) with the instance it was made on
(``instance_id``) breaking ties; a directive carries it in ``Directive.version``. A removal is
kept as a tombstone (id, version, origin; the newest ``MAX_TOMBSTONES``) so that an older put
replicated late cannot bring the directive back. ``changes_since`` lists what changed since a
peer's last call (``seq``, numbered in this process, ``epoch`` naming the process);
``apply_remote`` applies a peer's changes that are newer than what the table holds, audited
with where they were made and where they were replicated.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import threading
import time
from collections import deque
from pathlib import Path
from typing import Final

from google.protobuf import json_format

from vigie.clock import SYSTEM, Clock, wall_us
from vigie.directives.audit import AuditLog
from vigie.directives.changes import MAX_TOMBSTONES, MAX_VERSION, Change, bound_tombstones
from vigie.errors import VigieError
from vigie.files import open_private
from vigie.v1 import directives_pb2 as dpb

log = logging.getLogger(__name__)

FILE_NAME: Final = "directives.json"
PREVIOUS_SUFFIX: Final = ".prev"
DEFAULT_BLOCK_CODE: Final = 900805
DEFAULT_LIMIT_CODE: Final = 900806
DAY_S: Final = 86_400
# the longest a directive may live (expires_at_us - now): max_directive_ttl_seconds default
MAX_TTL_SECONDS: Final = 30 * DAY_S
# a hit counter above this in a gateway's report is not believed: 2^40 requests is over 30
# years at 1,000 requests a second on one gateway
MAX_REPORTED_HITS: Final = 1 << 40
# gateways whose latest hit reports are kept (a departed gateway's hits stay evidence while its
# directives exist; past this many gateway ids, the one not heard from the longest is forgotten)
MAX_HIT_GATEWAYS: Final = 1024
# field -> (least, greatest) the gateway handler applies (DirectiveLimits.java)
LIMITS: Final[dict[str, tuple[int, int]]] = {
    "limit_requests": (1, 0xFFFF_FFFF),
    "limit_period_seconds": (1, 315_576_000),
    "limit_burst": (0, 0xFFFF_FFFF),
}


class DirectiveError(VigieError):
    """A directive that cannot be accepted, or one that is not in the table; the message says
    why. The request is wrong whatever the table holds: INVALID_ARGUMENT."""

    exit_code = 2
    grpc_status = "INVALID_ARGUMENT"
    cause = "directive"


class DirectiveNotSaved(VigieError):
    """A change that could not be kept on disk: it was not applied, nor pushed. The request
    may succeed once the disk has room: FAILED_PRECONDITION."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(f"directive not saved: {exc.strerror or exc}")


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


def range_error(name: str, value: int) -> str:
    """Why ``value`` cannot be the field ``name`` of a LIMIT (empty: it can)."""
    lo, hi = LIMITS[name]
    return "" if lo <= value <= hi else f"{name} must be between {lo} and {hi:,}, got {value:,}"


def check_ranges(d: dpb.Directive) -> None:
    """The numeric fields of a LIMIT within ``LIMITS`` (the handler's arithmetic)."""
    if d.action != dpb.DIRECTIVE_ACTION_LIMIT:
        return
    for name in LIMITS:
        err = range_error(name, int(getattr(d, name)))
        if err:
            raise DirectiveError(f"directive {d.id}: {err}")


def validate(d: dpb.Directive, now_us: int, max_ttl_seconds: float = MAX_TTL_SECONDS) -> None:
    """The one validation of a directive (the table's, the CLI's, a loaded file's): its id,
    mode, action, scope, the ranges the handler applies, a TTL in the future and at most
    ``max_ttl_seconds`` away (``now_us`` 0: the TTL is not checked)."""
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
    check_ranges(d)
    if not now_us:
        return
    if d.expires_at_us <= now_us:
        raise DirectiveError(
            f"directive {d.id}: expires_at_us is not in the future (a TTL is required)"
        )
    if d.expires_at_us - now_us > max_ttl_seconds * 1e6:
        raise DirectiveError(
            f"directive {d.id}: its TTL is longer than max_directive_ttl_seconds "
            f"({max_ttl_seconds / DAY_S:g} days)"
        )


Subscriber = queue.Queue[dpb.DirectiveUpdate]
AuditRow = tuple[str, str, str, str, dict[str, object] | None]


def _summary(d: dpb.Directive) -> dict[str, object]:
    doc: dict[str, object] = json_format.MessageToDict(d)
    return doc


class DirectiveTable:
    def __init__(
        self,
        directory: Path | None,
        clock: Clock = SYSTEM,
        audit: AuditLog | None = None,
        max_ttl_seconds: float = MAX_TTL_SECONDS,
    ) -> None:
        self._dir = directory
        self._clock = clock
        self.audit = audit
        self.max_ttl_seconds = max_ttl_seconds
        # entries of directives.json refused on load (each logged with the reason)
        self.load_refused = 0
        # hit report entries refused (record_hits)
        self.hits_refused = 0
        # gateways whose hits were forgotten to stay under MAX_HIT_GATEWAYS
        self.hit_gateways_evicted = 0
        self._lock = threading.Lock()
        self._table: dict[str, dpb.Directive] = {}
        self._subscribers: list[Subscriber] = []
        self.version = 0
        # hits reported by gateways: gateway id -> directive id -> hits
        self._hits: dict[str, dict[str, dpb.DirectiveHits]] = {}
        # the fleet: this instance's id (set by vigie.server.fleet), the latest change of every
        # id (tombstones included), this process's change numbering
        self.instance_id = ""
        self.epoch = secrets.token_hex(8)
        self.seq = 0
        self._changes: dict[str, Change] = {}
        # the changes made here (newest MAX_TOMBSTONES), and up to which seq each peer has
        # taken them: peer id -> seq (the "replicated" audit)
        self._mine: deque[Change] = deque(maxlen=MAX_TOMBSTONES)
        self._acked: dict[str, int] = {}
        # peers' changes refused (invalid directive)
        self.remote_refused = 0
        self.loaded_from_file = False
        if directory is not None:
            self._load()
        for d in self._table.values():
            if d.id not in self._changes:
                self.seq += 1
                self._changes[d.id] = Change(d.id, d, d.version or self.version, "", seq=self.seq)

    def _now_us(self) -> int:
        return wall_us(self._clock)

    def _load(self) -> None:
        assert self._dir is not None
        path = self._dir / FILE_NAME
        prev = path.with_name(FILE_NAME + PREVIOUS_SUFFIX)
        if not path.exists() and not prev.exists():
            return
        self.loaded_from_file = True
        try:
            self._read(path if path.exists() else prev)
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(self._clock.wall()))
            aside = path.with_name(f"{FILE_NAME}.unusable-{stamp}")
            if path.exists():
                os.replace(path, aside)
            log.error("%s unreadable (%s); set aside as %s", path, exc, aside.name)
        self._table.clear()
        try:
            self._read(prev)
            log.error("directives restored from the last good copy %s (version %d, %d "
                      "directives): changes after it are lost", prev.name, self.version,
                      len(self._table))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._table.clear()
            log.error("no usable copy of the directives (%s: %s): the table is EMPTY, every "
                      "directive is lifted until one is put again", prev.name, exc)  # fmt: skip

    def _read(self, path: Path) -> None:
        """Load ``path``: each entry through ``validate`` (a bad one is refused, logged and
        counted; the others load); a file that is not a directive table raises."""
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or not isinstance(doc.get("directives"), list):
            raise ValueError("not a directive table (expected version and directives)")
        version = int(doc["version"])
        table: dict[str, dpb.Directive] = {}
        for i, item in enumerate(doc["directives"]):
            try:
                d = json_format.ParseDict(item, dpb.Directive())
                validate(d, 0)
            except (json_format.ParseError, DirectiveError, ValueError, TypeError) as exc:
                self.load_refused += 1
                log.error("%s: directive #%d refused: %s", path.name, i, exc)
                continue
            table[d.id] = d
        origins = doc.get("origins") or {}
        changes: dict[str, Change] = {}
        for item in doc.get("removed") or []:
            try:
                rid, rv, ro = str(item["id"]), int(item["version"]), str(item.get("origin", ""))
            except (KeyError, TypeError, ValueError):
                self.load_refused += 1
                continue
            self.seq += 1
            changes[rid] = Change(rid, None, rv, ro, int(item.get("at_us", 0)), seq=self.seq)
        for d in table.values():
            self.seq += 1
            changes[d.id] = Change(d.id, d, d.version or version, str(origins.get(d.id, "")),
                                   seq=self.seq)  # fmt: skip
        self._table, self.version, self._changes = table, version, changes

    def _save(
        self,
        table: dict[str, dpb.Directive],
        version: int,
        changes: dict[str, Change] | None = None,
    ) -> None:
        """Write ``table`` durably (file and directory fsynced), the current file kept as the
        last good copy; OSError when it cannot be kept."""
        if self._dir is None:
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / FILE_NAME
        tmp = path.with_suffix(".tmp")
        changes = self._changes if changes is None else changes
        doc = {
            "version": version,
            "directives": [json_format.MessageToDict(d) for d in table.values()],
            "origins": {k: c.origin for k, c in changes.items() if c.directive is not None},
            "removed": [
                {"id": k, "version": c.version, "origin": c.origin, "at_us": c.at_us}
                for k, c in changes.items()
                if c.directive is None
            ],
        }
        data = json.dumps(doc, indent=1).encode()
        try:
            with open_private(tmp) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if path.exists():
                os.replace(path, path.with_name(FILE_NAME + PREVIOUS_SUFFIX))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _commit(
        self,
        table: dict[str, dpb.Directive],
        updates: list[dpb.DirectiveUpdate],
        audits: list[AuditRow],
        changes: list[Change],
        version: int,
    ) -> None:
        """Under the lock: keep ``table`` with ``changes`` at clock ``version`` (saved,
        audited), then broadcast ``updates``; nothing changes when it cannot be kept."""
        merged = dict(self._changes)
        for c in changes:
            merged[c.directive_id] = c
        bound_tombstones(merged)
        saved = False
        try:
            self._save(table, version, merged)
            saved = True
            if self.audit is not None:  # before the call returns: an acknowledged change
                for subject, action, actor, reason, details in audits:
                    self.audit.record(subject, action, actor, reason, details)
        except OSError as exc:
            if saved:
                try:  # the audit failed after the save: the file goes back to the old table
                    self._save(self._table, self.version)
                except OSError:
                    log.error("directives.json may hold a change that was not applied")
            log.error("directive change not applied: %s", exc)
            raise DirectiveNotSaved(exc) from exc
        for c in changes:
            self.seq += 1
            c.seq = self.seq
            if c.origin == self.instance_id:
                self._mine.append(c)
        self._table, self.version, self._changes = table, version, merged
        for update in updates:
            self._broadcast(update)

    def _local(
        self, directive_id: str, d: dpb.Directive | None, version: int, actor: str, reason: str
    ) -> Change:
        return Change(directive_id, d, version, self.instance_id, self._now_us(), actor, reason)

    def _fleet(self, version: int) -> dict[str, object]:
        """What the audit says of a change made here: its version and this instance."""
        return {"version": version, "made_on": self.instance_id} if self.instance_id else {}

    def _broadcast(self, update: dpb.DirectiveUpdate) -> None:
        for q in self._subscribers:
            q.put(update)

    def snapshot(self) -> tuple[int, list[dpb.Directive]]:
        with self._lock:
            return self.version, list(self._table.values())

    def put(self, d: dpb.Directive, actor: str = "", reason: str = "") -> dpb.Directive:
        """Validate ``d`` with its defaults filled, keep it (saved, audited), then publish it;
        return the directive as stored. ``DirectiveNotSaved`` when it cannot be kept."""
        d = with_defaults(d)
        validate(d, self._now_us(), self.max_ttl_seconds)
        with self._lock:
            version = self.version + 1
            d.version = version
            action = "replace" if d.id in self._table else "put"
            before = self._table.get(d.id)
            details: dict[str, object] = _summary(d)
            if before is not None:
                details = {"before": _summary(before), "after": details}
            details |= self._fleet(version)
            table = dict(self._table)
            table[d.id] = d
            self._commit(table, [dpb.DirectiveUpdate(version=version, upserts=[d])],
                         [(f"directive:{d.id}", action, actor, reason, details)],
                         [self._local(d.id, d, version, actor, reason)], version)  # fmt: skip
        return d

    def remove(self, directive_id: str, actor: str = "", reason: str = "") -> bool:
        with self._lock:
            if directive_id not in self._table:
                return False
            version = self.version + 1
            table = dict(self._table)
            gone = table.pop(directive_id)
            self._commit(table, [dpb.DirectiveUpdate(version=version, removals=[directive_id])],
                         [(f"directive:{directive_id}", "remove", actor, reason,
                           _summary(gone) | self._fleet(version))],
                         [self._local(directive_id, None, version, actor, reason)],
                         version)  # fmt: skip
            return True

    def expire(self) -> list[str]:
        """Remove directives whose time has passed; return their ids."""
        now = self._now_us()
        with self._lock:
            gone = [k for k, d in self._table.items() if d.expires_at_us <= now]
            if not gone:
                return []
            version = self.version + 1
            table = {k: d for k, d in self._table.items() if k not in gone}
            audits: list[AuditRow] = [
                (f"directive:{k}", "expire", "vigie", "its TTL ran out", self._fleet(version))
                for k in gone
            ]
            changes = [self._local(k, None, version, "vigie", "its TTL ran out") for k in gone]
            try:
                self._commit(table, [dpb.DirectiveUpdate(version=version, removals=gone)],
                             audits, changes, version)  # fmt: skip
            except DirectiveNotSaved as exc:  # tried again at the next sweep
                log.error("expired directives kept for now: %s", exc)
                return []
        return gone

    # ---- the fleet ----
    def changes_since(self, epoch: str, since_seq: int, peer: str = "") -> tuple[int, list[Change]]:
        """This table's seq and the changes numbered after ``since_seq`` (all of them when
        ``epoch`` is not this process's). ``peer`` (its instance id) has taken every change up
        to ``since_seq``: the changes made here it had not taken yet are audited "replicated"."""
        if epoch != self.epoch:
            since_seq = 0
        with self._lock:
            out = sorted(
                (c for c in self._changes.values() if c.seq > since_seq), key=lambda c: c.seq
            )
            taken: list[Change] = []
            if peer and epoch == self.epoch:
                before = self._acked.get(peer, 0)
                taken = [c for c in self._mine if before < c.seq <= since_seq]
                self._acked[peer] = max(before, since_seq)
            seq = self.seq
        if self.audit is not None:
            for c in taken:
                self.audit.record(f"directive:{c.directive_id}", "replicated", "vigie",
                                  f"in force on {peer}",
                                  {"version": c.version, "made_on": c.origin,
                                   "replicated_to": peer})  # fmt: skip
        return seq, out

    def apply_remote(self, changes: list[Change], via: str) -> int:
        """Apply the changes of peer ``via`` that are newer (version, then origin) than what the
        table holds for their ids; return how many changed the table. A put that does not
        validate is refused, logged and counted (``remote_refused``)."""
        with self._lock:
            table = dict(self._table)
            version = self.version
            kept: list[Change] = []
            updates: list[dpb.DirectiveUpdate] = []
            audits: list[AuditRow] = []
            for c in changes:
                if not 0 < c.version < MAX_VERSION or not c.directive_id:
                    self.remote_refused += 1
                    log.error("change of %r from peer %s refused: version %d outside 1..2^53",
                              c.directive_id[:80], via, c.version)  # fmt: skip
                    continue
                version = max(version, c.version)
                cur = self._changes.get(c.directive_id)
                if not c.newer_than(cur):
                    continue
                fleet = {"version": c.version, "made_on": c.origin, "replicated_to":
                         self.instance_id, "via": via}  # fmt: skip
                subject = f"directive:{c.directive_id}"
                if c.directive is None:
                    gone = table.pop(c.directive_id, None)
                    if gone is not None:
                        updates.append(dpb.DirectiveUpdate(version=c.version,
                                                           removals=[c.directive_id]))  # fmt: skip
                        audits.append((subject, "remove", c.actor, c.reason, fleet))
                    kept.append(c)
                    continue
                d = dpb.Directive()
                d.CopyFrom(c.directive)
                d.version = c.version
                if d.expires_at_us <= self._now_us():  # expired on the way: nothing in force
                    if table.pop(d.id, None) is not None:
                        updates.append(dpb.DirectiveUpdate(version=c.version, removals=[d.id]))
                        audits.append((subject, "expire", "vigie", "its TTL ran out", fleet))
                    kept.append(Change(d.id, None, c.version, c.origin, c.at_us))
                    continue
                try:
                    validate(d, 0)
                except DirectiveError as exc:
                    self.remote_refused += 1
                    log.error("directive from peer %s refused: %s", via, exc)
                    continue
                action = "replace" if c.directive_id in table else "put"
                table[d.id] = d
                updates.append(dpb.DirectiveUpdate(version=c.version, upserts=[d]))
                audits.append((subject, action, c.actor, c.reason, _summary(d) | fleet))
                kept.append(Change(d.id, d, c.version, c.origin, c.at_us, c.actor, c.reason))
            if not kept:
                self.version = version
                return 0
            self._commit(table, updates, audits, kept, version)
            return len(updates)

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

    def record_hits(self, gateway_id: str, hits: list[dpb.DirectiveHits]) -> int:
        """Keep a gateway's latest hits, per directive of the table (at most one entry each);
        return how many entries were refused: a directive the table does not hold, or a
        counter above ``MAX_REPORTED_HITS`` (no gateway sends that many; counted, not kept).
        A gateway's hits outlive its stream (they are the shadow period's evidence) but not its
        directives, and at most ``MAX_HIT_GATEWAYS`` gateways are kept (the one not heard from
        the longest is forgotten first, counted)."""
        with self._lock:
            self._hits.pop(gateway_id, None)  # re-inserted last: the most recently heard
            if not hits:
                return 0
            while len(self._hits) >= MAX_HIT_GATEWAYS:
                del self._hits[next(iter(self._hits))]
                self.hit_gateways_evicted += 1
            kept: dict[str, dpb.DirectiveHits] = {}
            refused = 0
            for h in hits:
                big = max(h.shadow_hits, h.enforced_hits, h.passed) > MAX_REPORTED_HITS
                if h.directive_id not in self._table or big or h.directive_id in kept:
                    refused += 1
                    continue
                kept[h.directive_id] = h
            self._hits[gateway_id] = kept
            self.hits_refused += refused
            return refused

    def gateway_hits(self, gateway_id: str) -> list[dpb.DirectiveHits]:
        """The latest hits kept of one gateway (as ``record_hits`` was given them: capped to
        what it sent), of the directives still in the table."""
        with self._lock:
            per_gw = self._hits.get(gateway_id, {})
            return [h for did, h in per_gw.items() if did in self._table]

    def hits(self) -> list[dpb.DirectiveHits]:
        """Hits summed over gateways, per directive id."""
        with self._lock:
            total: dict[str, dpb.DirectiveHits] = {}
            for per_gw in self._hits.values():
                for did in [d for d in per_gw if d not in self._table]:
                    del per_gw[did]  # the directive is gone: so is what was reported of it
                for did, h in per_gw.items():
                    t = total.setdefault(did, dpb.DirectiveHits(directive_id=did))
                    t.shadow_hits += h.shadow_hits
                    t.enforced_hits += h.enforced_hits
                    t.passed += h.passed
            return sorted(total.values(), key=lambda h: h.directive_id)

    def hit_tables(self) -> list[tuple[str, int]]:
        """(gateway id, directives it reported hits of) per gateway kept, the most recently
        heard last; a gateway whose directives are all gone is forgotten here."""
        with self._lock:
            out = []
            for gw, per_gw in list(self._hits.items()):
                n = sum(1 for d in per_gw if d in self._table)
                if n:
                    out.append((gw, n))
                else:
                    del self._hits[gw]
            return out

    def in_force(self) -> list[Change]:
        """The latest change of each directive in force (id, version, origin), by id."""
        with self._lock:
            return sorted(
                (c for c in self._changes.values() if c.directive is not None),
                key=lambda c: c.directive_id,
            )

    def __len__(self) -> int:
        with self._lock:
            return len(self._table)
