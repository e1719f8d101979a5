"""``vigie replay``: classify the history in WSO2's analytics log (``vigie.replay`` does it)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from vigie.cli.common import console, err_console, parse_time, subscription_table

if TYPE_CHECKING:
    from vigie.sources.wso2_log import ReplayStats


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
@click.option(
    "--to",
    "to",
    multiple=True,
    metavar="ADDR[,ADDR...]",
    help="Stream the events to these live sidecars' telemetry addresses instead, as gateways "
    "would (repeatable or comma-separated).",
)
@click.option(
    "--gateway-id",
    default="replay",
    show_default=True,
    help="With --to: the streams are named <gateway-id>-1, -2, ... (one per PATH).",
)
@click.option(
    "--slack",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="With --to: seconds of event time within which the files' events may arrive file by "
    "file (0: strict event-time order, one round trip whenever the file changes).",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --to: TLS, the CA of the sidecars' certificates (PEM; as vigie.tls.ca-file).",
)
@click.option(
    "--cert-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --to: mTLS, this client's certificate (PEM; as vigie.tls.cert-file).",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --to: mTLS, this client's key (PKCS#8 PEM; as vigie.tls.key-file).",
)
@click.option(
    "--server-name",
    default="",
    help="With --to: the name the sidecars' certificates carry, when not the address's host.",
)
def replay(
    sources: Sequence[str],
    inventory: Path | None,
    now_text: str | None,
    as_json: bool,
    config_path: Path | None,
    store: Path | None = None,
    to: Sequence[str] = (),
    gateway_id: str = "replay",
    slack: float = 0.0,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    server_name: str = "",
) -> None:
    """Classify the history in WSO2's analytics log (apim_metrics.log).

    Each PATH may be prefixed with the channel its gateway serves (main=gw1.log); the
    default channel is "default". Several files are merged by event time. Lines that are not
    apimMetrics lines are ignored; broken apimMetrics lines are counted as rejected and the
    first few are reported with file:line on stderr. Gzipped files (.gz) are read as they are.
    Exits 1 after its report when a file ended early or no file held an apimMetrics line.

    With --to the events go over the gateway wire to live sidecars instead (each PATH its own
    gateway stream, paced in event-time order); the report gives the events offered and, per
    target, the events acknowledged and dropped. Exits 2 when a target dropped any (1 still
    wins when the history is incomplete).
    """
    tls_given = [
        name
        for name, value in (
            ("--ca-file", ca_file),
            ("--cert-file", cert_file),
            ("--key-file", key_file),
            ("--server-name", server_name or None),
        )
        if value is not None
    ]
    if tls_given and not to:
        raise click.UsageError(f"{', '.join(tls_given)}: only with --to")
    if to:
        given = {"--inventory": inventory, "--now": now_text, "--config": config_path}
        given["--store"] = store
        clash = [name for name, value in given.items() if value is not None]
        if clash:
            raise click.UsageError(f"{', '.join(clash)}: not with --to (the sidecars decide)")
        _replay_to(
            sources, to, gateway_id, slack, as_json, (ca_file, cert_file, key_file), server_name
        )
        return
    from vigie.replay import run_replay  # noqa: PLC0415 - keep `vigie --help` fast

    now = parse_time(now_text) if now_text else None
    report = run_replay(
        list(sources), inventory, now, config_path, progress=sys.stderr.isatty(), store=store
    )
    _print_rejects(report.stats)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False) + "\n")
    else:
        _print_replay(report.to_json())
    if _closing_problems(report.stats):
        sys.exit(1)


def _print_rejects(stats: ReplayStats) -> None:
    for r in stats.first_rejects:
        err_console.print(f"[yellow]rejected[/] {escape(str(r))}", highlight=False, soft_wrap=True)
    if stats.rejected > len(stats.first_rejects):
        err_console.print(f"... {stats.rejected} rejected lines in all", highlight=False)
    if stats.out_of_timeline:
        err_console.print(
            f"[yellow]{stats.out_of_timeline:,} lines rejected as dated far from the lines "
            "around them[/] (max_clock_skew_seconds): not counted, not stored",
            highlight=False,
        )


def _closing_problems(stats: ReplayStats) -> bool:
    """Print what makes the history incomplete (a file that ended early, logs without a single
    analytics line): the report stands for what was read, the exit code says it is not all."""
    problems = stats.closing_problems()
    for problem in problems:
        err_console.print(f"[red]incomplete[/] {escape(problem)}", highlight=False, soft_wrap=True)
    return bool(problems)


def _replay_to(
    sources: Sequence[str],
    to: Sequence[str],
    gateway_id: str,
    slack: float,
    as_json: bool,
    tls: tuple[Path | None, Path | None, Path | None],
    server_name: str,
) -> None:
    from vigie.replay import LineLimits  # noqa: PLC0415
    from vigie.settings import load_settings  # noqa: PLC0415
    from vigie.sources.forward import (  # noqa: PLC0415
        forward,
        parse_targets,
        stream_credentials,
    )

    targets = parse_targets(to)
    credentials = stream_credentials(*tls)
    limits = LineLimits.from_settings(load_settings(env={}))  # as the local replay's defaults
    report = forward(
        list(sources),
        targets,
        gateway_id,
        slack,
        credentials=credentials,
        server_name=server_name,
        max_line_bytes=limits.max_line_bytes,
        max_skew_us=limits.max_skew_us,
    )
    _print_rejects(report.stats)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False) + "\n")
    else:
        console.print(
            f"[bold]{report.offered:,}[/] events offered over {len(report.gateways)} stream(s), "
            f"{report.stats.rejected:,} rejected",
            highlight=False,
        )
        t = Table(title="Targets")
        for col in ("target", "sidecar", "acked", "dropped", "error"):
            t.add_column(col)
        for ts in report.targets:
            t.add_row(ts.address, ts.sidecar_id, f"{ts.acked:,}", f"{ts.dropped:,}", ts.error or "")
        console.print(t)
    for ts in report.targets:
        if ts.dropped:
            err_console.print(
                f"[red]dropped[/] {ts.dropped:,} events for {escape(ts.address)}: "
                f"{escape(ts.error or 'not acknowledged')}",
                highlight=False,
                soft_wrap=True,
            )
    if _closing_problems(report.stats):
        sys.exit(1)
    if report.dropped:
        sys.exit(2)


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
    for c in doc.get("clients", []):  # auth_failing (vigie.classify.security)
        ev = c["evidence"]
        console.print(
            f"auth_failing: {c['kind']} {c['key']}{' (hashed)' if c['hashed'] else ''} "
            f"failures/h={ev['failures_last_hour']} codes={','.join(ev['codes'])}",
            highlight=False,
            soft_wrap=True,
        )
