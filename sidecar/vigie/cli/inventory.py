"""``vigie inventory``: the inventory JSON (registered channels, subscriptions, APIs).

``fetch`` reads it from WSO2's Publisher and Admin REST APIs (``vigie.sources.wso2_inventory``)
and writes it atomically; a progress bar goes to stderr when it is a terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vigie.cli.common import err_console
from vigie.errors import InputError
from vigie.sources import wso2_api
from vigie.sources.inventory import Inventory, write_inventory
from vigie.sources.wso2_inventory import Fetched, Progress, fetch


@click.group()
def inventory() -> None:
    """The inventory: registered channels, known subscriptions and APIs."""


def _bar() -> tuple[Progress, object]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn  # noqa: PLC0415
    from rich.progress import Progress as Bar  # noqa: PLC0415

    bar = Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    )
    tasks: dict[str, object] = {}

    def progress(task: str, done: int, total: int | None) -> None:
        if task not in tasks:
            tasks[task] = bar.add_task(task, total=total)
        bar.update(tasks[task], advance=done, total=total)  # type: ignore[arg-type]

    return progress, bar


@inventory.command("fetch")
@click.option("--wso2", "url", required=True, help="WSO2 API Manager, e.g. https://apim:9443.")
@click.option(
    "--tenant",
    "tenant_list",
    multiple=True,
    help="Tenant domain (sent as X-WSO2-Tenant); repeat for several tenants, fetched one "
    "after the other into one inventory. Default: the super tenant.",
)
@click.option("--client-id", default="", help="OAuth2 client id (client-credentials grant).")
@click.option("--client-secret-file", default="", help="File holding the client secret.")
@click.option("--username", default="", help="Admin user: registers a client through DCR.")
@click.option("--password-file", default="", help="File holding the admin user's password.")
@click.option(
    "--channel-attribute",
    default="channel",
    show_default=True,
    help="Application attribute naming its channel (else: its APIs' gateway environment).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("inventory.json"),
    show_default=True,
    help="Where the inventory JSON goes (written atomically).",
)
@click.option("--apim-version", default="4.2", show_default=True, help="4.0, 4.1, 4.2, ... 4.6.")
@click.option("--ca-file", default=None, help="CA bundle for WSO2's certificate.")
@click.option("--insecure", is_flag=True, help="Do not verify WSO2's certificate (test setups).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=wso2_api.DEFAULT_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for each WSO2 answer.",
)
def fetch_cmd(
    url: str,
    tenant_list: tuple[str, ...],
    client_id: str,
    client_secret_file: str,
    username: str,
    password_file: str,
    channel_attribute: str,
    output: Path,
    apim_version: str,
    ca_file: str | None,
    insecure: bool,
    timeout: float,
) -> None:
    """Read applications, subscriptions and APIs from WSO2 into an inventory JSON.

    Give an OAuth2 client (--client-id, --client-secret-file) or an admin user (--username,
    --password-file: vigie registers a client through DCR and uses the password grant).
    """
    if insecure:
        err_console.print(
            "[bold yellow]warning:[/] --insecure: WSO2's certificate is NOT verified; anyone on "
            "the path can read the token and the inventory",
            highlight=False,
        )
    login = wso2_api.login(client_id, client_secret_file, username, password_file)
    parts: list[Fetched] = []
    for tenant in dict.fromkeys(tenant_list or ("",)):  # each tenant once, in order
        try:
            conn = wso2_api.Connection(url, login, tenant, apim_version, ca_file, insecure, timeout)
            client = wso2_api.Wso2Client(conn)
        except ValueError as exc:  # a bad URL or APIM version
            raise InputError(str(exc)) from None
        if sys.stderr.isatty():
            progress, bar = _bar()
            with bar:  # type: ignore[attr-defined]
                parts.append(fetch(client, channel_attribute, progress))
        else:
            parts.append(fetch(client, channel_attribute))
    inv = Inventory.merged([f.inventory for f in parts])
    write_inventory(inv, output)
    for f in parts:
        err_console.print(_summary(f, output), highlight=False)


def _summary(f: Fetched, output: Path) -> str:
    inv = f.inventory
    line = (
        f"{output}: tenant {inv.tenant}, {len(inv.apis)} APIs, {len(inv.subscriptions)} "
        f"subscriptions, {len(inv.applications)} applications ({f.calls} calls); channels: "
        f"{f.from_attribute} from the attribute, {f.from_environment} from the gateway "
        f"environment, {len(f.unmapped)} none"
    )
    if f.undated:
        line += f"; {f.undated} APIs with a createdTime that is no plausible time (left undated)"
    return line
