"""The WSO2 throttle codes of a time window, read from the per-minute rollups, as the document
``vigie.policy.codes.ThrottleCodes.from_json`` reads (the advice by throttle code).

One grouped query for the codes of every subscription, then one per API answering 900800 and
per resource answering 900802 for its busiest minute (all consumers): what an API- or
resource-level limit is sized from. When the minute table has nothing for the window (events
older than ``short_retention_days``), the codes come from the daily rollups and the busiest
minutes are left to the state's rates.

``CodesCache`` keeps the last document per store: read again only when the store was written
since (the writer's ``generation``) or the window covers other rows (minute rows start on the
minute, daily rows on the day: a "now" a few seconds later reads the same rows).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

from vigie.store.query import AggQuery, Store

MINUTE_US: Final = 60_000_000
DAY_US: Final = 86_400_000_000
# the hours before "now" (the live engine asks every policy_refresh_seconds: kept short)
WINDOW_US: Final = 6 * 3600 * 1_000_000
# the codes that name a policy a consumer outgrew (vigie.policy.codes.THROTTLE_CODES)
POLICY_CODES: Final = frozenset({900800, 900802, 900803, 900804, 900806, 900807})
MAX_PEAK_QUERIES: Final = 200  # busiest-minute queries per call (the rest: sized from rates)


def _busiest_minute(store: Store, frm: int, to: int, **filters: str) -> int:
    q = AggQuery(
        table="minute",
        from_us=frm,
        to_us=to,
        group_by=("time",),
        bucket_us=MINUTE_US,
        histogram=False,
        **filters,
    ).validate()
    return max((r.get("requests") for r in store.aggregate(q)), default=0)


def throttle_codes(store: Store, now_us: int, window_us: int = WINDOW_US) -> dict[str, Any]:
    """Throttled responses by subscription and code over ``[now - window, now + 1 min)``."""
    frm, to = max(0, now_us - window_us), now_us + MINUTE_US
    keys = ("application_id", "api", "api_version", "method", "resource", "error_code")
    table, window = "minute", f"the per-minute rollups of the {window_us // 3_600_000_000} h before"
    rows = store.aggregate(AggQuery("minute", frm, to, keys, histogram=False).validate())
    if not rows:  # no minute kept for then (older than short_retention_days): the days
        table, window = "daily", "the daily rollups of the days before (no per-minute data)"
        frm, to = frm - frm % DAY_US, to + (-to) % DAY_US
        rows = store.aggregate(AggQuery("daily", frm, to, keys, histogram=False).validate())
    subs: dict[tuple[str, str, str], dict[str, Any]] = {}
    apis: set[tuple[str, str]] = set()
    resources: set[tuple[str, str, str, str]] = set()
    for r in rows:
        app, api, ver, method, resource, code = r.key
        n = r.get("throttled")
        if int(code) not in POLICY_CODES or n <= 0 or not app:
            continue
        s = subs.setdefault(
            (app, api, ver),
            {"application_id": app, "api": api, "api_version": ver, "codes": {}, "resources": []},
        )
        s["codes"][str(code)] = s["codes"].get(str(code), 0) + n
        if code == 900800:
            apis.add((api, ver))
        elif code == 900802:
            s["resources"].append({"method": method, "resource": resource, "throttled": n})
            resources.add((api, ver, method, resource))
    if table == "daily":  # no busiest minute: sized from the state's rates instead
        apis, resources = set(), set()
    api_peaks = [
        {"api": a, "api_version": v, "per_minute": _busiest_minute(store, frm, to, api=a,
                                                                   api_version=v)}
        for a, v in sorted(apis)[:MAX_PEAK_QUERIES]
    ]  # fmt: skip
    # the minute table has no method filter: a resource's peak is over all its methods
    resource_peaks = [
        {"api": a, "api_version": v, "method": m, "resource": res,
         "per_minute": _busiest_minute(store, frm, to, api=a, api_version=v, resource=res)}
        for a, v, m, res in sorted(resources)[:MAX_PEAK_QUERIES]
    ]  # fmt: skip
    return {
        "window": window,
        "subs": list(subs.values()),
        "api_peaks": api_peaks,
        "resource_peaks": resource_peaks,
    }


def _window(now_us: int, window_us: int) -> tuple[int, ...]:
    """What decides the rows ``throttle_codes`` reads at ``now_us``: the first and past-last
    minute rows of its window, and the days of its daily fallback."""
    frm, to = max(0, now_us - window_us), now_us + MINUTE_US
    return (-(-frm // MINUTE_US), -(-to // MINUTE_US), frm - frm % DAY_US, to + (-to) % DAY_US)


class CodesCache:
    """``throttle_codes`` of a store, read again only when the store was written since (the
    ``generation`` its writer moves at every write, ``DataSink.generation``) or ``now_us``
    moved the window onto other rows. Invalidated on write: a read never misses a row
    written before it started."""

    def __init__(self, generation: Callable[[], int]) -> None:
        self._generation = generation
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._doc: dict[str, Any] = {}
        self.reads = 0  # documents read from the store
        self.hits = 0  # answered from the cache

    def get(self, store: Store, now_us: int, window_us: int = WINDOW_US) -> dict[str, Any]:
        # the generation before the read: a write during the read makes the next call read
        key = (id(store), self._generation(), _window(now_us, window_us), window_us)
        with self._lock:
            if key == self._key:
                self.hits += 1
                return self._doc
        doc = throttle_codes(store, now_us, window_us)
        with self._lock:
            self._key, self._doc = key, doc
            self.reads += 1
        return doc
