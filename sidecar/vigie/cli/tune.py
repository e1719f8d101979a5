"""``vigie tune``: manual directives (limit, block, unblock) and the classifier thresholds,
changed at run time through the sidecar's admin service."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.table import Table

from vigie.cli.common import (
    actor_option,
    admin_options,
    client,
    console,
    directive_json,
    emit_json,
    iso,
    mode_value,
    option_group,
    parse_duration,
    parse_rate,
)
from vigie.directives.ids import manual_directive_id
from vigie.errors import VigieError


@click.group()
def tune() -> None:
    """Manual directives (limit, block, unblock) and classifier thresholds, at run time."""


_scope_options = option_group(
    click.option("--application", default="", help="WSO2 application UUID."),
    click.option("--api", default="", help="API name."),
    click.option("--api-version", default="", help="API version (with --api)."),
    click.option("--channel", default="", help="Gateway channel (empty: every one)."),
)

_directive_options = option_group(
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
    actor_option,
    click.option("--json", "as_json", is_flag=True, help="Print JSON."),
)


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

    with client(admin, token_file, state_dir) as c:
        resp = c.call(
            c.stub.PutDirective,
            apb.PutDirectiveRequest(directive=directive, actor=actor, reason=reason),
        )
    mine = next(d for d in resp.directives if d.id == directive.id)
    if as_json:
        emit_json({"version": resp.version, "directive": directive_json(mine)})
        return
    console.print(
        f"directive {mine.id} pushed to every gateway (table version {resp.version}), "
        f"expires {iso(mine.expires_at_us)}",
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
        id=directive_id or manual_directive_id(kind, application, api, api_version, channel),
        mode=mode_value(mode),  # type: ignore[arg-type]
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
@actor_option
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
    with client(admin, token_file, state_dir) as c:
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
        emit_json({"removed": removed})
        return
    console.print(f"removed from every gateway: {', '.join(removed)}", highlight=False)


@tune.command("thresholds")
@admin_options
@click.argument("changes", nargs=-1, metavar="[NAME=VALUE]...")
@click.option("--reset", is_flag=True, help="Drop every run-time change (back to the settings).")
@click.option("--reason", default="", help="Why (kept in the audit trail).")
@actor_option
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
    with client(admin, token_file, state_dir) as c:
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
        emit_json({"thresholds": rows})
        return
    t = Table(title="Classifier thresholds")
    for col in ("name", "value", "settings", "meaning"):
        t.add_column(col, overflow="fold")
    for r in rows:
        mark = " (tuned)" if r["tuned"] else (" (start-up only)" if r["start_up_only"] else "")
        t.add_row(r["name"], f"{r['value']:g}{mark}", f"{r['default']:g}", r["doc"])
    console.print(t)
