"""The operators' audit trail of directives: who put or removed what, when and why.

One JSON object per line (``at_us``, ``subject``, ``actor``, ``action``, ``reason``,
``details``: the shape of the suggestion book's ``audit.jsonl``), appended and flushed to disk
before the change is acknowledged, so a crash never loses an acknowledged action. Read with
``vigie audit``. Never holds a secret: the admin token is not an actor.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson


class AuditLog:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()

    def record(
        self,
        subject: str,
        action: str,
        actor: str,
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        entry = {
            "at_us": int(self._clock() * 1e6),
            "subject": subject,
            "actor": actor or "unknown",
            "action": action,
            "reason": reason,
            "details": details or {},
        }
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
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
