"""``vigie demo``: a real sidecar, simulated gateways streaming to it over gRPC, and a live
view of the consumers being classified, read back through the admin service."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from vigie.classify.views import VIEW_CLASS_NAMES, headline
from vigie.cli.client import AdminClient
from vigie.server import start
from vigie.settings import load_settings
from vigie.sources import simulator
from vigie.v1 import admin_pb2 as apb


def _view(status: apb.Status, subs: apb.SubscriptionList, started: float) -> Group:
    head = Text.assemble(
        ("vigie demo ", "bold"),
        f"{time.time() - started:5.0f} s  ",
        (f"{status.events_applied:,}", "bold"),
        " events  ",
        (f"{status.ingest_rate:,.0f}/s", "bold"),
        "  ",
        f"{len(status.gateways)} gateways  {status.subscriptions:,} subscriptions\n",
        "classes: ",
        ", ".join(f"{c} {status.classes.get(c, 0)}" for c in ("normal", *VIEW_CLASS_NAMES)),
    )
    t = Table(title="Subscriptions that misbehave (busiest first)", expand=True)
    for col in ("application", "API", "requests", "classes", "evidence"):
        t.add_column(col, overflow="fold")
    shown = 0
    for s in subs.subscriptions:
        if list(s.classes) in (["normal"], ["dormant"], ["unknown"], ["new"]):
            continue
        ev = "; ".join(headline(e.class_name, dict(e.figures) | dict(e.labels)) for e in s.evidence)
        t.add_row(
            s.application_name or s.application_id,
            f"{s.api} {s.api_version}",
            f"{s.requests:,}",
            ", ".join(s.classes),
            ev,
        )
        shown += 1
        if shown >= 15:
            break
    dormant = sum(1 for s in subs.subscriptions if "dormant" in s.classes)
    unknown = sum(1 for s in subs.subscriptions if "unknown" in s.classes)
    foot = Text(
        f"{dormant} dormant subscriptions (known, never called), {unknown} not yet judged "
        "(observed for less than dormant_seconds). Ctrl-C to stop.",
        style="dim",
    )
    return Group(head, t, foot)


def run_demo(duration: float | None, tps: float, port: int, console: Console) -> None:
    with tempfile.TemporaryDirectory(prefix="vigie-demo-") as tmp:
        platform = simulator.build_platform()
        inv = Path(tmp) / "inventory.json"
        platform.write_inventory(inv)
        settings = load_settings(
            env={},
            overrides={
                "listen": f"127.0.0.1:{port}",
                "admin_listen": "127.0.0.1:0",
                "state_dir": tmp,
                "inventory": str(inv),
                "log_level": "warning",
            },
        )
        console.print("[dim]starting the sidecar (the first start compiles the kernels)...[/]")
        running = start(settings)
        target = f"127.0.0.1:{running.telemetry_port}"
        stop = threading.Event()
        result: dict[str, Any] = {}

        def traffic() -> None:
            result["stats"] = simulator.run(target, tps, duration, platform, stop=stop)

        sim = threading.Thread(target=traffic, name="simulator", daemon=True)
        sim.start()
        client = AdminClient(f"127.0.0.1:{running.admin_port}", running.sidecar.token)
        started = time.time()
        interactive = console.is_terminal
        try:
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                while sim.is_alive():
                    sim.join(1.0)
                    st = client.call(client.stub.GetStatus, apb.StatusRequest())
                    subs = client.call(
                        client.stub.ListSubscriptions, apb.ListSubscriptionsRequest()
                    )
                    view = _view(st, subs, started)
                    if interactive:
                        live.update(view)
                    else:
                        live.console.print(view.renderables[0])
                live.update(_view(st, subs, started))
        except KeyboardInterrupt:
            stop.set()
            sim.join(10)
        finally:
            client.close()
            running.stop(grace=2)
        stats = result.get("stats", {})
        sent = sum(s.events for s in stats.values())
        console.print(f"sent {sent:,} events through {len(stats)} gateway streams")
