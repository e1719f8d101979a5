"""``vigie suggestions|tune|policies|top``: the operator's side of suggestions and directives.

Thin click commands on ``vigie.cli.main.main``: parse, call the sidecar's admin service, print (a
readable table, or ``--json``). Registered by one import at the bottom of ``vigie/cli.py``.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from vigie.cli.main import _client, _iso, admin_options, console, err_console, main
from vigie.errors import VigieError

STATES = ("proposed", "approved", "rejected", "pushed", "exported", "expired", "withdrawn")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_S = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
           "hour": 3600, "d": 86400, "day": 86400}  # fmt: skip


def parse_duration(value: str) -> int:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` -> seconds."""
    m = _DURATION.match(value)
    if not m:
        raise click.BadParameter(f"{value!r}: expected a duration such as 90s, 15m, 1h or 7d")
    seconds = int(float(m.group(1)) * _UNIT_S[m.group(2)])
    if seconds <= 0:
        raise click.BadParameter(f"{value!r}: must be positive")
    return seconds


def parse_rate(value: str) -> tuple[int, int]:
    """``100/min``, ``10/s``, ``5000/hour``, ``30/10s`` -> (requests, period seconds)."""
    m = _RATE.match(value)
    if not m:
        raise click.BadParameter(f"{value!r}: expected a rate such as 100/min, 10/s or 30/10s")
    n, mult, unit = int(m.group(1)), int(m.group(2) or 1), m.group(3)
    if n <= 0 or mult <= 0:
        raise click.BadParameter(f"{value!r}: must be positive")
    return n, mult * _RATE_S[unit]


