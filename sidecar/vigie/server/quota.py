"""A LIMIT is a fleet-wide budget: each gateway gets a local quota, its share of the budget.

A LIMIT directive says N requests per period *across the fleet*. Every gateway streams to every
vigie instance, so each instance sees, in the gateways' reports, how many requests matching the
directive each gateway received lately (``DirectiveHits``: shadow + enforced + passed, i.e. the
demand, refused requests included). Every ``quota_rebalance_seconds`` the instance gives each
connected gateway its share of the budget (a ``LocalQuota``), the anchor being Envoy's
rate-limit quota service (a global budget handed out as local quotas re-balanced from usage
reports):

    share(g) = floor / n + (1 - floor) x demand(g) / demand(all)       (1 / n when no demand)

over the ``n`` connected gateways the directive applies to (its channel), ``demand`` being the
requests reported in the last ``quota_window_seconds`` and ``floor`` = ``quota_floor_share``: a
gateway that starts receiving the consumer is never starved, yet the shares sum to at most 1
(rounded down to millionths). The gateway's bucket holds its share of the rate and of the burst,
and a new share keeps the tokens already taken (the handler's ``TokenBucket.retune``), so moving
shares conserves the budget.

Two instances agree: the epoch of a quota is the wall-clock time rounded down to the re-balancing
interval, the same on every instance with a synchronised clock, and the share is the same
function of the same reports. Should they still differ (one received a report the other has not
yet), the gateway keeps the quota of the latest epoch and, on a tie, the smaller share: each
instance's shares of one epoch sum to at most 1, so do the smaller of each gateway's.

Demand comes from gateways' own reports, as plausible: each gateway's hits counted only up to
the requests that gateway itself sent in the directive's scope (``vigie.server.hits``; the
directive table keeps them per gateway), so a gateway cannot claim a bigger share than the
traffic it streams. When reports are not trusted at all (no mTLS and
``trust_unauthenticated_gateways`` says no), every gateway gets the same share (1 / n): a forged
report can then move nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from vigie.clock import Clock, wall_us
from vigie.directives.table import MAX_REPORTED_HITS
from vigie.server.core import GatewayStream, Sidecar
from vigie.settings.policy import trust_gateway_hits
from vigie.v1 import directives_pb2 as dpb

log = logging.getLogger(__name__)

WHOLE_PPM: Final = 1_000_000  # shares are in millionths of the budget
MAX_TRACKED: Final = 65_536  # (gateway, directive) pairs followed at most; the oldest forgotten


@dataclass(slots=True)
class _Demand:
    """One gateway's requests matching one directive: the last cumulative count it reported and
    the increases seen at each re-balancing, newest last."""

    last: int
    steps: deque[tuple[int, int]] = field(default_factory=deque)  # (epoch_us, requests)

    def add(self, epoch_us: int, cumulative: int, oldest_us: int) -> None:
        # a smaller count: the handler restarted, its counters began again from 0
        delta = cumulative - self.last if cumulative >= self.last else cumulative
        self.last = cumulative
        if delta:
            self.steps.append((epoch_us, delta))
        while self.steps and self.steps[0][0] < oldest_us:
            self.steps.popleft()

    def recent(self, oldest_us: int) -> int:
        return sum(n for t, n in self.steps if t >= oldest_us)


@dataclass(frozen=True, slots=True)
class GatewaySeen:
    """A connected gateway as the re-balancing sees it: its id, channel and latest report."""

    gateway_id: str
    channel: str
    hits: tuple[dpb.DirectiveHits, ...]


def applies(d: dpb.Directive, channel: str) -> bool:
    """Whether LIMIT ``d`` applies to a gateway of ``channel`` (the handler's own rule)."""
    return d.action == dpb.DIRECTIVE_ACTION_LIMIT and (not d.channel or d.channel == channel)


def shares(demand: dict[str, int], floor_share: float, trust: bool = True) -> dict[str, int]:
    """Each gateway's share of one directive's budget, in millionths, from its recent demand
    (the requests it reported matching the directive): ``floor / n`` for each (at least 1), the
    rest in proportion to demand (equal when there is none, or when demand is not trusted). In
    integers, rounded down: the shares sum to at most ``WHOLE_PPM``."""
    n = len(demand)
    if not n:
        return {}
    total = sum(demand.values())
    if not trust or total <= 0:
        return {g: max(1, WHOLE_PPM // n) for g in demand}
    floor = min(max(floor_share, 0.0), 1.0)
    each = max(1, round(floor * WHOLE_PPM) // n)
    rest = max(0, WHOLE_PPM - each * n)
    return {g: each + rest * max(0, d) // total for g, d in demand.items()}


class QuotaBook:
    """The recent demand of every connected gateway for every LIMIT, sampled once per
    re-balancing epoch from the gateways' latest reports, and the local quotas it gives."""

    def __init__(
        self,
        clock: Clock,
        rebalance_seconds: float,
        window_seconds: float,
        floor_share: float,
        trust: bool,
    ) -> None:
        self.clock = clock
        self.rebalance_us = max(1, int(rebalance_seconds * 1e6))
        self.window_us = max(self.rebalance_us, int(window_seconds * 1e6))
        self.floor_share = floor_share
        self.trust = trust
        self._lock = threading.Lock()
        self._demand: dict[tuple[str, str], _Demand] = {}
        self._sampled_epoch = -1

    def epoch_us(self) -> int:
        """The current epoch: wall time rounded down to the re-balancing interval."""
        now = wall_us(self.clock)
        return now - now % self.rebalance_us

    def seconds_to_next_epoch(self) -> float:
        now = wall_us(self.clock)
        return (self.rebalance_us - now % self.rebalance_us) / 1e6 + 0.001

    def sample(
        self, epoch_us: int, seen: Iterable[GatewaySeen], limits: set[str] | None = None
    ) -> None:
        """Take the gateways' cumulative counts for this epoch (once per epoch: the first
        stream to ask samples for all), of the directives in ``limits`` only (None: all). A
        count above ``MAX_REPORTED_HITS`` (no gateway sends that many) is not kept."""
        with self._lock:
            if epoch_us <= self._sampled_epoch:
                return
            self._sampled_epoch = epoch_us
            oldest = epoch_us - self.window_us
            gateways: set[str] = set()
            for g in seen:
                gateways.add(g.gateway_id)
                for h in g.hits:
                    if limits is not None and h.directive_id not in limits:
                        continue
                    if max(h.shadow_hits, h.enforced_hits, h.passed) > MAX_REPORTED_HITS:
                        continue  # counted by the directive table (record_hits)
                    cumulative = h.shadow_hits + h.enforced_hits + h.passed
                    key = (g.gateway_id, h.directive_id)
                    got = self._demand.get(key)
                    if got is None:
                        # the first count seen is a baseline: when it was reached is unknown
                        self._demand[key] = _Demand(cumulative)
                    else:
                        got.add(epoch_us, cumulative, oldest)
            for key in [k for k in self._demand if k[0] not in gateways]:
                del self._demand[key]  # gone: its traffic is now elsewhere
            while len(self._demand) > MAX_TRACKED:
                del self._demand[next(iter(self._demand))]

    def quotas_for(
        self,
        gateway_id: str,
        channel: str,
        connected: dict[str, str],
        directives: Iterable[dpb.Directive],
        epoch_us: int,
    ) -> list[dpb.LocalQuota]:
        """This gateway's quota of each LIMIT in ``directives`` that applies to it, shared
        among the ``connected`` gateways (id -> channel)."""
        out: list[dpb.LocalQuota] = []
        gateways = dict(connected)
        gateways[gateway_id] = channel  # the asking gateway is connected
        with self._lock:
            oldest = epoch_us - self.window_us
            for d in directives:
                if not applies(d, channel):
                    continue
                demand: dict[str, int] = {}
                for g, ch in gateways.items():
                    if applies(d, ch):
                        got = self._demand.get((g, d.id))
                        demand[g] = got.recent(oldest) if got is not None else 0
                share = shares(demand, self.floor_share, self.trust)[gateway_id]
                out.append(dpb.LocalQuota(directive_id=d.id, share_ppm=share, epoch_us=epoch_us))
        return out


REBALANCE: Final = dpb.DirectiveUpdate()  # put in a pump's queue: push your quotas now


class Rebalancer:
    """The quotas of a sidecar's streams: one book, sampled from the open streams' latest
    reports; each stream's directive pump asks for its gateway's quotas. When a gateway comes
    or goes, every other pump is woken (``REBALANCE``) to push its new share at once, so that
    the shares in force sum to at most the budget within milliseconds, not at the next epoch."""

    def __init__(self, sc: Sidecar) -> None:
        s = sc.settings
        self.sc = sc
        self.book = QuotaBook(
            sc.clock,
            s.quota_rebalance_seconds,
            s.quota_window_seconds,
            s.quota_floor_share,
            trust_gateway_hits(
                s.trust_unauthenticated_gateways, s.listen, bool(s.tls_client_ca_file)
            ),
        )
        self._pumps: list[queue.Queue[dpb.DirectiveUpdate]] = []
        self._pumps_lock = threading.Lock()

    def _wake(self) -> None:
        with self._pumps_lock:
            for q in self._pumps:
                q.put(REBALANCE)

    def join(self, pump: queue.Queue[dpb.DirectiveUpdate]) -> None:
        """A stream's pump starts (its gateway is in ``sc.streams``): the others re-share."""
        self._wake()
        with self._pumps_lock:
            self._pumps.append(pump)

    def leave(self, pump: queue.Queue[dpb.DirectiveUpdate]) -> None:
        """A stream ended (its gateway is out of ``sc.streams``): the others re-share."""
        with self._pumps_lock:
            if pump in self._pumps:
                self._pumps.remove(pump)
        self._wake()

    def timeout(self) -> float:
        """Seconds until the next re-balancing."""
        return self.book.seconds_to_next_epoch()

    def _connected(self) -> tuple[dict[str, str], list[GatewaySeen]]:
        """The connected gateways and their plausible hits (capped to what each one sent in
        each directive's scope: ``Sidecar.record_report``), not the raw reports."""
        with self.sc.lock:
            streams = [(gs.hello.gateway_id, gs.hello.channel) for gs in self.sc.streams.values()]
        table = self.sc.directives
        seen = [GatewaySeen(g, ch, tuple(table.gateway_hits(g))) for g, ch in streams]
        return {g.gateway_id: g.channel for g in seen}, seen

    def _quotas(
        self, gs: GatewayStream, directives: Iterable[dpb.Directive]
    ) -> list[dpb.LocalQuota]:
        """Never raises: the directive pump must go on (a failure is logged and counted, and
        the gateway keeps its last quotas)."""
        try:
            epoch = self.book.epoch_us()
            connected, seen = self._connected()
            _, table = self.sc.directives.snapshot()
            limits = {d.id for d in table if d.action == dpb.DIRECTIVE_ACTION_LIMIT}
            self.book.sample(epoch, seen, limits)
            return self.book.quotas_for(
                gs.hello.gateway_id, gs.hello.channel, connected, directives, epoch
            )
        except Exception:
            log.exception("gateway %s: local quotas not computed", gs.hello.gateway_id)
            self.sc.counters["quota_internal_error"] += 1
            return []

    def periodic(self, gs: GatewayStream) -> dpb.DirectiveUpdate | None:
        """This epoch's quotas for ``gs``'s gateway, as an update of quotas alone (None when no
        LIMIT applies to it)."""
        version, table = self.sc.directives.snapshot()
        quotas = self._quotas(gs, table)
        if not quotas:
            return None
        self.sc.counters["quota_updates_sent"] += 1
        return dpb.DirectiveUpdate(version=version, quotas=quotas)

    def with_quotas(self, gs: GatewayStream, update: dpb.DirectiveUpdate) -> dpb.DirectiveUpdate:
        """``update`` with ``gs``'s quotas of the LIMITs it brings (so that a LIMIT holds its
        share from its first request on), a copy when there are any."""
        quotas = self._quotas(gs, update.upserts)
        if not quotas:
            return update
        out = dpb.DirectiveUpdate()
        out.CopyFrom(update)
        out.quotas.extend(quotas)
        return out
