"""``vigie suggestions simulate``: what a directive would have refused over WSO2's analytics log.

The logs are read as ``vigie replay`` reads them (merged by event time); every event in the
directive's scope goes through the gateway's rule: a BLOCK refuses it, a LIMIT lets through at
most ``limit_requests`` per ``limit_period_seconds`` per gateway (a token bucket of that rate
holding ``limit_burst`` tokens, or ``limit_requests`` when 0; one log file = one gateway).

The directive is a suggestion's: one found in the replayed history itself
(``replayed_suggestion``), or one a running sidecar answers with (``spec_from_directive``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numba import njit

from vigie.classify import views
from vigie.classify.views import iso
from vigie.errors import InputError
from vigie.policy.suggest import DirectiveSpec, Suggestion, suggest
from vigie.sources.wso2_log import ReplayStats, parse_source, read_logs
from vigie.v1 import directives_pb2 as dpb
from vigie.wire import tenants
from vigie.wire.columns import Events, Interner

if TYPE_CHECKING:
    from vigie.settings.policy import PolicyConfig
    from vigie.state.engine import State


@njit(cache=True, nogil=True)
def _token_bucket(
    t_us: npt.NDArray[np.int64],
    gateway: npt.NDArray[np.uint8],
    tokens: npt.NDArray[np.float64],
    last_us: npt.NDArray[np.int64],
    rate_per_us: float,
    capacity: float,
    refused: npt.NDArray[np.bool_],
) -> None:
    """Refuse what a token bucket per gateway refuses; the buckets carry over between calls."""
    for i in range(len(t_us)):
        g = gateway[i]
        t = t_us[i]
        if last_us[g] < 0:
            tokens[g] = capacity
        elif t > last_us[g]:
            tokens[g] = min(capacity, tokens[g] + (t - last_us[g]) * rate_per_us)
        if t > last_us[g]:
            last_us[g] = t
        if tokens[g] >= 1.0:
            tokens[g] -= 1.0
            refused[i] = False
        else:
            refused[i] = True


@dataclass(slots=True)
class Affected:
    application_id: str
    application: str
    api: str
    api_version: str
    refused: int = 0
    requests: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "application_id": self.application_id,
            "application": self.application,
            "api": self.api,
            "api_version": self.api_version,
            "refused": self.refused,
            "requests": self.requests,
            "share": round(self.refused / self.requests, 4) if self.requests else 0.0,
        }


@dataclass(slots=True)
class SimulationResult:
    directive: DirectiveSpec
    events: int = 0
    matched: int = 0
    refused: int = 0
    first_us: int = 0
    last_us: int = 0
    affected: list[Affected] = field(default_factory=list)
    rejected_lines: int = 0

    @property
    def share(self) -> float:
        """Refused share of the affected subscriptions' whole traffic."""
        total = sum(a.requests for a in self.affected)
        return self.refused / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "directive": self.directive.to_json(),
            "events": self.events,
            "from": iso(self.first_us),
            "to": iso(self.last_us),
            "requests_in_scope": self.matched,
            "requests_refused": self.refused,
            "consumers_affected": len(self.affected),
            "share_of_their_traffic": round(self.share, 4),
            "consumers": [a.to_json() for a in self.affected],
            "rejected_lines": self.rejected_lines,
        }


def replayed_suggestion(
    state: State, now_us: int, config: PolicyConfig, suggestion_id: str
) -> Suggestion | None:
    """The suggestion of this id among those the replayed state gives (``vigie replay --json``
    prints their ids), or None."""
    return next((s for s in suggest(state, now_us, config) if s.id == suggestion_id), None)


def spec_from_directive(d: dpb.Directive) -> DirectiveSpec:
    """The action and scope of a directive as the sidecar holds it."""
    return DirectiveSpec(
        action="BLOCK" if d.action == dpb.DIRECTIVE_ACTION_BLOCK else "LIMIT",
        application_id=d.application_id,
        api_name=d.api_name,
        api_version=d.api_version,
        channel=d.channel,
        limit_requests=d.limit_requests,
        limit_period_seconds=d.limit_period_seconds,
        reason=d.reason,
    )


def _scope_mask(ev: Events, d: DirectiveSpec, interner: Interner, channel: int | None) -> Any:
    """The events in the directive's scope. A directive names no tenant: the gateway applies
    it to an API of that name in any tenant (the events hold keyed names: vigie.wire.tenants)."""
    mask = np.ones(len(ev), dtype=np.bool_)
    for column, value in (
        ("application_id", d.application_id),
        ("api_name", d.api_name),
        ("api_version", d.api_version),
    ):
        if value:
            col = ev[column]
            if column == "api_name":  # first: it interns the bare names
                col = tenants.bare_names(interner, col)
            gid = interner.lookup(value)
            if gid is None:
                return np.zeros(len(ev), dtype=np.bool_)
            mask &= col == gid
    if channel is not None:
        mask &= ev.channel == channel
    return mask


