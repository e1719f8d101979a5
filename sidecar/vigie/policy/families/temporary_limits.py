"""retry_storm and redundant: a temporary limit (a LIMIT directive with a TTL) sized from the
requests the client needs, the retries or repeated reads left out.
"""

from __future__ import annotations

from vigie.classify import views
from vigie.policy import sizing
from vigie.policy.families._context import Context, Row, Who, num, pct
from vigie.policy.model import HOUR_S, TTL_SECONDS, DirectiveSpec, Suggestion, suggestion_id


def subscription(
    ctx: Context, v: views.SubscriptionView, row: Row, common: Who, cname: str
) -> None:
    """A temporary limit for a subscription in class ``cname`` (retry_storm or redundant)."""
    ev = v.evidence.get(cname, {})
    share = float(ev.get("share", 0.0))
    p = row.profile
    window_min = float(ev.get("window_seconds", 300)) / 60
    wasted = int(ev.get("retries" if cname == "retry_storm" else "repeated_reads", 0))
    requests = int(ev.get("requests", 0))
    # what the client needs: its requests in the class's window that are not retries /
    # repeated reads, per minute
    base = max((requests - wasted) / max(window_min, 1.0), 1.0)
    size = sizing.nice_ceil(base * ctx.config.headroom)
    refused = sizing.refused_share(row.hist, ctx.per_slot(size), row.max_per_slot)
    who = f"{v.application or v.application_id} on {v.api} {v.api_version}"
    if cname == "retry_storm":
        gap_ms = float(ev.get("retry_gap_seconds", 2)) * 1000
        note = (
            f"Your client retries within {gap_ms:,.0f} ms after a 5xx or throttled (429) "
            f"response: {ev.get('retries', 0)} retries among {ev.get('requests', 0)} "
            f"requests in {window_min:g} minutes ({pct(share)}). Back off exponentially "
            "with jitter, honour Retry-After and cap the retries."
        )
        what = f"retry storm ({pct(share)} retries)"
    else:
        per_min = float(ev.get("repeated_reads", 0)) / max(window_min, 1.0)
        gap = float(ev.get("repeat_gap_seconds", 10))
        note = (
            f"Your client repeats identical successful reads within {gap:g} s: "
            f"{ev.get('repeated_reads', 0)} of {ev.get('successful_reads', 0)} successful "
            f"GET/HEAD in {window_min:g} minutes ({pct(share)}), ~{per_min:,.0f} identical "
            "reads per minute. Cache the responses (Cache-Control, ETag) instead."
        )
        what = f"repeated identical reads ({pct(share)})"
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
            "headroom": ctx.config.headroom,
            "limit_per_minute": size,
        },
    }
    ctx.add(
        Suggestion(
            id=suggestion_id(cname, v.application_id, v.api, v.api_version, row.first[cname]),
            class_name=cname,
            concerns="subscription",
            action="temporary_limit",
            summary=f"{who}: {what} — limit to {num(size)}/min for {ttl // HOUR_S} h",
            expected_effect=(
                f"would refuse ~{pct(refused)} of its requests (estimated from its "
                f"per-minute distribution: p50 {num(p.p50)}, p99 {num(p.p99)}, max "
                f"{num(p.max)}/min); the directive expires after {ttl // HOUR_S} h"
            ),
            owner_note=note,
            evidence=evidence,
            directive=spec,
            refused_share=refused,
            **common,
        )
    )
