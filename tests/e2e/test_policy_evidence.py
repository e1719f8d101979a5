"""Day one, as a new user runs it: ``vigie serve --inventory`` with the README's auto-approve
example and an hour of traffic. Nothing that was never seen is called dormant or retired,
nothing is proposed or pushed for it, and ``vigie consumers`` / ``vigie status`` say
``unknown``. A real ``vigie serve`` process over real gRPC."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import SidecarProcess, start_sidecar
from tests.support.policy_sidecar import INVENTORY, cli_json
from tests.support.policy_traffic import END, HOUR, steady
from vigie.sources.probe import GatewayProbe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def day_one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    root = tmp_path_factory.mktemp("day-one")
    inv = root / "inventory.json"
    inv.write_text(json.dumps(INVENTORY))
    env = {"VIGIE_AUTO_APPROVE": "retry_storm,dormant,retired",
           "VIGIE_POLICY_REFRESH_SECONDS": "1"}  # fmt: skip
    sp = start_sidecar(root / "state", "--inventory", str(inv), env=env)
    try:
        with GatewayProbe(sp.telemetry, "gw-day-one") as gw:
            records = steady("app-half", END - HOUR, 60, 5)
            gw.send_records(records)
            assert gw.wait_for(lambda p: p.acked_events >= len(records), 60), gw.error
        yield sp
    finally:
        sp.stop()


def test_never_seen_is_unknown_not_dormant(day_one: SidecarProcess) -> None:
    doc = cli_json(day_one, "consumers")
    by = {(s["application_id"], s["api"]): s for s in doc["subscriptions"]}
    idle = by[("app-idle", "Legacy")]
    assert idle["classes"] == ["unknown"]
    assert idle["evidence"]["unknown"]["judged"] == "dormant"
    assert idle["evidence"]["unknown"]["needed_days"] == 30
    assert by[("app-half", "Orders")]["classes"] == ["normal"]
    st = cli_json(day_one, "status")
    assert st["classes"]["unknown"] == 3 and st["classes"]["dormant"] == 0


def test_nothing_is_proposed_or_pushed_on_day_one(day_one: SidecarProcess) -> None:
    doc = cli_json(day_one, "suggestions", "list")
    assert [s for s in doc["suggestions"] if s["class"] in ("dormant", "retired")] == []
    assert cli_json(day_one, "status")["directives"] == []
