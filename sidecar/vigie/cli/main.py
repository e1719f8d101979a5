"""The ``vigie`` command: thin click commands that parse, call and print."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from vigie import __version__
from vigie.errors import ConfigError, VigieError

console = Console()
err_console = Console(stderr=True)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def parse_time(value: str) -> int:
    """ISO 8601 (with a zone, or UTC assumed) -> microseconds since the epoch."""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)


class VigieGroup(click.Group):
    """Turns vigie's own errors into a one-line message and their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VigieError as exc:
            err_console.print(f"[bold red]vigie:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)


@click.group(cls=VigieGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vigie")
def main() -> None:
    """vigie: per-consumer behaviour of a WSO2 API Manager platform.

    \b
    Start here:
      vigie demo                     simulated gateways, classified live
      vigie replay apim_metrics.log  classify the history in WSO2's analytics log
      vigie serve                    the sidecar next to a gateway
    """


# ---------------------------------------------------------------------------------------------
# serve / check-config
# ---------------------------------------------------------------------------------------------


@main.command()
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


@main.command("check-config")
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


# ---------------------------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------------------------


@main.command()
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
    """
    from vigie.replay import run_replay  # noqa: PLC0415

    now = parse_time(now_text) if now_text else None
    report = run_replay(
        list(sources), inventory, now, config_path, progress=sys.stderr.isatty(), store=store
    )
    for r in report.stats.first_rejects:
        err_console.print(f"[yellow]rejected[/] {r}", highlight=False, soft_wrap=True)
    if report.stats.rejected > len(report.stats.first_rejects):
        err_console.print(f"... {report.stats.rejected} rejected lines in all", highlight=False)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False) + "\n")
        return
    _print_replay(report)


def _print_replay(report: Any) -> None:
    doc = report.to_json()
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
        console.print(_subscription_table(flagged, "Subscriptions that need a look"))
    apis = [a for a in doc["apis"] if a["classes"] != ["normal"]]
    if apis:
        t = Table(title="APIs")
        for col in ("API", "version", "requests", "classes"):
            t.add_column(col)
        for a in apis:
            t.add_row(a["api"], a["api_version"], f"{a['requests']:,}", ", ".join(a["classes"]))
        console.print(t)


def _subscription_table(subs: list[dict[str, Any]], title: str) -> Table:
    from vigie.classify.views import headline  # noqa: PLC0415

    t = Table(title=title, show_lines=False)
    for col in ("application", "API", "requests", "classes", "evidence"):
        t.add_column(col, overflow="fold")
    for s in subs:
        ev = "; ".join(headline(c, s["evidence"].get(c, {})) for c in s["classes"] if c != "normal")
        t.add_row(
            s["application"] or s["application_id"],
            f"{s['api']} {s['api_version']}",
            f"{s['requests']:,}",
            ", ".join(s["classes"]),
            ev,
        )
    return t


# ---------------------------------------------------------------------------------------------
# talking to a running sidecar
# ---------------------------------------------------------------------------------------------

_admin_options = [
    click.option(
        "--admin",
        "admin",
        default=lambda: os.environ.get("VIGIE_ADMIN", "127.0.0.1:7356"),
        show_default="127.0.0.1:7356",
        help="Sidecar admin address (VIGIE_ADMIN).",
    ),
    click.option("--token-file", help="Admin token file (default <state-dir>/admin.token)."),
    click.option("--state-dir", help="The sidecar's state directory, to find its admin token."),
]


def admin_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(_admin_options):
        f = opt(f)
    return f


def fleet_admin_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Like admin_options, but --admin (and --token-file, --state-dir) may repeat: several
    sidecars whose states are merged (the fleet view, vigie.state.merge)."""
    for opt in reversed(
        [
            click.option(
                "--admin",
                "admin",
                multiple=True,
                help="Sidecar admin address (VIGIE_ADMIN, default 127.0.0.1:7356); repeat it "
                "for a fleet: their states are merged.",
            ),
            click.option(
                "--token-file", multiple=True, help="Admin token file (or one per --admin)."
            ),
            click.option(
                "--state-dir", multiple=True, help="Sidecar state directory (or one per --admin)."
            ),
        ]
    ):
        f = opt(f)
    return f


def _one(values: Sequence[str], default: str | None = None) -> str | None:
    return values[0] if values else default


def _client(admin: str, token_file: str | None, state_dir: str | None) -> Any:
    from vigie.cli.client import AdminClient, read_token  # noqa: PLC0415

    return AdminClient(admin, read_token(None, token_file, state_dir))


@main.command()
@fleet_admin_options
@click.option(
    "--class",
    "class_name",
    help="Only subscriptions holding this class "
    "(growing, retry_storm, error_prone, redundant, dormant, wrong_channel, "
    "throttle_hitter, normal).",
)
@click.option("--application", help="Only this application (id or name).")
@click.option("--api", help="Only this API name.")
@click.option("--limit", type=int, default=0, help="At most this many, busiest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def consumers(
    admin: Sequence[str],
    token_file: Sequence[str],
    state_dir: Sequence[str],
    class_name: str | None,
    application: str | None,
    api: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Subscriptions of a running sidecar with their classes and evidence."""
    from vigie.state.thresholds import CLASS_NAMES  # noqa: PLC0415
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    if class_name and class_name not in (*CLASS_NAMES, "normal"):
        raise click.BadParameter(f"unknown class {class_name!r}", param_hint="--class")
    if len(admin) > 1:
        from vigie.cli.data import fleet_consumers  # noqa: PLC0415

        doc = fleet_consumers(admin, token_file, state_dir, class_name, application, api, limit)
        if as_json:
            sys.stdout.write(json.dumps(doc) + "\n")
        else:
            console.print(
                _subscription_table(
                    doc["subscriptions"], f"Subscriptions of {len(admin)} sidecars at {doc['now']}"
                )
            )
        return
    default_admin = os.environ.get("VIGIE_ADMIN", "127.0.0.1:7356")
    with _client(
        _one(admin, default_admin) or default_admin, _one(token_file), _one(state_dir)
    ) as c:
        resp = c.call(
            c.stub.ListSubscriptions,
            apb.ListSubscriptionsRequest(
                class_name=class_name or "",
                application=application or "",
                api=api or "",
                limit=limit,
            ),
        )
    subs = [_sub_json(s) for s in resp.subscriptions]
    if as_json:
        sys.stdout.write(json.dumps({"now": _iso(resp.now_us), "subscriptions": subs}) + "\n")
        return
    console.print(_subscription_table(subs, f"Subscriptions at {_iso(resp.now_us)}"))


def _iso(us: int) -> str | None:
    from vigie.classify.views import iso  # noqa: PLC0415

    return iso(us)


def _sub_json(s: Any) -> dict[str, Any]:
    return {
        "application_id": s.application_id,
        "application": s.application_name,
        "api": s.api,
        "api_version": s.api_version,
        "requests": s.requests,
        "classes": list(s.classes),
        "evidence": {e.class_name: dict(e.figures) | dict(e.labels) for e in s.evidence},
        "episodes": [
            {"class": e.class_name, "first": _iso(e.first_us), "last": _iso(e.last_us)}
            for e in s.episodes
        ],
    }


@main.command()
@fleet_admin_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(
    admin: Sequence[str], token_file: Sequence[str], state_dir: Sequence[str], as_json: bool
) -> None:
    """Health, ingest rate, drops, connected gateways and data on disk of a running sidecar
    (or of a fleet: --admin repeated)."""
    from google.protobuf import json_format  # noqa: PLC0415

    from vigie.cli.data import data_status_line, fleet_status, print_fleet_status  # noqa: PLC0415
    from vigie.cli.policy import print_status_extra, status_extra  # noqa: PLC0415
    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    if len(admin) > 1:
        doc = fleet_status(admin, token_file, state_dir)
        if as_json:
            sys.stdout.write(json.dumps(doc) + "\n")
        else:
            print_fleet_status(doc)
        return
    default_admin = os.environ.get("VIGIE_ADMIN", "127.0.0.1:7356")
    with _client(
        _one(admin, default_admin) or default_admin, _one(token_file), _one(state_dir)
    ) as c:
        st = c.call(c.stub.GetStatus, apb.StatusRequest())
        extra = status_extra(c)  # health, active directives and their hits
    if as_json:
        doc = json_format.MessageToDict(st, preserving_proto_field_name=True) | extra
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    console.print(
        f"[bold]{st.sidecar_id}[/] vigie {st.version}: {st.events_applied:,} events, "
        f"{st.ingest_rate:,.0f}/s, {st.subscriptions:,} subscriptions, {st.apis} APIs, "
        f"{st.active_directives} directives, now {_iso(st.now_us)}",
        highlight=False,
    )
    console.print("classes: " + ", ".join(f"{k} {v}" for k, v in sorted(st.classes.items())))
    line = data_status_line(st)
    if line:
        console.print(line, highlight=False, soft_wrap=True)
    if st.gateways:
        t = Table(title="Gateways")
        for col in ("gateway", "channel", "peer", "events", "handler sent", "dropped"):
            t.add_column(col)
        for g in st.gateways:
            t.add_row(
                g.gateway_id,
                g.channel,
                g.peer,
                f"{g.events:,}",
                f"{g.handler_sent:,}",
                f"{g.handler_dropped:,}",
            )
        console.print(t)
    drops = {k: v for k, v in st.counters.items() if v and ("refused" in k or "evicted" in k)}
    if drops:
        console.print("refused / dropped: " + ", ".join(f"{k} {v}" for k, v in drops.items()))
    print_status_extra(st, extra)


# ---------------------------------------------------------------------------------------------
# simulate / demo
# ---------------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--target",
    default="127.0.0.1:7355",
    show_default=True,
    help="The sidecar's gateway stream address.",
)
@click.option(
    "--tps",
    type=float,
    default=1500.0,
    show_default=True,
    help="Requests per second at the morning peak (09:00 UTC).",
)
@click.option(
    "--duration",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds of live traffic (0: until Ctrl-C).",
)
@click.option("--apps", type=int, default=300, show_default=True, help="Applications.")
@click.option("--apis", type=int, default=60, show_default=True, help="APIs.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed of the platform.")
@click.option(
    "--backfill-days",
    type=float,
    default=0.0,
    show_default=True,
    help="Days of past traffic to send first (event time), for growth.",
)
@click.option(
    "--backfill-tps",
    type=float,
    default=5.0,
    show_default=True,
    help="Peak rate of the backfilled days.",
)
@click.option(
    "--write-inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the simulated platform's inventory JSON here (for vigie serve).",
)
def simulate(
    target: str,
    tps: float,
    duration: float,
    apps: int,
    apis: int,
    seed: int,
    backfill_days: float,
    backfill_tps: float,
    write_inventory: Path | None,
) -> None:
    """Simulated WSO2 gateways (four channels) streaming to a sidecar.

    Hundreds of applications with a morning peak, and a few that misbehave: a retry storm,
    an error loop, repeated identical reads, throttle hitting, calls through the wrong channel,
    steady growth (visible with --backfill-days 14), and unused subscriptions (in the
    inventory written by --write-inventory).
    """
    from vigie.sources import simulator  # noqa: PLC0415

    platform = simulator.build_platform(apps, apis, seed)
    if write_inventory:
        platform.write_inventory(write_inventory)
        err_console.print(f"inventory written to {write_inventory}")
    stop = threading.Event()
    try:
        stats = simulator.run(
            target,
            tps,
            duration or None,
            platform,
            backfill_days=backfill_days,
            backfill_tps=backfill_tps,
            stop=stop,
        )
    except KeyboardInterrupt:
        stop.set()
        return
    failed = {ch: s.errors for ch, s in stats.items() if s.errors}
    for ch, s in stats.items():
        console.print(
            f"{ch}: {s.events:,} events in {s.batches:,} batches, {s.acked_events:,} acknowledged"
        )
    if failed:
        raise VigieError(f"streams failed: {failed}")


@main.command()
@click.option(
    "--duration", type=float, default=0.0, help="Stop after this many seconds (0: until Ctrl-C)."
)
@click.option("--tps", type=float, default=1500.0, show_default=True, help="Peak requests/s.")
@click.option("--port", type=int, default=0, help="Gateway stream port (0: any free port).")
def demo(duration: float, tps: float, port: int) -> None:
    """Start a sidecar and simulated gateways, and watch consumers being classified live."""
    from vigie.cli.demo import run_demo  # noqa: PLC0415

    run_demo(duration or None, tps, port, console)


from vigie.cli import data as _cli_data  # noqa: E402, F401 - autopsy, report (data store)
from vigie.cli import ops as _cli_ops  # noqa: E402, F401 - audit (operators)
from vigie.cli import policy as _cli_policy  # noqa: E402, F401 - suggestions, tune, policies, top
