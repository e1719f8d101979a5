"""``vigie consumers`` and ``vigie status``: what a running sidecar (or a fleet of them) sees.

One ``--admin`` asks that sidecar; several merge their states (``vigie.cli.fleet``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from vigie.classify.views import VIEW_CLASS_NAMES
from vigie.cli.client import AdminClient, default_admin
from vigie.cli.common import (
    client,
    console,
    directive_json,
    first,
    fleet_admin_options,
    human_bytes,
    iso,
    subscription_table,
)
from vigie.state.thresholds import HEALTH_CLASS_NAMES

# what --class takes: the view classes and the health classes
CLASS_NAMES = (*VIEW_CLASS_NAMES, *HEALTH_CLASS_NAMES)


def _one_client(
    admin: Sequence[str], token_file: Sequence[str], state_dir: Sequence[str]
) -> AdminClient:
    """The client of the single sidecar named (or of the default one)."""
    fallback = default_admin()
    return client(first(admin, fallback) or fallback, first(token_file), first(state_dir))


# ---------------------------------------------------------------------------------------------
# vigie consumers
# ---------------------------------------------------------------------------------------------


@click.command()
@fleet_admin_options
@click.option(
    "--class",
    "class_name",
    help=f"Only subscriptions holding this class ({', '.join((*CLASS_NAMES, 'normal'))}).",
)
@click.option("--application", help="Only this application (id or name).")
@click.option("--api", help="Only this API name.")
@click.option(
    "--tenant", default="", help="Only this WSO2 tenant's APIs (carbon.super: the super tenant)."
)
@click.option("--limit", type=int, default=0, help="At most this many, busiest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def consumers(
    admin: Sequence[str],
    token_file: Sequence[str],
    state_dir: Sequence[str],
    class_name: str | None,
    application: str | None,
    api: str | None,
    tenant: str,
    limit: int,
    as_json: bool,
) -> None:
    """Subscriptions of a running sidecar with their classes and evidence."""
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415 - keep `vigie --help` fast

    if class_name and class_name not in (*CLASS_NAMES, "normal"):
        raise click.BadParameter(f"unknown class {class_name!r}", param_hint="--class")
    if len(admin) > 1:
        from vigie.cli.fleet import fleet_consumers  # noqa: PLC0415

        doc = fleet_consumers(
            admin, token_file, state_dir, class_name, application, api, limit, tenant
        )
        if as_json:
            sys.stdout.write(json.dumps(doc) + "\n")
        else:
            console.print(
                subscription_table(
                    doc["subscriptions"], f"Subscriptions of {len(admin)} sidecars at {doc['now']}"
                )
            )
        return
    with _one_client(admin, token_file, state_dir) as c:
        resp = c.call(
            c.stub.ListSubscriptions,
            apb.ListSubscriptionsRequest(
                class_name=class_name or "",
                application=application or "",
                api=api or "",
                limit=limit,
                tenant=tenant,
            ),
        )
    subs = [_sub_json(s) for s in resp.subscriptions]
    if as_json:
        sys.stdout.write(json.dumps({"now": iso(resp.now_us), "subscriptions": subs}) + "\n")
        return
    console.print(subscription_table(subs, f"Subscriptions at {iso(resp.now_us)}"))


def _sub_json(s: Any) -> dict[str, Any]:
    return {
        "application_id": s.application_id,
        "application": s.application_name,
        "tenant": s.tenant,
        "api": s.api,
        "api_version": s.api_version,
        "requests": s.requests,
        "classes": list(s.classes),
        "evidence": {e.class_name: dict(e.figures) | dict(e.labels) for e in s.evidence},
        "episodes": [
            {"class": e.class_name, "first": iso(e.first_us), "last": iso(e.last_us)}
            for e in s.episodes
        ],
    }


# ---------------------------------------------------------------------------------------------
# vigie status
# ---------------------------------------------------------------------------------------------


@click.command()
@fleet_admin_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--check", is_flag=True, help="Exit 1 when data was lost or the store is degraded.")
def status(
    admin: Sequence[str],
    token_file: Sequence[str],
    state_dir: Sequence[str],
    as_json: bool,
    check: bool,
) -> None:
    """Health, ingest rate, drops, connected gateways and data on disk of a running sidecar
    (or of a fleet: --admin repeated, or --fleet). With --check, the exit status says whether
    the data is whole (0) or degraded (1: on any sidecar of a fleet, or one did not answer)."""
    from google.protobuf import json_format  # noqa: PLC0415 - keep `vigie --help` fast

    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    if len(admin) > 1:
        from vigie.cli.fleet import fleet_status, print_fleet_status  # noqa: PLC0415

        doc = fleet_status(admin, token_file, state_dir)
        if as_json:
            sys.stdout.write(json.dumps(doc) + "\n")
        else:
            print_fleet_status(doc)
        if check and (doc["merged"]["degraded_stores"] or doc["unreachable"]):
            sys.exit(1)
        return
    with _one_client(admin, token_file, state_dir) as c:
        st = c.call(c.stub.GetStatus, apb.StatusRequest())
        extra = _status_extra(c)  # health, active directives and their hits
    degraded = st.HasField("data") and st.data.state != "ok"
    if as_json:
        doc = json_format.MessageToDict(st, preserving_proto_field_name=True) | extra
        origins = {d.id: d.origin for d in st.directives}  # the instance each was put on
        for d in doc["directives"]:
            d["origin"] = origins.get(d["id"], "")
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        _print_status(st, extra)
    if check and degraded:
        sys.exit(1)


def _print_status(st: Any, extra: dict[str, Any]) -> None:
    console.print(
        f"[bold]{st.sidecar_id}[/] vigie {st.version}: {st.events_applied:,} events, "
        f"{st.ingest_rate:,.0f}/s, {st.subscriptions:,} subscriptions, {st.apis} APIs, "
        f"{st.active_directives} directives, now {iso(st.now_us)}",
        highlight=False,
    )
    console.print("classes: " + ", ".join(f"{k} {v}" for k, v in sorted(st.classes.items())))
    if st.instance_id:
        console.print(
            f"instance {st.instance_id}, started from {st.started_from} (state: "
            f"{st.state_from or '?'}); directives in force: "
            + (", ".join(f"{d.id} (v{d.version})" for d in st.directives) or "none"),
            highlight=False,
            soft_wrap=True,
        )
    for p in st.peers:
        console.print(
            f"peer {p.address} {p.instance_id or '?'}: {p.state}"
            + (f" ({p.error})" if p.error else ""),
            highlight=False,
            soft_wrap=True,
        )
    line = _data_status_line(st)
    if line:
        console.print(line, highlight=False, soft_wrap=True)
    if st.gateways:
        t = Table(title="Gateways")
        cols = ("gateway", "channel", "peer", "events", "handler sent", "dropped", "clock")
        for col in (*cols, "refused future"):
            t.add_column(col)
        for g in st.gateways:
            t.add_row(
                g.gateway_id,
                g.channel,
                g.peer,
                f"{g.events:,}",
                f"{g.handler_sent:,}",
                f"{g.handler_dropped:,}",
                f"{g.clock_skew_us / 1e6:+.1f} s" if g.clock_known else "?",
                f"{g.events_refused_future:,}",
            )
        console.print(t)
        _print_skewed(st)
        for g in st.gateways:
            if g.unmatched_requests:
                top = sorted(g.unmatched_by_prefix.items(), key=lambda kv: -kv[1])[:5]
                by = ", ".join(f"/{p} {n:,}" if p != "*" else f"other {n:,}" for p, n in top)
                console.print(
                    f"gateway {escape(g.gateway_id)}: {g.unmatched_requests:,} request(s) matched "
                    f"no API" + (f" ({escape(by)})" if by else ""),
                    highlight=False,
                    soft_wrap=True,
                )
            if g.quotas_rejected:
                why = g.last_quota_rejection
                last = f" (latest: {escape(why)})" if why else ""
                console.print(
                    f"[bold red]gateway {escape(g.gateway_id)} refused {g.quotas_rejected:,} "
                    f"local quota(s)[/]{last}: it keeps its last quota (or the whole budget)",
                    highlight=False,
                    soft_wrap=True,
                )
            if g.directives_rejected or g.rejected_directives:
                refused = "; ".join(f"{r.directive_id} ({r.reason})" for r in g.rejected_directives)
                console.print(
                    f"[bold red]gateway {g.gateway_id} refused {g.directives_rejected:,} "
                    f"directive upsert(s)[/]" + (f": {refused}" if refused else ""),
                    highlight=False,
                    soft_wrap=True,
                )
    _print_slots(st)
    lost = ("refused", "evicted", "stream_events_missed")  # the last: a fleet restart's gap
    drops = {k: v for k, v in st.counters.items() if v and any(w in k for w in lost)}
    if drops:
        console.print("refused / dropped: " + ", ".join(f"{k} {v}" for k, v in drops.items()))
    _print_status_extra(st, extra)


def _print_skewed(st: Any) -> None:
    """A red line per gateway whose clock is off by more than max_clock_skew_seconds."""
    for g in st.gateways:
        if g.clock_skewed:
            console.print(
                f"[bold red]gateway {g.gateway_id}: its clock is {g.clock_skew_us / 1e6:+,.0f} s "
                f"off this sidecar's; {g.events_refused_future:,} of its events refused as "
                "dated ahead (event_refused:future)[/]",
                highlight=False,
                soft_wrap=True,
            )


def _print_slots(st: Any) -> None:
    """The channel slots (streams on each, rows using it) and the directive hit tables."""
    if st.channel_slots_max:
        used = [s for s in st.channel_slots if s.name]
        slots = ", ".join(
            f"{s.name} ({s.streams} streams{', rows' if s.rows else ''})" for s in used
        )
        console.print(
            f"channel slots: {len(used)}/{st.channel_slots_max}" + (f": {slots}" if slots else ""),
            highlight=False,
            soft_wrap=True,
        )
    if st.hit_tables_max:
        gws = ", ".join(f"{h.gateway_id} ({h.directives})" for h in st.hit_tables[-5:])
        more = "…, " if len(st.hit_tables) > 5 else ""
        console.print(
            f"directive hit tables: {len(st.hit_tables)}/{st.hit_tables_max} gateways"
            + (f": {more}{gws}" if gws else ""),
            highlight=False,
            soft_wrap=True,
        )
    if st.implausible_hit_reports:
        named = sorted(st.implausible_hit_reports.items(), key=lambda kv: (-kv[1], kv[0]))
        console.print(
            "implausible hit reports (more hits than the gateway sent, capped): "
            + ", ".join(f"{gw} ({n})" for gw, n in named),
            highlight=False,
            soft_wrap=True,
        )


def _data_status_line(st: Any) -> str | None:
    """One line on the data store of a Status message (None when it is off)."""
    if not st.HasField("data"):
        return None
    d = st.data
    total = sum(int(v) for v in d.bytes.values())
    parts = ", ".join(f"{k} {human_bytes(int(v))}" for k, v in sorted(d.bytes.items()))
    head = f"data: {d.backend} {d.state}"
    if d.state.startswith("degraded: "):
        why = d.state.removeprefix("degraded: ")
        head = f"data: degraded ({why} since {iso(d.degraded_since_us)}); {d.backend}"
    line = (
        f"{head}, {human_bytes(total)} on disk ({parts}); "
        f"keeps {d.short_retention_days} days per minute, "
        f"{d.long_retention_days or 'all'} days per day"
    )
    if d.unwritten_rows:
        line += f"; {d.unwritten_rows:,} rows waiting in memory"
    dropped = {k: v for k, v in d.counters.items() if "dropped" in k and v}
    if dropped:
        line += "; dropped " + ", ".join(f"{k} {v:,}" for k, v in dropped.items())
    return line


def _status_extra(c: AdminClient) -> dict[str, Any]:
    """Health and the active directives with their hits."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    try:
        h = health_pb2_grpc.HealthStub(c._channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=c.timeout
        )
        health = health_pb2.HealthCheckResponse.ServingStatus.Name(h.status)
    except Exception as exc:
        health = f"UNKNOWN ({type(exc).__name__})"
    table = c.call(c.stub.ListDirectives, apb.ListDirectivesRequest())
    hits = {h.directive_id: h for h in table.hits}
    directives = []
    for d in table.directives:
        h = hits.get(d.id)
        directives.append(
            directive_json(d)
            | {
                "hits": {
                    "shadow": h.shadow_hits if h else 0,
                    "enforced": h.enforced_hits if h else 0,
                    "passed": h.passed if h else 0,
                }
            }
        )
    return {"health": health, "directives_version": table.version, "directives": directives}


