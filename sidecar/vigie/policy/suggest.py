"""Suggestions: what vigie proposes to do about each class it sees, with evidence and effect.

``suggest(state, now, config)`` is a pure function of the state (the live sidecar and
``vigie replay`` share it). Each suggestion has a stable id derived from what it concerns, its
class and the episode it answers, so recomputing the suggestions finds the same ids again and
their lifecycle (kept by ``SuggestionBook``) carries over.

| class | action | directive | WSO2 payload |
|---|---|---|---|
| growing / throttle_hitter (subscription) | subscription_policy | — | SubscriptionThrottlePolicy |
| the same on >= 2 subscriptions of one app | application_policy | — | ApplicationThrottlePolicy |
| growing (API) | advanced_policy | — | AdvancedThrottlePolicy |
| retry_storm, redundant | temporary_limit | LIMIT, TTL | — |
| dormant subscription | revoke | BLOCK, TTL | (remove the subscription) |
| dormant application (every subscription) | revoke | BLOCK, TTL | BlockingCondition APPLICATION |
| retired API | revoke | BLOCK, TTL | BlockingCondition API |
| wrong_channel | block_channel | BLOCK app x channel, TTL | — |
| error_prone, throttled below its tier | contact_owner | — | — |
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypedDict

import numpy as np

from vigie.classify import views
from vigie.policy import sizing, wso2
from vigie.policy.wso2 import AdminRequest
from vigie.settings.policy import PolicyConfig
from vigie.state import layout as L
from vigie.state.engine import State
from vigie.v1 import directives_pb2 as dpb

HOUR_S: Final = 3600
DAY_S: Final = 86_400
# proposed directive lifetimes per class
TTL_SECONDS: Final = {
    "retry_storm": HOUR_S,
    "redundant": DAY_S,
    "wrong_channel": 7 * DAY_S,
    "dormant": 30 * DAY_S,
    "retired": 30 * DAY_S,
}
# below this many minutes with traffic, percentiles say little: size from the busiest minute
MIN_MINUTES: Final = 30
ACTIONS: Final = (
    "subscription_policy",
    "application_policy",
    "advanced_policy",
    "temporary_limit",
    "revoke",
    "block_channel",
    "contact_owner",
)


class _Who(TypedDict):
    application_id: str
    application: str
    owner: str
    api: str
    api_version: str


@dataclass(frozen=True, slots=True)
class DirectiveSpec:
    """The directive a suggestion pushes once approved (mode, id and expiry come then)."""

    action: str  # "BLOCK" or "LIMIT"
    application_id: str = ""
    api_name: str = ""
    api_version: str = ""
    channel: str = ""
    limit_requests: int = 0
    limit_period_seconds: int = 0
    ttl_seconds: int = HOUR_S
    reason: str = ""

    def build(self, suggestion_id: str, mode: int, expires_at_us: int) -> dpb.Directive:
        block = self.action == "BLOCK"
        return dpb.Directive(
            id=suggestion_id,
            mode=mode,  # type: ignore[arg-type]
            action=dpb.DIRECTIVE_ACTION_BLOCK if block else dpb.DIRECTIVE_ACTION_LIMIT,
            application_id=self.application_id,
            api_name=self.api_name,
            api_version=self.api_version,
            channel=self.channel,
            limit_requests=self.limit_requests,
            limit_period_seconds=self.limit_period_seconds,
            expires_at_us=expires_at_us,
            error_code=900805 if block else 900806,
            reason=self.reason[:240],
            suggestion_id=suggestion_id,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action}
        for k in ("application_id", "api_name", "api_version", "channel"):
            if getattr(self, k):
                out[k] = getattr(self, k)
        if self.action == "LIMIT":
            out["limit_requests"] = self.limit_requests
            out["limit_period_seconds"] = self.limit_period_seconds
        out["ttl_seconds"] = self.ttl_seconds
        out["reason"] = self.reason
        return out

    @staticmethod
    def from_json(doc: dict[str, Any]) -> DirectiveSpec:
        return DirectiveSpec(
            action=str(doc["action"]),
            application_id=str(doc.get("application_id", "")),
            api_name=str(doc.get("api_name", "")),
            api_version=str(doc.get("api_version", "")),
            channel=str(doc.get("channel", "")),
            limit_requests=int(doc.get("limit_requests", 0)),
            limit_period_seconds=int(doc.get("limit_period_seconds", 0)),
            ttl_seconds=int(doc.get("ttl_seconds", HOUR_S)),
            reason=str(doc.get("reason", "")),
        )


@dataclass(slots=True)
class Suggestion:
    id: str
    class_name: str
    concerns: str  # "subscription", "application" or "api"
    action: str
    summary: str
    expected_effect: str
    evidence: dict[str, Any]
    application_id: str = ""
    application: str = ""
    owner: str = ""
    api: str = ""
    api_version: str = ""
    channel: str = ""
    owner_note: str = ""
    directive: DirectiveSpec | None = None
    wso2: AdminRequest | None = None
    refused_share: float = 0.0
    auto_approval: str = ""
    auto_eligible: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.id, "class": self.class_name, "concerns": self.concerns}
        if self.concerns in ("subscription", "application"):
            doc["application_id"] = self.application_id
            doc["application"] = self.application
            doc["owner"] = self.owner
        if self.concerns in ("subscription", "api"):
            doc["api"] = self.api
            doc["api_version"] = self.api_version
        if self.channel:
            doc["channel"] = self.channel
        doc |= {
            "action": self.action,
            "summary": self.summary,
            "evidence": self.evidence,
            "expected_effect": self.expected_effect,
            "owner_note": self.owner_note,
            "directive": self.directive.to_json() if self.directive else None,
            "wso2": self.wso2.to_json() if self.wso2 else None,
            "refused_share": round(self.refused_share, 4),
            "auto_approval": self.auto_approval,
        }
        return doc

    @staticmethod
    def from_json(doc: dict[str, Any]) -> Suggestion:
        return Suggestion(
            id=str(doc["id"]),
            class_name=str(doc["class"]),
            concerns=str(doc["concerns"]),
            action=str(doc["action"]),
            summary=str(doc.get("summary", "")),
            expected_effect=str(doc.get("expected_effect", "")),
            evidence=dict(doc.get("evidence") or {}),
            application_id=str(doc.get("application_id", "")),
            application=str(doc.get("application", "")),
            owner=str(doc.get("owner", "")),
            api=str(doc.get("api", "")),
            api_version=str(doc.get("api_version", "")),
            channel=str(doc.get("channel", "")),
            owner_note=str(doc.get("owner_note", "")),
            directive=DirectiveSpec.from_json(doc["directive"]) if doc.get("directive") else None,
            wso2=AdminRequest.from_json(doc["wso2"]) if doc.get("wso2") else None,
            refused_share=float(doc.get("refused_share", 0.0)),
            auto_approval=str(doc.get("auto_approval", "")),
        )

    @property
    def who(self) -> str:
        app = self.application or self.application_id
        if self.concerns == "api":
            return f"API {self.api} {self.api_version}"
        if self.concerns == "application":
            return f"application {app}"
        return f"{app} on {self.api} {self.api_version}"


def suggestion_id(*parts: object) -> str:
    h = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return f"sg-{h[:12]}"


def _pct(x: float) -> str:
    return f"{x:.1%}" if x < 0.1 else f"{x:.0%}"


def _n(x: float) -> str:
    return f"{x:,.0f}"


@dataclass(slots=True)
class _Row:
    """What sizing needs of one subscription row, read from the arrays."""

    hist: np.ndarray
    max_per_slot: int
    requests: int
    last_seen: int
    first: dict[str, int]  # class -> first time of its current episode
    context: str
    profile: sizing.RateProfile


def _rows(state: State, slot_s: float) -> dict[tuple[str, str, str], _Row]:
    s = state.sub_i64
    out: dict[tuple[str, str, str], _Row] = {}
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
        out[key] = _Row(
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


class _Builder:
    def __init__(self, state: State, now: int, config: PolicyConfig) -> None:
        self.state = state
        self.now = now
        self.config = config
        self.slot_s = sizing.slot_seconds(state.thresholds.short_window_seconds)
        self.rows = _rows(state, self.slot_s)
        self.apis = _api_rows(state)
        self.out: list[Suggestion] = []

    # ---- helpers ----
    def base_rate(self, p: sizing.RateProfile) -> tuple[float, str]:
        if p.minutes >= MIN_MINUTES:
            return p.p99, f"p99 of {p.minutes:,} minutes with traffic"
        return p.max, f"the busiest minute (only {p.minutes} minutes with traffic)"

    def per_slot(self, per_minute: float) -> float:
        return per_minute * self.slot_s / 60.0

    def add(self, s: Suggestion) -> None:
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
                f"would refuse {_pct(s.refused_share)} of its requests, more than "
                f"auto_approve_max_share {_pct(c.auto_approve_max_share)}"
            )
        else:
            s.auto_eligible = True
            s.auto_approval = (
                f"auto-approved: shadow for {c.auto_approve_shadow_seconds:g} s, then enforce "
                f"if it refuses at most {_pct(c.auto_approve_max_share)}; TTL "
                f"{min(c.auto_approve_ttl_seconds, s.directive.ttl_seconds):g} s"
            )

    # ---- subscriptions ----
    def subscription(self, v: views.SubscriptionView) -> None:
        key = (v.application_id, v.api, v.api_version)
        row = self.rows.get(key)
        if row is None:  # pragma: no cover - views and rows come from the same state
            return
        classes = set(v.classes)
        common: _Who = {
            "application_id": v.application_id,
            "application": v.application,
            "owner": v.owner,
            "api": v.api,
            "api_version": v.api_version,
        }
        if classes & {"growing", "throttle_hitter"}:
            self.tier(v, row, common)
        if "retry_storm" in classes:
            self.temporary_limit(v, row, common, "retry_storm")
        if "redundant" in classes:
            self.temporary_limit(v, row, common, "redundant")
        if "error_prone" in classes:
            ev = v.evidence.get("error_prone", {})
            self.add(
                Suggestion(
                    id=suggestion_id("error_prone", *key, row.first["error_prone"]),
                    class_name="error_prone",
                    concerns="subscription",
                    action="contact_owner",
                    summary=(
                        f"{v.application or v.application_id} on {v.api} {v.api_version}: "
                        f"{_pct(float(ev.get('share', 0)))} client errors — tell the owner"
                    ),
                    expected_effect="none on traffic: no limit (error loops are the client's)",
                    owner_note=(
                        f"{_pct(float(ev.get('share', 0)))} of its requests in the last "
                        f"{float(ev.get('window_seconds', 3600)) / 60:g} minutes are 4xx client "
                        f"errors (not 429): {ev.get('client_errors', 0)} of "
                        f"{ev.get('requests', 0)}. Check what the client sends (credentials, "
                        "parameters, resource paths) instead of repeating it."
                    ),
                    evidence={"error_prone": ev},
                    **common,
                )
            )

    def tier(self, v: views.SubscriptionView, row: _Row, common: _Who) -> None:
        primary = "throttle_hitter" if "throttle_hitter" in v.classes else "growing"
        p = row.profile
        base, basis = self.base_rate(p)
        grow = v.evidence.get("growing", {}) if "growing" in v.classes else {}
        ratio = grow.get("ratio")
        weekly = float(ratio) if isinstance(ratio, int | float) and math.isfinite(ratio) else 1.0
        factor = max(weekly, 1.0) if primary == "growing" or grow else 1.0
        size = sizing.nice_ceil(base * factor * self.config.headroom)
        tier = self.config.tier(v.tier)
        limit = tier.per_minute if tier else None
        evidence: dict[str, Any] = {
            c: v.evidence[c] for c in ("throttle_hitter", "growing") if c in v.evidence
        }
        evidence["rate"] = p.to_json()
        evidence["sizing"] = {
            "basis": basis,
            "base_per_minute": round(base, 1),
            "weekly_growth": round(factor, 3),
            "headroom": self.config.headroom,
            "suggested_per_minute": size,
        }
        evidence["tier"] = v.tier or None
        forecast = ""
        if grow:
            if not (isinstance(ratio, int | float) and math.isfinite(ratio)):
                forecast = "new traffic this week: no earlier week to compare"
            elif tier is None:
                forecast = (
                    f"tier {v.tier!r} is not in tier_limits: no forecast"
                    if v.tier
                    else "tier unknown (the handler or the inventory names it): no forecast"
                )
            elif limit is None:
                forecast = f"{tier.describe()}: no tier limit to reach"
            else:
                days = sizing.days_to_limit(base, limit, weekly)
                if days is None:
                    forecast = "not growing fast enough for a forecast"
                elif days == 0:
                    forecast = f"already at its tier limit ({tier.describe()})"
                else:
                    forecast = (
                        f"reaches its tier limit ({tier.describe()}) in {math.ceil(days)} days"
                    )
                evidence["forecast_days"] = None if days is None else math.ceil(days)
            evidence["forecast"] = forecast
        ident = (v.application_id, v.api, v.api_version)
        sid = suggestion_id("tier", *ident, row.first[primary])
        who = f"{v.application or v.application_id} on {v.api} {v.api_version}"
        if primary == "throttle_hitter" and limit is not None and size <= limit:
            th = v.evidence.get("throttle_hitter", {})
            self.add(
                Suggestion(
                    id=sid,
                    class_name=primary,
                    concerns="subscription",
                    action="contact_owner",
                    summary=(
                        f"{who}: throttled while its busiest minutes stay within "
                        f"{tier.describe() if tier else v.tier} — the limit it hits is elsewhere"
                    ),
                    expected_effect=(
                        "none from a bigger subscription tier: p99 "
                        f"{_n(base)}/min x {self.config.headroom:g} = {_n(size)}/min fits the "
                        "current tier"
                    ),
                    owner_note=(
                        f"{th.get('throttled', 0)} throttled responses in one hour while its "
                        f"busiest minutes ({_n(p.max)}/min) stay below its tier: the limit is "
                        "elsewhere (application tier, API or resource limit, burst control). "
                        "The WSO2 error code of the 429s says which (900800-900808)."
                    ),
                    evidence=evidence,
                    **common,
                )
            )
            return
        name = wso2.policy_name("Vigie", f"{size}PerMin")
        desc = (
            f"Suggested by vigie for {who}: {basis} = {_n(base)}/min"
            + (f", growing x{weekly:.2f} a week" if grow else "")
            + f", headroom x{self.config.headroom:g}."
        )
        req = wso2.subscription_policy(name, size, desc)
        if primary == "growing":
            effect = f"room until {_n(size)}/min ({forecast})" if forecast else f"{_n(size)}/min"
        else:
            th = v.evidence.get("throttle_hitter", {})
            effect = (
                f"the {th.get('throttled', 0)} throttled responses an hour should stop: "
                f"{_n(size)}/min is above its p99 ({_n(p.p99)}/min) and busiest minute "
                f"({_n(p.max)}/min)"
            )
        self.add(
            Suggestion(
                id=sid,
                class_name=primary,
                concerns="subscription",
                action="subscription_policy",
                summary=f"{who}: subscription policy {_n(size)}/min"
                + (f" — {forecast}" if forecast else ""),
                expected_effect=effect,
                owner_note="",
                evidence=evidence,
                wso2=req,
                extra={"size": size, "base": base, "episode": row.first[primary]},
                **common,
            )
        )

    def temporary_limit(
        self, v: views.SubscriptionView, row: _Row, common: _Who, cname: str
    ) -> None:
        ev = v.evidence.get(cname, {})
        share = float(ev.get("share", 0.0))
        p = row.profile
        window_min = float(ev.get("window_seconds", 300)) / 60
        wasted = int(ev.get("retries" if cname == "retry_storm" else "repeated_reads", 0))
        requests = int(ev.get("requests", 0))
        # what the client needs: its requests in the class's window that are not retries /
        # repeated reads, per minute
        base = max((requests - wasted) / max(window_min, 1.0), 1.0)
        size = sizing.nice_ceil(base * self.config.headroom)
        refused = sizing.refused_share(row.hist, self.per_slot(size), row.max_per_slot)
        who = f"{v.application or v.application_id} on {v.api} {v.api_version}"
        if cname == "retry_storm":
            gap_ms = float(ev.get("retry_gap_seconds", 2)) * 1000
            note = (
                f"Your client retries within {gap_ms:,.0f} ms after a 5xx or throttled (429) "
                f"response: {ev.get('retries', 0)} retries among {ev.get('requests', 0)} "
                f"requests in {window_min:g} minutes ({_pct(share)}). Back off exponentially "
                "with jitter, honour Retry-After and cap the retries."
            )
            what = f"retry storm ({_pct(share)} retries)"
        else:
            per_min = float(ev.get("repeated_reads", 0)) / max(window_min, 1.0)
            gap = float(ev.get("repeat_gap_seconds", 10))
            note = (
                f"Your client repeats identical successful reads within {gap:g} s: "
                f"{ev.get('repeated_reads', 0)} of {ev.get('successful_reads', 0)} successful "
                f"GET/HEAD in {window_min:g} minutes ({_pct(share)}), ~{per_min:,.0f} identical "
                "reads per minute. Cache the responses (Cache-Control, ETag) instead."
            )
            what = f"repeated identical reads ({_pct(share)})"
        ttl = TTL_SECONDS[cname]
        spec = DirectiveSpec(
            action="LIMIT",
            application_id=v.application_id,
            api_name=v.api,
            api_version=v.api_version,
            limit_requests=size,
            limit_period_seconds=60,
            ttl_seconds=ttl,
            reason=f"vigie: {cname} — temporary limit {size}/min",
        )
        evidence = {
            cname: ev,
            "rate": p.to_json(),
            "sizing": {
                "basis": (
                    f"requests that are not {'retries' if cname == 'retry_storm' else 'repeats'}"
                    f" in the {window_min:g}-minute window, per minute, x headroom"
                ),
                "base_per_minute": round(base, 1),
                "headroom": self.config.headroom,
                "limit_per_minute": size,
            },
        }
        self.add(
            Suggestion(
                id=suggestion_id(cname, v.application_id, v.api, v.api_version, row.first[cname]),
                class_name=cname,
                concerns="subscription",
                action="temporary_limit",
                summary=f"{who}: {what} — limit to {_n(size)}/min for {ttl // HOUR_S} h",
                expected_effect=(
                    f"would refuse ~{_pct(refused)} of its requests (estimated from its "
                    f"per-minute distribution: p50 {_n(p.p50)}, p99 {_n(p.p99)}, max "
                    f"{_n(p.max)}/min); the directive expires after {ttl // HOUR_S} h"
                ),
                owner_note=note,
                evidence=evidence,
                directive=spec,
                refused_share=refused,
                **common,
            )
        )

    def dormant(self, subs: list[views.SubscriptionView]) -> None:
        by_app: dict[str, list[views.SubscriptionView]] = defaultdict(list)
        for v in subs:
            by_app[v.application_id].append(v)
        for app_id, items in sorted(by_app.items()):
            dormant = [v for v in items if "dormant" in v.classes]
            if not dormant:
                continue
            if len(dormant) == len(items) and len(items) > 1:
                self.dormant_application(app_id, dormant)
                continue
            for v in dormant:
                row = self.rows[(v.application_id, v.api, v.api_version)]
                ev = v.evidence.get("dormant", {})
                days = ev.get("days_without_requests")
                quiet = "never called" if days is None else f"no request for {days:g} days"
                spec = DirectiveSpec(
                    action="BLOCK",
                    application_id=v.application_id,
                    api_name=v.api,
                    api_version=v.api_version,
                    ttl_seconds=TTL_SECONDS["dormant"],
                    reason="vigie: dormant subscription revoked",
                )
                self.add(
                    Suggestion(
                        id=suggestion_id("dormant", app_id, v.api, v.api_version, row.last_seen),
                        class_name="dormant",
                        concerns="subscription",
                        action="revoke",
                        summary=(
                            f"{v.application or app_id} on {v.api} {v.api_version}: {quiet} — "
                            "revoke the subscription"
                        ),
                        expected_effect=(
                            "refuses nothing today (no traffic); an unused credential path is "
                            "closed. The directive blocks it for 30 days; remove the "
                            "subscription in WSO2 to make it permanent"
                        ),
                        owner_note=(
                            f"The subscription of {v.application or app_id} to {v.api} "
                            f"{v.api_version} is unused ({quiet}). Unsubscribe it in the "
                            "Developer Portal if it is not needed."
                        ),
                        evidence={"dormant": ev, "tier": v.tier or None},
                        directive=spec,
                        refused_share=0.0,
                        application_id=app_id,
                        application=v.application,
                        owner=v.owner,
                        api=v.api,
                        api_version=v.api_version,
                    )
                )

    def dormant_application(self, app_id: str, items: list[views.SubscriptionView]) -> None:
        v0 = items[0]
        name, owner = v0.application, v0.owner
        last = max(self.rows[(v.application_id, v.api, v.api_version)].last_seen for v in items)
        req: AdminRequest | None = None
        missing = ""
        try:
            req = wso2.deny_application(owner, name)
        except wso2.PayloadError:
            missing = " (no WSO2 deny policy: the application's owner and name are unknown)"
        apis = sorted(f"{v.api} {v.api_version}" for v in items)
        spec = DirectiveSpec(
            action="BLOCK",
            application_id=app_id,
            ttl_seconds=TTL_SECONDS["dormant"],
            reason="vigie: dormant application revoked",
        )
        self.add(
            Suggestion(
                id=suggestion_id("dormant-application", app_id, last),
                class_name="dormant",
                concerns="application",
                action="revoke",
                summary=(
                    f"application {name or app_id}: none of its {len(items)} subscriptions is "
                    "used — deny the application" + missing
                ),
                expected_effect=(
                    "refuses nothing today (no traffic on any subscription); a WSO2 deny "
                    "policy on the application closes every path at once"
                ),
                owner_note=(
                    f"Application {name or app_id} has not called any of its APIs "
                    f"({', '.join(apis)}). Delete it if it is not needed."
                ),
                evidence={
                    "dormant": {
                        "subscriptions": [
                            {"api": v.api, "api_version": v.api_version} | v.evidence["dormant"]
                            for v in items
                        ]
                    }
                },
                directive=spec,
                wso2=req,
                application_id=app_id,
                application=name,
                owner=owner,
            )
        )

    def wrong_channel(self, subs: list[views.SubscriptionView]) -> None:
        groups: dict[tuple[str, str], list[views.SubscriptionView]] = defaultdict(list)
        for v in subs:
            if "wrong_channel" in v.classes:
                ch = str(v.evidence["wrong_channel"].get("channel", ""))
                groups[(v.application_id, ch)].append(v)
        for (app_id, channel), items in sorted(groups.items()):
            v0 = items[0]
            first = min(self.rows[(v.application_id, v.api, v.api_version)].first["wrong_channel"]
                        for v in items)  # fmt: skip
            evs = [v.evidence["wrong_channel"] for v in items]
            requests = sum(int(e.get("requests", 0)) for e in evs)
            total = sum(self.rows[(v.application_id, v.api, v.api_version)].requests for v in items)
            share = max(float(e.get("share", 0.0)) for e in evs)
            expected = str(evs[0].get("expected_channel", ""))
            spec = DirectiveSpec(
                action="BLOCK",
                application_id=app_id,
                channel=channel,
                ttl_seconds=TTL_SECONDS["wrong_channel"],
                reason=f"vigie: wrong channel {channel} (expected {expected})",
            )
            self.add(
                Suggestion(
                    id=suggestion_id("wrong_channel", app_id, channel, first),
                    class_name="wrong_channel",
                    concerns="application",
                    channel=channel,
                    action="block_channel",
                    summary=(
                        f"application {v0.application or app_id} calls through channel "
                        f"{channel} (expected {expected}) — block it there only"
                    ),
                    expected_effect=(
                        f"refuses its {requests:,} requests a week through {channel} "
                        f"(~{_pct(share)} of its traffic); {expected} is untouched"
                    ),
                    owner_note=(
                        f"Application {v0.application or app_id} sends {requests:,} requests in "
                        f"7 days through the {channel} channel; its channel is {expected}. "
                        "Point it at the right gateway."
                    ),
                    evidence={
                        "wrong_channel": evs[0] if len(evs) == 1 else evs,
                        "requests_all_time": total,
                    },
                    directive=spec,
                    refused_share=share,
                    application_id=app_id,
                    application=v0.application,
                    owner=v0.owner,
                )
            )

    def application_policies(self, subs: list[views.SubscriptionView]) -> None:
        by_app: dict[str, list[views.SubscriptionView]] = defaultdict(list)
        for v in subs:
            if set(v.classes) & {"growing", "throttle_hitter"}:
                by_app[v.application_id].append(v)
        for app_id, items in sorted(by_app.items()):
            if len(items) < 2:
                continue
            total = 0.0
            parts = []
            first = []
            for v in items:
                row = self.rows[(v.application_id, v.api, v.api_version)]
                base, _ = self.base_rate(row.profile)
                ratio = v.evidence.get("growing", {}).get("ratio")
                f = float(ratio) if isinstance(ratio, int | float) and ratio > 1 else 1.0
                total += base * f
                parts.append({"api": v.api, "api_version": v.api_version, "per_minute": base})
                first.append(row.first["throttle_hitter" if "throttle_hitter" in v.classes
                                        else "growing"])  # fmt: skip
            size = sizing.nice_ceil(total * self.config.headroom)
            v0 = items[0]
            name = wso2.policy_name("Vigie", "App", f"{size}PerMin")
            req = wso2.application_policy(
                name,
                size,
                f"Suggested by vigie for application {v0.application or app_id}: the sum of "
                f"its {len(items)} busy subscriptions' p99 = {_n(total)}/min, headroom "
                f"x{self.config.headroom:g}.",
            )
            self.add(
                Suggestion(
                    id=suggestion_id("application_policy", app_id, min(first)),
                    class_name="throttle_hitter"
                    if any("throttle_hitter" in v.classes for v in items)
                    else "growing",
                    concerns="application",
                    action="application_policy",
                    summary=(
                        f"application {v0.application or app_id}: {len(items)} subscriptions "
                        f"grow or hit their limits — application policy {_n(size)}/min"
                    ),
                    expected_effect=(
                        f"room for {_n(size)}/min across its APIs (sum of p99s {_n(total)}/min)"
                    ),
                    evidence={"subscriptions": parts, "headroom": self.config.headroom},
                    wso2=req,
                    application_id=app_id,
                    application=v0.application,
                    owner=v0.owner,
                )
            )

    # ---- APIs ----
    def api(self, a: views.ApiView, subs: list[views.SubscriptionView]) -> None:
        context, last_seen = self.apis.get((a.api, a.api_version), ("", 0))
        if "retired" in a.classes:
            ev = a.evidence.get("retired", {})
            days = ev.get("days_without_requests")
            quiet = "never called" if days is None else f"no request for {days:g} days"
            req: AdminRequest | None = None
            missing = ""
            try:
                req = wso2.deny_api(context or a.context)
            except wso2.PayloadError:
                missing = " (no WSO2 deny policy: the API's context is unknown)"
            spec = DirectiveSpec(
                action="BLOCK",
                api_name=a.api,
                api_version=a.api_version,
                ttl_seconds=TTL_SECONDS["retired"],
                reason="vigie: retired API denied",
            )
            self.add(
                Suggestion(
                    id=suggestion_id("retired", a.api, a.api_version, last_seen),
                    class_name="retired",
                    concerns="api",
                    action="revoke",
                    summary=f"API {a.api} {a.api_version}: {quiet} — deny it" + missing,
                    expected_effect=(
                        "refuses nothing today (no traffic); a WSO2 deny policy on its context "
                        "closes it until it is retired in the Publisher"
                    ),
                    evidence={"retired": ev, "context": context or None},
                    directive=spec,
                    wso2=req,
                    api=a.api,
                    api_version=a.api_version,
                )
            )
        if "growing" in a.classes:
            ev = a.evidence.get("growing", {})
            ratio = ev.get("ratio")
            weekly = float(ratio) if isinstance(ratio, int | float) and ratio > 1 else 1.0
            trend = f"grows x{weekly:.2f} a week" if weekly > 1 else "is new this week"
            members = [v for v in subs if (v.api, v.api_version) == (a.api, a.api_version)]
            total = 0.0
            for v in members:
                row = self.rows[(v.application_id, v.api, v.api_version)]
                total += self.base_rate(row.profile)[0]
            if total <= 0:
                return
            size = sizing.nice_ceil(total * weekly * self.config.headroom)
            name = wso2.policy_name("Vigie", a.api, a.api_version, f"{size}PerMin")
            req = wso2.advanced_policy(
                name,
                size,
                f"Suggested by vigie for API {a.api} {a.api_version}: sum of its subscriptions' "
                f"p99 = {_n(total)}/min, {trend}, headroom "
                f"x{self.config.headroom:g}. Attach it to the API as its API-level limit.",
            )
            self.add(
                Suggestion(
                    id=suggestion_id("api-growing", a.api, a.api_version),
                    class_name="growing",
                    concerns="api",
                    action="advanced_policy",
                    summary=(
                        f"API {a.api} {a.api_version} {trend} — API-level "
                        f"limit {_n(size)}/min to protect its backend"
                    ),
                    expected_effect=(
                        f"caps the API at {_n(size)}/min, above one more week of growth "
                        f"({_n(total * weekly)}/min)"
                        if weekly > 1
                        else f"caps the API at {_n(size)}/min, {self.config.headroom:g} x the "
                        f"sum of its subscriptions' p99 ({_n(total)}/min)"
                    ),
                    evidence={
                        "growing": ev,
                        "subscriptions_p99_sum_per_minute": round(total, 1),
                        "headroom": self.config.headroom,
                    },
                    wso2=req,
                    api=a.api,
                    api_version=a.api_version,
                )
            )


def suggest(state: State, now: int | None, config: PolicyConfig | None = None) -> list[Suggestion]:
    """Every suggestion the state supports at ``now`` (default: the latest event time)."""
    now = state.now_us if now is None else now
    b = _Builder(state, now, config or PolicyConfig())
    subs = views.subscriptions(state, now)
    for v in subs:
        b.subscription(v)
    b.application_policies(subs)
    b.dormant(subs)
    b.wrong_channel(subs)
    for a in views.apis(state, now):
        b.api(a, subs)
    seen: set[str] = set()
    out: list[Suggestion] = []
    for s in b.out:
        if s.id in seen:  # pragma: no cover - ids are distinct by construction
            s = replace(s, id=suggestion_id(s.id, len(out)))
        seen.add(s.id)
        out.append(s)
    return out
