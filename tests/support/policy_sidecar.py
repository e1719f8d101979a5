"""A real ``vigie serve`` with a small inventory, and the CLI run against it (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from tests.conftest import SidecarProcess, start_sidecar
from tests.support.policy_traffic import DAY, T0, rec
from vigie.cli.main import main
from vigie.sources.probe import GatewayProbe

INVENTORY = {
    "applications": [
        {"id": "app-idle", "name": "Idle", "owner": "team-i", "channel": "main"},
        {"id": "app-half", "name": "Half", "owner": "team-h", "channel": "main"},
    ],
    "apis": [
        {"name": "Legacy", "version": "v0", "context": "/legacy/v0"},
        {"name": "Orders", "version": "v1", "context": "/orders/v1"},
    ],
    "subscriptions": [
        {"application_id": "app-idle", "api": "Legacy", "api_version": "v0", "tier": "Gold"},
        {"application_id": "app-idle", "api": "Orders", "api_version": "v1", "tier": "Gold"},
        {"application_id": "app-half", "api": "Legacy", "api_version": "v0", "tier": "Gold"},
    ],
}


def serve(state_dir: Path, *extra: str, observed: bool = True) -> SidecarProcess:
    """``vigie serve`` with ``INVENTORY``; ``observed``: a gateway first sends two requests,
    at ``T0`` - 31 days (Half on Legacy) and at ``T0`` (another application on another API),
    in two batches (observation starts at the first batch's newest event), so that vigie has
    observed the platform long enough to call what it never saw dormant."""
    inv = state_dir.parent / "inventory.json"
    inv.write_text(json.dumps(INVENTORY))
    sp = start_sidecar(state_dir, "--inventory", str(inv), *extra)
    if observed:
        marks = [
            rec(T0 - 31 * DAY, "app-half", "Legacy", "v0", name="Half", owner="team-h"),
            rec(T0, "app-clock", "Clock", "v1"),
        ]
        with GatewayProbe(sp.telemetry, "gw-clock") as gw:
            for mark in marks:  # history in time order, a batch each, as a backfill sends it
                gw.send_records([mark])
            assert gw.wait_for(lambda p: p.acked_events >= len(marks), 60), gw.error
    return sp


def cli(sp: SidecarProcess, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(
        main, [*args, "--admin", sp.admin, "--state-dir", str(sp.state_dir)]
    )
    assert result.exit_code == code, (result.output, result.exception)
    return result


def cli_json(sp: SidecarProcess, *args: str) -> Any:
    return json.loads(cli(sp, *args, "--json").stdout)


def find(items: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    hits = [s for s in items if all(s.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (match, items)
    return hits[0]