def _print_status_extra(st: Any, extra: dict[str, Any]) -> None:
    console.print(f"health: {extra['health']}", highlight=False)
    if st.suggestions:
        console.print(
            "suggestions: " + ", ".join(f"{k} {v}" for k, v in sorted(st.suggestions.items())),
            highlight=False,
        )
    if not extra["directives"]:
        return
    t = Table(title=f"Active directives (table version {extra['directives_version']})")
    t.add_column("id", no_wrap=True)
    for col in ("mode", "action", "scope", "expires", "shadow", "refused", "passed"):
        t.add_column(col, overflow="fold")
    for d in extra["directives"]:
        scope = " ".join(
            f"{k}={d[f]}"
            for k, f in (
                ("app", "application_id"),
                ("api", "api_name"),
                ("version", "api_version"),
                ("channel", "channel"),
            )
            if d.get(f)
        )
        action = str(d.get("action", "")).removeprefix("DIRECTIVE_ACTION_")
        if action == "LIMIT":
            action += f" {d.get('limit_requests', 0)}/{d.get('limit_period_seconds', 0)}s"
        t.add_row(
            d["id"],
            str(d.get("mode", "")).removeprefix("DIRECTIVE_MODE_"),
            action,
            scope,
            d["expires"],
            f"{d['hits']['shadow']:,}",
            f"{d['hits']['enforced']:,}",
            f"{d['hits']['passed']:,}",
        )
    console.print(t)
