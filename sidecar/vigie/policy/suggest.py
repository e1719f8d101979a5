"""Suggestions: what vigie proposes to do about each class it sees, with evidence and effect.

``suggest(state, now, config)`` is a pure function of the state (the live sidecar and
``vigie replay`` share it). Each suggestion has a stable id derived from what it concerns, its
class and the episode it answers, so recomputing the suggestions finds the same ids again and
their lifecycle (kept by ``SuggestionBook``) carries over.

| class | action | directive | WSO2 payload |
|---|---|---|---|
| growing / throttle_hitter (subscription) | subscription_policy | — | SubscriptionThrottlePolicy |
| throttle_hitter, WSO2 code 900803 | application_policy | — | ApplicationThrottlePolicy |
| throttle_hitter, code 900807 | subscription_policy (burst) | — | SubscriptionThrottlePolicy |
| throttle_hitter, code 900802 / 900800 | advanced_policy | — | AdvancedThrottlePolicy |
| throttle_hitter, code 900806 | contact_owner (custom rule) | — | — (CustomRule named) |
| growing within its tier (or one that holds it) | subscription_tier | — | — (the next tier up) |
| the same on >= 2 subscriptions of one app | application_policy | — | ApplicationThrottlePolicy |
| growing (API) | advanced_policy | — | AdvancedThrottlePolicy |
| retry_storm, redundant | temporary_limit | LIMIT, TTL | — |
| dormant subscription | revoke | BLOCK, TTL | (remove the subscription) |
| dormant application (every subscription) | revoke | BLOCK, TTL | BlockingCondition APPLICATION |
| retired API | revoke | BLOCK, TTL | BlockingCondition API |
| wrong_channel | block_channel | BLOCK app x channel, TTL | — |
| error_prone, throttled below its tier | contact_owner | — | — |
| auth_failing client IP | deny_ip | — | BlockingCondition IP (none for a hashed IP) |
| traffic_anomaly surge (subscription) | temporary_limit (reviewed, never auto) | LIMIT, 1 h | — |
| traffic_anomaly drop, degraded, backend_down | contact_owner | — | — |

The model (``Suggestion``, ``DirectiveSpec``, ids and TTLs) lives in ``vigie.policy.model`` and
each family in ``vigie.policy.families``; this module runs them and is what callers import.
"""

from __future__ import annotations

from dataclasses import replace

from vigie.classify import security, views
from vigie.policy.codes import ThrottleCodes
from vigie.policy.families import (
    by_code,
    deny_ip,
    error_prone,
    health,
    revocations,
    temporary_limits,
    tiers,
    wrong_channel,
)
from vigie.policy.families._context import Context, Who, row_key
from vigie.policy.model import (
    ACTIONS,
    DAY_S,
    HOUR_S,
    TTL_SECONDS,
    DirectiveSpec,
    Suggestion,
    suggestion_id,
)
from vigie.settings.policy import PolicyConfig
from vigie.state.engine import State
from vigie.wire import tenants

__all__ = [
    "ACTIONS",
    "DAY_S",
    "HOUR_S",
    "TTL_SECONDS",
    "DirectiveSpec",
    "Suggestion",
    "suggest",
    "suggestion_id",
]


def _subscription(ctx: Context, v: views.SubscriptionView) -> None:
    """The suggestions of one subscription's classes, family by family."""
    # the rows are keyed by the API's keyed name (an API is tenant x name x version)
    row = ctx.rows.get(row_key(v))
    if row is None:  # pragma: no cover - views and rows come from the same state
        return
    classes = set(v.classes)
    common: Who = {
        "application_id": v.application_id,
        "application": v.application,
        "owner": v.owner,
        "api": v.api,
        "api_version": v.api_version,
    }
    sc = ctx.codes.of((v.application_id, v.api, v.api_version)) if ctx.codes else None
    if (
        "throttle_hitter" in classes
        and sc is not None
        and by_code.subscription(ctx, v, row, common, sc)
    ):
        pass  # the WSO2 throttle code named the policy
    elif classes & {"growing", "throttle_hitter"}:
        tiers.subscription(ctx, v, row, common, sc)
    if "retry_storm" in classes:
        temporary_limits.subscription(ctx, v, row, common, "retry_storm")
    if "redundant" in classes:
        temporary_limits.subscription(ctx, v, row, common, "redundant")
    if "error_prone" in classes:
        error_prone.subscription(ctx, v, row, common)
    if "traffic_anomaly" in classes:
        surging = v.evidence.get("traffic_anomaly", {}).get("direction") == "surge"
        (health.surge if surging else health.drop)(ctx, v, common)


def _in_tenant(ctx: Context, start: int, tenant: str, stop: int | None = None) -> None:
    """Suggestions ``ctx.out[start:stop]`` concern an API of ``tenant``: say so, and keep the
    ids of another tenant's apart (the super tenant's ids are those of before tenants)."""
    for k in range(start, len(ctx.out) if stop is None else stop):
        s = ctx.out[k]
        if tenants.canonical(tenant):
            s = replace(s, id=suggestion_id(s.id, tenants.canonical(tenant)))
        ctx.out[k] = replace(s, tenant=tenant)


def suggest(
    state: State,
    now: int | None,
    config: PolicyConfig | None = None,
    codes: ThrottleCodes | None = None,
) -> list[Suggestion]:
    """Every suggestion the state supports at ``now`` (default: the latest event time);
    ``codes``, the WSO2 throttle codes each subscription hit (``vigie.store.codes``), turn a
    throttle_hitter's advice to the policy its code names (``families.by_code``)."""
    now = state.now_us if now is None else now
    ctx = Context(state, now, config or PolicyConfig(), codes)
    subs = views.subscriptions(state, now)
    for v in subs:
        n = len(ctx.out)
        _subscription(ctx, v)
        _in_tenant(ctx, n, v.tenant)
    tiers.application(ctx, subs)
    n = len(ctx.out)
    revocations.subscriptions(ctx, subs)
    # a subscription's tenant is its API's: one application id lives in one tenant in WSO2
    tenant_of = {(v.application_id, v.api, v.api_version): v.tenant for v in subs}
    for k in range(n, len(ctx.out)):
        s = ctx.out[k]
        _in_tenant(ctx, k, tenant_of.get((s.application_id, s.api, s.api_version), ""), k + 1)
    wrong_channel.applications(ctx, subs)
    deny_ip.clients(ctx, security.clients(state, held_only=True))
    for a in views.apis(state, now):
        n = len(ctx.out)
        if "retired" in a.classes:
            revocations.api(ctx, a)
        if "growing" in a.classes and ("api", a.api, a.api_version) not in ctx.handled:
            tiers.api(ctx, a, subs)
        health.api(ctx, a)
        _in_tenant(ctx, n, a.tenant)
    seen: set[str] = set()
    out: list[Suggestion] = []
    for s in ctx.out:
        if s.id in seen:  # pragma: no cover - ids are distinct by construction
            s = replace(s, id=suggestion_id(s.id, len(out)))
        seen.add(s.id)
        out.append(s)
    return out
