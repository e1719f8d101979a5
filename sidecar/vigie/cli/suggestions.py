"""``vigie suggestions``: what vigie proposes and its lifecycle, through the sidecar's admin
service (``simulate`` replays WSO2's analytics log instead: ``vigie.policy.simulate``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from vigie.cli.common import (
    actor_option,
    admin_clients,
    admin_options,
    client,
    console,
    directive_json,
    emit_json,
    err_console,
    iso,
    listed,
    mode_value,
    parse_duration,
)
from vigie.errors import VigieError
from vigie.policy.book import STATES


def suggestion_json(s: Any) -> dict[str, Any]:
    """The JSON of one suggestion as the CLI prints it (the shape of ``vigie replay``'s)."""
    doc: dict[str, Any] = {"id": s.id, "class": s.class_name, "concerns": s.concerns}
    if s.concerns in ("subscription", "application"):
        doc |= {
            "application_id": s.application_id,
            "application": s.application_name,
            "owner": s.application_owner,
        }
    if s.concerns in ("subscription", "api"):
        doc |= {"api": s.api, "api_version": s.api_version}
        if s.tenant:
            doc["tenant"] = s.tenant
    if s.channel:
        doc["channel"] = s.channel
    doc |= {
        "state": s.state,
        "action": s.action,
        "summary": s.summary,
        "evidence": json.loads(s.evidence_json) if s.evidence_json else {},
        "expected_effect": s.expected_effect,
        "owner_note": s.owner_note,
        "directive": directive_json(s.directive) if s.HasField("directive") else None,
        "wso2": json.loads(s.wso2_json) if s.wso2_json else None,
        "refused_share": round(s.refused_share, 4),
        "auto_approval": s.auto_approval,
        "created": iso(s.created_at_us),
        "updated": iso(s.updated_at_us),
        "expires": iso(s.expires_at_us),
        "exported": s.exported,
    }
    if s.audit:
        doc["audit"] = [
            {
                "at": iso(e.at_us),
                "actor": e.actor,
                "action": e.action,
                "from": e.from_state,
                "to": e.to_state,
                "reason": e.reason,
                "details": json.loads(e.details_json) if e.details_json else {},
            }
            for e in s.audit
        ]
    return doc


@click.group()
def suggestions() -> None:
    """What vigie proposes (a WSO2 policy, a temporary limit, a revocation) and its lifecycle.

    \b
    proposed -> approved | rejected -> pushed (a directive) and/or exported (a WSO2 policy)
             -> expired | withdrawn
    """


@suggestions.command("list")
@admin_options
@click.option("--state", "states", multiple=True, type=click.Choice(STATES), help="Only these.")
@click.option("--class", "class_name", help="Only this class.")
@click.option("--application", help="Only this application (id or name).")
@click.option("--api", help="Only this API name.")
@click.option("--tenant", default="", help="Only about this WSO2 tenant's APIs.")
@click.option("--no-refresh", is_flag=True, help="Do not recompute from the state first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def suggestions_list(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    states: tuple[str, ...],
    class_name: str | None,
    application: str | None,
    api: str | None,
    tenant: str,
    no_refresh: bool,
    as_json: bool,
) -> None:
    """Suggestions with their state, action and expected effect."""
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    req = apb.ListSuggestionsRequest(
        states=list(states),
        class_name=class_name or "",
        application=application or "",
        api=api or "",
        refresh=not no_refresh,
        tenant=tenant,
    )
    addresses = [a for a in admin.split(",") if a]
    if len(addresses) > 1:  # the fleet: every instance asked, merged by id
        from vigie.cli.fleet import fleet_suggestions  # noqa: PLC0415

        clients = admin_clients(addresses, listed(token_file), listed(state_dir))
        try:
            resp, silent = fleet_suggestions(clients, req)
        finally:
            for c in clients:
                c.close()
        for line in silent:
            err_console.print(f"vigie: {line}", highlight=False, soft_wrap=True)
    else:
        with client(admin, token_file, state_dir) as c:
            resp = c.call(c.stub.ListSuggestions, req)
    items = [suggestion_json(s) for s in resp.suggestions]
    if as_json:
        emit_json({"now": iso(resp.now_us), "by_state": dict(resp.by_state), "suggestions": items})
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(resp.by_state.items())) or "none"
    console.print(f"suggestions: {counts}", highlight=False)
    if not items:
        return
    t = Table(title="Suggestions")
    t.add_column("id", no_wrap=True)
    for col in ("state", "class", "action", "summary"):
        t.add_column(col, overflow="fold")
    for s in items:
        t.add_row(s["id"], s["state"], s["class"], s["action"], s["summary"])
    console.print(t)


