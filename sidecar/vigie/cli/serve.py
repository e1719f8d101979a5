"""``vigie serve`` (the sidecar next to a gateway) and ``vigie check-config``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from vigie.cli.common import console, err_console
from vigie.errors import ConfigError


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (also VIGIE_CONFIG).",
)
@click.option("--listen", help="Gateway stream address, host:port or unix:/path (VIGIE_LISTEN).")
@click.option("--admin-listen", help="Admin service address (VIGIE_ADMIN_LISTEN).")
@click.option("--state-dir", help="Directory for snapshots and the admin token (VIGIE_STATE_DIR).")
@click.option("--inventory", help="Inventory JSON: registered channels, known subscriptions.")
@click.option(
    "--memory-cap", help="Memory for per-subscription state, e.g. 1GiB (VIGIE_MEMORY_CAP)."
)
@click.option(
    "--snapshot-interval",
    "snapshot_interval_seconds",
    type=float,
    help="Seconds between snapshots (VIGIE_SNAPSHOT_INTERVAL_SECONDS).",
)
@click.option("--log-level", help="debug, info, warning or error (VIGIE_LOG_LEVEL).")
def serve(config_path: Path | None, **flags: Any) -> None:
    """Run the sidecar: take gateway streams, classify, answer the CLI.

    Settings come from defaults, then the --config file, then VIGIE_* variables, then these
    flags. Stops gracefully (state written) on SIGTERM or Ctrl-C.
    """
    from vigie.server import serve_forever  # noqa: PLC0415 - keep `vigie --help` fast
    from vigie.settings import load_settings  # noqa: PLC0415

    settings = load_settings(config_path, overrides=flags)
    _setup_logging(settings.log_level)
    serve_forever(settings)


@click.command("check-config")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def check_config(path: Path) -> None:
    """Check a settings file; print the exact problem, or what it sets."""
    from vigie.settings import check_file, load_settings  # noqa: PLC0415

    problems = check_file(path)
    fatal = [
        p
        for p in problems
        if not any(w in p for w in ("world-readable", "prefer", "does not exist", "without TLS"))
    ]
    for p in problems:
        err_console.print(
            ("[red]error:[/] " if p in fatal else "[yellow]warning:[/] ") + p,
            highlight=False,
            soft_wrap=True,
        )
    if fatal:
        sys.exit(ConfigError.exit_code)
    settings = load_settings(path, env={})
    console.print(f"{path}: OK", highlight=False)
    for name, env, _, doc in settings.describe():
        value = getattr(settings, name)
        shown = "(set)" if name == "admin_token" and value else repr(value)  # never the secret
        console.print(f"  {name} = {shown}  [dim]# {env}: {doc}[/]", highlight=False)
