"""The simulator against a real sidecar: nothing lost, and the misbehaving consumers found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tests.conftest import SidecarProcess, start_sidecar
from vigie.sources import simulator
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc


@pytest.mark.slow
def test_simulated_gateways_are_classified(tmp_path: Path) -> None:
    tmp = tmp_path
    platform = simulator.build_platform(apps=40, apis=8, seed=3)
    for m in platform.misbehaviours:
        # get there within seconds: Pick-App strays 8 % of its calls, >= 10 needed
        m.rate *= 8 if m.kind == "wrong_channel" else 3
    inv = tmp / "inventory.json"
    platform.write_inventory(inv)
    sp: SidecarProcess = start_sidecar(tmp / "state", "--inventory", str(inv))
    try:
        stats = simulator.run(sp.telemetry, 300.0, 16.0, platform)
        sent = sum(s.events for s in stats.values())
        assert all(not s.errors for s in stats.values())
        assert sum(s.acked_events for s in stats.values()) == sent
        with grpc.insecure_channel(sp.admin) as ch:
            stub = apb_grpc.AdminStub(ch)
            md = (("authorization", f"Bearer {sp.token}"),)
            st = stub.GetStatus(apb.StatusRequest(), metadata=md, timeout=10)
            subs = stub.ListSubscriptions(apb.ListSubscriptionsRequest(), metadata=md, timeout=10)
        assert st.events_applied == sent
        by_app = {s.application_name: set(s.classes) for s in subs.subscriptions}
        assert "redundant" in by_app["Store-Widget"]
        assert "error_prone" in by_app["Legacy-Portal"]
        assert "throttle_hitter" in by_app["Promo-Bot"]
        assert "retry_storm" in by_app["Courier-Tracker"]
        assert "wrong_channel" in by_app["Pick-App"]
        # inventory subscriptions nobody calls: after seconds of traffic, unknown, not dormant
        assert st.classes["unknown"] >= 1 and st.classes["dormant"] == 0
    finally:
        sp.stop()


@pytest.mark.slow
def test_demo_runs_and_stops_by_itself() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vigie.cli", "demo", "--duration", "6", "--tps", "200"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "vigie demo" in out.stdout and "gateway streams" in out.stdout
