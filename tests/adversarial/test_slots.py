"""Slots for the ones who matter: silent connections and token-less reflection streams cannot
starve health checks, real gateways or operators; each refusal is counted with its cause."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.adversarial.common import records, status
from tests.conftest import SidecarProcess, start_sidecar
from tests.support.streams import StreamClient
from tests.support.waiting import RPC_S
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc
from vigie.v1 import telemetry_pb2 as pb
from vigie.v1 import telemetry_pb2_grpc as pb_grpc
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow


class Silent:
    """Gateway streams that never send their Hello."""

    def __init__(self, target: str, n: int) -> None:
        self.release = threading.Event()
        self.channels = [grpc.insecure_channel(target) for _ in range(max(1, n // 10))]
        self.calls = [
            pb_grpc.TelemetryStub(self.channels[k % len(self.channels)]).Stream(self._nothing())
            for k in range(n)
        ]
        self.codes: list[grpc.StatusCode] = []
        self.threads = [threading.Thread(target=self._drain, args=(c,)) for c in self.calls]
        for t in self.threads:
            t.start()

    def _nothing(self) -> Iterator[pb.GatewayMessage]:
        self.release.wait()
        return
        yield  # a generator that sends nothing

    def _drain(self, call: Iterator[pb.SidecarMessage]) -> None:
        try:
            for _ in call:
                pass
        except grpc.RpcError as exc:
            self.codes.append(exc.code())

    def join(self) -> None:
        for t in self.threads:
            t.join(60)
        self.release.set()
        for ch in self.channels:
            ch.close()


@pytest.fixture
def small(tmp_path: Path) -> Iterator[SidecarProcess]:
    sp = start_sidecar(
        tmp_path / "s",
        env={"VIGIE_MAX_STREAMS": "8", "VIGIE_HELLO_TIMEOUT_SECONDS": "3"},
    )
    yield sp
    assert sp.stop() == 0


def _health(target: str) -> int:
    with grpc.insecure_channel(target) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=30
        )
    return int(resp.status)


def test_silent_connections_leave_room_for_health_checks_and_real_gateways(
    small: SidecarProcess,
) -> None:
    silent = Silent(small.telemetry, 100)
    try:
        assert _health(small.telemetry) == health_pb2.HealthCheckResponse.SERVING
        real = StreamClient(small.telemetry, gateway_id="real")
        try:
            real.send(StreamEncoder().batch_from_records(records(20)))
            assert real.wait_ack(1).events_applied == 20
        finally:
            real.close()
    finally:
        silent.join()
    # every silent stream ended: it gave way to a newer one, or waited out its Hello timeout
    assert len(silent.codes) == 100
    assert set(silent.codes) <= {
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
    counters = status(small).counters
    evicted = counters["stream_refused:hello_evicted"]
    timed_out = counters["stream_refused:hello_timeout"]
    assert evicted + timed_out == 100
    assert evicted == silent.codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert status(small).events_applied == 20


def test_a_stream_without_hello_ends_after_the_hello_timeout(small: SidecarProcess) -> None:
    silent = Silent(small.telemetry, 1)
    silent.join()
    assert silent.codes == [grpc.StatusCode.DEADLINE_EXCEEDED]
    assert status(small).counters["stream_refused:hello_timeout"] == 1
    assert "no Hello within 3 s" not in small.log()  # a refusal, not a log line per attacker


def test_token_less_reflection_streams_cannot_starve_an_operator(sidecar: SidecarProcess) -> None:
    release = threading.Event()
    answered: list[threading.Event] = []
    codes: list[grpc.StatusCode] = []
    channels = [grpc.insecure_channel(sidecar.admin) for _ in range(8)]

    def requests() -> Iterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        release.wait()

    def hold(ch: grpc.Channel, got: threading.Event) -> None:
        try:
            for _ in reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(requests()):
                got.set()
        except grpc.RpcError as exc:
            codes.append(exc.code())
            got.set()

    threads = []
    for ch in channels:
        got = threading.Event()
        answered.append(got)
        t = threading.Thread(target=hold, args=(ch, got))
        t.start()
        threads.append(t)
        assert got.wait(120)  # served (one of the first 4), or refused at once
    try:
        assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 4
        stub = apb_grpc.AdminStub(grpc.insecure_channel(sidecar.admin))
        md = (("authorization", f"Bearer {sidecar.token}"),)
        for _ in range(16):  # more calls than the admin workers: none waits on reflection
            stub.GetStatus(apb.StatusRequest(), metadata=md, timeout=RPC_S)
        assert status(sidecar).counters["reflection_busy"] == 4
    finally:
        release.set()
        for t in threads:
            t.join(30)
        for ch in channels:
            ch.close()
