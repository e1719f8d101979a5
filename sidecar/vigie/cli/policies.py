"""``vigie policies``: the WSO2 payloads of approved suggestions, exported as files
(``export``) or sent to WSO2's Admin REST API v4 (``apply``: ``vigie.policy.apply``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from vigie.cli.common import (
    actor_option,
    admin_options,
    client,
    console,
    emit_json,
    err_console,
)
from vigie.errors import VigieError
from vigie.policy.wso2 import DEFAULT_APIM_VERSION


@click.group()
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

    with client(admin, token_file, state_dir) as c:
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
@click.option(
    "--apim-version", default=DEFAULT_APIM_VERSION, show_default=True, help="apictl file version."
)
@click.option(
    "--include-proposed", is_flag=True, help="Also proposed suggestions (a preview, not recorded)."
)
@actor_option
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
        emit_json({"format": fmt, "policies": items, "skipped": list(resp.skipped)})
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
@actor_option
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
    from vigie.policy import apply as ap  # noqa: PLC0415 - keep `vigie --help` fast
    from vigie.policy.wso2 import AdminRequest  # noqa: PLC0415
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    if not client_id:
        raise click.UsageError("give --client-id (or set VIGIE_WSO2_CLIENT_ID)")
    try:
        token_url_of_admin = ap.default_token_url(admin_url)  # checks --admin-url too
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--admin-url") from None
    token_url = token_url or token_url_of_admin
    scopes = scopes or ap.DEFAULT_SCOPES
    secret, source = ap.read_secret(client_secret_file, client_secret_env, os.environ.get)
    export_actor = f"{actor} (apply {'dry-run' if dry_run else admin_url})"
    resp = _export(
        admin, token_file, state_dir, ids, "wso2-admin", export_actor, DEFAULT_APIM_VERSION, False
    )
    batch = ap.distinct(
        (p.suggestion_id, AdminRequest(p.schema, p.method, p.path, json.loads(p.body_json)))
        for p in resp.policies
    )
    for s in resp.skipped:
        err_console.print(f"[yellow]skipped[/] {s}", highlight=False, soft_wrap=True)
    if dry_run:
        if as_json:
            emit_json(ap.dry_run_json(admin_url, token_url, batch))
        else:
            lines = ap.dry_run_lines(
                admin_url, token_url, source, client_id, scopes, [p.request for p in batch]
            )
            sys.stdout.write("\n".join(lines) + "\n")  # as is: no wrapping, no markup
        return
    api = ap.AdminApi(
        admin_url, token_url, ap.Credentials(client_id, secret, source), scopes, ca_file, insecure
    )
    with client(admin, token_file, state_dir) as c:

        def record(sid: str, o: ap.Outcome) -> None:
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

        done = ap.apply(api, batch, update_existing, record)
    if as_json:
        emit_json({"dry_run": False, "results": done.results, "failed": done.failed})
    else:
        t = Table(title=f"Applied to {admin_url}")
        for col in ("schema", "request", "status", "result"):
            t.add_column(col, overflow="fold")
        for row in done.results:
            t.add_row(
                row["schema"], f"{row['method']} {row['url']}", str(row["status"]), row["message"]
            )
        console.print(t)
    if done.failed:
        raise ap.ApplyError(f"{done.failed} of {len(done.results)} request(s) failed")
