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
gateway's reports count from its next one, like a directive found at start).

Two steps per batch, so that the sidecar's lock is held for the least of it: ``group``, under
the sidecar's lock (the interner's ids are read under it), sorts the batch's events into
(application, API name, API version) groups with ``np.unique`` and names their distinct ids;
``add``, under this object's own ``lock`` and not the sidecar's, adds each group's count to the
directives whose scope it falls in, found by scope (per shape of scope in use — application,
API, API and version, ... — one lookup per distinct key, whatever the number of directives).
Every other method takes this object's lock too; none takes the sidecar's.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np

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


Shape = tuple[bool, bool, bool]  # which of application, API, version a scope names


def _shape(scope: tuple[str, str, str, str]) -> Shape:
    """Which fields of (application, API, version) ``scope`` names (a version counts only
    with an API name)."""
    app, api, version, _ = scope
    return (bool(app), bool(api), bool(api and version))


def _key(scope: tuple[str, str, str, str]) -> tuple[str, str, str]:
    """The (application, API, version) an event group must have to be in ``scope``, the
    fields it does not name empty."""
    app, api, version, _ = scope
    return (app, api, version if api else "")


@dataclass(frozen=True, slots=True)
class Groups:
    """The events of one batch by (application id, API name, API version) ids, with their
    counts and the names of those ids (an API's without its tenant)."""

    app: list[int]
    api: list[int]
    version: list[int]
    counts: list[int]
    strings: dict[int, str]  # application and version id -> its string
    bare: dict[int, str]  # API name id -> the API's name without its tenant

    def __len__(self) -> int:
        return len(self.counts)


NO_GROUPS: Final = Groups([], [], [], [], {}, {})
_BITS: Final = 21  # three ids below 2**21 make one int64 key


def group(ev: Events, interner: Interner) -> Groups:
    """The events of ``ev`` grouped by (application, API name, API version) with
    ``np.unique`` (call under the sidecar's lock: the ids are named with ``interner``, only
    the distinct ones)."""
    if not len(ev):
        return NO_GROUPS
    app = ev["application_id"].astype(np.int64)
    api = ev["api_name"].astype(np.int64)
    version = ev["api_version"].astype(np.int64)
    if len(interner) < 1 << _BITS:  # one key per event: a 1-D unique
        keys, counts = np.unique((app << 2 * _BITS) | (api << _BITS) | version, return_counts=True)
        mask = (1 << _BITS) - 1
        ua, up, uv = keys >> 2 * _BITS, (keys >> _BITS) & mask, keys & mask
    else:
        rows, counts = np.unique(np.stack([app, api, version], axis=1), axis=0, return_counts=True)
        ua, up, uv = rows[:, 0], rows[:, 1], rows[:, 2]
    string = interner.string
    strings = {i: string(i) for i in np.unique(np.concatenate([ua, uv])).tolist()}
    bare = {i: tenants.split(string(i))[1] for i in np.unique(up).tolist()}
    return Groups(ua.tolist(), up.tolist(), uv.tolist(), counts.tolist(), strings, bare)


class GatewayScopes:
    """Requests each gateway sent in each directive's scope, and the hit reports capped to them."""

    def __init__(self, started_at_us: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        # guards all of this object (never held while taking the sidecar's lock)
        self.lock = threading.RLock()
        self._watch: dict[str, _Watch] = {}
        # scope shape -> scope key (``_key``) -> the ids of the directives watched with it
        self._by_key: dict[Shape, dict[tuple[str, str, str], set[str]]] = {}
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
        with self.lock:
            if version == self._version:
                return
            self._version = version
            live = {c.directive_id: c for c in changes if c.directive is not None}
            for did in [k for k in self._watch if k not in live]:
                self._unwatch(did)
            self.judge()
            for did, c in live.items():
                assert c.directive is not None
                scope = _scope(c.directive)
                w = self._watch.get(did)
                if w is not None and w.scope == scope:
                    continue
                if w is None and len(self._watch) >= MAX_WATCHED:
                    continue
                if w is not None:
                    self._unwatch(did)
                self._watch[did] = _Watch(scope, c.at_us < self._started_at_us)
                of_shape = self._by_key.setdefault(_shape(scope), {})
                of_shape.setdefault(_key(scope), set()).add(did)

    def _unwatch(self, did: str) -> None:
        w = self._watch.pop(did)
        shape, key = _shape(w.scope), _key(w.scope)
        of_shape = self._by_key[shape]
        of_shape[key].discard(did)
        if not of_shape[key]:
            del of_shape[key]
            if not of_shape:
                del self._by_key[shape]

    def follow(self, table: DirectiveTable) -> None:
        """``sync`` with ``table`` when its version moved (call without the sidecar's lock)."""
        version = table.version
        if version != self._version:
            self.sync(table.in_force(), version)

    @property
    def watching(self) -> bool:
        """Whether any directive is watched (a batch need not be grouped otherwise)."""
        return bool(self._watch)

    def count(self, gateway_id: str, channel: str, ev: Events, interner: Interner) -> None:
        """Count the events of one batch of ``gateway_id``'s stream (on ``channel``): ``group``
        then ``add`` (the caller holds the sidecar's lock for the interner)."""
        if len(ev) and self._watch:
            self.add(gateway_id, channel, group(ev, interner))

    def add(self, gateway_id: str, channel: str, groups: Groups) -> None:
        """Count one batch of ``gateway_id``'s stream (on ``channel``), its events grouped by
        ``group``: each group to the directives whose scope it falls in (per scope shape, the
        groups summed by what the shape names, then one lookup per sum)."""
        if not len(groups):
            return
        strings, bare = groups.strings, groups.bare
        full = [
            (strings[a], bare[p], strings[v])
            for a, p, v in zip(groups.app, groups.api, groups.version, strict=True)
        ]
        with self.lock:
            sent: dict[str, int] = {}
            for (by_app, by_api, by_version), of_shape in self._by_key.items():
                sums: dict[tuple[str, str, str], int] = {}
                for (app, api, version), n in zip(full, groups.counts, strict=True):
                    k = (app if by_app else "", api if by_api else "",
                         version if by_version else "")  # fmt: skip
                    sums[k] = sums.get(k, 0) + n
                for k, n in sums.items():
                    for did in of_shape.get(k, ()):
                        sent[did] = sent.get(did, 0) + n
            for did, n in sent.items():
                w = self._watch[did]
                ch = w.scope[3]
                if ch and ch != channel:
                    continue
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
        with self.lock:
            return self._cap(gateway_id, hits)

    def _cap(self, gateway_id: str, hits: list[dpb.DirectiveHits]) -> list[dpb.DirectiveHits]:
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
        with self.lock:
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
        with self.lock:
            w = self._watch.get(directive_id)
            return w.sent.get(gateway_id, 0) if w is not None else 0

    def named(self) -> list[tuple[str, int]]:
        """(gateway id, implausible reports), the most first, at most ``MAX_NAMED``."""
        with self.lock:
            self.judge()
            return self.implausible.most_common(MAX_NAMED)

    def total_implausible(self) -> int:
        with self.lock:
            self.judge()
            return sum(self.implausible.values())
