"""The health classes (``degraded``, ``backend_down``, ``traffic_anomaly``): what an operator can
do about each, never anything that refuses traffic without one.

| class | concerns | action | directive |
|---|---|---|---|
| backend_down | API | contact_owner (the backend's owner; WSO2 endpoint suspension advice) | — |
| degraded | API | contact_owner, naming the side the figures blame | — |
| traffic_anomaly surge | subscription | temporary_limit, sized on its usual band | LIMIT, 1 h |
| traffic_anomaly drop | subscription | contact_owner (its integration may be broken) | — |
| traffic_anomaly drop | API | contact_owner | — |

Why no directive for the API classes: refusing requests does not bring a backend back nor make
it faster, and every consumer of the API would be refused; what helps is someone fixing it and
the gateway failing fast meanwhile (its endpoint's timeout and suspension, configured in WSO2).
A surge's LIMIT awaits review: ``traffic_anomaly`` is not among the classes ``auto_approve``
accepts (``settings.policy.AUTO_APPROVABLE``), so it is never auto-approved — a consumer's
surge may be real business, and only an operator can tell. An API's surge is answered by its
consumers' (the one surging is named there).
"""

from __future__ import annotations

import math
from typing import Any, Final

from vigie.classify import views
from vigie.policy import sizing
from vigie.policy.families._context import Context, Who, num, pct
from vigie.policy.model import HOUR_S, DirectiveSpec, Suggestion, suggestion_id
from vigie.state import layout as L
from vigie.state.thresholds import API_HEALTH_CLASS_NAMES
from vigie.wire import tenants

SURGE_TTL_S: Final = HOUR_S  # a surge is judged over minutes: its limit lasts an hour
CONNECTION_CODES: Final = "101503 (connection failed), 101504 (timeout), 101505 (closed), 303001"


def _ms(x: Any) -> str:
    return f"{float(x):,.0f} ms" if x is not None else "n/a"


def _episode_first(v: views.SubscriptionView, cname: str) -> int:
    return max((e.first_us for e in v.episodes if e.class_name == cname), default=0)


def _api_first(ctx: Context, a: views.ApiView, cname: str) -> int:
    """When the API's current episode of ``cname`` began (its suggestion's id)."""
    st = ctx.state
    keyed = tenants.keyed_name(a.tenant, a.api)
    c = API_HEALTH_CLASS_NAMES.index(cname)
    for row in st.api_rows().tolist():
        name = st.string(int(st.api_i64[row, L.A_NAME]))
        if name == keyed and st.string(int(st.api_i64[row, L.A_VERSION])) == a.api_version:
            return st.baselines.api_record(row, c)[0]
    return 0  # pragma: no cover - views and rows come from the same state


