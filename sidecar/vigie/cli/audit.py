"""``vigie audit``: who changed which directive, suggestion or threshold, and the values, read
from the sidecar's host."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    for col in ("when (UTC)", "subject", "action", "actor", "reason", "values"):
        t.add_column(col, overflow="fold")
    for e in entries:
        when = datetime.fromtimestamp(int(e["at_us"]) / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")
        t.add_row(
            when,
            str(e.get("subject", "")),
            str(e.get("action", "")),
            str(e.get("actor", "")),
            str(e.get("reason", "")),
            values(e),
        )
    console.print(t, highlight=False)


# the directive fields an audit line shows, in this order
_DIRECTIVE_FIELDS = (
    "mode", "action", "applicationId", "apiName", "apiVersion", "channel", "limitRequests",
    "limitPeriodSeconds", "limitBurst", "expiresAtUs",
)  # fmt: skip


def _directive(d: dict[str, Any]) -> str:
    parts = []
    for k in _DIRECTIVE_FIELDS:
        if k in d:
            v = d[k]
            if k == "expiresAtUs":
                v = datetime.fromtimestamp(int(v) / 1e6, UTC).strftime("%Y-%m-%d %H:%M")
            elif isinstance(v, str) and v.startswith("DIRECTIVE_"):
                v = v.split("_")[-1]
            parts.append(f"{k}={v}")
    return " ".join(parts)


def values(e: dict[str, Any]) -> str:
    """The values an entry changed, in one cell: a directive's fields (before -> after for a
    replace), thresholds from -> to, a suggestion's states (with the figures it was decided on:
    ``pushed -> pushed (shadow_hits=4, matched=200, share=0.02, ...)``)."""
    d = e.get("details") or {}
    if "before" in d and "after" in d:
        return f"{_directive(d['before'])} -> {_directive(d['after'])}"
    if "changes" in d:
        return ", ".join(
            f"{k} {_num(c.get('from'))} -> {_num(c.get('to'))}" for k, c in d["changes"].items()
        )
    if "directive" in d and isinstance(d["directive"], dict):
        return _directive({_camel(k): v for k, v in d["directive"].items()})
    if str(e.get("subject", "")).startswith("directive:"):
        return _directive(d)
    figures = ", ".join(f"{k}={_num(v)}" for k, v in d.items() if not isinstance(v, dict | list))
    if e.get("from_state") or e.get("to_state"):
        states = f"{e.get('from_state') or '-'} -> {e.get('to_state') or '-'}"
        return f"{states} ({figures})" if figures else states  # e.g. an auto-approval's evidence
    return ", ".join(f"{k}={v}" for k, v in d.items())


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)
