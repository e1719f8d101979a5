"""Plausible hits per gateway: a gateway's hit report for a directive counts only up to the
requests that gateway itself sent in the directive's scope.

``GatewayScopes`` watches the directives of the table. For each one, per gateway id, it counts
the events that gateway's streams brought in the directive's scope (its application, API name in
any tenant, API version; a directive of another channel matches none of the stream's events)
since the watch began: when the directive appeared in the table, or when this process started,
for a directive last changed before (kept in the table's file, or taken from a peer at start).
A report's hits for a directive (shadow + enforced + passed: every request that matched the
scope) above what that gateway sent are not plausible: the entry is capped to what it sent
(each counter scaled down alike) and the report counted implausible for that gateway
(``directive_hits_implausible``; per gateway in ``vigie status``). A report may run ahead of
the events it counts (the handler reports what it matched; the batch carrying those requests
may be applied just after the report): an excess of at most ``LEAD_EVENTS`` is capped the same
way (no credit before the events arrive; the next report, cumulative, carries the full count),
but judged only ``LEAD_SECONDS`` later — counted implausible then if the gateway's events have
not caught up with its claim. A larger excess is implausible at once. An inherited directive
counts from each gateway's first report heard since (its earlier hits were sent before this
process could count them).

Bounded: directives of the table (at most ``MAX_WATCHED``) x gateway ids (at most
``MAX_GATEWAYS`` per directive, the one not heard from the longest forgotten first; a forgotten
gateway's reports count from its next one, like a directive found at start). Callers hold the
sidecar's lock (the interner's ids are read under it).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from vigie.directives.changes import Change
from vigie.directives.table import DirectiveTable
from vigie.v1 import directives_pb2 as dpb
from vigie.wire import tenants
from vigie.wire.columns import Events, Interner

MAX_WATCHED: Final = 4096
MAX_GATEWAYS: Final = 1024
# gateways named per directive in a status (the most implausible first)
MAX_NAMED: Final = 64
# a report may run this far ahead of the events its gateway has sent in the scope (one batch
# of the default ``max_batch_events``) ...
LEAD_EVENTS: Final = 65_536
# ... for this long, before it is judged implausible
LEAD_SECONDS: Final = 10.0
MAX_PENDING: Final = 4096


@dataclass(slots=True)
class _Watch:
    scope: tuple[str, str, str, str]  # application id, API name, API version, channel
    inherited: bool  # in the table when this process started: count from the first report
    sent: dict[str, int] = field(default_factory=dict)  # gateway id -> events in scope
    # gateway id -> the (shadow, enforced, passed) of its first report, for inherited watches
    base: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def _scope(d: dpb.Directive) -> tuple[str, str, str, str]:
    return (d.application_id, d.api_name, d.api_version, d.channel)


class GatewayScopes:
    """Requests each gateway sent in each directive's scope, and the hit reports capped to them."""

    def __init__(self, started_at_us: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._watch: dict[str, _Watch] = {}
        self._version = -1
        self._started_at_us = started_at_us
        self._monotonic = monotonic
        self.implausible: Counter[str] = Counter()  # gateway id -> reports capped
        # (gateway id, directive id) -> (the hits it claimed, when that claim is judged): a
        # report ahead of its gateway's events by at most LEAD_EVENTS
        self._pending: dict[tuple[str, str], tuple[int, float]] = {}
        self.race_forgiven = 0  # reports ahead of their events, caught up within LEAD_SECONDS
        self.unwatched = 0  # directives beyond MAX_WATCHED: their reports are not capped

    def sync(self, changes: list[Change], version: int) -> None:
        """Follow the table at ``version`` (its directives in force, ``in_force``): watch its
        new directives (a directive whose scope changed starts again), forget the removed ones.
        A directive last changed before this process started (kept in its file, or taken from
        a peer at start) is watched as inherited."""
        if version == self._version:
            return
        self._version = version
        live = {c.directive_id: c for c in changes if c.directive is not None}
        for did in [k for k in self._watch if k not in live]:
            del self._watch[did]
        self.judge()
        for did, c in live.items():
            assert c.directive is not None
            scope = _scope(c.directive)
            w = self._watch.get(did)
            if w is not None and w.scope == scope:
                continue
            if w is None and len(self._watch) >= MAX_WATCHED:
                continue
            self._watch[did] = _Watch(scope, c.at_us < self._started_at_us)

    def follow(self, table: DirectiveTable) -> None:
        """``sync`` with ``table`` when its version moved (call without the sidecar's lock)."""
        version = table.version
        if version != self._version:
            self.sync(table.in_force(), version)

    def count(self, gateway_id: str, channel: str, ev: Events, interner: Interner) -> None:
        """Count the events of one batch of ``gateway_id``'s stream (on ``channel``)."""
        if not len(ev) or not self._watch:
            return
        api_col = ev["api_name"]
        masks: dict[str, npt.NDArray[np.bool_]] = {}
        by_name: dict[str, list[int]] = {}  # API name (any tenant) -> the batch's keyed ids
        if any(w.scope[1] for w in self._watch.values()):
            for g in np.unique(api_col).tolist():
                by_name.setdefault(tenants.split(interner.string(g))[1], []).append(g)

        def api_mask(api: str) -> npt.NDArray[np.bool_]:
            if api not in masks:
                keep = by_name.get(api, [])
                masks[api] = api_col == keep[0] if len(keep) == 1 else np.isin(api_col, keep)
            return masks[api]

        app_col = ev["application_id"]
        for w in self._watch.values():
            app, api, version, ch = w.scope
            if ch and ch != channel:
                continue
            parts: list[npt.NDArray[np.bool_]] = []
            if app:
                gid = interner.lookup(app)
                if gid is None:
                    continue
                parts.append(app_col == gid)
            if api:
                if api not in by_name:
                    continue  # no event of the batch names that API
                parts.append(api_mask(api))
                if version:
                    vid = interner.lookup(version)
                    if vid is None:
                        continue
                    parts.append(ev["api_version"] == vid)
            if not parts:  # a directive of a whole channel: every event of the stream
                n = len(ev)
            else:
                mask = parts[0] if len(parts) == 1 else np.logical_and.reduce(parts)
                n = int(np.count_nonzero(mask))
            if n:
                self._touch(w, gateway_id)
                w.sent[gateway_id] = w.sent.get(gateway_id, 0) + n
        self.judge()

    @staticmethod
    def _touch(w: _Watch, gateway_id: str) -> None:
        """Make ``gateway_id`` the most recently heard of ``w`` (room kept for it)."""
        if gateway_id in w.sent:
            w.sent[gateway_id] = w.sent.pop(gateway_id)
            return
        while len(w.sent) >= MAX_GATEWAYS:
            gone = next(iter(w.sent))
            del w.sent[gone]
            w.base.pop(gone, None)
            w.inherited = True  # the forgotten gateway counts from its next report

    def cap(self, gateway_id: str, hits: list[dpb.DirectiveHits]) -> list[dpb.DirectiveHits]:
        """``hits`` of one report with each entry capped to what ``gateway_id`` sent in the
        directive's scope; a report with an entry capped is counted implausible."""
        out: list[dpb.DirectiveHits] = []
        capped = False
        for h in hits:
            w = self._watch.get(h.directive_id)
            if w is None:
                self.unwatched += 1
                out.append(h)
                continue
            now = (h.shadow_hits, h.enforced_hits, h.passed)
            base = w.base.get(gateway_id)
            if base is None:  # the first report of an inherited watch sets its base
                base = w.base[gateway_id] = now if w.inherited else (0, 0, 0)
            elif any(n < b for n, b in zip(now, base, strict=True)):
                base = w.base[gateway_id] = (0, 0, 0)  # the gateway restarted: from zero
            delta = [n - b for n, b in zip(now, base, strict=True)]
            total = sum(delta)
            sent = w.sent.get(gateway_id, 0)
            if total > sent:
                if total - sent > LEAD_EVENTS:
                    capped = True
                else:  # perhaps a race: judged when its events arrive, or LEAD_SECONDS later
                    self._expect(gateway_id, h.directive_id, total)
                delta = [d * sent // total for d in delta]
                c = dpb.DirectiveHits(directive_id=h.directive_id)
                c.shadow_hits, c.enforced_hits, c.passed = delta
                out.append(c)
            elif base != (0, 0, 0):
                c = dpb.DirectiveHits(directive_id=h.directive_id)
                c.shadow_hits, c.enforced_hits, c.passed = delta
                out.append(c)
            else:
                out.append(h)
        if capped:
            self._flag(gateway_id)
        self.judge()
        return out

    def _flag(self, gateway_id: str) -> None:
        if gateway_id not in self.implausible and len(self.implausible) >= MAX_GATEWAYS:
            del self.implausible[next(iter(self.implausible))]
        self.implausible[gateway_id] += 1

    def _expect(self, gateway_id: str, directive_id: str, claimed: int) -> None:
        """Remember a claim ahead of the events (the first deadline kept while it is open)."""
        key = (gateway_id, directive_id)
        old = self._pending.pop(key, None)
        deadline = old[1] if old is not None else self._monotonic() + LEAD_SECONDS
        while len(self._pending) >= MAX_PENDING:  # cannot be checked: implausible
            (gone, _), _ = self._pending.popitem()
            self._flag(gone)
        self._pending[key] = (max(claimed, old[0] if old else 0), deadline)

    def judge(self) -> None:
        """Settle the claims that ran ahead: caught up (a race, forgiven) or past their
        deadline (implausible, counted once for the report)."""
        if not self._pending:
            return
        now = self._monotonic()
        for key, (claimed, deadline) in list(self._pending.items()):
            gateway_id, directive_id = key
            if directive_id not in self._watch:  # removed: its evidence counts no more
                del self._pending[key]
            elif self.sent(directive_id, gateway_id) >= claimed:
                del self._pending[key]
                self.race_forgiven += 1
            elif now >= deadline:
                del self._pending[key]
                self._flag(gateway_id)

    def sent(self, directive_id: str, gateway_id: str) -> int:
        """Events ``gateway_id`` sent in the scope of ``directive_id`` since its watch began."""
        w = self._watch.get(directive_id)
        return w.sent.get(gateway_id, 0) if w is not None else 0

    def named(self) -> list[tuple[str, int]]:
        """(gateway id, implausible reports), the most first, at most ``MAX_NAMED``."""
        self.judge()
        return self.implausible.most_common(MAX_NAMED)

    def total_implausible(self) -> int:
        self.judge()
        return sum(self.implausible.values())