def surge(ctx: Context, v: views.SubscriptionView, common: Who) -> None:
    """A reviewed temporary limit at the top of the subscription's usual band."""
    ev = v.evidence.get("traffic_anomaly", {})
    window_min = max(float(ev.get("window_seconds", 900)) / 60, 1.0)
    requests = int(ev.get("requests", 0))
    top = (float(ev.get("baseline_requests", 0)) + float(ev.get("band", 0))) / window_min
    size = sizing.nice_ceil(max(top, 1.0) * ctx.config.headroom)
    refused = max(0.0, 1.0 - size * window_min / requests) if requests else 0.0
    who = f"{v.application or v.application_id} on {v.api} {v.api_version}"
    usual = float(ev.get("baseline_requests", 0))
    factor = requests / usual if usual > 0 else math.inf
    errors = ev.get("server_error_share")
    err_note = (
        f" {pct(float(errors))} of them are 5xx (usually {pct(float(ev['baseline_error_share']))})."
        if errors is not None and ev.get("baseline_error_share") is not None
        else ""
    )
    spec = DirectiveSpec(
        action="LIMIT",
        application_id=v.application_id,
        api_name=v.api,
        api_version=v.api_version,
        limit_requests=size,
        limit_period_seconds=60,
        ttl_seconds=SURGE_TTL_S,
        reason=f"vigie: traffic_anomaly surge — temporary limit {size}/min (reviewed)",
    )
    ctx.add(
        Suggestion(
            id=suggestion_id(
                "traffic_anomaly",
                "surge",
                v.application_id,
                v.api,
                v.api_version,
                _episode_first(v, "traffic_anomaly"),
            ),
            class_name="traffic_anomaly",
            concerns="subscription",
            action="temporary_limit",
            summary=(
                f"{who}: surge, {num(requests)} requests in {window_min:g} min vs "
                f"~{num(usual)} usual for this hour (x{factor:,.1f}) — review a limit of "
                f"{num(size)}/min for 1 h"
            ),
            expected_effect=(
                f"would refuse ~{pct(refused)} of its requests at the surge's rate, none at "
                "its usual one; needs an operator's approval (never auto-approved: a surge "
                "may be real business)"
            ),
            owner_note=(
                f"Your application sent {num(requests)} requests in the last "
                f"{window_min:g} minutes where it usually sends ~{num(usual)} at this hour of "
                f"the week.{err_note} If this is expected (a campaign, a batch), tell the API "
                "team so the limit is not applied; if not, check for a loop or a retrying job."
            ),
            directive=spec,
            evidence={
                "traffic_anomaly": ev,
                "sizing": {
                    "basis": "the top of its usual band for this hour (baseline + k x spread)"
                    ", per minute, x headroom",
                    "base_per_minute": round(top, 1),
                    "headroom": ctx.config.headroom,
                    "limit_per_minute": size,
                },
            },
            refused_share=refused,
            **common,
        )
    )


def drop(ctx: Context, v: views.SubscriptionView, common: Who) -> None:
    """Tell the owner of a subscription whose traffic fell: its integration may be broken."""
    ev = v.evidence.get("traffic_anomaly", {})
    window_min = max(float(ev.get("window_seconds", 900)) / 60, 1.0)
    who = f"{v.application or v.application_id} on {v.api} {v.api_version}"
    ctx.add(
        Suggestion(
            id=suggestion_id(
                "traffic_anomaly",
                "drop",
                v.application_id,
                v.api,
                v.api_version,
                _episode_first(v, "traffic_anomaly"),
            ),
            class_name="traffic_anomaly",
            concerns="subscription",
            action="contact_owner",
            summary=(
                f"{who}: traffic dropped to {num(int(ev.get('requests', 0)))} requests in "
                f"{window_min:g} min vs ~{num(float(ev.get('baseline_requests', 0)))} usual — "
                "tell the owner"
            ),
            expected_effect="none on traffic: its integration may be broken",
            owner_note=(
                f"Your application sent {num(int(ev.get('requests', 0)))} requests in the last "
                f"{window_min:g} minutes where it usually sends "
                f"~{num(float(ev.get('baseline_requests', 0)))} at this hour of the week. "
                "Check its credentials (an expired token or key), a recent deploy, its "
                "network path (DNS, proxy) and its own error logs."
            ),
            evidence={"traffic_anomaly": ev},
            **common,
        )
    )


def _api_suggestion(
    ctx: Context, a: views.ApiView, cname: str, summary: str, note: str, tag: str = ""
) -> None:
    ctx.add(
        Suggestion(
            id=suggestion_id(cname, tag, a.api, a.api_version, _api_first(ctx, a, cname)),
            class_name=cname,
            concerns="api",
            action="contact_owner",
            summary=f"API {a.api} {a.api_version}: {summary}",
            expected_effect="none on traffic: no directive (refusing requests would not mend it)",
            owner_note=note,
            evidence={cname: a.evidence.get(cname, {})},
            api=a.api,
            api_version=a.api_version,
        )
    )


