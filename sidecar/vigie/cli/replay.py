"""``vigie replay``: classify the history in WSO2's analytics log (``vigie.replay`` does it)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from vigie.cli.common import console, err_console, parse_time, subscription_table


@click.command()
@click.argument("sources", nargs=-1, required=True, metavar="[CHANNEL=]PATH...")
@click.option(
    "--inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inventory JSON: applications (with their channel), subscriptions, APIs.",
)
@click.option(
    "--now",
    "now_text",
    help="Evaluate classes at this time (ISO 8601); default: the latest event time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file whose [thresholds] apply.",
)
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write the rollups (per minute and per day) to this Parquet store directory.",
)
def replay(
    sources: Sequence[str],
    inventory: Path | None,
    now_text: str | None,
    as_json: bool,
    config_path: Path | None,
    store: Path | None = None,
) -> None:
    """Classify the history in WSO2's analytics log (apim_metrics.log).

    Each PATH may be prefixed with the channel its gateway serves (main=gw1.log); the
    default channel is "default". Several files are merged by event time. Lines that are not
    apimMetrics lines are ignored; broken apimMetrics lines are counted as rejected and the
    first few are reported with file:line on stderr. Gzipped files (.gz) are read as they are.
    Exits 1 after its report when a file ended early or no file held an apimMetrics line.
    """
    from vigie.replay import run_replay  # noqa: PLC0415 - keep `vigie --help` fast

    now = parse_time(now_text) if now_text else None
    report = run_replay(
        list(sources), inventory, now, config_path, progress=sys.stderr.isatty(), store=store
    )
    for r in report.stats.first_rejects:
        err_console.print(f"[yellow]rejected[/] {escape(str(r))}", highlight=False, soft_wrap=True)
    if report.stats.rejected > len(report.stats.first_rejects):
        err_console.print(f"... {report.stats.rejected} rejected lines in all", highlight=False)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False) + "\n")
    else:
        _print_replay(report.to_json())
    # a file that ended early, or logs without a single analytics line: the report stands for
    # what was read, and the exit code says it is not the whole history
    problems = report.stats.closing_problems()
    for problem in problems:
        err_console.print(f"[red]incomplete[/] {escape(problem)}", highlight=False, soft_wrap=True)
    if problems:
        sys.exit(1)


def _print_replay(doc: dict[str, Any]) -> None:
    console.print(
        f"[bold]{doc['events']:,}[/] events, {doc['rejected']:,} rejected, now = {doc['now']}",
        highlight=False,
    )
    subs = doc["subscriptions"]
    counts: dict[str, int] = {}
    for s in subs:
        for c in s["classes"]:
            counts[c] = counts.get(c, 0) + 1
    console.print(
        "subscriptions: " + ", ".join(f"{c} {n}" for c, n in sorted(counts.items())) or "none"
    )
    flagged = [s for s in subs if s["classes"] != ["normal"]]
    if flagged:
        console.print(subscription_table(flagged, "Subscriptions that need a look"))
    apis = [a for a in doc["apis"] if a["classes"] != ["normal"]]
    if apis:
        t = Table(title="APIs")
        for col in ("API", "version", "requests", "classes"):
            t.add_column(col)
        for a in apis:
            t.add_row(a["api"], a["api_version"], f"{a['requests']:,}", ", ".join(a["classes"]))
        console.print(t)
