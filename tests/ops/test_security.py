"""Security with real processes: TLS/mTLS on the gateway stream and the admin service (Python
and Java clients, certificates made here), admin authentication by token, client certificate
or both, secrets never in the logs, every directive change in the audit trail, and
``vigie check-config`` warning about exposed secrets and listeners."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from tests.conftest import VIGIE, SidecarProcess, start_sidecar
from tests.e2e.test_server import records
from tests.ops.certs import CA, Pair
from tests.ops.harness import LoadDriver, limit_directive
from tests.support.streams import StreamClient
from tests.support.waiting import RPC_S
from vigie.cli.main import main
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc
from vigie.wire.columns import StreamEncoder


def _creds(ca: CA, client: Pair | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.pem.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )


def _tls_env(ca: CA, server: Pair, admin_auth: str) -> dict[str, str]:
    return {
        "VIGIE_TLS_CERT_FILE": str(server.cert),
        "VIGIE_TLS_KEY_FILE": str(server.key),
        "VIGIE_TLS_CLIENT_CA_FILE": str(ca.pem),
        "VIGIE_ADMIN_TLS_CERT_FILE": str(server.cert),
        "VIGIE_ADMIN_TLS_KEY_FILE": str(server.key),
        "VIGIE_ADMIN_TLS_CLIENT_CA_FILE": str(ca.pem),
        "VIGIE_ADMIN_AUTH": admin_auth,
    }


def _stream_once(target: str, creds: grpc.ChannelCredentials | None) -> int:
    """Events acknowledged on one stream, or -1 when the stream could not be had."""
    c = StreamClient(target, credentials=creds, gateway_id="tls-gw")
    try:
        c.wait_for(lambda: bool(c.of_kind("welcome")), timeout=120)
        c.send(StreamEncoder().batch_from_records(records(50)))
        return int(c.wait_ack(1).events_applied)
    except AssertionError:
        return -1
    finally:
        c.close()


def _status(target: str, creds: grpc.ChannelCredentials, token: str | None) -> grpc.StatusCode:
    md = (("authorization", f"Bearer {token}"),) if token is not None else ()
    with grpc.secure_channel(target, creds) as ch:
        try:
            apb_grpc.AdminStub(ch).GetStatus(apb.StatusRequest(), metadata=md, timeout=RPC_S)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()


@pytest.fixture
def pki(tmp_path: Path) -> tuple[CA, CA, Pair, Pair, Pair, Pair]:
    ca = CA(tmp_path / "pki", "vigie-ca")
    rogue = CA(tmp_path / "rogue", "rogue-ca")
    return (
        ca,
        rogue,
        ca.issue("sidecar", server=True),
        ca.issue("gateway-1", server=False),
        ca.issue("operator", server=False),
        rogue.issue("intruder", server=False),
    )


@pytest.mark.slow
def test_mtls_on_both_listeners_admits_only_the_ca_s_certificates(
    tmp_path: Path, pki: tuple[CA, CA, Pair, Pair, Pair, Pair]
) -> None:
    ca, rogue, server, gateway, operator, intruder = pki
    env = _tls_env(ca, server, "both")
    sp = start_sidecar(tmp_path / "state", env=env, channel_credentials=_creds(ca, operator))
    try:
        # gateway stream: only a gateway certificate signed by the CA gets through
        assert _stream_once(sp.telemetry, _creds(ca, gateway)) == 50
        assert _stream_once(sp.telemetry, None) == -1  # plaintext
        assert _stream_once(sp.telemetry, _creds(ca, None)) == -1  # TLS, no client certificate
        assert _stream_once(sp.telemetry, _creds(rogue, intruder)) == -1
        # admin: both the certificate and the token (admin_auth = both)
        assert _status(sp.admin, _creds(ca, operator), sp.token) == grpc.StatusCode.OK
        assert _status(sp.admin, _creds(ca, operator), "wrong") == grpc.StatusCode.UNAUTHENTICATED
        assert _status(sp.admin, _creds(ca, operator), None) == grpc.StatusCode.UNAUTHENTICATED
        assert _status(sp.admin, _creds(ca, None), sp.token) == grpc.StatusCode.UNAVAILABLE
        assert _status(sp.admin, _creds(rogue, intruder), sp.token) == grpc.StatusCode.UNAVAILABLE
        # the CLI over mTLS (VIGIE_ADMIN_* client settings)
        cli_env = os.environ | {
            "VIGIE_ADMIN_CA_FILE": str(ca.pem),
            "VIGIE_ADMIN_CERT_FILE": str(operator.cert),
            "VIGIE_ADMIN_KEY_FILE": str(operator.key),
        }
        out = subprocess.run(
            [*VIGIE, "status", "--admin", sp.admin, "--state-dir", str(sp.state_dir), "--json"],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)
        # the Java handler over mTLS: the real core streams through it
        driver = LoadDriver.start(
            sp.telemetry,
            tmp_path,
            rate=2000,
            threads=1,
            gateway_id="java-mtls",
            tls_ca=ca.pem,
            tls_cert=gateway.cert,
            tls_key=gateway.key,
            tls_authority="localhost",
        )
        try:
            driver.wait("acknowledgements over mTLS", lambda ln: ln["acked"] >= 2000, 120)
            final = driver.stop()
        finally:
            driver.kill()
        assert final["acked"] + final["dropped"] == final["offered"]
        assert final["reconnects"] == 0
        # a Java handler without a client certificate is refused (and only counts drops)
        refused = LoadDriver.start(
            sp.telemetry, tmp_path, rate=500, threads=1, gateway_id="java-no-cert", tls_ca=ca.pem
        )
        try:
            refused.wait("a failed connection", lambda ln: ln["stream_errors"] >= 2, 120)
            final = refused.stop()
        finally:
            refused.kill()
        assert final["acked"] == 0 and final["dropped"] == final["offered"]
    finally:
        sp.stop()
    log = sp.log()
    assert "mTLS" in log  # the startup line says how each listener is protected


@pytest.mark.slow
def test_admin_by_client_certificate_alone(
    tmp_path: Path, pki: tuple[CA, CA, Pair, Pair, Pair, Pair]
) -> None:
    ca, rogue, server, _gateway, operator, intruder = pki
    sp = start_sidecar(
        tmp_path / "state",
        env=_tls_env(ca, server, "mtls"),
        channel_credentials=_creds(ca, operator),
    )
    try:
        assert _status(sp.admin, _creds(ca, operator), None) == grpc.StatusCode.OK
        assert _status(sp.admin, _creds(rogue, intruder), None) == grpc.StatusCode.UNAVAILABLE
        cli_env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")} | {
            "VIGIE_ADMIN_CA_FILE": str(ca.pem),
            "VIGIE_ADMIN_CERT_FILE": str(operator.cert),
            "VIGIE_ADMIN_KEY_FILE": str(operator.key),
        }
        out = subprocess.run(
            [*VIGIE, "status", "--admin", sp.admin, "--state-dir", str(tmp_path / "nowhere")],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
    finally:
        sp.stop()


@pytest.mark.slow
def test_tokens_never_reach_the_log_and_every_directive_change_is_audited(
    tmp_path: Path,
) -> None:
    token = "tok-" + secrets.token_urlsafe(24)
    wrong = "bad-" + secrets.token_urlsafe(24)
    sp = start_sidecar(tmp_path / "state", "--log-level", "debug", env={"VIGIE_ADMIN_TOKEN": token})
    try:
        ch = grpc.insecure_channel(sp.admin)
        stub = apb_grpc.AdminStub(ch)
        good = (("authorization", f"Bearer {token}"),)
        with pytest.raises(grpc.RpcError) as exc:
            stub.GetStatus(apb.StatusRequest(), metadata=(("authorization", f"Bearer {wrong}"),))
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.GetStatus(apb.StatusRequest(), metadata=good, timeout=RPC_S)
        d = limit_directive("limit-shop", "shop", "Orders")
        stub.PutDirective(
            apb.PutDirectiveRequest(directive=d, actor="alice", reason="INC-42 retry storm"),
            metadata=good,
            timeout=RPC_S,
        )
        d.limit_requests = 50
        stub.PutDirective(
            apb.PutDirectiveRequest(directive=d, actor="bob", reason="tighter"),
            metadata=good,
            timeout=RPC_S,
        )
        stub.RemoveDirective(
            apb.RemoveDirectiveRequest(directive_id="limit-shop", actor="alice", reason="fixed"),
            metadata=good,
            timeout=RPC_S,
        )
        ch.close()
        st_counters = _counters(sp, token)
        assert st_counters.get("admin_unauthenticated") == 1
    finally:
        sp.stop()
    log = sp.log()
    assert "limit-shop" in log and "alice" in log  # the log does speak of the actions
    for secret in (token, wrong):
        assert secret not in log
    audit_path = sp.state_dir / "directives-audit.jsonl"
    assert oct(audit_path.stat().st_mode & 0o777) == "0o600"
    audit = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert [(e["actor"], e["action"], e["reason"]) for e in audit] == [
        ("alice (self-declared)", "put", "INC-42 retry storm"),
        ("bob (self-declared)", "replace", "tighter"),
        ("alice (self-declared)", "remove", "fixed"),
    ]
    # a replace records the values before and after (issue 12: one audit trail with the values)
    assert audit[1]["details"]["before"]["limitRequests"] == 100
    assert audit[1]["details"]["after"]["limitRequests"] == 50
    assert token not in audit_path.read_text()
    # the suggestion book's trail (audit.jsonl) records the operators' calls too; vigie audit
    # shows both, oldest first
    book = sp.state_dir / "audit.jsonl"
    assert token not in book.read_text() and wrong not in book.read_text()
    shown = CliRunner().invoke(
        main,
        ["audit", "--state-dir", str(sp.state_dir), "--subject", "directive:limit-shop", "--json"],
    )
    assert shown.exit_code == 0, shown.output
    assert [json.loads(x)["actor"] for x in shown.output.splitlines()] == [
        "alice (self-declared)",
        "bob (self-declared)",
        "alice (self-declared)",
    ]
    everything = CliRunner().invoke(main, ["audit", "--state-dir", str(sp.state_dir)])
    assert everything.exit_code == 0 and "INC-42" in everything.output


def _counters(sp: SidecarProcess, token: str) -> dict[str, int]:
    with grpc.insecure_channel(sp.admin) as ch:
        st = apb_grpc.AdminStub(ch).GetStatus(
            apb.StatusRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=10
        )
    return dict(st.counters)


def test_check_config_warns_about_exposed_secrets_and_listeners(tmp_path: Path) -> None:
    key = tmp_path / "sidecar.key"
    key.write_text("not shown")
    key.chmod(0o644)
    token = tmp_path / "admin.token"
    token.write_text("not shown either")
    token.chmod(0o604)
    cert = tmp_path / "sidecar.pem"
    cert.write_text("-")
    cfg = tmp_path / "vigie.toml"
    cfg.write_text(
        f'listen = "0.0.0.0:7355"\n'
        f"allow_plaintext_remote = true\n"  # an operator's decision: still warned about
        f'admin_listen = "127.0.0.1:7356"\n'
        f'admin_token_file = "{token}"\n'
        f'admin_tls_cert_file = "{cert}"\n'
        f'admin_tls_key_file = "{key}"\n'
    )
    r = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert f"admin_tls_key_file: {key} is world-readable (chmod 600 it)" in out
    assert f"admin_token_file: {token} is world-readable" in out
    assert "listen: 0.0.0.0:7355 is reachable beyond this host without TLS" in out
    assert "not shown" not in r.output
    # a certificate without its key, or mTLS admin auth without a client CA: errors
    cfg.write_text(f'tls_cert_file = "{cert}"\nadmin_auth = "mtls"\n')
    r = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert r.exit_code == 2
    out = " ".join(r.output.split())
    assert "listen: a TLS certificate and its key go together" in out
    assert "admin_auth = mtls needs admin_tls_client_ca_file" in out


def test_serve_refuses_tls_settings_that_do_not_pair(tmp_path: Path) -> None:
    r = subprocess.run(
        [*VIGIE, "serve", "--state-dir", str(tmp_path / "s"), "--listen", "127.0.0.1:0"],
        env=os.environ | {"VIGIE_TLS_CERT_FILE": str(tmp_path / "missing.pem")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "listen: a TLS certificate and its key go together" in r.stderr
