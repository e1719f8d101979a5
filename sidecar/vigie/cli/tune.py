"""``vigie tune``: manual directives (limit, block, unblock) and the classifier thresholds,
changed at run time through the sidecar's admin service.

Guard rails, before anything is sent: every value within the directive table's own ranges
(``vigie.directives.table``: the TTL at most ``MAX_TTL_SECONDS``, the rate and burst what the
handler applies), a one-line error otherwise; ``--application`` resolved to the UUID of an
application the sidecar knows (a name is looked up, unknown or ambiguous names are refused
with the candidates); ENFORCE on a scope without an application (an API, a channel,
everything) or a TTL over 7 days asks for confirmation (``--yes`` for scripts; without a
terminal the command refuses).
"""

from __future__ import annotations

import difflib
import re
import sys
import time
from typing import Any, Final

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
from vigie.directives.table import DAY_S, MAX_TTL_SECONDS, range_error
from vigie.errors import VigieError

# a TTL longer than this asks for confirmation
CONFIRM_TTL_SECONDS: Final = 7 * DAY_S
_UUID: Final = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


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
    click.option(
        "--yes", is_flag=True, help="Confirm an ENFORCE without an application or a TTL > 7 d."
    ),
    actor_option,
    click.option("--json", "as_json", is_flag=True, help="Print JSON."),
)


def _resolve_application(c: Any, value: str) -> str:
    """The UUID of the application ``value`` names (its id, or its name when unique)."""
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    subs = c.call(c.stub.ListSubscriptions, apb.ListSubscriptionsRequest()).subscriptions
    names: dict[str, set[str]] = {}
    for sub in subs:
        if sub.application_id == value:
            return value
        names.setdefault(sub.application_name, set()).add(sub.application_id)
    ids = sorted(names.get(value, ()))
    if len(ids) == 1:
        return ids[0]
    if ids:
        raise click.BadParameter(
            f"{value!r} names {len(ids)} applications: {', '.join(ids)}; give the UUID",
            param_hint="--application",
        )
    if _UUID.match(value):
        return value  # an application the sidecar has not seen yet
    known = sorted({s.application_id for s in subs} | {n for n in names if n})
    close = difflib.get_close_matches(value, known, n=5)
    hint = f" (close: {', '.join(close)})" if close else ""
    raise click.BadParameter(
        f"no application {value!r} is known to the sidecar{hint}; give its UUID",
        param_hint="--application",
    )


def _preview(c: Any, d: Any) -> dict[str, Any]:
    """What ``d`` would have refused recently, from the sidecar's state (``ExportState``)."""
    from vigie.cli.client import fetch_states  # noqa: PLC0415
    from vigie.policy.simulate import impact_from_state  # noqa: PLC0415

    (state,) = fetch_states([c])
    return impact_from_state(state, d)


def _impact_line(impact: dict[str, Any]) -> str:
    h, day = impact["this_hour"], impact["last_24_hours"]
    return (
        f"would have refused {h['refused']:,} of {h['requests']:,} requests this hour and "
        f"{day['refused']:,} of {day['requests']:,} over the last 24 hours (until "
        f"{impact['now'] or 'no traffic yet'}; {impact['basis']})"
    )


def _confirm(d: Any, ttl_s: int, yes: bool) -> None:
    """Ask before an ENFORCE without an application or a TTL over 7 days (``--yes``: do not)."""
    from vigie.v1 import directives_pb2 as dpb  # noqa: PLC0415

    why = []
    if d.mode == dpb.DIRECTIVE_MODE_ENFORCE and not d.application_id:
        scope = f"API {d.api_name}" if d.api_name else (
            f"channel {d.channel}" if d.channel else "everything")  # fmt: skip
        why.append(f"ENFORCE on every application of {scope}")
    if ttl_s > CONFIRM_TTL_SECONDS:
        why.append(f"a TTL of {ttl_s / DAY_S:g} days (over 7)")
    if not why or yes:
        return
    what = " and ".join(why)
    if not sys.stdin.isatty():
        raise click.UsageError(f"{what}: confirm with --yes (no terminal to ask)")
    click.confirm(f"{what}: push it?", abort=True)


def _put(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    directive: Any,
    actor: str,
    reason: str,
    as_json: bool,
    yes: bool,
    kind: str,
) -> None:
    """Resolve the application, confirm when needed, push ``directive``; ``kind``: the id is
    minted from the scope (``--id`` not given) and follows the resolved application."""
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    ttl_s = int(directive.expires_at_us / 1e6 - time.time() + 0.5)
    with client(admin, token_file, state_dir) as c:
        if directive.application_id:
            app = _resolve_application(c, directive.application_id)
            if app != directive.application_id and kind:
                directive.id = manual_directive_id(
                    kind, app, directive.api_name, directive.api_version, directive.channel
                )
            directive.application_id = app
        impact = _preview(c, directive)
        if not as_json:
            console.print(_impact_line(impact), highlight=False, soft_wrap=True)
        _confirm(directive, ttl_s, yes)
        resp = c.call(
            c.stub.PutDirective,
            apb.PutDirectiveRequest(directive=directive, actor=actor, reason=reason),
        )
    mine = next(d for d in resp.directives if d.id == directive.id)
    if as_json:
        emit_json({"version": resp.version, "directive": directive_json(mine), "impact": impact})
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
    ttl_s = parse_duration(ttl)
    if ttl_s > MAX_TTL_SECONDS:
        raise click.BadParameter(
            f"{ttl!r}: at most {MAX_TTL_SECONDS // DAY_S} days (max_directive_ttl_seconds)",
            param_hint="--ttl",
        )
    if rate is not None:
        for name, v, hint in (("limit_requests", rate[0], "--rate"),
                              ("limit_period_seconds", rate[1], "--rate"),
                              ("limit_burst", burst, "--burst")):  # fmt: skip
            err = range_error(name, v)
            if err:
                raise click.BadParameter(err, param_hint=hint)
    d = dpb.Directive(
        id=directive_id or manual_directive_id(kind, application, api, api_version, channel),
        mode=mode_value(mode),  # type: ignore[arg-type]
        action=action,  # type: ignore[arg-type]
        application_id=application,
        api_name=api,
        api_version=api_version,
        channel=channel,
        expires_at_us=int((time.time() + ttl_s) * 1e6),
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
    yes: bool,
    actor: str,
    as_json: bool,
) -> None:
    """Limit the matching requests on every gateway (a directive with a TTL)."""
    from vigie.v1 import directives_pb2 as dpb  # noqa: PLC0415

    d = _build(dpb.DIRECTIVE_ACTION_LIMIT, application, api, api_version, channel, ttl, mode,
               reason, directive_id, "limit", parse_rate(rate), burst)  # fmt: skip
    _put(admin, token_file, state_dir, d, actor, reason, as_json, yes,
         "" if directive_id else "limit")  # fmt: skip


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
    yes: bool,
    actor: str,
    as_json: bool,
) -> None:
    """Block the matching requests on every gateway (a directive with a TTL)."""
    from vigie.v1 import directives_pb2 as dpb  # noqa: PLC0415

    d = _build(dpb.DIRECTIVE_ACTION_BLOCK, application, api, api_version, channel, ttl, mode,
               reason, directive_id, "block")  # fmt: skip
    _put(admin, token_file, state_dir, d, actor, reason, as_json, yes,
         "" if directive_id else "block")  # fmt: skip


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
