"""Who did it (issue 12): against a real ``vigie serve``, the audit's actor is the admin client
certificate's identity when the TLS handshake verified one (the name the caller claimed kept as
declared), else the caller's claim marked ``(self-declared)``; ``vigie audit`` shows it in text
and ``--json``, for directives, thresholds and suggestion decisions alike."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.conftest import VIGIE, start_sidecar
from tests.ops.certs import CA, Pair
from tests.support.waiting import RPC_S
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc


def _creds(ca: CA, client: Pair) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.pem.read_bytes(),
        private_key=client.key.read_bytes(),
        certificate_chain=client.cert.read_bytes(),
    )


def _admin_tls_env(ca: CA, server: Pair, admin_auth: str) -> dict[str, str]:
    return {
        "VIGIE_ADMIN_TLS_CERT_FILE": str(server.cert),
        "VIGIE_ADMIN_TLS_KEY_FILE": str(server.key),
        "VIGIE_ADMIN_TLS_CLIENT_CA_FILE": str(ca.pem),
        "VIGIE_ADMIN_AUTH": admin_auth,
    }


def _vigie(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    return subprocess.run(
        [*VIGIE, *args], env=clean | env, capture_output=True, text=True, timeout=120
    )


def _audit(state_dir: Path) -> list[dict[str, Any]]:
    out = _vigie(["audit", "--state-dir", str(state_dir), "--json"], {})
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def _block(admin: str, actor: str, extra: list[str], env: dict[str, str]) -> None:
    out = _vigie(
        ["tune", "block", "--api", "Orders", "--ttl", "1h", "--reason", "INC-7",
         "--id", "blk-orders", "--actor", actor, "--admin", admin, "--json", *extra],
        env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("admin_auth", ["mtls", "both"])
def test_a_certificate_is_the_actor_whatever_the_caller_claims(
    tmp_path: Path, admin_auth: str
) -> None:
    ca = CA(tmp_path / "pki", "vigie-ca")
    server = ca.issue("sidecar", server=True)
    alice = ca.issue("alice", server=False)
    state = tmp_path / "state"
    sp = start_sidecar(
        state, env=_admin_tls_env(ca, server, admin_auth), channel_credentials=_creds(ca, alice)
    )
    cli_env = {
        "VIGIE_ADMIN_CA_FILE": str(ca.pem),
        "VIGIE_ADMIN_CERT_FILE": str(alice.cert),
        "VIGIE_ADMIN_KEY_FILE": str(alice.key),
    }
    extra = ["--state-dir", str(state)] if admin_auth == "both" else []  # the token, too
    try:
        _block(sp.admin, "bob", extra, cli_env)  # alice's certificate, claiming to be bob
        _block(sp.admin, "alice", extra, cli_env)  # the same name: nothing declared apart
        out = _vigie(
            ["tune", "thresholds", "retry_min_retries=40", "--reason", "noisy",
             "--actor", "mallory", "--admin", sp.admin, "--json", *extra],
            cli_env,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
    finally:
        sp.stop()
    entries = _audit(state)
    put, replace = [e for e in entries if e["subject"] == "directive:blk-orders"]
    assert (put["actor"], put["action"]) == ("alice (declared bob)", "put")
    assert put["actor_verified"] is True and put["actor_declared"] == "bob"
    assert (replace["actor"], replace["actor_declared"]) == ("alice", "")
    (thr,) = [e for e in entries if e["subject"] == "thresholds"]
    assert thr["actor"] == "alice (declared mallory)" and thr["actor_verified"] is True
    assert thr["details"]["changes"]["retry_min_retries"]["to"] == 40
    # no entry anywhere names a caller's claim as if it were verified
    assert not [e for e in entries if e["actor"] in ("bob", "mallory")]
    text = _vigie(["audit", "--state-dir", str(state)], {"COLUMNS": "250"})
    assert text.returncode == 0, text.stderr
    assert "alice (declared bob)" in text.stdout and "alice (declared mallory)" in text.stdout


@pytest.mark.slow
def test_a_token_caller_is_self_declared(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sp = start_sidecar(state)
    try:
        _block(sp.admin, "bob", ["--state-dir", str(state)], {})
        # a claim made to look verified stays a claim
        token = (state / "admin.token").read_text().strip()
        md = (("authorization", f"Bearer {token}"),)
        with grpc.insecure_channel(sp.admin) as ch:
            stub = apb_grpc.AdminStub(ch)
            stub.RemoveDirective(
                apb.RemoveDirectiveRequest(
                    directive_id="blk-orders", actor="alice (declared bob)", reason="done"
                ),
                metadata=md,
                timeout=RPC_S,
            )
            stub.SetThresholds(
                apb.SetThresholdsRequest(
                    changes={"retry_min_retries": 45.0}, actor="", reason="anonymous"
                ),
                metadata=md,
                timeout=RPC_S,
            )
            with pytest.raises(grpc.RpcError) as exc:  # a refused decision audits nothing
                stub.RejectSuggestion(
                    apb.DecideSuggestionRequest(id="nope", actor="bob", reason="x"),
                    metadata=md,
                    timeout=RPC_S,
                )
            assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        sp.stop()
    entries = _audit(state)
    put, removed = [e for e in entries if e["subject"] == "directive:blk-orders"]
    assert (put["actor"], put["actor_verified"], put["actor_declared"]) == (
        "bob (self-declared)",
        False,
        "bob",
    )
    assert removed["actor"] == "alice (declared bob) (self-declared)"
    assert removed["actor_verified"] is False
    (thr,) = [e for e in entries if e["subject"] == "thresholds"]
    assert (thr["actor"], thr["actor_verified"]) == ("unknown (self-declared)", False)
    text = _vigie(["audit", "--state-dir", str(state)], {"COLUMNS": "250"})
    assert "bob (self-declared)" in text.stdout
