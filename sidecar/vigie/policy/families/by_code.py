"""throttle_hitter, by the WSO2 throttle code it hits: the policy WSO2 itself names.

The code most of a throttled subscription's 429s carry (``vigie.policy.codes``, read from the
store's rollups) says which limit it hits, so which policy to change:

| code | action | WSO2 payload |
|---|---|---|
| 900803 application limit | application_policy | ApplicationThrottlePolicy (subscriptions' sum) |
| 900804 subscription limit | (``tiers``: policy or next tier) | SubscriptionThrottlePolicy |
| 900807 subscription burst | subscription_policy | SubscriptionThrottlePolicy with burst control |
| 900802 resource limit | advanced_policy | AdvancedThrottlePolicy (resource's busiest minute) |
| 900800 API limit | advanced_policy | AdvancedThrottlePolicy (API's busiest minute) |
| 900806 custom policy | contact_owner | — (a CustomRule's Siddhi query is not vigie's to write) |

An application, API or resource gets one suggestion however many of its subscriptions hit it.
Without codes (no store, or no throttled response in the window) ``tiers`` decides alone.
"""

from __future__ import annotations

from typing import Any

from vigie.classify import views
from vigie.policy import codes as C
from vigie.policy import sizing, wso2
from vigie.policy.families._context import Context, Row, Who, num
from vigie.policy.model import Suggestion, suggestion_id
from vigie.wire import tenants

# the codes this module answers (900804 stays with ``tiers``)
HANDLED = frozenset({900800, 900802, 900803, 900806, 900807})


def _code_evidence(ctx: Context, v: views.SubscriptionView, sc: C.SubCodes, code: int) -> Any:
    name, where = C.THROTTLE_CODES[code]
    return {
        "code": code,
        "name": name,
        "points_to": where,
        "responses_by_code": {str(c): n for c, n in sorted(sc.codes.items())},
        "window": ctx.codes.window if ctx.codes else "",
        "throttle_hitter": v.evidence.get("throttle_hitter", {}),
    }


def _hits(sc: C.SubCodes, code: int) -> str:
    n = sc.codes.get(code, 0)
    total = sum(sc.codes.values())
    return f"{n:,} of its {total:,} throttled responses carry WSO2 code {C.describe(code)}"


def subscription(
    ctx: Context, v: views.SubscriptionView, row: Row, common: Who, sc: C.SubCodes
) -> bool:
    """The suggestion for a throttle_hitter by its dominant code; False: ``tiers`` decides."""
    code = sc.dominant()
    if code not in HANDLED:
        return False
    ev = {"throttle_code": _code_evidence(ctx, v, sc, code), "rate": row.profile.to_json()}
    who = f"{v.application or v.application_id} on {v.api} {v.api_version}"
    if code == 900803:
        _application(ctx, v, row, sc, ev)
    elif code == 900807:
        _burst(ctx, v, row, common, sc, ev, who)
    elif code == 900802:
        _resource(ctx, v, row, sc, ev, who)
    elif code == 900800:
        _api(ctx, v, row, sc, ev, who)
    else:
        _custom(ctx, v, row, common, sc, ev, who)
    return True


def _application(
    ctx: Context, v: views.SubscriptionView, row: Row, sc: C.SubCodes, ev: dict[str, Any]
) -> None:
    """900803: the application's own tier is the limit — one application policy sized from
    the sum of all its subscriptions' rates."""
    if ("application", v.application_id) in ctx.handled:
        return
    ctx.handled.add(("application", v.application_id))
    parts = []
    total = 0.0
    for (app, api, ver), r in sorted(ctx.rows.items()):
        if app != v.application_id or r.requests <= 0:
            continue
        base, basis = ctx.base_rate(r.profile)
        total += base
        parts.append({"api": tenants.split(api)[1], "api_version": ver,
                      "per_minute": round(base, 1), "basis": basis})  # fmt: skip
    size = sizing.nice_ceil(max(total, 1.0) * ctx.config.headroom)
    app = v.application or v.application_id
    req = wso2.application_policy(
        wso2.policy_name("Vigie", "App", f"{size}PerMin"),
        size,
        f"Suggested by vigie for application {app}: throttled with 900803 "
        f"(APPLICATION_LEVEL_LIMIT_EXCEEDED); the sum of its {len(parts)} subscriptions' "
        f"rates = {num(total)}/min, headroom x{ctx.config.headroom:g}.",
    )
    ev["subscriptions"] = parts
    ev["sizing"] = {"sum_per_minute": round(total, 1), "headroom": ctx.config.headroom,
                    "suggested_per_minute": size}  # fmt: skip
    ctx.add(
        Suggestion(
            id=suggestion_id("application_policy", v.application_id, row.first["throttle_hitter"]),
            class_name="throttle_hitter",
            concerns="application",
            action="application_policy",
            summary=(
                f"application {app}: throttled by its application tier (900803) — "
                f"application policy {num(size)}/min"
            ),
            expected_effect=(
                f"its 900803 responses should stop: {num(size)}/min is above the sum of its "
                f"subscriptions' rates ({num(total)}/min); its subscription tiers are not the "
                "limit and need no change"
            ),
            owner_note=(
                f"{_hits(sc, 900803)}: the limit is the application's own throttling tier, "
                "not its subscriptions. Assign the application the suggested application "
                "policy (Developer Portal → Applications → Edit → Shared Quota)."
            ),
            evidence=ev,
            wso2=req,
            application_id=v.application_id,
            application=v.application,
            owner=v.owner,
        )
    )


