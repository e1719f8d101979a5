"""The changes of the directive table as the fleet sees them (``vigie.directives.table``).

A ``Change`` is the latest change of one directive id: a put (its directive) or a removal (a
tombstone), with its fleet-wide version (a Lamport clock) and the instance it was made on,
which breaks a tie between two versions. A later version wins; removals are remembered, the
newest ``MAX_TOMBSTONES``, so that an older put a peer replicates late cannot undo one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from vigie.v1 import directives_pb2 as dpb

# removals remembered (the newest by version) against a late older put from a peer
MAX_TOMBSTONES: Final = 10_000
# a fleet-wide version a peer may send: far beyond any fleet's changes (2^53: exact in JSON and
# in the handler's long), so that an absurd one cannot pin the clock at the top of uint64
MAX_VERSION: Final = 1 << 53


@dataclass(slots=True)
class Change:
    """The latest change of one directive id: a put (``directive``) or a removal (None), its
    fleet-wide ``version``, the instance it was made on, and this process's ``seq`` of it."""

    directive_id: str
    directive: dpb.Directive | None
    version: int
    origin: str
    at_us: int = 0
    actor: str = ""
    reason: str = ""
    seq: int = 0

    def newer_than(self, other: Change | None) -> bool:
        return other is None or (self.version, self.origin) > (other.version, other.origin)


def bound_tombstones(changes: dict[str, Change]) -> None:
    """Keep the newest ``MAX_TOMBSTONES`` removals of ``changes`` (in place)."""
    dead = [c for c in changes.values() if c.directive is None]
    if len(dead) <= MAX_TOMBSTONES:
        return
    dead.sort(key=lambda c: c.version)
    for c in dead[: len(dead) - MAX_TOMBSTONES]:
        del changes[c.directive_id]
