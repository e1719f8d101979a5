"""Shared fixtures: real sidecar processes on free loopback ports, the conformance folder, and
Numba's cache warmed once before the first test that runs a real process (``docs/testing.md``:
how the suite stays deterministic on a loaded machine)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.ports import free_port
from tests.support.warm import warm

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO.parent / "shared" / "conformance"
VIGIE = [sys.executable, "-m", "vigie.cli"]
# a SIGTERM'd sidecar writes its last snapshot and closes its data writer before it exits: a
# second alone, but far more when the machine is loaded (several runs side by side)
STOP_TIMEOUT_S = 120.0
CANNOT_LISTEN = "cannot listen on"  # `vigie serve`'s one line for a port it could not bind

__all__ = ["CONFORMANCE", "REPO", "VIGIE", "SidecarProcess", "free_port", "start_sidecar"]


def _runs_real_processes(item: pytest.Item) -> bool:
    """Tests outside tests/unit, and those marked slow, start real `vigie serve` processes."""
    return item.get_closest_marker("slow") is not None or "unit" not in item.path.parts


def pytest_collection_finish(session: pytest.Session) -> None:
    """Warm Numba's cache before the first test, when any test of the run starts a real
    process: in a fresh clone the kernels compile here (minutes on a loaded machine), outside
    every test's bounds, instead of inside the first real sidecar's readiness wait."""
    if session.config.option.collectonly or not any(map(_runs_real_processes, session.items)):
        return
    took = warm()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"vigie: Numba kernels warm in {took:.1f} s (tests/support/warm.py)")


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

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then wait up to ``timeout`` for the sidecar to finish (SIGKILL after)."""
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
    """Start `vigie serve` and wait until its admin service answers a health check. When it
    could not listen on a port this function picked (another run took it meanwhile), it is
    started once more on new ports; a port the caller gave is never changed."""
    warm()  # no-op when done: a test run alone still compiles before the bound below
    try:
        return _start_sidecar(
            state_dir, extra, env, telemetry_port, admin_port, ready_timeout, channel_credentials
        )
    except SidecarDidNotStart as exc:
        if CANNOT_LISTEN not in exc.log or (telemetry_port and admin_port):
            raise
    return _start_sidecar(
        state_dir, extra, env, telemetry_port, admin_port, ready_timeout, channel_credentials
    )


class SidecarDidNotStart(RuntimeError):
    def __init__(self, message: str, log: str) -> None:
        super().__init__(f"{message}:\n{log}")
        self.log = log


def _start_sidecar(
    state_dir: Path,
    extra: tuple[str, ...],
    env: dict[str, str] | None,
    telemetry_port: int | None,
    admin_port: int | None,
    ready_timeout: float,
    channel_credentials: grpc.ChannelCredentials | None,
) -> SidecarProcess:
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
            raise SidecarDidNotStart(f"vigie serve exited with {proc.returncode}", sp.log())
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
    raise SidecarDidNotStart(f"vigie serve did not become ready in {ready_timeout:g} s", sp.log())


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    sp = start_sidecar(tmp_path / "state")
    yield sp
    sp.stop()
