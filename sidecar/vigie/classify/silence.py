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

import threading
import weakref
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from vigie.sources.inventory import NEVER, Dates

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
    evidence: bool = True,
) -> tuple[str, dict[str, Any]]:
    """The silence verdict of a row the state holds silent (never seen, or not for
    ``needed_us``), with the inventory's ``dates`` (created, created at the latest, last used;
    0 unknown, ``NEVER``): ``"active"`` (WSO2 saw it used recently: no class), ``"unknown"``
    or ``judged`` (``dormant`` / ``retired``), and the evidence. ``""``: the dates change
    nothing (the verdict of the observation alone stands). ``evidence=False``: the verdict
    alone (the evidence left empty: formatting it is most of the cost)."""
    created, bound, used = dates
    needed_days = round(needed_us / 86_400e6, 2)
    if used > 0 and now - used < needed_us:
        return "active", {}
    if bound > 0 and last_seen == 0 and used <= 0 and now - bound < needed_us:
        if not evidence:
            return "unknown", {}
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
            if not evidence:
                return judged, {}
            return judged, {
                "last_seen": iso(last_seen),
                "days_without_requests": round((now - since) / 86_400e6, 2),
                "source": "inventory",
                ("last_used" if used > 0 else "never_used_since_created"): iso(quiet),
                "inventory_as_of": iso(as_of),
                "observed_since": iso(obs_start),
            }
    return "", {}


class Notes:
    """The rows whose silence verdict the inventory's dates decided, their evidence made on
    demand (``notes[row]``, ``row in notes``, ``notes.get(row)``)."""

    def __init__(
        self, now: int, obs_start: int, observed: int, needed_us: float, as_of: int, judged: str
    ) -> None:
        self._args = (now, obs_start, observed, needed_us, as_of, judged)
        self._idx = np.zeros(0, dtype=np.int64)
        self._d = np.zeros((0, 3), dtype=np.int64)
        self._last = np.zeros(0, dtype=np.int64)
        self._rows: dict[int, tuple[tuple[int, int, int], int]] | None = None

    def _set(self, idx: np.ndarray, d: np.ndarray, last: np.ndarray) -> None:
        self._idx, self._d, self._last, self._rows = idx, d, last, None

    @property
    def rows(self) -> dict[int, tuple[tuple[int, int, int], int]]:
        """row -> (dates, last seen), made on first use (most callers only count)."""
        if self._rows is None:
            self._rows = {
                row: ((c, b, u), last)
                for row, (c, b, u), last in zip(
                    self._idx.tolist(), self._d.tolist(), self._last.tolist(), strict=True
                )
            }
        return self._rows

    def __contains__(self, row: object) -> bool:
        return row in self.rows

    def __len__(self) -> int:
        return len(self._idx)

    def __getitem__(self, row: int) -> dict[str, Any]:
        dates, last_seen = self.rows[row]
        now, obs_start, observed, needed_us, as_of, judged = self._args
        return judge_silence(now, last_seen, obs_start, observed, needed_us, dates, as_of, judged)[
            1
        ]

    def get(self, row: int) -> dict[str, Any] | None:
        return self[row] if row in self.rows else None


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
) -> Notes:
    """Apply ``judge_silence`` to ``rows`` (row, dates, last seen) of ``out`` (whose
    ``silent`` column and last one, ``unknown``, are the verdicts of the observation alone),
    the same rule on arrays (``dated_arrays``)."""
    idx = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    d = np.array([r[1] for r in rows], dtype=np.int64).reshape(len(rows), 3)
    last = np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))
    return dated_arrays(out, silent, idx, d, last, now, obs_start, observed, needed_us, as_of,
                        judged)  # fmt: skip


