"""Shared fixtures: real sidecar processes on free loopback ports, the conformance folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO.parent / "shared" / "conformance"
VIGIE = [sys.executable, "-m", "vigie.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def conformance() -> Path:
    """WSO2's own data (../shared/conformance); tests using it skip when it is absent."""
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance is not here (outside the vigie workspace)")
    return CONFORMANCE


@dataclass
class SidecarProcess:
    """A real `vigie serve` process."""

    proc: subprocess.Popen[bytes]
    telemetry: str
    admin: str
    state_dir: Path
    log_path: Path

    @property
    def token(self) -> str:
        return (self.state_dir / "admin.token").read_text().strip()

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_sidecar(
    state_dir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    telemetry_port: int | None = None,
    admin_port: int | None = None,
    ready_timeout: float = 120.0,
    channel_credentials: grpc.ChannelCredentials | None = None,
) -> SidecarProcess:
    """Start `vigie serve` and wait until its admin service answers a health check."""
    tport = telemetry_port or free_port()
    aport = admin_port or free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / f"serve-{tport}.log"
    cmd = [
        *VIGIE,
        "serve",
        "--listen",
        f"127.0.0.1:{tport}",
        "--admin-listen",
        f"127.0.0.1:{aport}",
        "--state-dir",
        str(state_dir),
        *extra,
    ]
    full_env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    sp = SidecarProcess(proc, f"127.0.0.1:{tport}", f"127.0.0.1:{aport}", state_dir, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vigie serve exited with {proc.returncode}:\n{sp.log()}")
        try:
            with (
                grpc.secure_channel(sp.admin, channel_credentials)
                if channel_credentials is not None
                else grpc.insecure_channel(sp.admin)
            ) as ch:
                resp = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1.0
                )
            if resp.status == health_pb2.HealthCheckResponse.SERVING:
                return sp
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    sp.stop()
    raise RuntimeError(f"vigie serve did not become ready:\n{sp.log()}")


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    sp = start_sidecar(tmp_path / "state")
    yield sp
    sp.stop()