def _actor() -> str:
    env = os.environ.get("VIGIE_ACTOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no user name at all
        return "unknown"


def _emit(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")


def _mode(name: str) -> int:
    from vigie.v1 import directives_pb2 as dpb  # noqa: PLC0415

    return dpb.DIRECTIVE_MODE_ENFORCE if name == "enforce" else dpb.DIRECTIVE_MODE_SHADOW


def directive_json(d: Any) -> dict[str, Any]:
    from google.protobuf import json_format  # noqa: PLC0415

    doc: dict[str, Any] = json_format.MessageToDict(d, preserving_proto_field_name=True)
    doc["expires"] = _iso(d.expires_at_us)
    return doc


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
        "created": _iso(s.created_at_us),
        "updated": _iso(s.updated_at_us),
        "expires": _iso(s.expires_at_us),
        "exported": s.exported,
    }
    if s.audit:
        doc["audit"] = [
            {
                "at": _iso(e.at_us),
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


# ---------------------------------------------------------------------------------------------
# vigie suggestions ...
# ---------------------------------------------------------------------------------------------


@main.group()
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
    no_refresh: bool,
    as_json: bool,
) -> None:
    """Suggestions with their state, action and expected effect."""
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    with _client(admin, token_file, state_dir) as c:
        resp = c.call(
            c.stub.ListSuggestions,
            apb.ListSuggestionsRequest(
                states=list(states),
                class_name=class_name or "",
                application=application or "",
                api=api or "",
                refresh=not no_refresh,
            ),
        )
    items = [suggestion_json(s) for s in resp.suggestions]
    if as_json:
        _emit({"now": _iso(resp.now_us), "by_state": dict(resp.by_state), "suggestions": items})
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

    with _client(admin, token_file, state_dir) as c:
        s = c.call(c.stub.GetSuggestion, apb.GetSuggestionRequest(id=suggestion_id))
    doc = suggestion_json(s)
    if as_json:
        _emit(doc)
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
    with _client(admin, token_file, state_dir) as c:
        s = c.call(getattr(c.stub, rpc), request)
    return suggestion_json(s)


def _print_decision(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _emit(doc)
        return
    line = f"{doc['id']}: {doc['state']}"
    if doc["directive"] and doc["state"] == "pushed":
        d = doc["directive"]
        line += f" — directive {d.get('mode', '')} until {d['expires']}, on every gateway"
    console.print(line, highlight=False)


_actor_option = click.option(
    "--actor", default=_actor, show_default="$VIGIE_ACTOR or your user name", help="Who decides."
)


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
@_actor_option
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
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    req = apb.ApproveSuggestionRequest(
        id=suggestion_id,
        actor=actor,
        reason=reason,
        mode=_mode(mode),  # type: ignore[arg-type]
        ttl_seconds=parse_duration(ttl) if ttl else 0,
    )
    _print_decision(_decide("ApproveSuggestion", req, admin, token_file, state_dir), as_json)


@suggestions.command("reject")
@admin_options
@click.argument("suggestion_id")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@_actor_option
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
@_actor_option
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
    from vigie.policy.simulate import simulate  # noqa: PLC0415
    from vigie.policy.suggest import DirectiveSpec, suggest  # noqa: PLC0415
    from vigie.replay import run_replay  # noqa: PLC0415
    from vigie.settings import load_settings  # noqa: PLC0415
    from vigie.settings.policy import PolicyConfig  # noqa: PLC0415

    settings = load_settings(config_path) if config_path else load_settings(env={})
    report = run_replay(list(sources), inventory, None, config_path)
    found = {
        s.id: s for s in suggest(report.state, report.now_us, PolicyConfig.from_settings(settings))
    }
    spec: DirectiveSpec | None
    origin = "the replayed history"
    if suggestion_id in found:
        spec = found[suggestion_id].directive
        summary = found[suggestion_id].summary
    else:
        from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

        origin = f"the sidecar at {admin}"
        with _client(admin, token_file, state_dir) as c:
            s = c.call(c.stub.GetSuggestion, apb.GetSuggestionRequest(id=suggestion_id))
        summary = s.summary
        spec = _spec_from_proto(s.directive) if s.HasField("directive") else None
    if spec is None:
        raise VigieError(f"{suggestion_id}: its action has no directive to simulate ({summary})")
    result = simulate(spec, list(sources))
    doc = {"suggestion_id": suggestion_id, "found_in": origin, "summary": summary}
    doc |= result.to_json()
    if as_json:
        _emit(doc)
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


def _spec_from_proto(d: Any) -> Any:
    from vigie.policy.suggest import DirectiveSpec  # noqa: PLC0415
    from vigie.v1 import directives_pb2 as dpb  # noqa: PLC0415

    return DirectiveSpec(
        action="BLOCK" if d.action == dpb.DIRECTIVE_ACTION_BLOCK else "LIMIT",
        application_id=d.application_id,
        api_name=d.api_name,
        api_version=d.api_version,
        channel=d.channel,
        limit_requests=d.limit_requests,
        limit_period_seconds=d.limit_period_seconds,
        reason=d.reason,
    )


# ---------------------------------------------------------------------------------------------
# vigie tune ...
# ---------------------------------------------------------------------------------------------


@main.group()
def tune() -> None:
    """Manual directives (limit, block, unblock) and classifier thresholds, at run time."""


def _scope_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--application", default="", help="WSO2 application UUID."),
            click.option("--api", default="", help="API name."),
            click.option("--api-version", default="", help="API version (with --api)."),
            click.option("--channel", default="", help="Gateway channel (empty: every one)."),
        ]
    ):
        f = opt(f)
    return f


def _directive_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--ttl", required=True, help="Lifetime, e.g. 30m, 1h, 7d (required)."),
            click.option(
                "--mode",
                type=click.Choice(["shadow", "enforce"]),
                default="shadow",
                show_default=True,
                help="shadow counts what it would refuse; enforce refuses.",
            ),
            click.option("--reason", required=True, help="Why (audit trail, fault description)."),
            click.option("--id", "directive_id", help="Directive id (default: from the scope)."),
            _actor_option,
            click.option("--json", "as_json", is_flag=True, help="Print JSON."),
        ]
    ):
        f = opt(f)
    return f


