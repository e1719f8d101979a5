"""dormant and retired: revoke what nobody uses (a BLOCK directive with a TTL, and the WSO2
change that makes it permanent).

- a dormant subscription: block it, remove the subscription in WSO2;
- an application none of whose (two or more) subscriptions is used: deny the application;
- a retired API: deny its context.
"""

from __future__ import annotations

from collections import defaultdict

from vigie.classify import views
from vigie.policy import wso2
from vigie.policy.families._context import Context, row_key
from vigie.policy.model import TTL_SECONDS, DirectiveSpec, Suggestion, suggestion_id
from vigie.policy.wso2 import AdminRequest
from vigie.wire import tenants


def subscriptions(ctx: Context, subs: list[views.SubscriptionView]) -> None:
    """Revoke each dormant subscription, or deny its application when none of them is used."""
    by_app: dict[str, list[views.SubscriptionView]] = defaultdict(list)
    for v in subs:
        by_app[v.application_id].append(v)
    for app_id, items in sorted(by_app.items()):
        dormant = [v for v in items if "dormant" in v.classes]
        if not dormant:
            continue
        if len(dormant) == len(items) and len(items) > 1:
            _application(ctx, app_id, dormant)
            continue
        for v in dormant:
            row = ctx.rows[row_key(v)]
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
            ctx.add(
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


def _application(ctx: Context, app_id: str, items: list[views.SubscriptionView]) -> None:
    """Deny an application whose subscriptions (``items``) are all dormant."""
    v0 = items[0]
    name, owner = v0.application, v0.owner
    last = max(ctx.rows[row_key(v)].last_seen for v in items)
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
    ctx.add(
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


def api(ctx: Context, a: views.ApiView) -> None:
    """Deny a retired API."""
    keyed = tenants.keyed_name(a.tenant, a.api)  # ctx.apis is keyed by tenant x name x version
    context, last_seen = ctx.apis.get((keyed, a.api_version), ("", 0))
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
    ctx.add(
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
