"""Issue 13: the fleet's auto-approvals are taken by one instance at a time.

Two real ``vigie serve`` instances, each other's peers, with the same inventory and
``auto_approve = dormant``, refreshing their suggestions every second at their own moments; a
gateway streams to both. The dormant subscriptions are auto-approved on the instance with the
smallest instance id alone (``Fleet.decides_auto``): every auto-approval in the other's audit
trail was made there and replicated (``made_on``, ``replicated_to``), and both books hold the
same decisions. When the decider is killed, the other takes the role at its next refresh: a
subscription that becomes dormant only then is auto-approved by it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_fleet import Member, fleet_of, wait_until
from tests.support.policy_sidecar import INVENTORY
from tests.support.policy_traffic import DAY, T0, rec
from vigie.sources.probe import GatewayProbe
from vigie.v1 import admin_pb2 as apb

pytestmark = pytest.mark.slow

AUTO = "vigie-auto"
WAIT_S = 90.0


def audit(m: Member) -> list[dict[str, Any]]:
    out = []
    for path in m.state_dir.rglob("audit.jsonl"):
        out += [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return out


def auto_approvals(m: Member) -> list[dict[str, Any]]:
    return [e for e in audit(m) if e.get("actor") == AUTO and e.get("to_state") == "pushed"]


def decisions(m: Member) -> dict[str, str]:
    with m.client() as c:
        got = c.call(c.stub.ListSuggestions, apb.ListSuggestionsRequest())
    return {s.id: s.state for s in got.suggestions if s.state != "proposed"}


def send(m: Member, records: list[Any]) -> None:
    with GatewayProbe(m.telemetry, "gw-1") as gw:
        for r in records:  # in time order, a batch each, as a backfill sends them
            gw.send_records([r])
        assert gw.wait_for(lambda p: p.acked_events >= len(records), 60), gw.error


def test_one_instance_auto_approves_for_the_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(INVENTORY))
    monkeypatch.setenv("VIGIE_AUTO_APPROVE", "dormant")
    monkeypatch.setenv("VIGIE_POLICY_REFRESH_SECONDS", "1")
    a, b = fleet_of(tmp_path, 2)
    try:
        for m in (a, b):
            m.start("--inventory", str(inv))
        wait_until("the peers to connect", lambda: a.peer_states() == b.peer_states()
                   == ["connected"], WAIT_S)  # fmt: skip
        # observed for 31 days: what the inventory holds and nobody called is dormant
        marks = [
            rec(T0 - 31 * DAY, "app-half", "Legacy", "v0", name="Half", owner="team-h"),
            rec(T0, "app-idle", "Orders", "v1", name="Idle", owner="team-i"),
        ]
        for m in (a, b):
            send(m, marks)
        wait_until("auto-approvals", lambda: len(auto_approvals(a)) >= 2, WAIT_S)
        wait_until("the same decisions on both", lambda: decisions(a) == decisions(b), WAIT_S)
        made_here = [e for e in auto_approvals(a) if "replicated_to" not in e["details"]]
        assert made_here and len(made_here) == len(auto_approvals(a)), auto_approvals(a)
        on_b = auto_approvals(b)
        assert on_b, "b has a's decisions"
        assert all(e["details"].get("made_on") == a.name and e["details"].get("replicated_to")
                   == b.name for e in on_b), on_b  # fmt: skip
        first = set(decisions(a))
        # the decider goes: b decides from its next refresh on
        a.kill()
        wait_until("b to see a gone", lambda: b.peer_states() == ["unreachable"], WAIT_S)
        # 31 days on: Idle has not called Orders since T0, dormant now
        later = [rec(T0 + 31 * DAY, "app-clock", "Clock", "v1")]
        send(b, later)
        wait_until(
            "b's own auto-approval",
            lambda: any("replicated_to" not in e["details"] for e in auto_approvals(b)),
            WAIT_S,
        )
        mine = [e for e in auto_approvals(b) if "replicated_to" not in e["details"]]
        assert {e["subject"] for e in mine}.isdisjoint(first), (mine, first)
        print(f"\nauto-approved by {a.name} for the fleet: {sorted(first)}; by {b.name} once "
              f"{a.name} was gone: {sorted(e['subject'] for e in mine)}")  # fmt: skip
    finally:
        for m in (a, b):
            m.stop()
