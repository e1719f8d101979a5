"""The "data incomplete" banner: the periods of a report's or an autopsy's span whose rollups
were dropped (the data writer could not keep up, or shed rows a store it could not write
left in memory past its cap), read from the store's change records
(``kind = data``, ``event = dropped``, written by ``vigie.store.data.DataSink``)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from vigie.classify.views import iso
from vigie.store.query import Store


def dropped_periods(store: Store, from_us: int, to_us: int) -> list[dict[str, Any]]:
    """The drop periods overlapping ``[from_us, to_us)``, merged where they touch: each
    ``{"from", "to", "events"}`` (ISO times, the events not stored). A record names the table
    it dropped rows of (rows a degraded writer shed past its memory cap) or none (batches the
    writer's queue could not take: every table misses them); a merged period's events are
    those every table misses plus those of the table that misses most (the per-minute rows
    are shed first: their events are often still in the daily rows)."""
    spans: list[tuple[int, int, int, str]] = []
    for r in store.changes(0, to_us):
        if r.get("kind") != "data" or r.get("event") != "dropped":
            continue
        try:
            d = json.loads(str(r.get("detail") or "{}"))
            lo, hi, n = int(d["from_us"]), int(d["to_us"]), int(d["events"])
            table = str(d.get("table", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a record this version cannot read says nothing it can print
        if hi > from_us and lo < to_us:
            spans.append((lo, hi, n, table))
    spans.sort()
    merged: list[tuple[list[int], Counter[str]]] = []
    for lo, hi, n, table in spans:
        if merged and lo <= merged[-1][0][1]:
            merged[-1][0][1] = max(merged[-1][0][1], hi)
        else:
            merged.append(([lo, hi], Counter()))
        merged[-1][1][table] += n
    return [
        {
            "from": iso(lo),
            "to": iso(hi),
            "events": by.pop("", 0) + max(by.values(), default=0),
        }
        for (lo, hi), by in merged
    ]


def banner(periods: list[dict[str, Any]]) -> str | None:
    """One line naming the periods with dropped data (None when there is none)."""
    if not periods:
        return None
    total = sum(int(p["events"]) for p in periods)
    shown = ", ".join(f"{p['from']} → {p['to']} ({p['events']:,} events)" for p in periods[:5])
    more = f" and {len(periods) - 5} more periods" if len(periods) > 5 else ""
    return (
        f"data incomplete: {total:,} events of this span were not stored (the data writer "
        f"could not keep up, or the store could not be written): {shown}{more}; figures there "
        "are low"
    )