def simulate(d: DirectiveSpec, sources: list[str]) -> SimulationResult:
    """Replay ``sources`` (``[CHANNEL=]PATH``) through directive ``d``."""
    parsed = [parse_source(s) for s in sources]
    for _, path in parsed:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    names: list[str] = []
    for ch, _ in parsed:
        if ch not in names:
            names.append(ch)
    gateways = [(names.index(ch), path) for ch, path in parsed]
    channel = names.index(d.channel) if d.channel in names else None
    if d.channel and channel is None:
        raise InputError(
            f"the directive is scoped to channel {d.channel!r}; name it on a log: "
            f"{d.channel}=PATH (channels given: {', '.join(names)})"
        )
    interner = Interner()
    stats = ReplayStats()
    out = SimulationResult(d)
    tokens = np.zeros(max(len(names), 1), dtype=np.float64)
    last = np.full(max(len(names), 1), -1, dtype=np.int64)
    period_us = max(d.limit_period_seconds, 1) * 1e6
    rate = d.limit_requests / period_us
    capacity = float(d.limit_requests)
    totals: Counter[tuple[int, int, int]] = Counter()
    refused_by: Counter[tuple[int, int, int]] = Counter()
    names_of: dict[int, int] = {}
    for ev in read_logs(gateways, interner, stats):
        t = ev["event_time_us"]
        out.events += len(ev)
        out.first_us = int(t[0]) if not out.first_us else out.first_us
        out.last_us = int(t[-1])
        keys = np.stack([ev["application_id"], ev["api_name"], ev["api_version"]], axis=1)
        uniq, counts = np.unique(keys, axis=0, return_counts=True)
        for k, n in zip(uniq.tolist(), counts.tolist(), strict=True):
            totals[(k[0], k[1], k[2])] += n
        for a, nm in zip(ev["application_id"].tolist(), ev["application_name"].tolist(),
                         strict=True):  # fmt: skip
            if nm:
                names_of[a] = nm
        mask = _scope_mask(ev, d, interner, channel)
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            continue
        out.matched += len(idx)
        if d.action == "BLOCK":
            refused = np.ones(len(idx), dtype=np.bool_)
        else:
            refused = np.zeros(len(idx), dtype=np.bool_)
            _token_bucket(t[idx], ev.channel[idx], tokens, last, rate, capacity, refused)
        sel = keys[idx][refused]
        out.refused += len(sel)
        if len(sel):
            uniq, counts = np.unique(sel, axis=0, return_counts=True)
            for k, n in zip(uniq.tolist(), counts.tolist(), strict=True):
                refused_by[(k[0], k[1], k[2])] += n
    out.rejected_lines = stats.rejected
    for key, n in sorted(refused_by.items(), key=lambda kv: -kv[1]):
        a, api, ver = key
        out.affected.append(
            Affected(
                application_id=interner.string(a),
                application=interner.string(names_of.get(a, 0)),
                api=tenants.split(interner.string(api))[1],
                api_version=interner.string(ver),
                refused=n,
                requests=totals[key],
            )
        )
    return out


def impact_from_state(state: State, d: dpb.Directive) -> dict[str, Any]:
    """What ``d`` would have refused over the state's current hour and last 24 hours, from
    its hourly counts: a BLOCK everything in scope, a LIMIT what exceeds its rate hour by hour
    (an estimate: the bucket's burst is not modelled). A channel is not narrowed (an upper
    bound). The preview ``vigie tune`` prints before it pushes."""
    per_hour = views.scope_hours(state, d.application_id, d.api_name, d.api_version, 24)
    if d.action == dpb.DIRECTIVE_ACTION_LIMIT and d.limit_period_seconds:
        allowed = d.limit_requests * 3600.0 / d.limit_period_seconds
        refused = np.maximum(per_hour - np.floor(allowed), 0).astype(np.int64)
    else:
        refused = per_hour
    return {
        "now": iso(state.now_us),
        "this_hour": {"requests": int(per_hour[-1]), "refused": int(refused[-1])},
        "last_24_hours": {"requests": int(per_hour.sum()), "refused": int(refused.sum())},
        "basis": "hourly counts of the sidecar's state"
        + (" (every channel: the scope's channel is not narrowed)" if d.channel else ""),
    }
