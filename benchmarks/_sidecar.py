"""Start a real `vigie serve` for a benchmark and stop it afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    telemetry: str
    admin: str
    state_dir: Path
    proc: subprocess.Popen[bytes]

    def status(self) -> apb.Status:
        token = (self.state_dir / "admin.token").read_text().strip()
        with grpc.insecure_channel(self.admin) as ch:
            st: apb.Status = apb_grpc.AdminStub(ch).GetStatus(
                apb.StatusRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=30
            )
        return st


@contextmanager
def sidecar(*extra: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    with tempfile.TemporaryDirectory(prefix="vigie-bench-") as tmp:
        t, a = free_port(), free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vigie.cli",
                "serve",
                "--listen",
                f"127.0.0.1:{t}",
                "--admin-listen",
                f"127.0.0.1:{a}",
                "--state-dir",
                tmp,
                "--log-level",
                "warning",
                "--snapshot-interval",
                "3600",
                *extra,
            ],
            env=os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {}),
        )
        served = Served(f"127.0.0.1:{t}", f"127.0.0.1:{a}", Path(tmp), proc)
        deadline = time.monotonic() + 180
        while True:
            try:
                with grpc.insecure_channel(served.admin) as ch:
                    health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise RuntimeError("vigie serve did not start") from None
                time.sleep(0.2)
        try:
            yield served
        finally:
            proc.terminate()
            proc.wait(60)


def load(*args: str) -> dict[str, Any]:
    """Run the load client in its own process and return what it measured."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks._load", *args],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load client failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