@suggestions.command("show")
@admin_options
@click.argument("suggestion_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def suggestions_show(
    admin: str, token_file: str | None, state_dir: str | None, suggestion_id: str, as_json: bool
) -> None:
    """One suggestion: evidence, action, expected effect, WSO2 payload and audit trail."""
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    with client(admin, token_file, state_dir) as c:
        s = c.call(c.stub.GetSuggestion, apb.GetSuggestionRequest(id=suggestion_id))
    doc = suggestion_json(s)
    if as_json:
        emit_json(doc)
        return
    console.print(f"[bold]{doc['id']}[/] ({doc['state']}) {doc['summary']}", highlight=False)
    console.print(f"class {doc['class']}, action {doc['action']}", highlight=False)
    console.print(f"expected effect: {doc['expected_effect']}", highlight=False)
    if doc["owner_note"]:
        console.print(f"note for the owner: {doc['owner_note']}", highlight=False)
    console.print(f"auto-approval: {doc['auto_approval']}", highlight=False)
    console.print("evidence: " + json.dumps(doc["evidence"], indent=2), highlight=False)
    if doc["directive"]:
        console.print("directive: " + json.dumps(doc["directive"], indent=2), highlight=False)
    if doc["wso2"]:
        w = doc["wso2"]
        console.print(
            f"WSO2 Admin API v4: {w['method']} {w['path']} ({w['schema']})\n"
            + json.dumps(w["payload"], indent=2),
            highlight=False,
        )
    t = Table(title="Audit trail")
    for col in ("when", "who", "what", "from", "to", "why"):
        t.add_column(col, overflow="fold")
    for e in doc.get("audit", []):
        t.add_row(e["at"], e["actor"], e["action"], e["from"], e["to"], e["reason"])
    console.print(t)


def _decide(
    rpc: str, request: Any, admin: str, token_file: str | None, state_dir: str | None
) -> dict[str, Any]:
    with client(admin, token_file, state_dir) as c:
        s = c.call(getattr(c.stub, rpc), request)
    return suggestion_json(s)