def api(ctx: Context, a: views.ApiView) -> None:
    """The suggestions of an API's health classes."""
    if "backend_down" in a.classes:
        ev = a.evidence["backend_down"]
        window_min = float(ev.get("window_seconds", 120)) / 60
        _api_suggestion(
            ctx, a, "backend_down",
            f"backend not answering — {ev.get('consecutive_failures', 0)} connection failures "
            f"in a row, {pct(float(ev.get('share', 0)))} of {num(int(ev.get('requests', 0)))} "
            f"requests in {window_min:g} min — page the backend's owner",
            f"The gateway cannot reach the backend of {a.api} {a.api_version}: WSO2 codes "
            f"{CONNECTION_CODES}. Restore the backend (or fail over to another endpoint). "
            "Meanwhile let the gateway fail fast instead of holding clients on timeouts: set "
            "the endpoint's connection timeout and its suspension on failure (error codes "
            "101503, 101504; initial duration, factor, maximum) in the API's endpoint "
            "configuration — the circuit breaker WSO2 provides (303001: suspended).",
        )  # fmt: skip
    if "degraded" in a.classes and "backend_down" not in a.classes:  # that one says it all
        ev = a.evidence["degraded"]
        cause = str(ev.get("cause", "errors"))
        if cause == "backend":
            what = (
                f"backend slower — its p95 {_ms(ev.get('backend_p95_ms'))} vs "
                f"{_ms(ev.get('baseline_backend_p95_ms'))} usual"
            )
            note = (
                f"The backend of {a.api} {a.api_version} answers slower than usual at this "
                f"hour (p95 {_ms(ev.get('backend_p95_ms'))} vs "
                f"{_ms(ev.get('baseline_backend_p95_ms'))}; it is "
                f"{pct(float(ev.get('backend_share') or 0))} of the latency). Ask its owner; "
                "check the endpoint's timeout so slow calls do not pile up on the gateway."
            )
        elif cause in ("gateway", "latency"):
            side = "the gateway side" if cause == "gateway" else "latency (no backend times)"
            what = (
                f"{side} slower — p95 {_ms(ev.get('p95_ms'))} vs {_ms(ev.get('baseline_p95_ms'))}"
            )
            note = (
                f"Requests to {a.api} {a.api_version} take longer than usual at this hour "
                f"(p95 {_ms(ev.get('p95_ms'))} vs {_ms(ev.get('baseline_p95_ms'))})"
                + (
                    f" while its backend's time is usual ({_ms(ev.get('backend_p95_ms'))}): "
                    "look at the gateway (mediation policies, CPU, GC, a recent change)."
                    if cause == "gateway"
                    else ": the events carry no backend time to tell the backend from the gateway."
                )
            )
        else:
            share = float(ev.get("server_error_share", 0))
            what = f"{pct(share)} 5xx vs {pct(float(ev.get('baseline_error_share', 0)))} usual"
            note = (
                f"{pct(share)} of the requests to {a.api} {a.api_version} in the last "
                f"{float(ev.get('window_seconds', 600)) / 60:g} minutes got a 5xx response "
                f"(usually {pct(float(ev.get('baseline_error_share', 0)))} at this hour): ask "
                "the backend's owner; `vigie autopsy` shows the codes."
            )
        _api_suggestion(ctx, a, "degraded", f"degraded, {what} — tell the owner", note, cause)
    anomaly = a.evidence.get("traffic_anomaly", {})
    if "traffic_anomaly" in a.classes and anomaly.get("direction") == "drop":
        window_min = float(anomaly.get("window_seconds", 900)) / 60
        _api_suggestion(
            ctx, a, "traffic_anomaly",
            f"traffic dropped to {num(int(anomaly.get('requests', 0)))} in {window_min:g} min "
            f"vs ~{num(float(anomaly.get('baseline_requests', 0)))} usual — check",
            f"{a.api} {a.api_version} received far fewer requests than usual at this hour of "
            "the week: check the API is published and reachable (DNS, load balancer, the "
            "gateway's deployment) and its consumers' subscriptions.",
            "drop",
        )  # fmt: skip
