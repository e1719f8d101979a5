"""`vigie serve` as a real process: gateway streams, refusals, the admin service, restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.conftest import SidecarProcess, start_sidecar
from tests.support.streams import StreamClient
from tests.support.waiting import RPC_S
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc
from vigie.v1 import directives_pb2 as dpb
from vigie.v1 import telemetry_pb2 as pb
from vigie.v1 import telemetry_pb2_grpc as pb_grpc
from vigie.wire.columns import StreamEncoder

T0 = 1_772_409_600_000_000


def records(
    n: int, app: str = "app-1", api: str = "Orders", start: int = T0
) -> list[dict[str, Any]]:
    return [
        {
            "event_time_us": start + k * 1000,
            "application_id": app,
            "application_name": app,
            "api_name": api,
            "api_version": "v1",
            "resource_template": "/o",
            "http_method": 1,
            "http_status": 200,
            "latency_us": 5000,
        }
        for k in range(n)
    ]


Metadata = tuple[tuple[str, str], ...]


def admin(sp: SidecarProcess, token: str | None = None) -> tuple[apb_grpc.AdminStub, Metadata]:
    ch = grpc.insecure_channel(sp.admin)
    md = (("authorization", f"Bearer {token or sp.token}"),)
    return apb_grpc.AdminStub(ch), md


def status(sp: SidecarProcess) -> apb.Status:
    stub, md = admin(sp)
    st: apb.Status = stub.GetStatus(apb.StatusRequest(), metadata=md, timeout=RPC_S)
    return st


@pytest.mark.slow
def test_stream_batches_are_applied_and_acknowledged(sidecar: SidecarProcess) -> None:
    enc = StreamEncoder()
    c = StreamClient(sidecar.telemetry)
    try:
        c.wait_for(lambda: bool(c.of_kind("welcome")) and bool(c.of_kind("directives")))
        assert c.of_kind("directives")[0].directives.full  # the full table on connect
        c.send(enc.batch_from_records(records(700)))
        c.send(enc.batch_from_records(records(300, app="app-2", start=T0 + 10**6)))
        ack = c.wait_ack(2)
        assert ack.events_applied == 1000
    finally:
        c.close()
    st = status(sidecar)
    assert st.events_applied == 1000 and st.subscriptions == 2
    stub, md = admin(sidecar)
    subs = stub.ListSubscriptions(apb.ListSubscriptionsRequest(), metadata=md, timeout=RPC_S)
    assert {(s.application_id, s.requests) for s in subs.subscriptions} == {
        ("app-1", 700),
        ("app-2", 300),
    }
    assert all(s.channels["main"] == s.requests for s in subs.subscriptions)


@pytest.mark.slow
def test_a_malformed_batch_ends_only_its_stream(sidecar: SidecarProcess) -> None:
    good_enc, bad_enc = StreamEncoder(), StreamEncoder()
    good = StreamClient(sidecar.telemetry, gateway_id="good")
    bad = StreamClient(sidecar.telemetry, gateway_id="bad", channel="sale")
    try:
        batch = bad_enc.batch_from_records(records(10))
        batch.application_id = np.array([1] * 9 + [999], "<u4").tobytes()  # unknown id
        bad.send(batch)
        bad.done.wait(120)
        assert bad.error is not None
        assert bad.error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (
            "unknown_dictionary_id" in bad.error.details()
            or "dictionary id 999" in bad.error.details()
        )
        good.send(good_enc.batch_from_records(records(50)))
        assert good.wait_ack(1).events_applied == 50
        garbage = StreamClient(sidecar.telemetry, gateway_id="garbage")
        garbage.send(good_enc.batch_from_records(records(1)))  # wrong sequence/dictionary
        garbage.done.wait(120)
        assert (
            garbage.error is not None and garbage.error.code() == grpc.StatusCode.INVALID_ARGUMENT
        )
    finally:
        good.close()
        bad.close()
    st = status(sidecar)
    assert st.counters["batch_refused:unknown_dictionary_id"] == 1
    assert st.counters["batch_refused:bad_sequence"] == 1
    assert st.events_applied == 50


@pytest.mark.slow
def test_a_stream_must_start_with_hello(sidecar: SidecarProcess) -> None:
    with grpc.insecure_channel(sidecar.telemetry) as ch:
        stub = pb_grpc.TelemetryStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Stream(iter([pb.GatewayMessage(batch=pb.EventBatch())]), timeout=20))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Hello" in info.value.details()


@pytest.mark.slow
def test_a_hello_with_an_unsupported_protocol_version_is_refused_and_counted(
    sidecar: SidecarProcess,
) -> None:
    hello = pb.Hello(gateway_id="gw-next", channel="main", protocol_version=2)
    with grpc.insecure_channel(sidecar.telemetry) as ch:
        stub = pb_grpc.TelemetryStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Stream(iter([pb.GatewayMessage(hello=hello)]), timeout=20))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == (
        "Hello.protocol_version 2 is not supported: this sidecar speaks version 1 "
        "(0, unset, is read as 1)"
    )
    st = status(sidecar)
    assert st.counters["stream_refused:bad_hello"] == 1
    assert not st.gateways  # the stream never started
    # version 1, and 0 (unset) read as 1, are welcome
    for version in (1, 0):
        with grpc.insecure_channel(sidecar.telemetry) as ch:
            ok = pb.Hello(gateway_id=f"gw-v{version}", channel="main", protocol_version=version)
            answers = list(
                pb_grpc.TelemetryStub(ch).Stream(iter([pb.GatewayMessage(hello=ok)]), timeout=20)
            )
        assert answers[0].welcome.protocol_version == 1
    assert status(sidecar).counters["stream_refused:bad_hello"] == 1


@pytest.mark.slow
def test_admin_refuses_without_the_token_and_counts(sidecar: SidecarProcess) -> None:
    with grpc.insecure_channel(sidecar.admin) as ch:
        stub = apb_grpc.AdminStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetStatus(apb.StatusRequest(), timeout=RPC_S)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError):
            stub.GetStatus(
                apb.StatusRequest(), metadata=(("authorization", "Bearer nope"),), timeout=10
            )
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # health needs no token
    assert status(sidecar).counters["admin_unauthenticated"] == 2
    assert (sidecar.state_dir / "admin.token").stat().st_mode & 0o077 == 0


@pytest.mark.slow
def test_directives_reach_connected_gateways_and_survive_restart(tmp_path: Path) -> None:
    sp = start_sidecar(tmp_path / "s")
    c = StreamClient(sp.telemetry)
    try:
        c.wait_for(lambda: bool(c.of_kind("directives")))
        stub, md = admin(sp)
        d = dpb.Directive(
            id="d1",
            mode=dpb.DIRECTIVE_MODE_SHADOW,
            action=dpb.DIRECTIVE_ACTION_LIMIT,
            application_id="app-1",
            limit_requests=100,
            limit_period_seconds=60,
            expires_at_us=int((time.time() + 3600) * 1e6),
        )
        stub.PutDirective(
            apb.PutDirectiveRequest(directive=d, actor="test"), metadata=md, timeout=10
        )
        c.wait_for(
            lambda: any(
                m.directives.upserts and m.directives.upserts[0].id == "d1"
                for m in c.of_kind("directives")
            )
        )
        with pytest.raises(grpc.RpcError) as info:  # no TTL: refused with the reason
            stub.PutDirective(
                apb.PutDirectiveRequest(
                    directive=dpb.Directive(
                        id="d2",
                        mode=dpb.DIRECTIVE_MODE_SHADOW,
                        action=dpb.DIRECTIVE_ACTION_BLOCK,
                        application_id="x",
                    )
                ),
                metadata=md,
                timeout=RPC_S,
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "expires_at_us" in info.value.details()
    finally:
        c.close()
        sp.stop()
    sp2 = start_sidecar(tmp_path / "s")
    try:
        c2 = StreamClient(sp2.telemetry)
        c2.wait_for(lambda: bool(c2.of_kind("directives")))
        full = c2.of_kind("directives")[0].directives
        assert full.full and [d.id for d in full.upserts] == ["d1"]
        c2.close()
    finally:
        sp2.stop()


@pytest.mark.slow
def test_state_survives_a_graceful_restart(tmp_path: Path) -> None:
    sp = start_sidecar(tmp_path / "s")
    enc = StreamEncoder()
    c = StreamClient(sp.telemetry)
    c.send(enc.batch_from_records(records(400)))
    c.wait_ack(1)
    c.close()
    assert sp.stop() == 0  # SIGTERM: graceful, state written
    assert "state written" in sp.log()
    sp2 = start_sidecar(tmp_path / "s")
    try:
        st = status(sp2)
        assert st.events_applied == 400 and st.subscriptions == 1
    finally:
        sp2.stop()


@pytest.mark.slow
def test_a_corrupt_snapshot_is_set_aside(tmp_path: Path) -> None:
    state = tmp_path / "s"
    state.mkdir()
    (state / "state.npz").write_bytes(b"PK\x03\x04 this is not a snapshot")
    sp = start_sidecar(state)
    try:
        assert status(sp).events_applied == 0
        aside = list(state.glob("state.npz.unusable-*"))
        assert len(aside) == 1
        assert "set aside" in sp.log() and "starting with a fresh state" in sp.log()
    finally:
        sp.stop()


@pytest.mark.slow
def test_sigint_stops_gracefully(tmp_path: Path) -> None:
    sp = start_sidecar(tmp_path / "s")
    sp.proc.send_signal(signal.SIGINT)
    assert sp.proc.wait(120) == 0
    assert (tmp_path / "s" / "state.npz").exists()


@pytest.mark.slow
def test_cli_status_and_consumers_against_a_real_sidecar(sidecar: SidecarProcess) -> None:
    enc = StreamEncoder()
    c = StreamClient(sidecar.telemetry)
    c.send(enc.batch_from_records(records(120)))
    c.wait_ack(1)
    env = os.environ | {"VIGIE_ADMIN": sidecar.admin}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigie.cli",
            "consumers",
            "--state-dir",
            str(sidecar.state_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    doc = json.loads(out.stdout)
    assert [s["requests"] for s in doc["subscriptions"]] == [120]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigie.cli",
            "status",
            "--state-dir",
            str(sidecar.state_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    st = json.loads(out.stdout)
    assert int(st["events_applied"]) == 120
    assert st["gateways"][0]["gateway_id"] == "gw-test"
    c.close()
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigie.cli",
            "status",
            "--admin",
            "127.0.0.1:1",
            "--token-file",
            str(sidecar.state_dir / "admin.token"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 3 and "no sidecar answers at 127.0.0.1:1" in bad.stderr


@pytest.mark.slow
def test_reflection_lists_the_services(sidecar: SidecarProcess) -> None:
    for address in (sidecar.telemetry, sidecar.admin):
        with grpc.insecure_channel(address) as ch:
            services = set(ProtoReflectionDescriptorDatabase(ch).get_services())
        assert {"vigie.v1.Telemetry", "vigie.v1.Admin", "grpc.health.v1.Health"} <= services
