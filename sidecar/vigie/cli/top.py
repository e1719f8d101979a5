"""``vigie top``: a live view of the busiest and the most anomalous subscriptions of a running
sidecar (its ``ListSubscriptions`` polled; rates are the differences between two polls)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import click
from rich.table import Table

from vigie.cli.common import (
    admin_clients,
    admin_options,
    client,
    console,
    emit_json,
    iso,
    listed,
)


def _score(s: Any) -> float:
    """How anomalous a subscription looks: its classes, weighted by their evidence share."""
    score = 0.0
    for e in s.evidence:
        if e.class_name == "dormant":
            continue
        score += 1.0 + float(e.figures.get("share", 0.0))
    return score


def top_snapshot(
    previous: dict[str, int] | None, resp: Any, elapsed: float, limit: int
) -> dict[str, Any]:
    rows = []
    for s in resp.subscriptions:
        key = f"{s.application_id}|{s.api}|{s.api_version}"
        rate = (s.requests - previous[key]) / elapsed if previous and key in previous else None
        rows.append((key, s, rate))
    busiest = sorted(rows, key=lambda r: (-(r[2] or 0.0), -r[1].requests))[:limit]
    anomalous = sorted(
        (r for r in rows if _score(r[1]) > 0), key=lambda r: (-_score(r[1]), -r[1].requests)
    )[:limit]

    def item(r: tuple[str, Any, float | None]) -> dict[str, Any]:
        s = r[1]
        return {
            "application_id": s.application_id,
            "application": s.application_name,
            "api": s.api,
            "api_version": s.api_version,
            "requests": s.requests,
            "rate_per_second": None if r[2] is None else round(r[2], 2),
            "classes": list(s.classes),
            "score": round(_score(s), 3),
        }

    return {
        "now": iso(resp.now_us),
        "busiest": [item(r) for r in busiest],
        "anomalous": [item(r) for r in anomalous],
    }


def _top_tables(doc: dict[str, Any]) -> Any:
    from rich.console import Group  # noqa: PLC0415

    tables = []
    for key, title in (("busiest", "Busiest"), ("anomalous", "Most anomalous")):
        t = Table(title=f"{title} subscriptions at {doc['now']}")
        for col in ("application", "API", "req/s", "requests", "classes"):
            t.add_column(col, overflow="fold")
        for r in doc[key]:
            rate = "-" if r["rate_per_second"] is None else f"{r['rate_per_second']:,.1f}"
            t.add_row(
                r["application"] or r["application_id"],
                f"{r['api']} {r['api_version']}",
                rate,
                f"{r['requests']:,}",
                ", ".join(r["classes"]),
            )
        tables.append(t)
    return Group(*tables)


@click.command()
@admin_options
@click.option("--interval", type=float, default=2.0, show_default=True, help="Seconds between.")
@click.option("--limit", type=int, default=10, show_default=True, help="Rows per table.")
@click.option("--iterations", type=int, default=0, help="Stop after this many (0: Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per refresh.")
def top(
    admin: str,
    token_file: str | None,
    state_dir: str | None,
    interval: float,
    limit: int,
    iterations: int,
    as_json: bool,
) -> None:
    """A live view of the busiest and the most anomalous subscriptions."""
    from rich.live import Live  # noqa: PLC0415

    from vigie.v1 import admin_pb2 as apb  # noqa: PLC0415

    if interval <= 0:
        raise click.BadParameter("must be positive", param_hint="--interval")
    previous: dict[str, int] | None = None
    last = time.monotonic()
    n = 0
    addresses = [a for a in admin.split(",") if a]
    with contextlib.ExitStack() as stack:
        if len(addresses) > 1:  # the fleet: every instance asked, merged by subscription
            from vigie.cli.fleet import FleetSubscriptions  # noqa: PLC0415

            clients = admin_clients(addresses, listed(token_file), listed(state_dir))
            for one in clients:
                stack.enter_context(one)
            fleet = FleetSubscriptions(clients)
            ask: Callable[[], Any] = fleet.poll
        else:
            c = stack.enter_context(client(admin, token_file, state_dir))

            def ask() -> Any:
                return c.call(c.stub.ListSubscriptions, apb.ListSubscriptionsRequest())

        def poll() -> dict[str, Any]:
            nonlocal previous, last
            resp = ask()
            now = time.monotonic()
            doc = top_snapshot(previous, resp, max(now - last, 1e-6), limit)
            previous = {
                f"{s.application_id}|{s.api}|{s.api_version}": s.requests
                for s in resp.subscriptions
            }
            last = now
            return doc

        doc = poll()
        try:
            if as_json:
                while True:
                    time.sleep(interval)
                    doc = poll()
                    emit_json(doc)
                    n += 1
                    if iterations and n >= iterations:
                        return
            with Live(_top_tables(doc), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(_top_tables(poll()), refresh=True)
                    n += 1
                    if iterations and n >= iterations:
                        return
        except KeyboardInterrupt:
            return
