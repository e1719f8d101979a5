"""What should be alerting now: pure functions from what the sidecar knows (class views,
suggestion records, directives, the data store's status) to alerts keyed by their identity.

The notifier compares one call's answer with the previous one: an identity that appears starts
an alert, one that goes away resolves it. Labels are a function of the identity and of what
was seen when it appeared (the notifier keeps the first alert of an identity while it lasts),
so an alert keeps its label set — its identity in Alertmanager — from start to end.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from typing import Any, Final

from vigie.alerts._model import Alert, clean_labels
from vigie.classify.security import ClientView
from vigie.classify.views import ApiView, SubscriptionView, iso
from vigie.policy.book import Record
from vigie.v1 import directives_pb2 as dpb

Ident = tuple[str, ...]

# how urgent each class is for the people on call
SEVERITY: Final[dict[str, str]] = {
    "retry_storm": "warning",
    "error_prone": "warning",
    "wrong_channel": "warning",
    "redundant": "info",
    "throttle_hitter": "info",
    "growing": "info",
    "dormant": "info",
    "retired": "info",
    # judged against the hour-of-week baselines
    "traffic_anomaly": "warning",
    "degraded": "warning",
    "backend_down": "critical",
    # authentication failures from one client (vigie.classify.security)
    "auth_failing": "warning",
}


def alertname(class_name: str, api: bool = False) -> str:
    """``retry_storm`` -> ``VigieRetryStorm``; an API class -> ``VigieApiRetired``."""
    camel = "".join(w.capitalize() for w in class_name.split("_"))
    return f"Vigie{'Api' if api else ''}{camel}"


def one_line(figures: Mapping[str, Any]) -> str:
    """``retries=42 requests=50 share=0.84``: every figure, in its order, on one line."""
    return " ".join(f"{k}={v}" for k, v in figures.items() if v is not None and v != "")


def _q(value: str) -> str:
    return shlex.quote(value)


def _channel(view: SubscriptionView, class_name: str) -> str:
    """The channel of the episode: the one the rule named (wrong_channel), else the one that
    carried most of the subscription's requests."""
    ev = view.evidence.get(class_name, {})
    if class_name == "wrong_channel" and ev.get("channel"):
        return str(ev["channel"])
    if not view.channels:
        return ""
    return max(view.channels.items(), key=lambda kv: (kv[1], kv[0]))[0]


def _since(view: SubscriptionView, class_name: str) -> str:
    """When the class's latest episode began (event time, ISO 8601), "" if unknown."""
    firsts = [e.first_us for e in view.episodes if e.class_name == class_name]
    if not firsts:
        return ""
    return iso(max(firsts)) or ""


def class_alerts(
    subs: Iterable[SubscriptionView],
    apis: Iterable[ApiView],
    classes: frozenset[str],
    tenant: str = "",
) -> dict[Ident, Alert]:
    """An alert per subscription and API class held now, among ``classes`` (API ones as
    ``api:NAME``)."""
    out: dict[Ident, Alert] = {}
    for v in subs:
        for c in v.classes:
            if c not in classes:
                continue
            app = v.application or v.application_id
            labels = {
                "alertname": alertname(c),
                "class": c,
                "application": app,
                "application_id": v.application_id,
                "api": v.api,
                "api_version": v.api_version,
                "channel": _channel(v, c),
                "direction": str(v.evidence.get(c, {}).get("direction", "")),
                "tenant": tenant,
                "severity": SEVERITY.get(c, "info"),
            }
            ann = {
                "summary": f"{c}: application {app} on {v.api} {v.api_version}",
                "evidence": one_line(v.evidence.get(c, {})),
                "owner": v.owner,
                "since": _since(v, c),
                "command": f"vigie consumers --application {_q(v.application_id)} "
                f"--api {_q(v.api)}",
            }
            ident = ("subscription", c, v.application_id, v.api, v.api_version)
            out[ident] = Alert(clean_labels(labels), clean_labels(ann))
    for a in apis:
        for c in a.classes:
            if f"api:{c}" not in classes:
                continue
            labels = {
                "alertname": alertname(c, api=True),
                "class": c,
                "api": a.api,
                "api_version": a.api_version,
                "direction": str(a.evidence.get(c, {}).get("direction", "")),
                "tenant": tenant,
                "severity": SEVERITY.get(c, "info"),
            }
            ann = {
                "summary": f"API {a.api} {a.api_version} is {c}",
                "evidence": one_line(a.evidence.get(c, {})),
                "command": f"vigie consumers --api {_q(a.api)}",
            }
            out[("api", c, a.api, a.api_version)] = Alert(clean_labels(labels), clean_labels(ann))
    return out