def _manual_id(kind: str, application: str, api: str, api_version: str, channel: str) -> str:
    h = hashlib.sha256(f"{kind}|{application}|{api}|{api_version}|{channel}".encode())
    return f"manual-{kind}-{h.hexdigest()[:10]}"


def _put(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    directive: Any,
    actor: str,
    reason: str,
    as_json: bool,
) -> None:
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    with _client(admin, token_file, state_dir) as c:
        resp = c.call(
            c.stub.PutDirective,
            apb.PutDirectiveRequest(directive=directive, actor=actor, reason=reason),
        )
    mine = next(d for d in resp.directives if d.id == directive.id)
    if as_json:
        _emit({"version": resp.version, "directive": directive_json(mine)})
        return
    console.print(
        f"directive {mine.id} pushed to every gateway (table version {resp.version}), "
        f"expires {_iso(mine.expires_at_us)}",
        highlight=False,
    )


def _build(
    action: int,
    application: str,
    api: str,
    api_version: str,
    channel: str,
    ttl: str,
    mode: str,
    reason: str,
    directive_id: str | None,
    kind: str,
    rate: tuple[int, int] | None = None,
    burst: int = 0,
) -> Any:
    from vigie.v1 import directives_pb2 as dpb  # noqa: PLC0415

    if not (application or api or channel):
        raise click.UsageError("give a scope: --application, --api and/or --channel")
    d = dpb.Directive(
        id=directive_id or _manual_id(kind, application, api, api_version, channel),
        mode=_mode(mode),  # type: ignore[arg-type]
        action=action,  # type: ignore[arg-type]
        application_id=application,
        api_name=api,
        api_version=api_version,
        channel=channel,
        expires_at_us=int((time.time() + parse_duration(ttl)) * 1e6),
        reason=reason,
    )
    if rate is not None:
        d.limit_requests, d.limit_period_seconds = rate
        d.limit_burst = burst
    return d


@tune.command("limit")
@admin_options
@_scope_options
@click.option("--rate", required=True, help="Requests allowed, e.g. 100/min, 10/s, 30/10s.")
@click.option("--burst", type=int, default=0, help="Token bucket size (0: the rate's count).")
@_directive_options
def tune_limit(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    application: str,
    api: str,
    api_version: str,
    channel: str,
    rate: str,
    burst: int,
    ttl: str,
    mode: str,
    reason: str,
    directive_id: str | None,
    actor: str,
    as_json: bool,
) -> None:
    """Limit the matching requests on every gateway (a directive with a TTL)."""
    from vigie.v1 import directives_pb2 as dpb  # noqa: PLC0415

    d = _build(dpb.DIRECTIVE_ACTION_LIMIT, application, api, api_version, channel, ttl, mode,
               reason, directive_id, "limit", parse_rate(rate), burst)  # fmt: skip
    _put(admin, token_file, state_dir, d, actor, reason, as_json)


@tune.command("block")
@admin_options
@_scope_options
@_directive_options
def tune_block(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    application: str,
    api: str,
    api_version: str,
    channel: str,
    ttl: str,
    mode: str,
    reason: str,
    directive_id: str | None,
    actor: str,
    as_json: bool,
) -> None:
    """Block the matching requests on every gateway (a directive with a TTL)."""
    from vigie.v1 import directives_pb2 as dpb  # noqa: PLC0415

    d = _build(dpb.DIRECTIVE_ACTION_BLOCK, application, api, api_version, channel, ttl, mode,
               reason, directive_id, "block")  # fmt: skip
    _put(admin, token_file, state_dir, d, actor, reason, as_json)


