"""Plausible hits per gateway (issue 12): a gateway's hit report for a directive counts only up to
the requests that gateway itself sent in the directive's scope. Two gateways, one honest, one
forging hits for traffic it never sent: the forger's hits are capped to what it sent, it is
named in ``vigie status``, and auto-approval promotes on the honest gateway's evidence (the
forger can neither drive a promotion nor veto one by making the sum implausible)."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from tests.conftest import start_sidecar
from tests.e2e.test_policy_engine import ENFORCE, SHADOW, Clock, by_class, make, populate
from tests.ops.harness import limit_directive
from tests.support.policy_sidecar import cli, cli_json
from tests.support.policy_traffic import END, MINUTE, steady
from tests.support.waiting import RPC_S, wait_for
from vigie.directives.audit import read_entries
from vigie.server.core import GatewayStream, Sidecar
from vigie.sources.probe import GatewayProbe
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc
from vigie.v1 import directives_pb2 as dpb
from vigie.v1 import telemetry_pb2 as tpb
from vigie.wire.columns import StreamDecoder, StreamEncoder

pytestmark = pytest.mark.slow


def _hits(stub: apb_grpc.AdminStub, md: tuple[tuple[str, str], ...]) -> dict[str, tuple[int, ...]]:
    out = stub.ListDirectives(apb.ListDirectivesRequest(), metadata=md, timeout=RPC_S)
    return {h.directive_id: (h.shadow_hits, h.enforced_hits, h.passed) for h in out.hits}


def test_a_forger_is_capped_to_what_it_sent_and_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sp = start_sidecar(state)
    md = (("authorization", f"Bearer {(state / 'admin.token').read_text().strip()}"),)
    now = int(time.time() * 1e6)
    d = limit_directive("lim-x", "app-x", "Orders")
    d.mode = SHADOW
    try:
        with grpc.insecure_channel(sp.admin) as ch:
            stub = apb_grpc.AdminStub(ch)
            stub.PutDirective(
                apb.PutDirectiveRequest(directive=d, actor="op", reason="t"), metadata=md
            )
            with (
                GatewayProbe(sp.telemetry, "gw-honest") as honest,
                GatewayProbe(sp.telemetry, "gw-forger") as forger,
            ):
                for p in (honest, forger):
                    assert p.wait_for(lambda p: "lim-x" in p.table, 120), p.error
                # honest: 200 requests in the scope, 50 of another application
                mine = steady("app-x", now - 10 * MINUTE, 10, 20)
                other = steady("app-y", now - 10 * MINUTE, 10, 5)
                honest.send_records(mine + other)
                # the forger sent 10 requests in the scope (and 40 out of it)
                forger.send_records(
                    steady("app-x", now - 2 * MINUTE, 2, 5)
                    + steady("app-y", now - 8 * MINUTE, 8, 5)
                )
                assert honest.wait_for(lambda p: p.acked_events >= 250, 60), honest.error
                assert forger.wait_for(lambda p: p.acked_events >= 50, 60), forger.error
                honest.send_report(
                    [dpb.DirectiveHits(directive_id="lim-x", shadow_hits=20, passed=180)]
                )
                forger.send_report(
                    [dpb.DirectiveHits(directive_id="lim-x", shadow_hits=1, passed=999_999)]
                )

                def both() -> apb.Status | None:
                    st = stub.GetStatus(apb.StatusRequest(), metadata=md, timeout=RPC_S)
                    return st if len(st.hit_tables) == 2 else None

                st = wait_for(both, 120, "the hit tables of both gateways")
                # the honest report as it was; the forger's scaled down to its 10 requests
                assert _hits(stub, md)["lim-x"] == (20 + 0, 0, 180 + 9)
                assert dict(st.implausible_hit_reports) == {"gw-forger": 1}
                assert st.counters["directive_hits_implausible"] == 1
                # an honest report that grows with its traffic stays plausible
                honest.send_records(steady("app-x", now - MINUTE, 1, 20))
                assert honest.wait_for(lambda p: p.acked_events >= 270, 60), honest.error
                honest.send_report(
                    [dpb.DirectiveHits(directive_id="lim-x", shadow_hits=22, passed=198)]
                )
                wait_for(lambda: _hits(stub, md)["lim-x"][0] == 22, 120, "the honest report of 22")
                assert _hits(stub, md)["lim-x"] == (22, 0, 198 + 9)
                st = stub.GetStatus(apb.StatusRequest(), metadata=md, timeout=60)
                assert dict(st.implausible_hit_reports) == {"gw-forger": 1}
        text = cli(sp, "status")
        assert "implausible hit reports" in text.stdout and "gw-forger (1)" in text.stdout
        assert "gw-honest (" not in text.stdout.split("implausible hit reports")[1]
        assert cli_json(sp, "status")["implausible_hit_reports"] == {"gw-forger": "1"}
    finally:
        sp.stop()


def _stream(sc: Sidecar, gateway_id: str) -> tuple[GatewayStream, StreamDecoder, StreamEncoder]:
    gs, dec = sc.open_stream(
        tpb.Hello(gateway_id=gateway_id, channel="main", tenant="carbon.super", protocol_version=1),
        "ipv4:127.0.0.1:1",
    )
    return gs, dec, StreamEncoder()


def test_promotion_follows_the_honest_gateway(tmp_path: Path) -> None:
    clock = Clock()
    sc = make(tmp_path, clock, auto_approve="dormant")
    populate(sc)
    sc.policy.refresh(force=True)
    sid = by_class(sc, "dormant")
    assert sc.policy.book.get(sid).mode == SHADOW
    clock.t += 901
    honest, h_dec, h_enc = _stream(sc, "gw-honest")
    forger, f_dec, f_enc = _stream(sc, "gw-forger")
    # the honest gateway sent 200 requests in the directive's scope; the forger none
    batch = h_enc.batch_from_records(steady("app-idle", END, 10, 20, api="Legacy", ver="v0"))
    sc.apply_batch(honest, h_dec, batch)
    sc.apply_batch(forger, f_dec, f_enc.batch_from_records(steady("app-busy", END, 10, 5)))
    sc.record_report(
        honest,
        tpb.GatewayReport(
            directive_hits=[dpb.DirectiveHits(directive_id=sid, shadow_hits=4, passed=196)]
        ),
    )
    # a billion "would have refused" of traffic it never sent: alone, it would make the sum
    # implausible (kept in shadow) or, believed, refuse to promote (share above the maximum)
    sc.record_report(
        forger,
        tpb.GatewayReport(
            directive_hits=[dpb.DirectiveHits(directive_id=sid, shadow_hits=1_000_000_000)]
        ),
    )
    assert sc.gateway_scopes.sent(sid, "gw-honest") == 200
    assert sc.gateway_scopes.sent(sid, "gw-forger") == 0
    sc.policy.tick()
    rec = sc.policy.book.get(sid)
    assert rec.mode == ENFORCE, sc.policy.book.trail(sid)[-1].reason
    last = sc.policy.book.trail(sid)[-1]
    assert "(4 of 200)" in last.reason
    # the promotion is vigie-auto's, with its evidence, in both trails
    assert (last.actor, last.action) == ("vigie-auto", "mode ENFORCE")
    assert (last.details["matched"], last.details["shadow_hits"]) == (200, 4)
    assert last.details["share"] == 0.02
    put = [
        e for e in read_entries([sc.settings.audit_path()]) if e["subject"] == f"directive:{sid}"
    ]
    assert put[-1]["actor"] == "vigie-auto"
    assert (
        "promoted to enforce: in shadow it would have refused 2.0% (4 of 200)" in put[-1]["reason"]
    )
    assert sc.status().implausible_hit_reports["gw-forger"] == 1
    assert "gw-honest" not in sc.status().implausible_hit_reports
