"""``vigie simulate`` (simulated WSO2 gateways streaming to a sidecar) and ``vigie demo`` (a
sidecar and those gateways, watched live: ``vigie.cli.demo``)."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from vigie.cli.common import console, err_console
from vigie.errors import VigieError


@click.command()
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
    "--tenants",
    type=click.IntRange(1, 4),
    default=1,
    show_default=True,
    help="WSO2 tenants (2: carbon.super and acme.com, each with APIs of the same names).",
)
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
    tenants: int,
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
    from vigie.sources import simulator  # noqa: PLC0415 - keep `vigie --help` fast

    platform = simulator.build_platform(apps, apis, seed, tenants)
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


@click.command()
@click.option(
    "--duration", type=float, default=0.0, help="Stop after this many seconds (0: until Ctrl-C)."
)
@click.option("--tps", type=float, default=1500.0, show_default=True, help="Peak requests/s.")
@click.option("--port", type=int, default=0, help="Gateway stream port (0: any free port).")
def demo(duration: float, tps: float, port: int) -> None:
    """Start a sidecar and simulated gateways, and watch consumers being classified live."""
    from vigie.cli.demo import run_demo  # noqa: PLC0415 - it starts a sidecar: heavy imports

    run_demo(duration or None, tps, port, console)