@tune.command("unblock")
@admin_options
@click.argument("directive_id", required=False)
@_scope_options
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@_actor_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tune_unblock(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    directive_id: str | None,
    application: str,
    api: str,
    api_version: str,
    channel: str,
    reason: str,
    actor: str,
    as_json: bool,
) -> None:
    """Remove a directive by id, or every BLOCK with exactly this scope."""
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415
    from vigie.v1 import directives_pb2 as dpb  # noqa: PLC0415

    removed: list[str] = []
    with _client(admin, token_file, state_dir) as c:
        if directive_id:
            ids = [directive_id]
        else:
            if not (application or api or channel):
                raise click.UsageError("give a directive id or a scope")
            table = c.call(c.stub.ListDirectives, apb.ListDirectivesRequest())
            ids = [
                d.id
                for d in table.directives
                if d.action == dpb.DIRECTIVE_ACTION_BLOCK
                and (d.application_id, d.api_name, d.api_version, d.channel)
                == (application, api, api_version, channel)
            ]
            if not ids:
                raise VigieError("no BLOCK directive has exactly this scope (see vigie status)")
        for i in ids:
            c.call(
                c.stub.RemoveDirective,
                apb.RemoveDirectiveRequest(directive_id=i, actor=actor, reason=reason),
            )
            removed.append(i)
    if as_json:
        _emit({"removed": removed})
        return
    console.print(f"removed from every gateway: {', '.join(removed)}", highlight=False)


@tune.command("thresholds")
@admin_options
@click.argument("changes", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("--reset", is_flag=True, help="Drop every run-time change (back to the settings).")
@click.option("--reason", default="", help="Why (kept in the audit trail).")
@_actor_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tune_thresholds(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    changes: tuple[str, ...],
    reset: bool,
    reason: str,
    actor: str,
    as_json: bool,
) -> None:
    """View the classifier thresholds, or change them at run time (validated, persisted).

    \b
      vigie tune thresholds                          view
      vigie tune thresholds retry_min_retries=50     change (refused with the reason if bad)
      vigie tune thresholds --reset                  back to the settings file's values
    """
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    parsed: dict[str, float] = {}
    for item in changes:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint="CHANGES")
        try:
            parsed[name.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: {value!r} is not a number") from None
    with _client(admin, token_file, state_dir) as c:
        if parsed or reset:
            resp = c.call(
                c.stub.SetThresholds,
                apb.SetThresholdsRequest(changes=parsed, actor=actor, reason=reason, reset=reset),
            )
        else:
            resp = c.call(c.stub.GetThresholds, apb.GetThresholdsRequest())
    rows = [
        {
            "name": t.name,
            "value": t.value,
            "default": t.default_value,
            "tuned": t.tuned,
            "start_up_only": t.start_up_only,
            "doc": t.doc,
        }
        for t in resp.thresholds
    ]
    if as_json:
        _emit({"thresholds": rows})
        return
    t = Table(title="Classifier thresholds")
    for col in ("name", "value", "settings", "meaning"):
        t.add_column(col, overflow="fold")
    for r in rows:
        mark = " (tuned)" if r["tuned"] else (" (start-up only)" if r["start_up_only"] else "")
        t.add_row(r["name"], f"{r['value']:g}{mark}", f"{r['default']:g}", r["doc"])
    console.print(t)


# ---------------------------------------------------------------------------------------------
# vigie policies ...
# ---------------------------------------------------------------------------------------------


@main.group()
def policies() -> None:
    """WSO2 throttling and deny policies from approved suggestions: export, apply."""


def _export(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    ids: tuple[str, ...],
    fmt: str,
    actor: str,
    apim_version: str,
    include_proposed: bool,
) -> Any:
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    with _client(admin, token_file, state_dir) as c:
        return c.call(
            c.stub.ExportPolicies,
            apb.ExportPoliciesRequest(
                ids=list(ids),
                format=fmt,
                actor=actor,
                apim_version=apim_version,
                include_proposed=include_proposed,
            ),
        )


@policies.command("export")
@admin_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["wso2-admin", "apictl"]),
    default="wso2-admin",
    show_default=True,
    help="wso2-admin: Admin REST API v4 request bodies; apictl: files for "
    "`apictl import policy rate-limiting -f FILE`.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per policy in this directory (default: print one JSON document).",
)
@click.option("--id", "ids", multiple=True, help="Only this suggestion (repeat).")
@click.option("--apim-version", default="v4.2.0", show_default=True, help="apictl file version.")
@click.option(
    "--include-proposed", is_flag=True, help="Also proposed suggestions (a preview, not recorded)."
)
@_actor_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default without --out).")
def policies_export(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    fmt: str,
    out: Path | None,
    ids: tuple[str, ...],
    apim_version: str,
    include_proposed: bool,
    actor: str,
    as_json: bool,
) -> None:
    """Export the WSO2 payloads of approved suggestions (recorded in their audit trail)."""
    resp = _export(admin, token_file, state_dir, ids, fmt, actor, apim_version, include_proposed)
    items = []
    written: dict[str, str] = {}
    for p in resp.policies:
        body = json.loads(p.body_json)
        items.append(
            {
                "suggestion_id": p.suggestion_id,
                "schema": p.schema,
                "method": p.method,
                "path": p.path,
                "file": p.file_name,
                "body": body,
            }
        )
        if out is not None:
            text = json.dumps(body, indent=2) + "\n"
            if written.get(p.file_name, text) != text:  # pragma: no cover - names are content
                raise VigieError(f"{p.file_name}: two different policies with one name")
            written[p.file_name] = text
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in written.items():
            (out / name).write_text(text)
    for s in resp.skipped:
        err_console.print(f"[yellow]skipped[/] {s}", highlight=False, soft_wrap=True)
    if as_json or out is None:
        _emit({"format": fmt, "policies": items, "skipped": list(resp.skipped)})
        return
    console.print(f"{len(written)} file(s) written to {out}", highlight=False)
    if fmt == "apictl":
        console.print(
            f"import each with: apictl import policy rate-limiting -f {out}/<file> -e <env>",
            highlight=False,
        )


