"""``vigie clients``: the client IPs, application keys and APIs of the security class
``auth_failing`` (authentication failures, ``vigie.classify.security``) of a running sidecar."""

from __future__ import annotations

import json

import click

from vigie.cli.common import admin_options, client, console, emit_json

KINDS = ("ip", "app", "api")


@click.command()
@admin_options
@click.option("--all", "show_all", is_flag=True, help="Every tracked row, not only auth_failing.")
@click.option("--kind", type=click.Choice(KINDS), help="Only client IPs, application keys or APIs.")
@click.option("--limit", type=int, default=0, help="At most this many, the most failures first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def clients(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    show_all: bool,
    kind: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Who fails to authenticate: client IPs, application keys and APIs holding auth_failing
    (>= auth_min_failures authentication failures in an hour), with their evidence."""
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415 - keep `vigie --help` fast

    if limit < 0:
        raise click.BadParameter("must be at least 0", param_hint="--limit")
    req = apb.ListClientsRequest(held_only=not show_all, kind=kind or "", limit=limit)
    with client(admin, token_file, state_dir) as c:
        resp = c.call(c.stub.ListClients, req)
    rows = [json.loads(j) for j in resp.client_json]
    if as_json:
        emit_json({"clients": rows})
        return
    if not rows:
        console.print("no client holds auth_failing" if not show_all else "no client tracked")
        return
    for r in rows:  # one line each: grep-able, never wrapped
        ev = r["evidence"]
        spread = ev.get("distinct_apis", ev.get("distinct_client_ips", ""))
        key = r["key"] + (" (hashed)" if r["hashed"] else "")
        console.print(
            f"{r['kind']:<4} {key}  {','.join(r['classes'])}  "
            f"failures/h={ev['failures_last_hour']} total={ev['failures_total']} "
            f"{'client_ips' if r['kind'] == 'api' else 'apis'}={spread} "
            f"codes={','.join(ev['codes'])} last={ev['last']}",
            highlight=False,
            soft_wrap=True,
        )
