"""What every suggestion family reads: the subscription and API rows of the state (rates,
episodes, contexts), how a rate is sized, and the auto-approval verdict each suggestion gets
as it is added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypedDict

import numpy as np

from vigie.classify import views
from vigie.policy import sizing
from vigie.policy.codes import ThrottleCodes
from vigie.policy.model import Suggestion
from vigie.settings.policy import PolicyConfig
from vigie.state import layout as L
from vigie.state.engine import State
from vigie.wire import tenants

# below this many minutes with traffic, percentiles say little: size from the busiest minute
MIN_MINUTES: Final = 30


class Who(TypedDict):
    """Whom a subscription suggestion concerns (spread into ``Suggestion``)."""

    application_id: str
    application: str
    owner: str
    api: str
    api_version: str


def pct(x: float) -> str:
    """A share as the suggestions write it: one decimal below 10 %, none above."""
    return f"{x:.1%}" if x < 0.1 else f"{x:.0%}"


def num(x: float) -> str:
    """A rate or count, rounded, with thousands separators."""
    return f"{x:,.0f}"


@dataclass(slots=True)
class Row:
    """What sizing needs of one subscription row, read from the arrays."""

    hist: np.ndarray
    max_per_slot: int
    requests: int
    last_seen: int
    first: dict[str, int]  # class -> first time of its current episode
    context: str
    profile: sizing.RateProfile


def row_key(v: views.SubscriptionView) -> tuple[str, str, str]:
    """The key of a subscription in ``Context.rows``: the API by its keyed name (an API is
    tenant x name x version, ``vigie.wire.tenants``)."""
    return (v.application_id, tenants.keyed_name(v.tenant, v.api), v.api_version)


def _rows(state: State, slot_s: float) -> dict[tuple[str, str, str], Row]:
    s = state.sub_i64
    out: dict[tuple[str, str, str], Row] = {}
    for row in state.sub_rows().tolist():
        api_row = int(s[row, L.S_API])
        key = (
            state.string(int(s[row, L.S_APP])),
            state.string(int(state.api_i64[api_row, L.A_NAME])),
            state.string(int(state.api_i64[api_row, L.A_VERSION])),
        )
        hist = state.sub_rate[row].copy()
        mx = int(s[row, L.S_MAX_RPM])
        # the current minute is only added to the histogram when the next one starts
        cur = int(s[row, L.S_SW_CUR])
        if cur > 0:
            c = int(state.sub_sw[row, cur % L.SHORT_SLOTS, L.SW_REQ])
            if c > 0:
                hist[sizing.rate_bucket(c)] += 1
                mx = max(mx, c)
        out[key] = Row(
            hist=hist,
            max_per_slot=mx,
            requests=int(s[row, L.S_REQ]),
            last_seen=int(s[row, L.S_LAST_SEEN]),
            first={
                name: int(state.cls_first[row, c]) for c, name in enumerate(L.WINDOWED_CLASS_NAMES)
            },
            context=state.string(int(state.api_i64[api_row, L.A_CONTEXT])),
            profile=sizing.profile(hist, mx, slot_s),
        )
    return out


def _api_rows(state: State) -> dict[tuple[str, str], tuple[str, int]]:
    a = state.api_i64
    return {
        (state.string(int(a[r, L.A_NAME])), state.string(int(a[r, L.A_VERSION]))): (
            state.string(int(a[r, L.A_CONTEXT])),
            int(a[r, L.A_LAST_SEEN]),
        )
        for r in state.api_rows().tolist()
    }


class Context:
    """One computation of the suggestions: the state read once, the config, and the
    suggestions added so far (in the order the families add them)."""

    def __init__(
        self, state: State, now: int, config: PolicyConfig, codes: ThrottleCodes | None = None
    ) -> None:
        self.state = state
        self.now = now
        self.config = config
        # the WSO2 throttle codes of each subscription (from the store), None when unknown
        self.codes = codes
        # what one suggestion already answers (an application, API or resource hit by
        # several subscriptions): ("application", id), ("api", name, version), ...
        self.handled: set[tuple[str, ...]] = set()
        self.slot_s = sizing.slot_seconds(state.thresholds.short_window_seconds)
        self.rows = _rows(state, self.slot_s)
        self.apis = _api_rows(state)
        self.out: list[Suggestion] = []

    def base_rate(self, p: sizing.RateProfile) -> tuple[float, str]:
        """The per-minute rate a limit is sized from, and how it was read."""
        if p.minutes >= MIN_MINUTES:
            return p.p99, f"p99 of {p.minutes:,} minutes with traffic"
        return p.max, f"the busiest minute (only {p.minutes} minutes with traffic)"

    def per_slot(self, per_minute: float) -> float:
        """A per-minute rate as a count per short-window slot."""
        return per_minute * self.slot_s / 60.0

    def add(self, s: Suggestion) -> None:
        """Add a suggestion, with its auto-approval verdict."""
        self._auto(s)
        self.out.append(s)

    def _auto(self, s: Suggestion) -> None:
        c = self.config
        if s.class_name not in c.auto_approve:
            s.auto_approval = "not configured (auto_approve)"
        elif s.directive is None:
            s.auto_approval = "no directive to push"
        elif c.allow_listed(s.application_id, s.application, s.api):
            s.auto_approval = "on the allow-list: never auto-approved"
        elif s.refused_share > c.auto_approve_max_share:
            s.auto_approval = (
                f"would refuse {pct(s.refused_share)} of its requests, more than "
                f"auto_approve_max_share {pct(c.auto_approve_max_share)}"
            )
        else:
            s.auto_eligible = True
            s.auto_approval = (
                f"auto-approved: shadow for {c.auto_approve_shadow_seconds:g} s, then enforce "
                f"if it refuses at most {pct(c.auto_approve_max_share)}; TTL "
                f"{min(c.auto_approve_ttl_seconds, s.directive.ttl_seconds):g} s"
            )