def _burst(
    ctx: Context,
    v: views.SubscriptionView,
    row: Row,
    common: Who,
    sc: C.SubCodes,
    ev: dict[str, Any],
    who: str,
) -> None:
    """900807: the tier's burst control (spike arrest) is the limit — a subscription policy
    with the same quota and burst control above its busiest minute."""
    p = row.profile
    tier = ctx.config.tier(v.tier)
    base, _ = ctx.base_rate(p)
    quota = (
        round(tier.per_minute)
        if tier is not None and tier.per_minute is not None
        else sizing.nice_ceil(base * ctx.config.headroom)
    )
    burst = sizing.nice_ceil(max(p.max, 1.0) * ctx.config.headroom)
    quota = max(quota, burst)
    req = wso2.subscription_policy(
        wso2.policy_name("Vigie", f"{quota}PerMin", f"Burst{burst}"),
        quota,
        f"Suggested by vigie for {who}: throttled with 900807 "
        f"(SUBSCRIPTION_BURST_LIMIT_EXCEEDED); busiest minute {num(p.max)}, headroom "
        f"x{ctx.config.headroom:g}; quota "
        + (f"kept at {tier.describe()}." if tier is not None else f"{num(quota)}/min."),
        burst_per_min=burst,
    )
    ev["sizing"] = {"busiest_minute": p.max, "headroom": ctx.config.headroom,
                    "burst_per_minute": burst, "quota_per_minute": quota}  # fmt: skip
    ev["tier"] = v.tier or None
    ctx.add(
        Suggestion(
            id=suggestion_id(
                "tier", v.application_id, v.api, v.api_version, row.first["throttle_hitter"]
            ),
            class_name="throttle_hitter",
            concerns="subscription",
            action="subscription_policy",
            summary=(
                f"{who}: throttled by its tier's burst control (900807) — burst "
                f"{num(burst)}/min on a {num(quota)}/min quota"
            ),
            expected_effect=(
                f"its 900807 responses should stop: a burst of {num(burst)}/min is above its "
                f"busiest minute ({num(p.max)}/min); the quota itself is not what it hits"
            ),
            owner_note=(
                f"{_hits(sc, 900807)}: its requests come in bursts above the tier's spike "
                "arrest while its quota is not reached. Spread the calls, or move the "
                "subscription to the suggested tier."
            ),
            evidence=ev,
            wso2=req,
            **common,
        )
    )


def _resource(
    ctx: Context,
    v: views.SubscriptionView,
    row: Row,
    sc: C.SubCodes,
    ev: dict[str, Any],
    who: str,
) -> None:
    """900802: a resource's advanced policy is the limit (it counts every consumer of the
    resource) — an advanced policy above the resource's busiest minute."""
    method, resource = sc.resource() or ("", "")
    key = ("resource", v.api, v.api_version, method, resource)
    if key in ctx.handled:
        return
    ctx.handled.add(key)
    peak = ctx.codes.resource_peak.get((v.api, v.api_version, method, resource), 0) if (
        ctx.codes) else 0  # fmt: skip
    basis = "the resource's busiest minute (all consumers)"
    if peak <= 0:
        peak, basis = round(row.profile.max), "the subscription's busiest minute"
    size = sizing.nice_ceil(peak * ctx.config.headroom)
    where = f"{method} {resource}".strip() or "the resource"
    req = wso2.advanced_policy(
        wso2.policy_name("Vigie", v.api, v.api_version, resource, f"{size}PerMin"),
        size,
        f"Suggested by vigie for {where} of API {v.api} {v.api_version}: throttled with "
        f"900802 (RESOURCE_LIMIT_EXCEEDED); {basis} = {num(peak)}, headroom "
        f"x{ctx.config.headroom:g}. Attach it to this resource (operation) in the Publisher.",
    )
    ev["resource"] = {"method": method, "resource": resource}
    ev["sizing"] = {"basis": basis, "per_minute": peak, "headroom": ctx.config.headroom,
                    "suggested_per_minute": size}  # fmt: skip
    ctx.add(
        Suggestion(
            id=suggestion_id("resource_policy", v.api, v.api_version, method, resource),
            class_name="throttle_hitter",
            concerns="api",
            action="advanced_policy",
            summary=(
                f"API {v.api} {v.api_version} {where}: the resource's limit throttles "
                f"{v.application or v.application_id} (900802) — resource policy "
                f"{num(size)}/min"
            ),
            expected_effect=(
                f"the resource's 900802 responses should stop: {num(size)}/min is above "
                f"{basis} ({num(peak)}/min); subscription and application tiers need no change"
            ),
            owner_note=(
                f"{_hits(sc, 900802)} on {where}: the limit is the resource's own advanced "
                f"policy, shared by every consumer of {where}. Attach the suggested advanced "
                "policy to the resource in the Publisher (Resources → operation rate limit)."
            ),
            evidence=ev | {"consumer": who},
            wso2=req,
            api=v.api,
            api_version=v.api_version,
        )
    )


