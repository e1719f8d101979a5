"""The operator's commands against a real ``vigie serve`` process, and a real gateway stream.

A suggestion approved in the CLI (a separate ``vigie`` process) reaches a connected gateway
stream; suggestions, their lifecycle and audit trail and tuned thresholds survive a real
restart; admin calls without the token are refused and counted.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner

from tests.conftest import VIGIE, SidecarProcess
from tests.support.policy_sidecar import cli, cli_json, find, serve
from tests.support.policy_traffic import MINUTE, T0, retry_storm
from tests.support.waiting import RPC_S
from vigie.cli.main import main
from vigie.directives.ids import manual_directive_id
from vigie.sources.probe import GatewayProbe
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc
from vigie.v1 import directives_pb2 as dpb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    sp = serve(tmp_path_factory.mktemp("policy") / "state")
    yield sp
    sp.stop()


@pytest.fixture(scope="module")
def storm(sidecar: SidecarProcess) -> dict[str, Any]:
    """A retry storm streamed by a gateway; its suggestion."""
    with GatewayProbe(sidecar.telemetry, "gw-storm") as gw:
        gw.send_records(retry_storm("app-retry", T0 + 10 * MINUTE))
        assert gw.wait_for(lambda p: p.acked_events >= 120, 120)
    doc = cli_json(sidecar, "suggestions", "list", "--class", "retry_storm", "--state", "proposed")
    return find(doc["suggestions"], application_id="app-retry")


def test_suggestions_list_and_show(sidecar: SidecarProcess, storm: dict[str, Any]) -> None:
    doc = cli_json(sidecar, "suggestions", "list")
    items = doc["suggestions"]
    dormant_app = find(items, **{"class": "dormant", "concerns": "application"})
    assert dormant_app["application_id"] == "app-idle"
    assert dormant_app["wso2"]["payload"]["conditionValue"] == "team-i:Idle"
    find(items, **{"class": "dormant", "application_id": "app-half", "concerns": "subscription"})
    assert find(items, **{"class": "retired", "api": "Legacy"})["state"] == "proposed"
    assert storm["directive"]["action"] == "DIRECTIVE_ACTION_LIMIT"
    assert doc["by_state"]["proposed"] >= 4
    shown = cli_json(sidecar, "suggestions", "show", storm["id"])
    assert shown["evidence"]["retry_storm"]["retries"] >= 100
    assert [e["action"] for e in shown["audit"]] == ["proposed"]
    text = cli(sidecar, "suggestions", "show", storm["id"]).stdout
    assert "Audit trail" in text and "retries within 2,000 ms" in text
    missing = cli(sidecar, "suggestions", "show", "sg-000000000000", code=2)
    assert "NOT_FOUND" in missing.output and "no suggestion 'sg-000000000000'" in missing.output


def test_approve_in_the_cli_reaches_a_connected_gateway(
    sidecar: SidecarProcess, storm: dict[str, Any]
) -> None:
    with GatewayProbe(sidecar.telemetry, "gw-1") as gw1, GatewayProbe(sidecar.telemetry,
                                                                      "gw-2") as gw2:  # fmt: skip
        assert gw1.wait_connected() and gw2.wait_connected()
        env = os.environ | {"VIGIE_ACTOR": "alice"}
        out = subprocess.run(
            [*VIGIE, "suggestions", "approve", storm["id"], "--mode", "enforce", "--reason",
             "storm", "--admin", sidecar.admin, "--state-dir", str(sidecar.state_dir), "--json"],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["state"] == "pushed"
        for gw in (gw1, gw2):
            assert gw.wait_for(lambda p: storm["id"] in p.table, 120), gw.error
            d = gw.table[storm["id"]]
            assert d.mode == dpb.DIRECTIVE_MODE_ENFORCE
            assert (d.application_id, d.api_name, d.suggestion_id) == ("app-retry", "Stock",
                                                                        storm["id"])  # fmt: skip
        # the gateway reports hits back (of the 10 requests it sent in the scope: a gateway's
        # hits count only up to those, vigie.server.hits); the status shows them
        gw1.send_records(
            [{"event_time_us": T0 + 10 * MINUTE + k * 1000, "application_id": "app-retry",
              "api_name": "Stock", "api_version": gw1.table[storm["id"]].api_version,
              "http_status": 200} for k in range(10)]
        )  # fmt: skip
        assert gw1.wait_for(lambda p: p.acked_events >= 10, 60), gw1.error
        gw1.send_report([dpb.DirectiveHits(directive_id=storm["id"], enforced_hits=7, passed=3)])
        assert gw1.wait_for(lambda p: True, 0.1)
    status = _eventually(
        lambda: cli_json(sidecar, "status"),
        lambda st: any(d["hits"]["enforced"] == 7 for d in st["directives"]),
    )
    assert status["health"] == "SERVING"
    assert status["suggestions"]["pushed"] >= 1
    shown = cli_json(sidecar, "suggestions", "show", storm["id"])
    assert [(e["actor"], e["action"], e["to"]) for e in shown["audit"]][-1] == (
        "alice (self-declared)", "approved", "pushed")  # fmt: skip
    text = cli(sidecar, "status").stdout
    assert "Active directives" in text and storm["id"] in text


def _eventually(fetch: Any, ok: Any, tries: int = 50) -> Any:
    """Bounded polling of a real process (no time is moved)."""
    import time  # noqa: PLC0415

    doc = fetch()
    for _ in range(tries):
        if ok(doc):
            return doc
        time.sleep(0.1)
        doc = fetch()
    raise AssertionError(doc)


def test_tune_limit_block_unblock(sidecar: SidecarProcess) -> None:
    with GatewayProbe(sidecar.telemetry, "gw-tune") as gw:
        assert gw.wait_connected()
        lim = cli_json(sidecar, "tune", "limit", "--application", "app-half", "--api", "Orders",
                       "--rate", "30/min", "--ttl", "15m", "--reason", "load test")  # fmt: skip
        lid = lim["directive"]["id"]
        assert lim["directive"]["limit_requests"] == 30
        assert lim["directive"]["limit_period_seconds"] == 60
        blk = cli_json(sidecar, "tune", "block", "--application", "app-half", "--channel", "sale",
                       "--ttl", "1h", "--mode", "enforce", "--reason", "wrong gateway")  # fmt: skip
        bid = blk["directive"]["id"]
        assert gw.wait_for(lambda p: {lid, bid} <= set(p.table))
        assert gw.table[bid].action == dpb.DIRECTIVE_ACTION_BLOCK
        removed = cli_json(sidecar, "tune", "unblock", "--application", "app-half", "--channel",
                           "sale", "--reason", "fixed")  # fmt: skip
        assert removed == {"removed": [bid]}
        assert gw.wait_for(lambda p: bid not in p.table and lid in p.table)
        cli(sidecar, "tune", "unblock", lid, "--reason", "done", "--json")
        assert gw.wait_for(lambda p: lid not in p.table)
    bad = cli(sidecar, "tune", "limit", "--api", "Orders", "--rate", "lots", "--ttl", "1h",
              "--reason", "x", code=2)  # fmt: skip
    assert "expected a rate such as 100/min" in bad.output
    no_scope = cli(sidecar, "tune", "block", "--ttl", "1h", "--reason", "x", code=2)
    assert "give a scope" in no_scope.output


def test_policies_export(sidecar: SidecarProcess, tmp_path: Path) -> None:
    doc = cli_json(sidecar, "suggestions", "list", "--class", "retired")
    retired = find(doc["suggestions"], api="Legacy")
    if retired["state"] == "proposed":
        cli(sidecar, "suggestions", "approve", retired["id"], "--reason", "dead API")
    out = cli_json(sidecar, "policies", "export", "--format", "wso2-admin")
    deny = find(out["policies"], suggestion_id=retired["id"])
    assert deny["body"] == {"conditionType": "API", "conditionValue": "/legacy/v0",
                            "conditionStatus": True}  # fmt: skip
    assert (deny["method"], deny["path"]) == ("POST", "/throttling/deny-policies")
    res = cli(sidecar, "policies", "export", "--format", "apictl", "--out", str(tmp_path / "x"))
    assert "has no apictl form" in res.output
    shown = cli_json(sidecar, "suggestions", "show", retired["id"])
    assert shown["exported"] and shown["audit"][-1]["action"] == "exported"


def test_reject_and_withdraw(sidecar: SidecarProcess) -> None:
    doc = cli_json(sidecar, "suggestions", "list", "--class", "dormant")
    sub = find(doc["suggestions"], application_id="app-half")
    if sub["state"] == "proposed":
        r = cli_json(sidecar, "suggestions", "reject", sub["id"], "--reason", "kept for DR")
        assert r["state"] == "rejected"
    again = cli(sidecar, "suggestions", "approve", sub["id"], code=2)
    assert "only a proposed suggestion can be approved" in again.output
    app = find(doc["suggestions"], application_id="app-idle")
    cli(sidecar, "suggestions", "approve", app["id"])
    w = cli_json(sidecar, "suggestions", "withdraw", app["id"], "--reason", "owner came back")
    assert w["state"] == "withdrawn"
    assert cli(sidecar, "suggestions", "reject", app["id"], code=2).exit_code == 2


def test_thresholds_are_validated(sidecar: SidecarProcess) -> None:
    bad = cli(sidecar, "tune", "thresholds", "retry_min_share=2", code=2)
    assert "INVALID_ARGUMENT" in bad.output
    assert "retry_min_share: must be at most 1, got 2" in bad.output
    window = cli(sidecar, "tune", "thresholds", "short_window_seconds=600", code=2)
    assert "window lengths shape the state and can only be set at start-up" in window.output
    view = cli_json(sidecar, "tune", "thresholds")
    assert find(view["thresholds"], name="retry_min_share")["value"] == 0.5


def test_top_once(sidecar: SidecarProcess) -> None:
    lines = cli(sidecar, "top", "--interval", "0.2", "--iterations", "1", "--json").stdout
    doc = json.loads(lines.strip().splitlines()[-1])
    assert {"now", "busiest", "anomalous"} <= set(doc)
    assert any(r["application_id"] == "app-retry" for r in doc["anomalous"])


def test_admin_calls_need_the_token(sidecar: SidecarProcess, tmp_path: Path) -> None:
    with grpc.insecure_channel(sidecar.admin) as ch:
        stub = apb_grpc.AdminStub(ch)
        for md in ((), (("authorization", "Bearer wrong"),)):
            with pytest.raises(grpc.RpcError) as exc:
                stub.ListSuggestions(apb.ListSuggestionsRequest(), metadata=md, timeout=RPC_S)
            assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as exc:
            stub.ApproveSuggestion(apb.ApproveSuggestionRequest(id="x"), timeout=RPC_S)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as exc:
            stub.SetThresholds(apb.SetThresholdsRequest(changes={"hold_seconds": 1}), timeout=RPC_S)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token\n")
    res = CliRunner().invoke(
        main, ["suggestions", "list", "--admin", sidecar.admin, "--token-file", str(wrong)]
    )
    assert res.exit_code == 2 and "refused the admin token" in res.output
    status = cli_json(sidecar, "status")
    assert int(status["counters"]["admin_unauthenticated"]) >= 5  # uint64: a JSON string
    view = cli_json(sidecar, "tune", "thresholds")
    assert find(view["thresholds"], name="hold_seconds")["value"] == 86_400  # unchanged


def test_lifecycle_audit_and_thresholds_survive_a_restart(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    sp = serve(state_dir)
    try:
        doc = cli_json(sp, "suggestions", "list")
        retired = find(doc["suggestions"], **{"class": "retired", "api": "Legacy"})
        half = find(doc["suggestions"], application_id="app-half")
        cli(sp, "suggestions", "approve", retired["id"], "--reason", "dead", "--actor", "alice")
        cli(sp, "suggestions", "reject", half["id"], "--reason", "DR", "--actor", "bob")
        cli(sp, "tune", "thresholds", "retry_min_retries=45", "--reason", "noisy",
            "--actor", "carol")  # fmt: skip
        assert sp.stop() == 0
        sp = serve(state_dir)
        a = cli_json(sp, "suggestions", "show", retired["id"])
        b = cli_json(sp, "suggestions", "show", half["id"])
        assert (a["state"], b["state"]) == ("pushed", "rejected")
        assert [(e["actor"], e["action"], e["reason"]) for e in a["audit"]] == [
            ("vigie", "proposed", a["summary"]),
            ("alice (self-declared)", "approved", "dead"),
        ]
        assert (b["audit"][-1]["actor"], b["audit"][-1]["reason"]) == ("bob (self-declared)", "DR")
        th = find(cli_json(sp, "tune", "thresholds")["thresholds"], name="retry_min_retries")
        assert th["value"] == 45 and th["tuned"]
        st = cli_json(sp, "status")
        assert [d["id"] for d in st["directives"]] == [retired["id"]]
        assert st["suggestions"]["pushed"] == 1 and st["suggestions"]["rejected"] == 1
        assert "thresholds tuned at run time restored" in sp.log()
    finally:
        sp.stop()


def test_a_manual_directive_id_names_its_kind_and_scope() -> None:
    a = manual_directive_id("block", "app-x", "", "", "sale")
    assert a.startswith("manual-block-") and len(a) == len("manual-block-") + 10
    assert a == manual_directive_id("block", "app-x", "", "", "sale")  # putting it again replaces
    assert a != manual_directive_id("limit", "app-x", "", "", "sale")
    assert a != manual_directive_id("block", "app-x", "", "", "main")
