"""growing and throttle_hitter: WSO2 throttling policies sized for the traffic.

- a subscription that grows or hits its limit: a subscription policy sized from its p99 (or its
  busiest minute), its weekly growth and the headroom, with a forecast of when it reaches its
  tier; a throttle_hitter whose busiest minutes fit its tier gets ``contact_owner`` instead (the
  limit it hits is elsewhere, named by WSO2's throttle code: ``THROTTLE_CODES``) — unless
  the store says its 429s carry 900804 (its subscription tier is the limit); the other codes
  are ``by_code``'s;
- a growing subscription is never proposed a limit below its tier: while that size fits its
  tier (or an existing tier holds it) the advice is the next tier up, ``subscription_tier``,
  with when it reaches its limit; an unlimited tier gets ``contact_owner`` (capacity);
- an application with two or more such subscriptions: one application policy for their sum;
- a growing API: an advanced (API-level) policy above one more week of growth.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from vigie.classify import views
from vigie.policy import sizing, wso2
from vigie.policy.codes import THROTTLE_CODES, SubCodes, code_guide, describe
from vigie.policy.families._context import Context, Row, Who, num, row_key
from vigie.policy.model import Suggestion, suggestion_id
from vigie.settings.policy import TierLimit


def _tier_above(tiers: list[TierLimit], floor: float, size: float) -> TierLimit | None:
    """The smallest limited tier above ``floor`` per minute that holds ``size``."""
    fit = [t for t in tiers if t.per_minute is not None and t.per_minute > floor
           and t.per_minute >= size]  # fmt: skip
    return min(fit, key=lambda t: t.per_minute or 0.0) if fit else None


__all__ = ["THROTTLE_CODES", "api", "application", "code_guide", "subscription"]


def subscription(
    ctx: Context, v: views.SubscriptionView, row: Row, common: Who, sc: SubCodes | None = None
) -> None:
    """A subscription policy for a growing or throttled subscription (or contact its owner);
    ``sc``: the throttle codes of its 429s, when the store has them."""
    primary = "throttle_hitter" if "throttle_hitter" in v.classes else "growing"
    code = sc.dominant() if sc is not None and primary == "throttle_hitter" else None
    p = row.profile
    base, basis = ctx.base_rate(p)
    grow = v.evidence.get("growing", {}) if "growing" in v.classes else {}
    ratio = grow.get("ratio")
    weekly = float(ratio) if isinstance(ratio, int | float) and math.isfinite(ratio) else 1.0
    factor = max(weekly, 1.0) if primary == "growing" or grow else 1.0
    size = sizing.nice_ceil(base * factor * ctx.config.headroom)
    tier = ctx.config.tier(v.tier)
    limit = tier.per_minute if tier else None
    evidence: dict[str, Any] = {
        c: v.evidence[c] for c in ("throttle_hitter", "growing") if c in v.evidence
    }
    evidence["rate"] = p.to_json()
    evidence["sizing"] = {
        "basis": basis,
        "base_per_minute": round(base, 1),
        "weekly_growth": round(factor, 3),
        "headroom": ctx.config.headroom,
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
                forecast = f"reaches its tier limit ({tier.describe()}) in {math.ceil(days)} days"
            evidence["forecast_days"] = None if days is None else math.ceil(days)
        evidence["forecast"] = forecast
    ident = (v.application_id, v.api, v.api_version)
    sid = suggestion_id("tier", *ident, row.first[primary])
    who = f"{v.application or v.application_id} on {v.api} {v.api_version}"
    if code is not None and sc is not None:
        evidence["throttle_code"] = {
            "code": code,
            "name": THROTTLE_CODES[code][0],
            "points_to": THROTTLE_CODES[code][1],
            "responses_by_code": {str(c): n for c, n in sorted(sc.codes.items())},
            "window": ctx.codes.window if ctx.codes else "",
        }
    if primary == "throttle_hitter" and limit is not None and size <= limit and code is None:
        th = v.evidence.get("throttle_hitter", {})
        ctx.add(
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
                    f"{num(base)}/min x {ctx.config.headroom:g} = {num(size)}/min fits the "
                    "current tier"
                ),
                owner_note=(
                    f"{th.get('throttled', 0)} throttled responses in one hour while its "
                    f"busiest minutes ({num(p.max)}/min) stay below its tier: the limit is "
                    "elsewhere; the WSO2 throttle code of its 429s names it: " + code_guide() + "."
                ),
                evidence=evidence,
                **common,
            )
        )
        return
    if primary == "growing" and tier is not None and (limit is None or size <= limit or
                                                      _tier_above([*ctx.config.tiers.values()],
                                                                  limit, size)):  # fmt: skip
        _next_tier(ctx, v, tier, size, forecast, evidence, sid, who, common)
        return
    name = wso2.policy_name("Vigie", f"{size}PerMin")
    desc = (
        f"Suggested by vigie for {who}: {basis} = {num(base)}/min"
        + (f", growing x{weekly:.2f} a week" if grow else "")
        + f", headroom x{ctx.config.headroom:g}."
    )
    req = wso2.subscription_policy(name, size, desc)
    if primary == "growing":
        effect = f"room until {num(size)}/min ({forecast})" if forecast else f"{num(size)}/min"
    else:
        th = v.evidence.get("throttle_hitter", {})
        effect = (
            f"the {th.get('throttled', 0)} throttled responses an hour should stop: "
            f"{num(size)}/min is above its p99 ({num(p.p99)}/min) and busiest minute "
            f"({num(p.max)}/min)"
        )
    ctx.add(
        Suggestion(
            id=sid,
            class_name=primary,
            concerns="subscription",
            action="subscription_policy",
            summary=f"{who}: subscription policy {num(size)}/min"
            + (f" — {forecast}" if forecast else "")
            + (
                f" — WSO2 refuses it below what tier_limits gives {tier.describe()}: its real "
                "tier is smaller, check tier_limits"
                if code == 900804 and tier is not None and limit is not None and size <= limit
                else ""
            ),
            expected_effect=effect,
            owner_note=(
                f"{sc.codes.get(code, 0) if sc else 0:,} of its throttled responses carry "
                f"WSO2 code {describe(code)}: the subscription's tier is the limit. Move the "
                "subscription to the suggested policy (Developer Portal → Subscriptions)."
                if code is not None
                else ""
            ),
            evidence=evidence,
            wso2=req,
            extra={"size": size, "base": base, "episode": row.first[primary]},
            **common,
        )
    )


def _next_tier(
    ctx: Context,
    v: views.SubscriptionView,
    tier: TierLimit,
    size: int,
    forecast: str,
    evidence: dict[str, Any],
    sid: str,
    who: str,
    common: Who,
) -> None:
    """A growing subscription: the next tier up that holds one more week of growth (never a
    limit below its tier), or capacity when its tier is unlimited."""
    limit = tier.per_minute
    nxt = None if limit is None else _tier_above([*ctx.config.tiers.values()], limit, size)
    when = f" — {forecast}" if forecast else ""
    if nxt is None:
        summary = (
            f"{who}: grows on {tier.describe()}{when} — plan the backend's capacity for "
            f"{num(size)}/min"
            if limit is None
            else f"{who}: grows past every tier{when} — "
            f"plan a tier above {tier.describe()} ({num(size)}/min)"
        )
        action, effect = "contact_owner", f"{num(size)}/min next week (one more week of growth)"
    else:
        summary = f"{who}: move it from {tier.describe()} to {nxt.describe()}{when}"
        action = "subscription_tier"
        effect = f"room until {nxt.describe()}: one more week of growth needs {num(size)}/min"
        evidence["next_tier"] = nxt.name
    ctx.add(
        Suggestion(
            id=sid,
            class_name="growing",
            concerns="subscription",
            action=action,
            summary=summary,
            expected_effect=effect,
            owner_note=(
                f"{v.application or v.application_id} is growing{when}. Its subscription to "
                f"{v.api} {v.api_version} stays on {tier.describe()} until you change the tier "
                "in the Developer Portal; vigie never proposes a limit below it."
            ),
            evidence=evidence,
            **common,
        )
    )


def application(ctx: Context, subs: list[views.SubscriptionView]) -> None:
    """An application policy for each application with two or more busy subscriptions."""
    by_app: dict[str, list[views.SubscriptionView]] = defaultdict(list)
    for v in subs:
        if set(v.classes) & {"growing", "throttle_hitter"}:
            by_app[v.application_id].append(v)
    for app_id, items in sorted(by_app.items()):
        if len(items) < 2 or ("application", app_id) in ctx.handled:
            continue
        total = 0.0
        parts = []
        first = []
        for v in items:
            row = ctx.rows[row_key(v)]
            base, _ = ctx.base_rate(row.profile)
            ratio = v.evidence.get("growing", {}).get("ratio")
            f = float(ratio) if isinstance(ratio, int | float) and ratio > 1 else 1.0
            total += base * f
            parts.append({"api": v.api, "api_version": v.api_version, "per_minute": base})
            first.append(row.first["throttle_hitter" if "throttle_hitter" in v.classes
                                    else "growing"])  # fmt: skip
        size = sizing.nice_ceil(total * ctx.config.headroom)
        v0 = items[0]
        name = wso2.policy_name("Vigie", "App", f"{size}PerMin")
        req = wso2.application_policy(
            name,
            size,
            f"Suggested by vigie for application {v0.application or app_id}: the sum of "
            f"its {len(items)} busy subscriptions' p99 = {num(total)}/min, headroom "
            f"x{ctx.config.headroom:g}.",
        )
        ctx.add(
            Suggestion(
                id=suggestion_id("application_policy", app_id, min(first)),
                class_name="throttle_hitter"
                if any("throttle_hitter" in v.classes for v in items)
                else "growing",
                concerns="application",
                action="application_policy",
                summary=(
                    f"application {v0.application or app_id}: {len(items)} subscriptions "
                    f"grow or hit their limits — application policy {num(size)}/min"
                ),
                expected_effect=(
                    f"room for {num(size)}/min across its APIs (sum of p99s {num(total)}/min)"
                ),
                evidence={"subscriptions": parts, "headroom": ctx.config.headroom},
                wso2=req,
                application_id=app_id,
                application=v0.application,
                owner=v0.owner,
            )
        )


def api(ctx: Context, a: views.ApiView, subs: list[views.SubscriptionView]) -> None:
    """An advanced policy for a growing API, from the sum of its subscriptions' rates."""
    ev = a.evidence.get("growing", {})
    ratio = ev.get("ratio")
    weekly = float(ratio) if isinstance(ratio, int | float) and ratio > 1 else 1.0
    trend = f"grows x{weekly:.2f} a week" if weekly > 1 else "is new this week"
    members = [v for v in subs if (v.api, v.api_version) == (a.api, a.api_version)]
    total = 0.0
    for v in members:
        row = ctx.rows[row_key(v)]
        total += ctx.base_rate(row.profile)[0]
    if total <= 0:
        return
    size = sizing.nice_ceil(total * weekly * ctx.config.headroom)
    name = wso2.policy_name("Vigie", a.api, a.api_version, f"{size}PerMin")
    req = wso2.advanced_policy(
        name,
        size,
        f"Suggested by vigie for API {a.api} {a.api_version}: sum of its subscriptions' "
        f"p99 = {num(total)}/min, {trend}, headroom "
        f"x{ctx.config.headroom:g}. Attach it to the API as its API-level limit.",
    )
    ctx.add(
        Suggestion(
            id=suggestion_id("api-growing", a.api, a.api_version),
            class_name="growing",
            concerns="api",
            action="advanced_policy",
            summary=(
                f"API {a.api} {a.api_version} {trend} — API-level "
                f"limit {num(size)}/min to protect its backend"
            ),
            expected_effect=(
                f"caps the API at {num(size)}/min, above one more week of growth "
                f"({num(total * weekly)}/min)"
                if weekly > 1
                else f"caps the API at {num(size)}/min, {ctx.config.headroom:g} x the "
                f"sum of its subscriptions' p99 ({num(total)}/min)"
            ),
            evidence={
                "growing": ev,
                "subscriptions_p99_sum_per_minute": round(total, 1),
                "headroom": ctx.config.headroom,
            },
            wso2=req,
            api=a.api,
            api_version=a.api_version,
        )
    )
