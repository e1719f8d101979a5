"""The fleet over mTLS, as deployed (``admin_auth = both``: a client certificate of the fleet's
CA and the shared token): the peers present their own admin certificate (``fleet_tls_ca_file``)
and a directive put on one reaches the other; instances that do not share the token say so in
their peer's state instead of replicating."""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import SidecarProcess, free_port, start_sidecar
from tests.ops.certs import CA, Pair, _write_key
from tests.support.waiting import RPC_S
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc
from vigie.v1 import directives_pb2 as dpb

pytestmark = pytest.mark.slow

TOKEN = "fleet-tls-token"


def instance_cert(ca: CA, cn: str) -> Pair:
    """A vigie instance's certificate: server and client (its peers), for 127.0.0.1."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    pair = Pair(ca.dir / f"{cn}.pem", ca.dir / f"{cn}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair


def wait_until(what: str, cond: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Secure:
    """An admin client over mTLS with the token (the operator's, here an instance's cert)."""

    def __init__(self, address: str, ca: CA, pair: Pair, token: str) -> None:
        creds = grpc.ssl_channel_credentials(
            ca.pem.read_bytes(), pair.key.read_bytes(), pair.cert.read_bytes()
        )
        self.channel = grpc.secure_channel(address, creds)
        self.stub = apb_grpc.AdminStub(self.channel)
        self.md = (("authorization", f"Bearer {token}"),)

    def status(self) -> apb.Status:
        st: apb.Status = self.stub.GetStatus(apb.StatusRequest(), metadata=self.md, timeout=RPC_S)
        return st

    def table(self) -> set[str]:
        dl = self.stub.ListDirectives(apb.ListDirectivesRequest(), metadata=self.md, timeout=RPC_S)
        return {d.id for d in dl.directives}


def test_peers_replicate_over_mtls_and_a_token_mismatch_is_said(tmp_path: Path) -> None:
    ca = CA(tmp_path / "pki", "fleet-ca")
    ports = [(free_port(), free_port()) for _ in range(2)]
    certs = [instance_cert(ca, f"vigie-{k}") for k in range(2)]
    procs: list[SidecarProcess] = []
    try:
        for k, ((tport, aport), pair) in enumerate(zip(ports, certs, strict=True)):
            other = ports[1 - k][1]
            env = {
                "VIGIE_ADMIN_TOKEN": TOKEN,
                "VIGIE_ADMIN_TLS_CERT_FILE": str(pair.cert),
                "VIGIE_ADMIN_TLS_KEY_FILE": str(pair.key),
                "VIGIE_ADMIN_TLS_CLIENT_CA_FILE": str(ca.pem),
                "VIGIE_ADMIN_AUTH": "both",
                "VIGIE_FLEET_PEERS": f"127.0.0.1:{other}",
                "VIGIE_FLEET_INSTANCE_ID": f"vigie-{k}",
                "VIGIE_FLEET_TLS_CA_FILE": str(ca.pem),
            }
            creds = grpc.ssl_channel_credentials(
                ca.pem.read_bytes(), pair.key.read_bytes(), pair.cert.read_bytes()
            )
            procs.append(start_sidecar(tmp_path / f"s{k}", env=env, telemetry_port=tport,
                                       admin_port=aport, channel_credentials=creds))  # fmt: skip
        a, b = (
            Secure(f"127.0.0.1:{p[1]}", ca, c, TOKEN) for p, c in zip(ports, certs, strict=True)
        )
        wait_until("connected", lambda: [p.state for p in a.status().peers] == ["connected"])
        d = dpb.Directive(id="tls-block", mode=dpb.DIRECTIVE_MODE_SHADOW,
                          action=dpb.DIRECTIVE_ACTION_BLOCK, application_id="app-t",
                          expires_at_us=int((time.time() + 600) * 1e6))  # fmt: skip
        a.stub.PutDirective(apb.PutDirectiveRequest(directive=d, actor="t"), metadata=a.md,
                            timeout=RPC_S)  # fmt: skip
        wait_until("tls-block on b", lambda: "tls-block" in b.table())
        # b restarted with another token: a's peer says why nothing replicates
        procs[1].stop()
        env_b = {
            "VIGIE_ADMIN_TOKEN": "another-token",
            "VIGIE_ADMIN_TLS_CERT_FILE": str(certs[1].cert),
            "VIGIE_ADMIN_TLS_KEY_FILE": str(certs[1].key),
            "VIGIE_ADMIN_TLS_CLIENT_CA_FILE": str(ca.pem),
            "VIGIE_ADMIN_AUTH": "both",
            "VIGIE_FLEET_PEERS": f"127.0.0.1:{ports[0][1]}",
            "VIGIE_FLEET_TLS_CA_FILE": str(ca.pem),
        }
        creds_b = grpc.ssl_channel_credentials(
            ca.pem.read_bytes(), certs[1].key.read_bytes(), certs[1].cert.read_bytes()
        )
        procs[1] = start_sidecar(tmp_path / "s1", env=env_b, telemetry_port=ports[1][0],
                                 admin_port=ports[1][1], channel_credentials=creds_b)  # fmt: skip
        wait_until("a says the token is refused", lambda: "refused the admin token" in
                   a.status().peers[0].error)  # fmt: skip
        assert a.status().peers[0].state == "unreachable"
    finally:
        for p in procs:
            p.stop()
