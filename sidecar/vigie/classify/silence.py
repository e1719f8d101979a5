"""The silence verdicts (``dormant``, API ``retired``) with the inventory's dates
(``vigie.sources.inventory``: created, last used, as of when), for ``vigie.classify.views``.

The state holds a row silent when it never saw it, or not for ``dormant_seconds``
(``retired_seconds``); ``views`` makes that ``unknown`` until vigie has observed the platform
that long. The inventory's dates then decide, in this order (``judge_silence``):

1. WSO2 says it was used less than that ago: not silent (no class);
2. it, its application or its API was created less than that ago and nothing ever saw it
   used: ``unknown`` ("created 2.0 days ago: too young"), even when vigie has observed longer;
3. vigie has observed long enough: its own verdict stands;
4. its last use by the inventory (or, ``"never"`` used, its creation) is at least that old, vigie
   has seen no request of it since, and vigie has been observing since the inventory's
   ``as_of`` (or began at most ``INVENTORY_GAP_US`` after it: nobody watched longer gaps):
   ``dormant`` / ``retired``, its evidence saying ``source: inventory``;
5. otherwise the verdict of the observation alone (``unknown``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from vigie.sources.inventory import NEVER

# the inventory's dates count when vigie began observing at most this long after ``as_of``
# (``vigie inventory fetch`` then ``vigie serve --inventory``); longer, nobody watched between
INVENTORY_GAP_US: Final = 3600 * 1_000_000


def iso(us: int) -> str | None:
    """Microseconds since the epoch as ISO 8601 UTC with milliseconds, None for 0."""
    if us <= 0:
        return None
    dt = datetime.fromtimestamp(us / 1e6, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def judge_silence(
    now: int,
    last_seen: int,
    obs_start: int,
    observed: int,
    needed_us: float,
    dates: tuple[int, int, int],
    as_of: int,
    judged: str,
) -> tuple[str, dict[str, Any]]:
    """The silence verdict of a row the state holds silent (never seen, or not for
    ``needed_us``), with the inventory's ``dates`` (created, created at the latest, last used;
    0 unknown, ``NEVER``): ``"active"`` (WSO2 saw it used recently: no class), ``"unknown"``
    or ``judged`` (``dormant`` / ``retired``), and the evidence. ``""``: the dates change
    nothing (the verdict of the observation alone stands)."""
    created, bound, used = dates
    needed_days = round(needed_us / 86_400e6, 2)
    if used > 0 and now - used < needed_us:
        return "active", {}
    if bound > 0 and last_seen == 0 and used <= 0 and now - bound < needed_us:
        return "unknown", {
            "judged": judged,
            "created": iso(bound),
            "age_days": round((now - bound) / 86_400e6, 2),
            "needed_days": needed_days,
            "reason": (
                f"created {(now - bound) / 86_400e6:.1f} days ago (inventory): too young to "
                f"call it {judged}"
                if bound <= now
                else f"created after this moment (inventory): not {judged}"
            ),
        }
    if observed >= needed_us:
        return "", {}
    quiet = used if used > 0 else (created if used == NEVER else 0)
    watched = obs_start > 0 and as_of >= obs_start - INVENTORY_GAP_US
    if quiet > 0 and watched and last_seen < obs_start:
        since = max(quiet, last_seen)
        if now - since >= needed_us:
            return judged, {
                "last_seen": iso(last_seen),
                "days_without_requests": round((now - since) / 86_400e6, 2),
                "source": "inventory",
                ("last_used" if used > 0 else "never_used_since_created"): iso(quiet),
                "inventory_as_of": iso(as_of),
                "observed_since": iso(obs_start),
            }
    return "", {}


def dated(
    out: np.ndarray,
    silent: int,
    rows: list[tuple[int, tuple[int, int, int], int]],
    now: int,
    obs_start: int,
    observed: int,
    needed_us: float,
    as_of: int,
    judged: str,
) -> dict[int, dict[str, Any]]:
    """Apply ``judge_silence`` to ``rows`` (row, dates, last seen) of ``out`` (whose
    ``silent`` column and last one, ``unknown``, are the verdicts of the observation alone)."""
    notes: dict[int, dict[str, Any]] = {}
    for row, dates, last_seen in rows:
        verdict, evidence = judge_silence(
            now, last_seen, obs_start, observed, needed_us, dates, as_of, judged
        )
        if not verdict:
            continue
        out[row, silent] = verdict == judged
        out[row, -1] = verdict == "unknown"
        if evidence:
            notes[row] = evidence
    return notes
