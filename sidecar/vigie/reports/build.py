"""What an autopsy and a report say, as plain JSON-ready documents.

Both are built from ``Store.aggregate`` queries only, so they read the same from the Parquet
store, ClickHouse, one sidecar or a fleet of them (whose answers are merged by adding).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from vigie.classify.views import iso
from vigie.reports import sections
from vigie.state import layout as L
from vigie.store.changes import active_between
from vigie.store.query import AggQuery, AggRow, Store, quantile
from vigie.wire import tenants

MINUTE: Final = 60_000_000
DAY: Final = L.DAY_US
DORMANT_DAYS: Final = 30
OUTCOMES: Final = ("successes", "client_errors", "server_errors", "throttled")
# growth is only a ratio over a baseline of at least this many requests a day (the first half
# of the period); under it a consumer that has traffic now is ``new``, never "+4,406,513 %"
GROWTH_FLOOR_PER_DAY: Final = 10.0
GROWERS: Final = 8
GROWER_MIN: Final = 0.2  # a grower: new, or at least +20 % (flat consumers only add noise)


@dataclass(frozen=True, slots=True)
class Scope:
    from_us: int
    to_us: int
    api: str = ""
    api_version: str = ""
    application: str = ""
    channel: str = ""
    tenant: str = ""  # WSO2 tenant domain; empty: any

    def query(
        self,
        table: str,
        group_by: Sequence[str] = (),
        bucket_us: int = 0,
        histogram: bool = True,
        **over: Any,
    ) -> AggQuery:
        q = AggQuery(
            table=table,
            from_us=over.get("from_us", self.from_us),
            to_us=over.get("to_us", self.to_us),
            group_by=tuple(group_by),
            bucket_us=bucket_us,
            api=self.api,
            api_version=self.api_version,
            application=self.application,
            channel=self.channel,
            histogram=histogram,
            tenant=self.tenant,
        )
        return q.validate()


def figures(r: AggRow | None, latency: bool = True) -> dict[str, Any]:
    """Counts, rates and latency quantiles of one group."""
    if r is None:
        out: dict[str, Any] = {"requests": 0, **dict.fromkeys(OUTCOMES, 0)}
        out |= {"error_rate": None, "throttle_rate": None}
        if latency:
            out |= {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
        return out
    n = r.get("requests")
    out = {"requests": n, **{o: r.get(o) for o in OUTCOMES}}
    out["error_rate"] = round((r.get("client_errors") + r.get("server_errors")) / n, 5)
    out["throttle_rate"] = round(r.get("throttled") / n, 5)
    out["request_bytes"] = r.get("request_bytes")
    out["response_bytes"] = r.get("response_bytes")
    if latency:
        out["mean_ms"] = round(r.get("latency_sum_us") / n / 1000, 3)
        out["backend_mean_ms"] = round(r.get("backend_latency_sum_us") / n / 1000, 3)
        for q, name in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            v = quantile(r.hist, q)
            out[name] = None if v is None else round(v, 3)
    return out


def timeline_bucket(span_us: int) -> int:
    for limit, bucket in (
        (2 * 3600e6, MINUTE),
        (12 * 3600e6, 5 * MINUTE),
        (2 * DAY, 15 * MINUTE),
        (15 * DAY, 60 * MINUTE),
    ):
        if span_us <= limit:
            return bucket
    return DAY


def _one(rows: list[AggRow]) -> AggRow | None:
    return rows[0] if rows else None


def autopsy(store: Store, scope: Scope, top: int = 20) -> dict[str, Any]:
    """What happened in ``scope`` (the per-minute data): a timeline, the status and error
    codes, the consumers involved with their latency, the resources, and the classes and
    directives active then."""
    bucket = timeline_bucket(scope.to_us - scope.from_us)
    total = _one(store.aggregate(scope.query("minute")))
    timeline = [
        {"at": iso(r.key[0]), "at_us": r.key[0], **figures(r)}
        for r in store.aggregate(scope.query("minute", ("time",), bucket))
    ]
    codes = [
        {
            "status": r.key[0],
            "error_code": r.key[1],
            "requests": r.get("requests"),
            "outcome": max(OUTCOMES, key=r.get),
        }
        for r in store.aggregate(scope.query("minute", ("status", "error_code"), histogram=False))
    ]
    codes.sort(key=lambda c: -c["requests"])
    consumers = [
        {"application_id": r.key[0], "application": r.application_name, **figures(r)}
        for r in store.aggregate(scope.query("minute", ("application_id",)))
    ]
    consumers.sort(
        key=lambda c: (-c["client_errors"] - c["server_errors"] - c["throttled"], -c["requests"])
    )
    resources = [
        {
            "api": r.key[0],
            "api_version": r.key[1],
            "method": r.key[2],
            "resource": r.key[3],
            "tenant": r.key[4],
            **figures(r),
        }
        for r in store.aggregate(
            scope.query("minute", ("api", "api_version", "method", "resource", "tenant"))
        )
    ]
    resources.sort(key=lambda c: -c["requests"])
    channels = [
        {"channel": r.key[0], **figures(r, latency=False)}
        for r in store.aggregate(scope.query("minute", ("channel",), histogram=False))
    ]
    involved = {c["application_id"] for c in consumers}
    active = []
    for span in active_between(
        store.changes(scope.from_us, scope.to_us), scope.from_us, scope.to_us
    ):
        if scope.api and span["api"] and span["api"] != scope.api:
            continue
        if not _in_tenant(scope, span):
            continue
        if (
            span["kind"] == "class"
            and span["application_id"] not in involved
            and span["name"] != "traffic_anomaly"  # a consumer that dropped sent nothing
        ):
            continue
        active.append(
            span
            | {"from": iso(span["from_us"]), "to": iso(span["to_us"]) if span["to_us"] else None}
        )
    return {
        "kind": "autopsy",
        "from": iso(scope.from_us),
        "to": iso(scope.to_us),
        "filters": _filters(scope),
        "bucket_seconds": bucket // 1_000_000,
        "total": figures(total),
        "timeline": timeline,
        "codes": codes,
        "consumers": consumers[:top] if top else consumers,
        "consumers_involved": len(consumers),
        "resources": resources[:top] if top else resources,
        "channels": channels,
        "active": active,
    }


def report(
    store: Store,
    scope: Scope,
    top: int = 20,
    names: sections.Directory | None = None,
    book: Sequence[Mapping[str, Any]] = (),
    book_note: str = "",
) -> dict[str, Any]:
    """Usage over ``scope`` (the per-day rollups): traffic over time by outcome, per API and
    consumer with growth, error codes, dormant subscriptions and retired APIs; the classes,
    suggestions (``book``: ``sections.load_book`` rows) and directives of the period, and the
    per-owner and per-tenant splits (``names``: from the inventory, ``sections.Directory``)."""
    names = names or sections.Directory.of(None, book)
    frm = scope.from_us - scope.from_us % DAY
    to = scope.to_us + (-scope.to_us) % DAY
    scope = Scope(
        frm, to, scope.api, scope.api_version, scope.application, scope.channel, scope.tenant
    )
    days = max(1, (to - frm) // DAY)
    bucket = DAY if days <= 190 else 7 * DAY
    half = frm + (days // 2) * DAY  # growth: the second half against the first
    total_figures = figures(_one(store.aggregate(scope.query("daily"))))
    series = [
        {"at": iso(r.key[0]), "at_us": r.key[0], **figures(r, latency=False)}
        for r in store.aggregate(scope.query("daily", ("time",), bucket, histogram=False))
    ]
    first = (
        {
            r.key: r
            for r in store.aggregate(
                scope.query("daily", ("api", "api_version", "tenant"), histogram=False, to_us=half)
            )
        }
        if half > frm
        else {}
    )
    apis = []
    for r in store.aggregate(scope.query("daily", ("api", "api_version", "tenant"))):
        apis.append(
            {
                "api": r.key[0],
                "api_version": r.key[1],
                "tenant": r.key[2],
                **figures(r),
                **_growth_of(first.get(r.key), r, half - frm, to - half),
            }
        )
    for a in apis:
        a["new"] = a.pop("_new")
        del a["_delta"]
    apis.sort(key=lambda a: -a["requests"])
    first_app = (
        {
            r.key: r
            for r in store.aggregate(
                scope.query("daily", ("application_id",), histogram=False, to_us=half)
            )
        }
        if half > frm
        else {}
    )
    consumers = []
    for r in store.aggregate(scope.query("daily", ("application_id",))):
        consumers.append(
            {
                "application_id": r.key[0],
                "application": names.name(r.key[0], r.application_name),
                "owner": names.owner(r.key[0]),
                **figures(r),
                **_growth_of(first_app.get(r.key), r, half - frm, to - half),
            }
        )
    consumers.sort(key=lambda c: -c["requests"])
    for c in consumers:
        c["new"] = c.pop("_new")
    stamps = list(range(frm, to, bucket))
    seen = {s["at_us"] for s in series}
    missing = [t for t in stamps if t not in seen]
    per_app = {
        (r.key[0], r.key[1]): r.get("requests")
        for r in store.aggregate(
            scope.query("daily", ("application_id", "time"), bucket, histogram=False)
        )
    }
    halves = ([t for t in stamps if t < half and t in seen],
              [t for t in stamps if t >= half and t in seen])  # fmt: skip
    for c in consumers:
        c["_median"] = _median_growth(per_app, c["application_id"], *halves)
    # the growers: new, or at least +GROWER_MIN both on average and on their median bucket (a
    # one-day spike, a retry storm, is not growth), ranked by the increase of the median
    growers = sorted(
        (
            c
            for c in consumers
            if c["_delta"] > 0
            and c["_median"][0] > 0
            and (c["new"] or ((c["growth"] or 0) >= GROWER_MIN and c["_median"][1] >= GROWER_MIN))
        ),
        key=lambda c: (-c["_median"][0], -c["_delta"], -c["requests"]),
    )
    top_ids = [c["application_id"] for c in growers[:GROWERS]]
    names_seen = {c["application_id"]: c["application"] for c in consumers}
    growth_series = {
        a: [None if t not in seen else per_app.get((a, t), 0) for t in stamps] for a in top_ids
    }
    codes = [
        {"error_code": r.key[0], **figures(r, latency=False)}
        for r in store.aggregate(scope.query("daily", ("error_code",), histogram=False))
        if r.key[0] != 0
    ]
    codes.sort(key=lambda c: -c["requests"])
    recent_from = max(frm, to - DORMANT_DAYS * DAY)
    subs_all = store.aggregate(
        scope.query("daily", ("application_id", "api", "api_version", "tenant"), histogram=False)
    )
    subs_recent = {
        r.key
        for r in store.aggregate(
            scope.query(
                "daily",
                ("application_id", "api", "api_version", "tenant"),
                histogram=False,
                from_us=recent_from,
            )
        )
    }
    dormant = [
        {
            "application_id": r.key[0],
            "application": names.name(r.key[0], r.application_name),
            "owner": names.owner(r.key[0]),
            "api": r.key[1],
            "api_version": r.key[2],
            "tenant": r.key[3],
            "requests_before": r.get("requests"),
        }
        for r in subs_all
        if r.key not in subs_recent
    ]
    recent_apis = {(a, v, t) for _, a, v, t in subs_recent}
    retired = (
        [
            {
                "api": a["api"],
                "api_version": a["api_version"],
                "tenant": a["tenant"],
                "requests_before": a["requests"],
            }
            for a in apis
            if (a["api"], a["api_version"], a["tenant"]) not in recent_apis
        ]
        if (to - frm) > DORMANT_DAYS * DAY
        else []
    )
    if (to - frm) <= DORMANT_DAYS * DAY:
        dormant = []
    for c in consumers:
        del c["_delta"], c["_median"]
    channels = [
        {"channel": r.key[0], **figures(r, latency=False)}
        for r in store.aggregate(scope.query("daily", ("channel",), histogram=False))
    ]
    channels.sort(key=lambda c: -c["requests"])
    eps = episodes(store, scope, names.names | {k: v for k, v in names_seen.items() if v})
    sections.directive_effects(store, to, eps)
    suggested = sections.suggestions(book, frm, to, names, scope.application, scope.api)
    tenant_rows, tenant_source = sections.tenants(
        store, scope.query("daily", histogram=False), names, total_figures
    )
    return {
        "kind": "report",
        "from": iso(frm),
        "to": iso(to),
        "filters": _filters(scope),
        "days": days,
        "bucket_days": bucket // DAY,
        "total": total_figures,
        "series": series,
        "apis": apis[:top] if top else apis,
        "consumers": consumers[:top] if top else consumers,
        "consumers_total": len(consumers),
        "missing_buckets": [iso(t) for t in missing],
        "growth_floor_per_day": GROWTH_FLOOR_PER_DAY,
        "growth_series": {
            "at": [iso(t) for t in stamps],
            "consumers": [
                {
                    "application_id": a,
                    "application": names_seen[a],
                    "growth": next(c["growth"] for c in consumers if c["application_id"] == a),
                    "new": next(c["new"] for c in consumers if c["application_id"] == a),
                    "requests": growth_series[a],
                }
                for a in top_ids
            ],
        },
        "channels": channels,
        "episodes": eps,
        "suggestions": suggested,
        "suggestions_note": book_note,
        "owners": sections.owners(consumers, names, eps, suggested),
        "tenants": tenant_rows,
        "tenant_source": tenant_source,
        "error_codes": codes,
        "dormant_subscriptions": dormant,
        "retired_apis": retired,
        "dormant_after_days": DORMANT_DAYS,
    }


def _growth_of(before: AggRow | None, whole: AggRow, span1: int, span2: int) -> dict[str, Any]:
    """``growth``: the daily average of the second half of the period over the first half,
    minus one, or None when the first half is under ``GROWTH_FLOOR_PER_DAY`` a day (then
    ``new`` says whether the second half has traffic); ``_delta``: the change of requests per
    day, which ranks the growers."""
    if span1 <= 0 or span2 <= 0:
        return {"growth": None, "_new": False, "_delta": 0.0}
    b = before.get("requests") if before else 0
    a = whole.get("requests") - b
    per_day_b, per_day_a = b / (span1 / DAY), a / (span2 / DAY)
    delta = per_day_a - per_day_b
    if per_day_b < GROWTH_FLOOR_PER_DAY:
        return {"growth": None, "_new": per_day_a >= GROWTH_FLOOR_PER_DAY, "_delta": delta}
    return {"growth": round(per_day_a / per_day_b - 1, 4), "_new": False, "_delta": delta}


def _median_growth(
    per_app: dict[tuple[str, int], int], app: str, first: list[int], second: list[int]
) -> tuple[float, float]:
    """(increase of the median bucket, its relative growth; inf from a zero median) of one
    consumer, second half over first, over the buckets the platform has data for."""
    if not first or not second:
        return 0.0, 0.0
    m1 = statistics.median(per_app.get((app, t), 0) for t in first)
    m2 = statistics.median(per_app.get((app, t), 0) for t in second)
    return m2 - m1, (m2 / m1 - 1) if m1 > 0 else math.inf if m2 > 0 else 0.0


def episodes(store: Store, scope: Scope, names: dict[str, str]) -> list[dict[str, Any]]:
    """The class episodes and directives of the period (the store's ``changes`` table): who,
    what, since when, until when (None: still active), and the evidence in one line."""
    out = []
    for span in active_between(
        store.changes(scope.from_us, scope.to_us), scope.from_us, scope.to_us
    ):
        if scope.api and span["api"] and span["api"] != scope.api:
            continue
        if not _in_tenant(scope, span):
            continue
        app = span["application_id"]
        if scope.application and app and scope.application not in (app, names.get(app)):
            continue
        out.append(
            span
            | {
                "application": names.get(app, "") if app else "",
                "from": iso(span["from_us"]),
                "to": iso(span["to_us"]) if span["to_us"] else None,
                "evidence": _evidence(store, scope, span),
            }
        )
    out.sort(key=lambda e: (e["kind"], e["name"], -e["from_us"]))
    return out


def _evidence(store: Store, scope: Scope, span: dict[str, Any]) -> str:
    """One line: a directive's action, limit and reason; for a class, what its subject did in
    the days of the episode (the rollups keep the traffic), after a health class's own
    evidence at its raise (the change's ``detail``; the other classes keep none)."""
    if span["kind"] == "directive":
        try:
            d = json.loads(span.get("detail") or "{}")
        except ValueError:
            d = {}
        parts = [
            str(d.get("mode", "")).removeprefix("DIRECTIVE_MODE_").lower(),
            str(d.get("action", "")).removeprefix("DIRECTIVE_ACTION_").lower(),
        ]
        if d.get("limit_requests"):
            parts.append(f"{d['limit_requests']} req / {d.get('limit_period_seconds', '?')} s")
        if d.get("reason"):
            parts.append(f"— {d['reason']}")
        return " ".join(p for p in parts if p)
    frm = max(scope.from_us, span["from_us"] - span["from_us"] % DAY)
    end = span["to_us"] or scope.to_us
    to = min(scope.to_us, end + (-end) % DAY) if end > frm else frm + DAY
    q = AggQuery(
        table="daily",
        from_us=frm,
        to_us=max(to, frm + DAY),
        api=span["api"],
        api_version=span["api_version"],
        application=span["application_id"],
        histogram=False,
        tenant=span.get("tenant") or "",
    ).validate()
    f = figures(_one(store.aggregate(q)), latency=False)
    # a health class's own evidence when it was raised (the changes' detail), then the days'
    rule = f"{span['detail']}; " if span.get("detail") else ""
    if not f["requests"]:
        return f"{rule}no traffic recorded in those days"
    return (
        f"{rule}{f['requests']:,} requests in those days, {100 * f['error_rate']:.1f} % errors, "
        f"{100 * f['throttle_rate']:.1f} % throttled"
    )


def _filters(scope: Scope) -> dict[str, str]:
    return {
        k: v
        for k, v in (
            ("api", scope.api),
            ("api_version", scope.api_version),
            ("application", scope.application),
            ("channel", scope.channel),
            ("tenant", scope.tenant),
        )
        if v
    }


def _in_tenant(scope: Scope, span: dict[str, Any]) -> bool:
    """Whether a class or directive span is in the scope's tenant (a directive names none:
    it is in every tenant)."""
    return not span.get("tenant") or tenants.matches(scope.tenant, span["tenant"])