@policies.command("apply")
@admin_options
@click.option(
    "--admin-url",
    required=True,
    help="WSO2 Admin REST API v4 base, e.g. https://apim.example:9443/api/am/admin/v4",
)
@click.option(
    "--token-url",
    help="OAuth2 token endpoint (default: https://<admin host>/oauth2/token).",
)
@click.option(
    "--client-id",
    default=lambda: os.environ.get("VIGIE_WSO2_CLIENT_ID", ""),
    show_default="$VIGIE_WSO2_CLIENT_ID",
    help="OAuth2 client id (an application registered for the Admin API).",
)
@click.option("--client-secret-file", help="File holding the client secret (first choice).")
@click.option(
    "--client-secret-env",
    default="VIGIE_WSO2_CLIENT_SECRET",
    show_default=True,
    help="Environment variable holding the client secret.",
)
@click.option("--scopes", default=None, help="OAuth2 scopes to ask for.")
@click.option("--id", "ids", multiple=True, help="Only this suggestion (repeat).")
@click.option("--dry-run", is_flag=True, help="Print the requests; send nothing.")
@click.option("--update-existing", is_flag=True, help="Replace a policy whose name exists.")
@click.option("--ca-file", help="CA bundle for WSO2's certificate.")
@click.option("--insecure", is_flag=True, help="Do not verify WSO2's certificate (test setups).")
@_actor_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def policies_apply(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    admin_url: str,
    token_url: str | None,
    client_id: str,
    client_secret_file: str | None,
    client_secret_env: str,
    scopes: str | None,
    ids: tuple[str, ...],
    dry_run: bool,
    update_existing: bool,
    ca_file: str | None,
    insecure: bool,
    actor: str,
    as_json: bool,
) -> None:
    """Send the WSO2 payloads of approved suggestions to the Admin REST API v4.

    OAuth2 client credentials: the secret comes from --client-secret-file or the environment
    (never the command line) and is never printed. --dry-run shows the requests instead.
    """
    import urllib.parse  # noqa: PLC0415

    from vigie.policy import apply as ap  # noqa: PLC0415
    from vigie.policy.wso2 import AdminRequest  # noqa: PLC0415
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    if not client_id:
        raise click.UsageError("give --client-id (or set VIGIE_WSO2_CLIENT_ID)")
    u = urllib.parse.urlsplit(admin_url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise click.BadParameter(f"{admin_url!r} is not an http(s) URL", param_hint="--admin-url")
    token_url = token_url or f"{u.scheme}://{u.netloc}/oauth2/token"
    scopes = scopes or ap.DEFAULT_SCOPES
    secret, source = ap.read_secret(client_secret_file, client_secret_env, os.environ.get)
    export_actor = f"{actor} (apply {'dry-run' if dry_run else admin_url})"
    resp = _export(admin, token_file, state_dir, ids, "wso2-admin", export_actor, "v4.2.0", False)
    reqs = [
        (p.suggestion_id, AdminRequest(p.schema, p.method, p.path, json.loads(p.body_json)))
        for p in resp.policies
    ]
    # one request per distinct policy (several suggestions may share a policy)
    unique: dict[str, tuple[list[str], AdminRequest]] = {}
    for sid, r in reqs:
        key = json.dumps([r.schema, r.path, r.payload], sort_keys=True)
        unique.setdefault(key, ([], r))[0].append(sid)
    for s in resp.skipped:
        err_console.print(f"[yellow]skipped[/] {s}", highlight=False, soft_wrap=True)
    if dry_run:
        lines = ap.dry_run_lines(
            admin_url, token_url, source, client_id, scopes, [r for _, r in unique.values()]
        )
        if as_json:
            _emit(
                {
                    "dry_run": True,
                    "token_url": token_url,
                    "requests": [
                        {"suggestions": sids, "method": r.method,
                         "url": admin_url.rstrip("/") + r.path, "body": r.payload}
                        for sids, r in unique.values()
                    ],
                }
            )  # fmt: skip
        else:
            sys.stdout.write("\n".join(lines) + "\n")  # as is: no wrapping, no markup
        return
    api = ap.AdminApi(
        admin_url, token_url, ap.Credentials(client_id, secret, source), scopes, ca_file, insecure
    )
    results = []
    failed = 0
    with _client(admin, token_file, state_dir) as c:
        for sids, r in unique.values():
            o = api.send(r, update_existing)
            failed += not o.ok
            results.append(o.to_json() | {"suggestions": sids})
            for sid in sids:
                c.call(
                    c.stub.RecordPolicyApplied,
                    apb.RecordPolicyAppliedRequest(
                        id=sid,
                        actor=actor,
                        target=o.url,
                        outcome=f"{o.method} {o.status}: {o.message}",
                        ok=o.ok,
                    ),
                )
    if as_json:
        _emit({"dry_run": False, "results": results, "failed": failed})
    else:
        t = Table(title=f"Applied to {admin_url}")
        for col in ("schema", "request", "status", "result"):
            t.add_column(col, overflow="fold")
        for row in results:
            t.add_row(
                row["schema"], f"{row['method']} {row['url']}", str(row["status"]), row["message"]
            )
        console.print(t)
    if failed:
        raise ap.ApplyError(f"{failed} of {len(results)} request(s) failed")


# ---------------------------------------------------------------------------------------------
# vigie top
# ---------------------------------------------------------------------------------------------


def _score(s: Any) -> float:
    """How anomalous a subscription looks: its classes, weighted by their evidence share."""
    score = 0.0
    for e in s.evidence:
        if e.class_name == "dormant":
            continue
        score += 1.0 + float(e.figures.get("share", 0.0))
    return score


def top_snapshot(
    previous: dict[str, int] | None, resp: Any, elapsed: float, limit: int
) -> dict[str, Any]:
    rows = []
    for s in resp.subscriptions:
        key = f"{s.application_id}|{s.api}|{s.api_version}"
        rate = (s.requests - previous[key]) / elapsed if previous and key in previous else None
        rows.append((key, s, rate))
    busiest = sorted(rows, key=lambda r: (-(r[2] or 0.0), -r[1].requests))[:limit]
    anomalous = sorted(
        (r for r in rows if _score(r[1]) > 0), key=lambda r: (-_score(r[1]), -r[1].requests)
    )[:limit]

    def item(r: tuple[str, Any, float | None]) -> dict[str, Any]:
        s = r[1]
        return {
            "application_id": s.application_id,
            "application": s.application_name,
            "api": s.api,
            "api_version": s.api_version,
            "requests": s.requests,
            "rate_per_second": None if r[2] is None else round(r[2], 2),
            "classes": list(s.classes),
            "score": round(_score(s), 3),
        }

    return {
        "now": _iso(resp.now_us),
        "busiest": [item(r) for r in busiest],
        "anomalous": [item(r) for r in anomalous],
    }


def _top_tables(doc: dict[str, Any]) -> Any:
    from rich.console import Group  # noqa: PLC0415

    tables = []
    for key, title in (("busiest", "Busiest"), ("anomalous", "Most anomalous")):
        t = Table(title=f"{title} subscriptions at {doc['now']}")
        for col in ("application", "API", "req/s", "requests", "classes"):
            t.add_column(col, overflow="fold")
        for r in doc[key]:
            rate = "-" if r["rate_per_second"] is None else f"{r['rate_per_second']:,.1f}"
            t.add_row(
                r["application"] or r["application_id"],
                f"{r['api']} {r['api_version']}",
                rate,
                f"{r['requests']:,}",
                ", ".join(r["classes"]),
            )
        tables.append(t)
    return Group(*tables)


@main.command()
@admin_options
@click.option("--interval", type=float, default=2.0, show_default=True, help="Seconds between.")
@click.option("--limit", type=int, default=10, show_default=True, help="Rows per table.")
@click.option("--iterations", type=int, default=0, help="Stop after this many (0: Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per refresh.")
def top(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    interval: float,
    limit: int,
    iterations: int,
    as_json: bool,
) -> None:
    """A live view of the busiest and the most anomalous subscriptions."""
    from rich.live import Live  # noqa: PLC0415

    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    if interval <= 0:
        raise click.BadParameter("must be positive", param_hint="--interval")
    previous: dict[str, int] | None = None
    last = time.monotonic()
    n = 0
    with _client(admin, token_file, state_dir) as c:

        def poll() -> dict[str, Any]:
            nonlocal previous, last
            resp = c.call(c.stub.ListSubscriptions, apb.ListSubscriptionsRequest())
            now = time.monotonic()
            doc = top_snapshot(previous, resp, max(now - last, 1e-6), limit)
            previous = {
                f"{s.application_id}|{s.api}|{s.api_version}": s.requests
                for s in resp.subscriptions
            }
            last = now
            return doc

        doc = poll()
        try:
            if as_json:
                while True:
                    time.sleep(interval)
                    doc = poll()
                    _emit(doc)
                    n += 1
                    if iterations and n >= iterations:
                        return
            with Live(_top_tables(doc), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(_top_tables(poll()), refresh=True)
                    n += 1
                    if iterations and n >= iterations:
                        return
        except KeyboardInterrupt:
            return


# ---------------------------------------------------------------------------------------------
# vigie status: what this module adds
# ---------------------------------------------------------------------------------------------


def status_extra(c: Any) -> dict[str, Any]:
    """Health and the active directives with their hits (``vigie status`` adds them)."""
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


def print_status_extra(st: Any, extra: dict[str, Any]) -> None:
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