def dated_arrays(
    out: np.ndarray,
    silent: int,
    idx: np.ndarray,
    d: np.ndarray,
    last: np.ndarray,
    now: int,
    obs_start: int,
    observed: int,
    needed_us: float,
    as_of: int,
    judged: str,
) -> Notes:
    """``dated`` of the rows ``idx`` with their dates ``d`` (created, created at the latest,
    last used) and last seen ``last``."""
    notes = Notes(now, obs_start, observed, needed_us, as_of, judged)
    if not len(idx):
        return notes
    created, bound, used = d[:, 0], d[:, 1], d[:, 2]
    active = (used > 0) & (now - used < needed_us)
    young = ~active & (bound > 0) & (last == 0) & (used <= 0) & (now - bound < needed_us)
    silent_by_date = np.zeros(len(idx), dtype=np.bool_)
    watched = obs_start > 0 and as_of >= obs_start - INVENTORY_GAP_US
    if observed < needed_us and watched:
        quiet = np.where(used > 0, used, np.where(used == NEVER, created, 0))
        since = np.maximum(quiet, last)
        silent_by_date = (
            ~active & ~young & (quiet > 0) & (last < obs_start) & (now - since >= needed_us)
        )
    decided = active | young | silent_by_date
    out[idx[decided], silent] = silent_by_date[decided]
    out[idx[decided], -1] = young[decided]
    noted = young | silent_by_date
    notes._set(idx[noted], d[noted], last[noted])
    return notes


class RowDates:
    """Per subscription row of one state, the inventory's dates of the subscription the row
    held when they were looked up (``views.verdicts``): looked up once per row, not at every
    call (a status of 25,000 subscriptions looked up 25,000 strings and dictionaries each
    time, under the sidecar's lock). Valid for one ``Dates`` (replaced whole by a refresh)
    while the interner has released no string (a released id may name another one later); a
    row whose identity ids (application id, API row, that row's name and version ids) are not
    those it was looked up with is looked up again."""

    def __init__(self, dates: Dates, released: int) -> None:
        self.dates = dates
        self.released = released
        self.ident = np.full((0, 4), -1, dtype=np.int64)  # row -> the ids looked up with
        self.found = np.zeros(0, dtype=np.bool_)
        self.d = np.zeros((0, 3), dtype=np.int64)
        self.lookups = 0  # rows looked up (for tests and benchmarks)

    def _room(self, rows: np.ndarray) -> None:
        need = int(rows.max()) + 1 if len(rows) else 0
        if need <= len(self.found):
            return
        size = max(need, 2 * len(self.found))
        ident = np.full((size, 4), -1, dtype=np.int64)
        ident[: len(self.ident)] = self.ident
        found = np.zeros(size, dtype=np.bool_)
        found[: len(self.found)] = self.found
        d = np.zeros((size, 3), dtype=np.int64)
        d[: len(self.d)] = self.d
        self.ident, self.found, self.d = ident, found, d

    def stale(self, rows: np.ndarray, ident: np.ndarray) -> np.ndarray:
        """Which of ``rows`` (with their identity ids ``ident``) must be looked up."""
        self._room(rows)
        same: np.ndarray = (self.ident[rows] == ident).all(axis=1)
        return ~same

    def put(self, rows: np.ndarray, ident: np.ndarray, found: np.ndarray, d: np.ndarray) -> None:
        self._room(rows)
        self.ident[rows] = ident
        self.found[rows] = found
        self.d[rows] = d
        self.lookups += len(rows)

    def get(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(whether the inventory dates each of ``rows``, their dates)."""
        return self.found[rows], self.d[rows]


_CACHES: weakref.WeakKeyDictionary[object, RowDates] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def row_dates(owner: object, dates: Dates, released: int) -> RowDates:
    """The ``RowDates`` of ``owner`` (a state) for ``dates``, a new one when the dates were
    replaced or the interner released strings (``released``: its count) since."""
    with _CACHES_LOCK:
        cache = _CACHES.get(owner)
        if cache is None or cache.dates is not dates or cache.released != released:
            cache = _CACHES[owner] = RowDates(dates, released)
        return cache
