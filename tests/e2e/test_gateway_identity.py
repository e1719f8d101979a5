"""The gateway id is the certificate's (issue 12): a real ``vigie serve`` with mTLS on the gateway
listener, real certificates from one CA. A gateway whose certificate says ``gw-b`` but whose Hello
claims ``gw-a`` is reported (log, ``gateway_id_mismatch``) and counted as ``gw-b (claimed
gw-a)``: it cannot share the honest ``gw-a``'s count of requests in a directive's scope, so its
forged hit report is capped to its own 10 requests and named; the honest gateway's report is
taken whole."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from tests.conftest import start_sidecar
from tests.ops.certs import CA, Pair
from tests.ops.harness import limit_directive
from tests.support.policy_traffic import MINUTE, steady
from tests.support.streams import StreamClient
from tests.support.waiting import RPC_S, wait_for
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc
from vigie.v1 import directives_pb2 as dpb
from vigie.v1 import telemetry_pb2 as tpb
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow

SHADOW = dpb.DIRECTIVE_MODE_SHADOW


def _creds(ca: CA, client: Pair) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.pem.read_bytes(),
        private_key=client.key.read_bytes(),
        certificate_chain=client.cert.read_bytes(),
    )


def _gateway(target: str, creds: grpc.ChannelCredentials, claims: str) -> StreamClient:
    hello = tpb.Hello(gateway_id=claims, channel="main", protocol_version=1)
    c = StreamClient(target, hello=hello, credentials=creds)
    c.wait_for(lambda: bool(c.of_kind("welcome")), timeout=120)
    return c


def _report(c: StreamClient, shadow: int, passed: int) -> None:
    hits = [dpb.DirectiveHits(directive_id="lim-x", shadow_hits=shadow, passed=passed)]
    c.send_raw(tpb.GatewayMessage(report=tpb.GatewayReport(directive_hits=hits)))


def test_a_hello_claiming_another_gateway_counts_under_its_certificate(tmp_path: Path) -> None:
    ca = CA(tmp_path / "pki", "vigie-ca")
    server = ca.issue("sidecar", server=True)
    gw_a, gw_b = ca.issue("gw-a", server=False), ca.issue("gw-b", server=False)
    env = {
        "VIGIE_TLS_CERT_FILE": str(server.cert),
        "VIGIE_TLS_KEY_FILE": str(server.key),
        "VIGIE_TLS_CLIENT_CA_FILE": str(ca.pem),
    }
    state = tmp_path / "state"
    sp = start_sidecar(state, env=env)
    md = (("authorization", f"Bearer {(state / 'admin.token').read_text().strip()}"),)
    now = int(time.time() * 1e6)
    d = limit_directive("lim-x", "app-x", "Orders")
    d.mode = SHADOW
    honest = forger = None
    try:
        with grpc.insecure_channel(sp.admin) as ch:
            stub = apb_grpc.AdminStub(ch)
            stub.PutDirective(
                apb.PutDirectiveRequest(directive=d, actor="op", reason="t"), metadata=md
            )
            honest = _gateway(sp.telemetry, _creds(ca, gw_a), "gw-a")
            forger = _gateway(sp.telemetry, _creds(ca, gw_b), "gw-a")  # gw-b's certificate
            enc_a, enc_b = StreamEncoder(), StreamEncoder()
            honest.send(enc_a.batch_from_records(steady("app-x", now - 10 * MINUTE, 10, 20)))
            forger.send(enc_b.batch_from_records(steady("app-x", now - 2 * MINUTE, 2, 5)))
            assert honest.wait_ack(1).events_applied == 200
            assert forger.wait_ack(1).events_applied == 10
            _report(honest, 20, 180)
            # claiming gw-a's id, 1,000,000 requests: were it counted as gw-a, it would share
            # gw-a's 210; counted as itself, it sent 10
            _report(forger, 1, 999_999)

            def both() -> apb.Status | None:
                st = stub.GetStatus(apb.StatusRequest(), metadata=md, timeout=RPC_S)
                return st if len(st.hit_tables) == 2 else None

            st = wait_for(both, 120, "the hit tables of both gateways")
            assert {h.gateway_id for h in st.hit_tables} == {"gw-a", "gw-b (claimed gw-a)"}
            assert {g.gateway_id for g in st.gateways} == {"gw-a", "gw-b (claimed gw-a)"}
            assert dict(st.implausible_hit_reports) == {"gw-b (claimed gw-a)": 1}
            assert st.counters["gateway_id_mismatch"] == 1
            out = stub.ListDirectives(apb.ListDirectivesRequest(), metadata=md, timeout=RPC_S)
            (h,) = [h for h in out.hits if h.directive_id == "lim-x"]
            # gw-a's report whole; the forger's scaled down to its own 10 requests
            assert (h.shadow_hits, h.passed) == (20 + 0, 180 + 9)
    finally:
        for c in (honest, forger):
            if c is not None:
                c.close()
        sp.stop()
    log = sp.log()
    assert "its certificate is gw-b but its Hello claims gw-a; counted as gw-b (claimed gw-a)" in (
        log
    )
    assert "Traceback" not in log
