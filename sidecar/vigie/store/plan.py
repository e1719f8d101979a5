"""Which tables answer a query: the smallest ones that answer it exactly.

A query names the ``minute`` or the ``daily`` table. Every sum of ``daily`` that groups and
filters only by subscription keys (API, version, application, channel) is also a sum of
``sub_daily`` (the same rows summed over resources, methods and error codes) and, for whole
calendar months, of ``sub_monthly`` (which keeps the error codes): a year's report reads
twelve monthly partitions and the days at the edges instead of 365 days of per-resource
rows. Every table is a sum of the same events, so the answer is the same whichever table
gives it.

``sub_from``: the first day from which the store holds the subscription tables (a store
written before they existed holds none until the writer has backfilled them); days before
it are read from ``daily``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from vigie.state import layout as L
from vigie.store.query import AggQuery
from vigie.store.rollup import month_start

DAY: Final = L.DAY_US
# what a query may group or filter by and still be answered by the subscription tables
SUB_GROUPS: Final = frozenset(
    {"time", "api", "api_version", "application_id", "channel", "error_code"}
)
SUB_FILTERS: Final = frozenset({"api", "api_version", "application", "channel"})
NEVER: Final = 1 << 62  # sub_from of a store without the subscription tables
MIN_MONTHLY_SPAN: Final = 28 * L.DAY_US  # below this, no month can be whole


@dataclass(frozen=True, slots=True)
class Part:
    """Rows of ``table`` whose time column is in ``[from_us, to_us)``."""

    table: str
    from_us: int
    to_us: int


def _ceil_day(t: int) -> int:
    return -((-t) // DAY) * DAY


def _month(t: int) -> int:
    return int(month_start(np.array([t], dtype=np.int64))[0])


def next_month(month_us: int) -> int:
    return _month(month_us + 32 * DAY)


def plan(q: AggQuery, sub_from: int = 0) -> list[Part]:
    """The parts (table, time range) whose sums add up to the answer of ``q``."""
    if q.table == "minute":
        return [Part("minute", q.from_us, q.to_us)]
    if not (set(q.group_by) <= SUB_GROUPS and set(q.filters()) <= SUB_FILTERS):
        return [Part("daily", q.from_us, q.to_us)]
    # the days of the range: day starts d with from_us <= d < to_us, i.e. [first, end)
    first, end = _ceil_day(q.from_us), _ceil_day(q.to_us)
    split = min(max(first, _ceil_day(sub_from)), end)
    parts = [Part("daily", first, split)]
    by_day = "sub_daily" if "error_code" not in q.group_by else "daily"
    if "time" in q.group_by or end - split < MIN_MONTHLY_SPAN:
        parts.append(Part(by_day, split, end))
    else:
        m0 = min(split if _month(split) == split else next_month(split), end)
        m1 = max(_month(end), m0)
        parts += [Part(by_day, split, m0), Part("sub_monthly", m0, m1), Part(by_day, m1, end)]
    return [p for p in parts if p.from_us < p.to_us]
