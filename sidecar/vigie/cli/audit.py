"""``vigie audit``: who changed which directive or suggestion, read from the sidecar's host."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from vigie.cli.client import DEFAULT_STATE_DIR
from vigie.cli.common import console
from vigie.directives.audit import read_entries


def _default_state_dir() -> str:
    return os.environ.get("VIGIE_STATE_DIR", DEFAULT_STATE_DIR)


@click.command()
@click.option(
    "--state-dir",
    default=_default_state_dir,
    show_default=DEFAULT_STATE_DIR,
    help="The sidecar's state directory (VIGIE_STATE_DIR).",
)
@click.option("--subject", help="Only this subject, e.g. directive:limit-shop.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit(state_dir: str, subject: str | None, as_json: bool) -> None:
    """The audit trail on this sidecar's host: directives put, replaced, removed and expired
    (directives-audit.jsonl) and the suggestions' lifecycle (audit.jsonl), oldest first."""
    d = Path(state_dir)
    entries = [
        e
        for e in read_entries([d / "directives-audit.jsonl", d / "audit.jsonl"])
        if not subject or e.get("subject") == subject
    ]
    if as_json:
        for e in entries:
            click.echo(json.dumps(e, sort_keys=True))
        return
    t = Table(title=f"audit trail ({len(entries)} entries)")
    for col in ("when (UTC)", "subject", "action", "actor", "reason"):
        t.add_column(col)
    for e in entries:
        when = datetime.fromtimestamp(int(e["at_us"]) / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")
        t.add_row(
            when,
            str(e.get("subject", "")),
            str(e.get("action", "")),
            str(e.get("actor", "")),
            str(e.get("reason", "")),
        )
    console.print(t)
