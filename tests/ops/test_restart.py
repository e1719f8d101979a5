"""What a sidecar restart keeps, with real processes: directives (table and version), their
audit trail, the configured thresholds (a class that only they raise is held again), and the
counters, which after a SIGKILL lose at most what came after the last snapshot."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import SidecarProcess, start_sidecar
from tests.ops.harness import Admin, limit_directive, wait_until
from tests.support.streams import StreamClient
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import StreamEncoder

T0 = 1_772_409_600_000_000


def _traffic(enc: StreamEncoder, n: int, start: int) -> pb.EventBatch:
    # 15 % client errors: error_prone only under this test's thresholds (default share: 25 %)
    return enc.batch_from_records(
        [
            {
                "event_time_us": T0 + (start + k) * 1000,
                "application_id": "shop",
                "application_name": "Shop",
                "api_name": "Orders",
                "api_version": "v1",
                "resource_template": "/orders",
                "http_method": 3,
                "http_status": 404 if k % 20 < 3 else 200,
                "latency_us": 4000,
            }
            for k in range(n)
        ]
    )


def _classes(admin: Admin) -> list[str]:
    subs = admin.stub.ListSubscriptions(
        apb.ListSubscriptionsRequest(application="shop"), metadata=admin.md, timeout=30
    ).subscriptions
    return sorted(c for s in subs for c in s.classes)


@pytest.mark.slow
def test_a_killed_sidecar_comes_back_with_its_decisions_and_all_but_the_last_interval(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "vigie.toml"
    cfg.write_text("snapshot_interval_seconds = 2\n[thresholds]\nerror_min_share = 0.10\n")
    state = tmp_path / "state"
    sp: SidecarProcess = start_sidecar(state, "--config", str(cfg))
    try:
        admin = Admin(sp)
        admin.put(limit_directive("limit-shop", "shop", "Orders"), actor="carol", reason="r1")
        version = admin.directives().version
        enc = StreamEncoder()
        c = StreamClient(sp.telemetry, gateway_id="gw-restart")
        c.wait_for(lambda: bool(c.of_kind("welcome")))
        c.send(_traffic(enc, 3000, 0))
        assert c.wait_ack(1).events_applied == 3000
        assert "error_prone" in _classes(admin)
        # two snapshots after the first 3,000: the newest one holds them all
        seen = dict(admin.status().counters).get("snapshots_written", 0)
        wait_until(
            "two snapshots",
            lambda: dict(admin.status().counters).get("snapshots_written", 0) >= seen + 2,
            120,
        )
        c.send(_traffic(enc, 500, 3000))
        assert c.wait_ack(2).events_applied == 3500
        sp.proc.send_signal(signal.SIGKILL)
        sp.proc.wait()
        c.close()
        admin.close()
        tport = int(sp.telemetry.rsplit(":", 1)[1])
        aport = int(sp.admin.rsplit(":", 1)[1])
        sp = start_sidecar(state, "--config", str(cfg), telemetry_port=tport, admin_port=aport)
        admin = Admin(sp)
        applied = admin.status().events_applied
        # lost at most the 500 that came after the last snapshot (within one interval)
        assert 3000 <= applied <= 3500, applied
        d = admin.directives()
        assert d.version == version and [x.id for x in d.directives] == ["limit-shop"]
        # the configured thresholds apply again: the class only they raise is held
        assert "error_prone" in _classes(admin)
        admin.close()
    finally:
        sp.stop()
    audit = [json.loads(x) for x in (state / "directives-audit.jsonl").read_text().splitlines()]
    assert [(e["actor"], e["action"]) for e in audit] == [("carol (self-declared)", "put")]


@pytest.mark.slow
def test_operators_decisions_survive_a_sigkill(tmp_path: Path) -> None:
    """The suggestion book (vigie.policy) and tuned thresholds, after a SIGKILL rather than the
    graceful stop tests/test_policy_cli.py uses: each change is on disk before the call returns."""
    from tests.support.policy_sidecar import cli, cli_json, find, serve  # noqa: PLC0415

    state_dir = tmp_path / "state"
    sp = serve(state_dir)
    try:
        doc = cli_json(sp, "suggestions", "list")
        retired = find(doc["suggestions"], **{"class": "retired", "api": "Legacy"})
        half = find(doc["suggestions"], application_id="app-half")
        cli(sp, "suggestions", "approve", retired["id"], "--reason", "dead", "--actor", "alice")
        cli(sp, "suggestions", "reject", half["id"], "--reason", "DR", "--actor", "bob")
        cli(
            sp,
            "tune",
            "thresholds",
            "retry_min_retries=45",
            "--reason",
            "noisy",
            "--actor",
            "carol",
        )
        sp.proc.send_signal(signal.SIGKILL)
        sp.proc.wait()
        sp = serve(state_dir)
        a = cli_json(sp, "suggestions", "show", retired["id"])
        b = cli_json(sp, "suggestions", "show", half["id"])
        assert (a["state"], b["state"]) == ("pushed", "rejected")
        assert ("alice (self-declared)", "approved", "dead") in [
            (e["actor"], e["action"], e["reason"]) for e in a["audit"]
        ]
        assert (b["audit"][-1]["actor"], b["audit"][-1]["reason"]) == ("bob (self-declared)", "DR")
        th = find(cli_json(sp, "tune", "thresholds")["thresholds"], name="retry_min_retries")
        assert th["value"] == 45 and th["tuned"]
        st = cli_json(sp, "status")
        assert [d["id"] for d in st["directives"]] == [retired["id"]]
    finally:
        sp.stop()