def _api(
    ctx: Context,
    v: views.SubscriptionView,
    row: Row,
    sc: C.SubCodes,
    ev: dict[str, Any],
    who: str,
) -> None:
    """900800: the API's API-level (advanced) policy is the limit — one above the API's
    busiest minute, all consumers."""
    key = ("api", v.api, v.api_version)
    if key in ctx.handled:
        return
    ctx.handled.add(key)
    peak = ctx.codes.api_peak.get((v.api, v.api_version), 0) if ctx.codes else 0
    basis = "the API's busiest minute (all consumers)"
    if peak <= 0:  # no per-minute rollup: at most the sum of its consumers' busiest minutes
        mine = (tenants.keyed_name(v.tenant, v.api), v.api_version)
        peak = round(sum(r.profile.max for k, r in ctx.rows.items() if k[1:] == mine))
        basis = "the sum of its consumers' busiest minutes"
    size = sizing.nice_ceil(peak * ctx.config.headroom)
    req = wso2.advanced_policy(
        wso2.policy_name("Vigie", v.api, v.api_version, f"{size}PerMin"),
        size,
        f"Suggested by vigie for API {v.api} {v.api_version}: throttled with 900800 "
        f"(API_LIMIT_EXCEEDED); {basis} = {num(peak)}, headroom x{ctx.config.headroom:g}. "
        "Attach it to the API as its API-level limit.",
    )
    ev["sizing"] = {"basis": basis, "per_minute": peak, "headroom": ctx.config.headroom,
                    "suggested_per_minute": size}  # fmt: skip
    ctx.add(
        Suggestion(
            id=suggestion_id("api-limit", v.api, v.api_version),
            class_name="throttle_hitter",
            concerns="api",
            action="advanced_policy",
            summary=(
                f"API {v.api} {v.api_version}: its API-level limit throttles "
                f"{v.application or v.application_id} (900800) — API policy {num(size)}/min"
            ),
            expected_effect=(
                f"the API's 900800 responses should stop: {num(size)}/min is above {basis} "
                f"({num(peak)}/min), if its backend can take it"
            ),
            owner_note=(
                f"{_hits(sc, 900800)}: the limit is the API-level policy, shared by every "
                "consumer of the API. Raise it (attach the suggested advanced policy to the "
                "API in the Publisher) once the backend's capacity allows."
            ),
            evidence=ev | {"consumer": who},
            wso2=req,
            api=v.api,
            api_version=v.api_version,
        )
    )


def _custom(
    ctx: Context,
    v: views.SubscriptionView,
    row: Row,
    common: Who,
    sc: C.SubCodes,
    ev: dict[str, Any],
    who: str,
) -> None:
    """900806: a custom (Siddhi) policy is the limit — its rule is not vigie's to rewrite:
    name it, and the Admin API path where it is."""
    ev["wso2_policy_type"] = "CustomRule"
    ev["admin_path"] = wso2.ADMIN_BASE + "/throttling/policies/custom"
    ctx.add(
        Suggestion(
            id=suggestion_id(
                "custom", v.application_id, v.api, v.api_version, row.first["throttle_hitter"]
            ),
            class_name="throttle_hitter",
            concerns="subscription",
            action="contact_owner",
            summary=f"{who}: throttled by a custom policy (900806) — review the custom rule",
            expected_effect=(
                "none from a tier change: the custom policy's rule decides; its tiers are not "
                "what it hits"
            ),
            owner_note=(
                f"{_hits(sc, 900806)}: a custom throttling policy (a Siddhi rule, Admin "
                f"Portal → Rate Limiting Policies → Custom Policies; {ev['admin_path']}) "
                "refuses it. vigie's own LIMIT directives also answer 900806: check "
                "`vigie directives` for one on this consumer first."
            ),
            evidence=ev,
            **common,
        )
    )
