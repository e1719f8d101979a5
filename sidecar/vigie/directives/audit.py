"""The one audit writer: who changed what, when and why, one JSON object per line.

Two trails use it: the directive table's ``directives-audit.jsonl`` (``record``: directives
put, replaced, removed, expired) and the suggestion book's ``audit.jsonl`` (``append``: each
suggestion's lifecycle, thresholds tuned). Every entry has ``at_us``, ``subject``, ``actor``,
``action``, ``reason`` and ``details``; the book's also ``from_state`` and ``to_state``. An
entry is appended and flushed to disk (fsync) before the change is acknowledged, so a crash
never loses an acknowledged action; the file is created owner-only (0600) when the trail is
opened. Each change is written to one trail, once. Read both with ``vigie audit``. Never holds
a secret: the admin token is not an actor.

The actor is who the admin layer says made the call (``vigie.server.credentials.caller_actor``):
a client certificate's identity (``alice``, ``alice (declared bob)`` when the caller claimed
another name), a token caller's claim (``bob (self-declared)``), or vigie itself (``vigie``,
``vigie-auto``). Each entry written also says ``actor_verified`` (true for a certificate and
for vigie's own actions) and ``actor_declared`` (the name the caller claimed, if any).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import orjson

from vigie.clock import SYSTEM, Clock, wall_us

SELF_DECLARED: Final = " (self-declared)"
DECLARED: Final = " (declared "
SYSTEM_ACTORS: Final = frozenset({"vigie", "vigie-auto"})


def actor_fields(actor: str) -> dict[str, Any]:
    """``actor_verified`` and ``actor_declared`` of an actor as the admin layer writes it."""
    if actor.endswith(SELF_DECLARED):
        return {"actor_verified": False, "actor_declared": actor[: -len(SELF_DECLARED)]}
    _, sep, tail = actor.partition(DECLARED)
    if sep and tail.endswith(")"):
        return {"actor_verified": True, "actor_declared": tail[:-1]}
    if actor in ("", "unknown", "?"):
        return {"actor_verified": False, "actor_declared": ""}
    return {"actor_verified": True, "actor_declared": ""}


class AuditLog:
    """An append-only trail in ``path``; ``clock`` stamps the entries of ``record``."""

    def __init__(self, path: Path, clock: Clock = SYSTEM) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))

    def record(
        self,
        subject: str,
        action: str,
        actor: str,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append an entry stamped now (an unnamed actor is ``unknown``)."""
        entry = {
            "at_us": wall_us(self._clock),
            "subject": subject,
            "actor": actor or "unknown",
            "action": action,
            "reason": reason,
            "details": details or {},
        }
        self.append(entry)

    def append(self, entry: Mapping[str, Any], sync: bool = True) -> None:
        """Append ``entry`` as it is; with ``sync`` it is on disk (fsync) when this returns,
        else at the next ``sync()`` (for many entries written at once)."""
        doc = dict(entry)
        if "actor" in doc and "actor_verified" not in doc:
            doc |= actor_fields(str(doc["actor"]))
        line = orjson.dumps(doc) + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)

    def sync(self) -> None:
        """Put the entries appended without ``sync`` on disk."""
        with self._lock:
            if self.path.exists():
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)


def read_entries(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """Entries of several audit files, oldest first; a torn last line is skipped."""
    entries: list[dict[str, Any]] = []
    for p in paths:
        if not p.exists():
            continue
        for raw in p.read_bytes().splitlines():
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and "at_us" in doc:
                doc.setdefault("file", p.name)
                entries.append(doc)
    entries.sort(key=lambda d: int(d["at_us"]))
    yield from entries
