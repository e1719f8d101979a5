"""The "data incomplete" banner: the periods of a report's or an autopsy's span whose rollups
were dropped (the data writer could not keep up), read from the store's change records
(``kind = data``, ``event = dropped``, written by ``vigie.store.data.DataSink``)."""

from __future__ import annotations

import json
from typing import Any

from vigie.classify.views import iso
from vigie.store.query import Store


def dropped_periods(store: Store, from_us: int, to_us: int) -> list[dict[str, Any]]:
    """The drop periods overlapping ``[from_us, to_us)``, merged where they touch: each
    ``{"from", "to", "events"}`` (ISO times, the events not stored)."""
    spans: list[list[int]] = []
    for r in store.changes(0, to_us):
        if r.get("kind") != "data" or r.get("event") != "dropped":
            continue
        try:
            d = json.loads(str(r.get("detail") or "{}"))
            lo, hi, n = int(d["from_us"]), int(d["to_us"]), int(d["events"])
        except (ValueError, KeyError, TypeError):
            continue  # a record this version cannot read says nothing it can print
        if hi > from_us and lo < to_us:
            spans.append([lo, hi, n])
    spans.sort()
    merged: list[list[int]] = []
    for lo, hi, n in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
            merged[-1][2] += n
        else:
            merged.append([lo, hi, n])
    return [{"from": iso(lo), "to": iso(hi), "events": n} for lo, hi, n in merged]


def banner(periods: list[dict[str, Any]]) -> str | None:
    """One line naming the periods with dropped data (None when there is none)."""
    if not periods:
        return None
    total = sum(int(p["events"]) for p in periods)
    shown = ", ".join(f"{p['from']} → {p['to']} ({p['events']:,} events)" for p in periods[:5])
    more = f" and {len(periods) - 5} more periods" if len(periods) > 5 else ""
    return (
        f"data incomplete: {total:,} events of this span were not stored (the data writer "
        f"could not keep up): {shown}{more}; figures there are low"
    )