def _print_decision(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(doc)
        return
    line = f"{doc['id']}: {doc['state']}"
    if doc["directive"] and doc["state"] == "pushed":
        d = doc["directive"]
        line += f" — directive {d.get('mode', '')} until {d['expires']}, on every gateway"
    console.print(line, highlight=False)


@suggestions.command("approve")
@admin_options
@click.argument("suggestion_id")
@click.option(
    "--mode",
    type=click.Choice(["shadow", "enforce"]),
    default="shadow",
    show_default=True,
    help="Directive mode: shadow counts what it would refuse; enforce refuses. Approving a "
    "pushed shadow suggestion with --mode enforce promotes it.",
)
@click.option("--ttl", help="Directive lifetime, e.g. 1h or 7d (default: the suggestion's).")
@click.option("--reason", default="", help="Why (kept in the audit trail).")
@actor_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def suggestions_approve(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    suggestion_id: str,
    mode: str,
    ttl: str | None,
    reason: str,
    actor: str,
    as_json: bool,
) -> None:
    """Approve: its directive (if any) is pushed to every connected gateway at once."""
    from vigie.directives.table import DAY_S, MAX_TTL_SECONDS  # noqa: PLC0415
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    ttl_s = parse_duration(ttl) if ttl else 0
    if ttl_s > MAX_TTL_SECONDS:
        raise click.BadParameter(
            f"{ttl!r}: at most {MAX_TTL_SECONDS // DAY_S} days (max_directive_ttl_seconds)",
            param_hint="--ttl",
        )
    req = apb.ApproveSuggestionRequest(
        id=suggestion_id,
        actor=actor,
        reason=reason,
        mode=mode_value(mode),  # type: ignore[arg-type]
        ttl_seconds=ttl_s,
    )
    _print_decision(_decide("ApproveSuggestion", req, admin, token_file, state_dir), as_json)


@suggestions.command("reject")
@admin_options
@click.argument("suggestion_id")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@actor_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def suggestions_reject(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    suggestion_id: str,
    reason: str,
    actor: str,
    as_json: bool,
) -> None:
    """Reject a proposed suggestion (it is not proposed again for the same episode)."""
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    req = apb.DecideSuggestionRequest(id=suggestion_id, actor=actor, reason=reason)
    _print_decision(_decide("RejectSuggestion", req, admin, token_file, state_dir), as_json)


@suggestions.command("withdraw")
@admin_options
@click.argument("suggestion_id")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@actor_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def suggestions_withdraw(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    suggestion_id: str,
    reason: str,
    actor: str,
    as_json: bool,
) -> None:
    """Withdraw a suggestion; a pushed directive is removed from every gateway."""
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    req = apb.DecideSuggestionRequest(id=suggestion_id, actor=actor, reason=reason)
    _print_decision(_decide("WithdrawSuggestion", req, admin, token_file, state_dir), as_json)


@suggestions.command("simulate")
@click.argument("suggestion_id")
@click.option(
    "--replay",
    "sources",
    multiple=True,
    required=True,
    metavar="[CHANNEL=]PATH",
    help="WSO2 analytics log(s) to replay (repeat the option; one file per gateway).",
)
@click.option(
    "--inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inventory JSON (as for vigie replay), to find suggestions from the replay itself.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file whose thresholds and policy settings apply.",
)
@admin_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def suggestions_simulate(
    suggestion_id: str,
    sources: tuple[str, ...],
    inventory: Path | None,
    config_path: Path | None,
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    as_json: bool,
) -> None:
    """What would this suggestion's directive have refused over the replayed logs?

    The id is looked up among the suggestions of the replayed history first (the ids `vigie
    replay --json` prints), then asked of the running sidecar.
    """
    from vigie.policy.simulate import (  # noqa: PLC0415 - keep `vigie --help` fast
        replayed_suggestion,
        simulate,
        spec_from_directive,
    )
    from vigie.policy.suggest import DirectiveSpec  # noqa: PLC0415
    from vigie.replay import run_replay  # noqa: PLC0415
    from vigie.settings import load_settings  # noqa: PLC0415
    from vigie.settings.policy import PolicyConfig  # noqa: PLC0415
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    settings = load_settings(config_path) if config_path else load_settings(env={})
    report = run_replay(list(sources), inventory, None, config_path)
    config = PolicyConfig.from_settings(settings)
    found = replayed_suggestion(report.state, report.now_us, config, suggestion_id)
    spec: DirectiveSpec | None
    origin = "the replayed history"
    if found is not None:
        spec = found.directive
        summary = found.summary
    else:
        origin = f"the sidecar at {admin}"
        with client(admin, token_file, state_dir) as c:
            s = c.call(c.stub.GetSuggestion, apb.GetSuggestionRequest(id=suggestion_id))
        summary = s.summary
        spec = spec_from_directive(s.directive) if s.HasField("directive") else None
    if spec is None:
        raise VigieError(f"{suggestion_id}: its action has no directive to simulate ({summary})")
    result = simulate(spec, list(sources))
    doc = {"suggestion_id": suggestion_id, "found_in": origin, "summary": summary}
    doc |= result.to_json()
    if as_json:
        emit_json(doc)
        return
    console.print(f"[bold]{suggestion_id}[/]: {summary}", highlight=False)
    console.print(
        f"over {result.events:,} events ({doc['from']} to {doc['to']}): "
        f"{result.matched:,} in scope, {result.refused:,} would have been refused, "
        f"{len(result.affected)} consumers affected, {result.share:.1%} of their traffic",
        highlight=False,
    )
    if result.affected:
        t = Table(title="Consumers affected")
        for col in ("application", "API", "refused", "requests", "share"):
            t.add_column(col)
        for a in result.affected:
            t.add_row(
                a.application or a.application_id,
                f"{a.api} {a.api_version}",
                f"{a.refused:,}",
                f"{a.requests:,}",
                f"{a.refused / a.requests:.1%}" if a.requests else "-",
            )
        console.print(t)
