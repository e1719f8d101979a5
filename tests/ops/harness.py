"""Real processes for the fault, load and soak tests: the Java load driver (the real handler
core, ``io.vigie.bench.LoadDriver``), a throttling TCP proxy, RSS sampling, admin calls.

Everything here only ever talks to loopback addresses or Unix sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import REPO, SidecarProcess, free_port
from tests.support.waiting import RPC_S, wait_for
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import admin_pb2_grpc as apb_grpc
from vigie.v1 import directives_pb2 as dpb

LOAD_JAR = Path(
    os.environ.get(
        "VIGIE_LOAD_JAR", REPO / "gateway-handler" / "bench" / "target" / "vigie-bench.jar"
    )
)


def load_jar() -> Path:
    """The load driver's jar (`make test-python` builds it); outside make: skipped, in CI: fails."""
    if LOAD_JAR.exists():
        return LOAD_JAR
    msg = f"{LOAD_JAR} is missing: `make test-python` builds it (mvn package -pl bench -am)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def wait_until(what: str, pred: Callable[[], bool], timeout: float, every: float = 0.05) -> float:
    """Bounded polling of real processes; returns the monotonic time the condition held."""
    wait_for(pred, timeout, what, every)
    return time.monotonic()


@dataclass
class Line:
    """One report of the load driver, stamped with the test's monotonic clock on receipt."""

    at: float
    doc: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.doc[key]


@dataclass
class LoadDriver:
    """``java io.vigie.bench.LoadDriver``: request threads offering into the real handler core."""

    proc: subprocess.Popen[str]
    lines: list[Line] = field(default_factory=list)
    stderr_path: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def start(sidecar: str, log_dir: Path, **opts: Any) -> LoadDriver:
        args = ["--sidecar", sidecar]
        for k, v in opts.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        java = os.environ.get("JAVA", "java")
        err = log_dir / f"driver-{int(time.time() * 1000)}.err"
        cmd = [java, "-Xms256m", "-Xmx256m", "-cp", str(load_jar()), "io.vigie.bench.LoadDriver"]
        with err.open("w") as ef:
            proc = subprocess.Popen(
                [*cmd, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=ef, text=True
            )
        d = LoadDriver(proc, stderr_path=err)
        threading.Thread(target=d._read, daemon=True).start()
        return d

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            raw = raw.strip()
            if raw.startswith("{"):
                line = Line(time.monotonic(), json.loads(raw))
                with self._lock:
                    self.lines.append(line)

    def latest(self) -> Line:
        wait_until("a report from the load driver", lambda: bool(self.lines), 120)
        with self._lock:
            return self.lines[-1]

    def since(self, t: float) -> list[Line]:
        with self._lock:
            return [ln for ln in self.lines if ln.at >= t]

    def wait(self, what: str, pred: Callable[[Line], bool], timeout: float) -> Line:
        def ok() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the load driver exited ({self.proc.returncode}): {self.err()}"
                )
            with self._lock:
                return bool(self.lines) and pred(self.lines[-1])

        wait_until(what, ok, timeout, every=0.02)
        return self.latest()

    def err(self) -> str:
        return self.stderr_path.read_text()[-4000:] if self.stderr_path else ""

    def stop(self, timeout: float = 120.0) -> Line:
        """Stops offering; returns the final report (every event acked or counted dropped)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout)
        wait_until("the driver's last line", lambda: any(ln["final"] for ln in self.lines), 10)
        final = [ln for ln in self.lines if ln["final"]]
        assert final, f"no final report from the load driver: {self.err()}"
        return final[-1]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError, ValueError):
                    f.close()


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc (clock ticks of 1/100 s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def health_serving(target: str, creds: grpc.ChannelCredentials | None = None) -> bool:
    ch = grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target)
    try:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False
    finally:
        ch.close()


class Admin:
    """The admin service of a real sidecar, with its token."""

    def __init__(self, sp: SidecarProcess) -> None:
        self._ch = grpc.insecure_channel(sp.admin)
        self.stub = apb_grpc.AdminStub(self._ch)
        self.md = (("authorization", f"Bearer {sp.token}"),)

    def status(self) -> apb.Status:
        st: apb.Status = self.stub.GetStatus(apb.StatusRequest(), metadata=self.md, timeout=RPC_S)
        return st

    def directives(self) -> apb.DirectiveList:
        out: apb.DirectiveList = self.stub.ListDirectives(
            apb.ListDirectivesRequest(), metadata=self.md, timeout=30
        )
        return out

    def put(self, d: dpb.Directive, actor: str = "ops-test", reason: str = "test") -> None:
        self.stub.PutDirective(
            apb.PutDirectiveRequest(directive=d, actor=actor, reason=reason),
            metadata=self.md,
            timeout=RPC_S,
        )

    def remove(self, directive_id: str, actor: str = "ops-test") -> None:
        self.stub.RemoveDirective(
            apb.RemoveDirectiveRequest(directive_id=directive_id, actor=actor),
            metadata=self.md,
            timeout=RPC_S,
        )

    def close(self) -> None:
        self._ch.close()


def limit_directive(did: str, app: str, api: str, version: str = "v1") -> dpb.Directive:
    return dpb.Directive(
        id=did,
        application_id=app,
        api_name=api,
        api_version=version,
        mode=dpb.DIRECTIVE_MODE_ENFORCE,
        action=dpb.DIRECTIVE_ACTION_LIMIT,
        limit_requests=100,
        limit_period_seconds=60,
        expires_at_us=int((time.time() + 3600) * 1e6),
    )


class ThrottleProxy:
    """``python -m tests.ops.throttle_proxy``: a TCP proxy on loopback; SIGUSR1 throttles the
    gateway-to-sidecar direction, SIGUSR2 lifts it."""

    def __init__(self, target: str, rate_bytes: int, log_dir: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._log = (log_dir / f"proxy-{self.port}.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.ops.throttle_proxy",
                "--listen",
                self.address,
                "--target",
                target,
                "--rate",
                str(rate_bytes),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        wait_until("the proxy to listen", self._listening, 120)

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def throttle(self, on: bool) -> None:
        self.proc.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self._log.close()


def write_figures(name: str, doc: dict[str, Any]) -> Path:
    """Figures of a fault/soak run, in benchmarks/results/ (gitignored) for the report."""
    out = REPO / "benchmarks" / "results" / f"ops-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    return out


def path_quantiles(hist: list[int]) -> dict[str, float]:
    """Upper bounds (ns) of the log2 buckets holding the 50th, 99th, 99.9th, 99.99th percentiles."""
    total = sum(hist)
    out: dict[str, float] = {"requests": float(total)}
    for q in (0.5, 0.99, 0.999, 0.9999):
        acc = 0
        for b, n in enumerate(hist):
            acc += n
            if acc >= q * total:
                out[f"p{q * 100:g}_ns_below"] = float(2 ** (b + 1))
                break
    return out