def security_alerts(
    clients: Iterable[ClientView], classes: frozenset[str], tenant: str = ""
) -> dict[Ident, Alert]:
    """An alert per client IP or application key holding ``auth_failing`` (when it is among
    ``classes``), and per API receiving it (``api:auth_failing``)."""
    out: dict[Ident, Alert] = {}
    for c in clients:
        for name in c.classes:
            wanted = f"api:{name}" if c.kind == "api" else name
            if wanted not in classes:
                continue
            ev = c.evidence
            who = {"ip": "client IP", "app": "application key", "api": "API"}[c.kind]
            labels = {
                "alertname": alertname(name, api=c.kind == "api"),
                "class": name,
                "client_ip": c.key if c.kind == "ip" else "",
                "application_id": c.key if c.kind == "app" else "",
                "api": c.key if c.kind == "api" else "",
                "tenant": tenant,
                "severity": SEVERITY.get(name, "info"),
            }
            spread = ev.get("distinct_apis", ev.get("distinct_client_ips"))
            figures = {
                "failures_last_hour": ev["failures_last_hour"],
                "codes": ",".join(ev["codes"]),
                ("apis" if c.kind != "api" else "client_ips"): spread,
                "first": ev["first"],
                "last": ev["last"],
            }
            ann = {
                "summary": f"{name}: {who} {c.key}"
                + (" (a salted hash: look the address up)" if c.hashed else ""),
                "evidence": one_line(figures),
                "since": str(ev.get("episode_first") or ""),
                "command": f"vigie clients --kind {c.kind}",
            }
            out[("security", name, c.kind, c.key)] = Alert(clean_labels(labels), clean_labels(ann))
    return out


def suggestion_alerts(records: Iterable[Record], tenant: str = "") -> dict[Ident, Alert]:
    """An alert per suggestion awaiting an operator's review (``proposed``)."""
    out: dict[Ident, Alert] = {}
    for r in records:
        if r.state != "proposed":
            continue
        s = r.suggestion
        labels = {
            "alertname": "VigieSuggestion",
            "suggestion": s.id,
            "class": s.class_name,
            "application": s.application or s.application_id,
            "application_id": s.application_id,
            "api": s.api,
            "api_version": s.api_version,
            "channel": s.channel,
            "tenant": tenant,
            "severity": "info",
        }
        ann = {
            "summary": f"suggestion awaiting review: {s.summary}",
            "evidence": one_line(s.evidence),
            "expected_effect": s.expected_effect,
            "owner": s.owner_note or s.owner,
            "command": f"vigie suggestions show {_q(s.id)}",
        }
        out[("suggestion", s.id)] = Alert(clean_labels(labels), clean_labels(ann))
    return out


def directive_alerts(directives: Iterable[dpb.Directive], tenant: str = "") -> dict[Ident, Alert]:
    """An alert per directive the gateways enforce (shadow ones refuse nothing: no alert); it
    resolves when the directive leaves the table (expired or removed)."""
    out: dict[Ident, Alert] = {}
    for d in directives:
        if d.mode != dpb.DIRECTIVE_MODE_ENFORCE:
            continue
        action = "limit" if d.action == dpb.DIRECTIVE_ACTION_LIMIT else "block"
        labels = {
            "alertname": "VigieDirectiveEnforced",
            "directive": d.id,
            "action": action,
            "application_id": d.application_id,
            "api": d.api_name,
            "api_version": d.api_version,
            "channel": d.channel,
            "tenant": tenant,
            "severity": "warning",
        }
        scope = one_line(
            {"application": d.application_id, "api": d.api_name, "version": d.api_version}
            | {"channel": d.channel}
        )
        limit = (
            f" to {d.limit_requests} requests per {d.limit_period_seconds} s"
            if action == "limit"
            else ""
        )
        ann = {
            "summary": f"directive {d.id} enforces a {action}{limit} ({scope})",
            "evidence": one_line({"reason": d.reason, "suggestion": d.suggestion_id}),
            "expires": iso(d.expires_at_us) or "",
            "command": f"vigie audit --subject {_q('directive:' + d.id)}",
        }
        out[("directive", d.id)] = Alert(clean_labels(labels), clean_labels(ann))
    return out


def data_alerts(
    status: Mapping[str, Any] | None, lost: Mapping[str, int], tenant: str = ""
) -> dict[Ident, Alert]:
    """The data store degraded (``status['state']`` is not ``ok``), and data lost (``lost``:
    the ``*_dropped`` counters that grew lately, by name)."""
    out: dict[Ident, Alert] = {}
    if status is None:
        return out
    if status.get("state", "ok") != "ok":
        labels = {"alertname": "VigieDataDegraded", "tenant": tenant, "severity": "warning"}
        ann = {
            "summary": f"the data store cannot write ({status.get('backend', '')})",
            "evidence": str(status["state"]),
            "command": "vigie status",
        }
        out[("data", "degraded")] = Alert(clean_labels(labels), ann)
    if lost:
        labels = {"alertname": "VigieDataLost", "tenant": tenant, "severity": "warning"}
        ann = {
            "summary": "the data store is losing data: autopsies and reports will miss it",
            "evidence": one_line(dict(sorted(lost.items()))),
            "command": "vigie status",
        }
        out[("data", "lost")] = Alert(clean_labels(labels), ann)
    return out
