"""The export, proven against real backends: a real `vigie serve` fed by the simulator's gateway
streams exports over OTLP to a real Prometheus (directly over HTTP, or over gRPC through a real
OpenTelemetry Collector running deploy/otel-collector/config.yaml), and PromQL must give back
what the gateways sent. Both backends are built by `make backends` into .cache/ (the fixture
asks make, which builds them the first time only)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import REPO, SidecarProcess, free_port, start_sidecar
from vigie.export import all_prometheus_names
from vigie.export._series import DEFAULT_BOUNDS
from vigie.sources import simulator as sim

PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
COLLECTOR_CONFIG = REPO / "deploy" / "otel-collector" / "config.yaml"
PROBE_API = "LatencyProbe"


@dataclass(frozen=True)
class Backends:
    prometheus: Path
    otelcol: Path


@pytest.fixture(scope="module")
def backends() -> Backends:
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(REPO), "backend-paths"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return Backends(Path(out[-2]), Path(out[-1]))


class Process:
    def __init__(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        with log.open("wb") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90.0, proc: Any = None) -> Any:
    """Poll ``check`` until it returns something truthy (a bounded wait on real processes)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited:\n{proc.log()}")
        try:
            last = check()
            if last:
                return last
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what}: not after {timeout:.0f}s (last: {last!r})")


@dataclass
class Prometheus:
    url: str
    process: Process

    def query(self, promql: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=10) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])

    def value(self, promql: str) -> float | None:
        res = self.query(promql)
        if not res:
            return None
        assert len(res) == 1, res
        return float(res[0]["value"][1])

    def names(self) -> set[str]:
        with urllib.request.urlopen(f"{self.url}/api/v1/label/__name__/values", timeout=10) as r:
            return set(json.load(r)["data"])


def start_prometheus(binary: Path, tmp: Path, *flags: str) -> Prometheus:
    port = free_port()
    proc = Process(
        [
            str(binary),
            f"--config.file={PROMETHEUS_CONFIG}",
            f"--storage.tsdb.path={tmp / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-otlp-receiver",
            *flags,
        ],
        tmp / "prometheus.log",
    )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc)

    def ready() -> bool:
        with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as r:
            return bool(r.status == 200)

    try:
        wait_for("prometheus ready", ready, 60, proc)
    except BaseException:
        proc.stop()
        raise
    return prom


@contextmanager
def prometheus_with_sidecar(
    backends: Backends, tmp: Path, env: dict[str, str]
) -> Iterator[tuple[Prometheus, SidecarProcess]]:
    """A real Prometheus (OTLP receiver on) and a real ``vigie serve`` exporting to it every
    second over OTLP/HTTP, with ``env`` on top; both stopped on the way out."""
    prom = start_prometheus(backends.prometheus, tmp)
    try:
        sc = start_sidecar(
            tmp / "state",
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"{prom.url}/api/v1/otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_METRIC_EXPORT_INTERVAL": "1000",
                **env,
            },
        )
        try:
            yield prom, sc
        finally:
            sc.stop()
    finally:
        prom.process.stop()


def start_collector(binary: Path, tmp: Path, prom: Prometheus) -> tuple[Process, int]:
    grpc_port, http_port = free_port(), free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
        "OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
        "PROMETHEUS_OTLP_ENDPOINT": f"{prom.url}/api/v1/otlp/v1/metrics",
    }
    proc = Process([str(binary), f"--config=file:{COLLECTOR_CONFIG}"], tmp / "otelcol.log", env=env)

    def listening() -> bool:
        import socket  # noqa: PLC0415

        with socket.create_connection(("127.0.0.1", grpc_port), timeout=1):
            return True

    try:
        wait_for("collector listening", listening, 60, proc)
    except BaseException:
        proc.stop()
        raise
    return proc, grpc_port


def send_probe(target: str) -> tuple[int, dict[str, float]]:
    """A known set of events on an API of its own: 900 at 10 ms, 100 at 1 s."""
    platform = sim.build_platform(apps=10, apis=6, seed=99)
    platform.api_names = [PROBE_API] * len(platform.api_names)
    platform.api_versions = [f"v{k + 1}" for k in range(len(platform.api_names))]
    gw = sim.GatewayStream(target, "main", platform, "probe-gw")
    n = 1000
    now_us = int(time.time() * 1e6)
    lat = np.where(np.arange(n) < 900, 10_000, 1_000_000).astype(np.int64)
    sub = np.flatnonzero(platform.sub_api == 0)[0]
    g = sim.Generated(
        t_us=now_us - 5_000_000 + np.arange(n, dtype=np.int64) * 1000,
        sub=np.full(n, sub),
        channel=np.zeros(n, dtype=np.int64),
        resource=np.zeros(n, dtype=np.int64),
        method=np.full(n, sim.METHOD_GET),
        status=np.full(n, 200),
        error_code=np.zeros(n, dtype=np.int64),
        latency_us=lat,
        uri_hash=np.arange(1, n + 1, dtype=np.uint64),
        flags=np.zeros(n, dtype=np.int64),
        request_bytes=np.zeros(n, dtype=np.int64),
        response_bytes=np.full(n, 100, dtype=np.int64),
    )
    for lo in range(0, n, 250):
        gw.send(g, np.arange(lo, lo + 250))
    gw.close()
    assert not gw.failed, gw.stats.errors
    return n, {"p50": 0.010, "p95": 1.0}


def _median_bounds(generated: list[sim.Generated], histogram: str) -> tuple[float, float]:
    """Where a backend's p50 of the simulator's latencies must lie: the sent values of rank
    ceil(n/2) and the next one, each widened to the bucket that holds it once exported (a value
    lies in its base-2 bucket (2^(i/8), 2^((i+1)/8)], and with explicit buckets, in the explicit
    bucket holding its base-2 bucket's upper bound). Bucketing is monotonic, so the backend's
    interpolation stays inside these bounds whatever the draw."""
    lat = np.sort(np.concatenate([g.latency_us for g in generated]).astype(np.float64) / 1e6)
    rank = int(np.ceil(0.5 * len(lat))) - 1
    a, b = float(lat[rank]), float(lat[min(rank + 1, len(lat) - 1)])
    step = 2 ** (1 / 8)
    if histogram == "exponential":
        return a / step, b * step
    bounds = (0.0, *DEFAULT_BOUNDS, float("inf"))
    below = max(x for x in bounds if x < a)
    above = min(x for x in bounds if x >= b * step)
    return below, above


@dataclass(frozen=True)
class Case:
    name: str
    protocol: str
    histogram: str = "exponential"
    temporality: str = "cumulative"
    via_collector: bool = False


CASES = [
    Case("http-cumulative-exponential", "http/protobuf"),
    Case("grpc-via-collector", "grpc", via_collector=True),
    Case("http-delta-explicit", "http/protobuf", histogram="explicit", temporality="delta"),
]


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, backends: Backends, tmp_path: Path
) -> Iterator[tuple[Case, Prometheus, Any]]:
    case: Case = request.param
    flags = ["--enable-feature=otlp-deltatocumulative"] if case.temporality == "delta" else []
    prom = start_prometheus(backends.prometheus, tmp_path, *flags)
    stoppers: list[Callable[[], object]] = [prom.process.stop]
    try:
        endpoint = f"{prom.url}/api/v1/otlp"
        if case.via_collector:
            col, grpc_port = start_collector(backends.otelcol, tmp_path, prom)
            stoppers.append(col.stop)
            endpoint = f"http://127.0.0.1:{grpc_port}"
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": case.protocol,
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": case.temporality,
            "VIGIE_OTEL_HISTOGRAM": case.histogram,
            "VIGIE_OTEL_TOP_K": "3",
        }
        sc = start_sidecar(tmp_path / "state", env=env)
        stoppers.append(sc.stop)
        yield case, prom, sc
    finally:
        for stop in reversed(stoppers):
            stop()


@pytest.mark.slow
@pytest.mark.parametrize("stack", CASES, ids=[c.name for c in CASES], indirect=True)
def test_prometheus_gets_back_what_the_gateways_sent(
    stack: tuple[Case, Prometheus, Any],
) -> None:
    case, prom, sc = stack
    platform = sim.build_platform(apps=40, apis=6, seed=3)
    generated: list[sim.Generated] = []
    stats = sim.run(
        sc.telemetry, tps=150.0, duration=4.0, platform=platform, on_generated=generated.append
    )
    for channel, s in stats.items():
        assert not s.errors, (channel, s.errors)
    probe_events, expected = send_probe(sc.telemetry)
    sent = {ch: s.events for ch, s in stats.items()}
    sent["main"] += probe_events
    total = sum(sent.values())

    def counted() -> float | None:
        v = prom.value("sum(wso2_api_requests_total)")
        return v if v == total else None

    wait_for(f"sum(wso2_api_requests_total) == {total}", counted, 90, prom.process)
    # the same events, seen per channel, by the sidecar's own counter, and per subscription
    by_channel = {
        r["metric"]["wso2_channel"]: float(r["value"][1])
        for r in prom.query("sum by (wso2_channel) (wso2_api_requests_total)")
    }
    assert by_channel == {ch: float(n) for ch, n in sent.items() if n}
    assert prom.value("sum(vigie_ingest_events_total)") == total
    subs = prom.query("sum by (wso2_application_name) (vigie_subscription_requests_total)")
    assert sum(float(r["value"][1]) for r in subs) == total
    assert "other" in {r["metric"]["wso2_application_name"] for r in subs}
    assert 2 <= len(subs) <= 1 + 4 * 3  # top-K bounded: at most 2K members per cycle + other

    # latency: the histograms hold every request, and their quantiles are the known ones
    dur = "http_server_request_duration_seconds"
    probe = f'{{wso2_api_name="{PROBE_API}"}}'
    if case.histogram == "exponential":
        assert prom.value(f"histogram_count(sum({dur}))") == total
        p50 = prom.value(f"histogram_quantile(0.5, sum({dur}{probe}))")
        p95 = prom.value(f"histogram_quantile(0.95, sum({dur}{probe}))")
        sim_p50 = prom.value(f'histogram_quantile(0.5, sum({dur}{{wso2_api_name!="{PROBE_API}"}}))')
        # a value lies in its base-2 bucket (2^(i/8), 2^((i+1)/8)]: within 9 % below it
        assert p50 is not None and expected["p50"] / 2 ** (1 / 8) <= p50 <= expected["p50"] * 1.01
        assert p95 is not None and expected["p95"] / 2 ** (1 / 8) <= p95 <= expected["p95"]
    else:
        assert prom.value(f"sum({dur}_count)") == total
        bucket = f"sum by (le) ({dur}_bucket{probe})"
        p50 = prom.value(f"histogram_quantile(0.5, {bucket})")
        p95 = prom.value(f"histogram_quantile(0.95, {bucket})")
        sim_p50 = prom.value(
            f'histogram_quantile(0.5, sum by (le) ({dur}_bucket{{wso2_api_name!="{PROBE_API}"}}))'
        )
        # explicit bounds ..., 0.01, 0.025, ..., 0.75, 1: each value lands in the bucket
        # holding its base-2 bucket's upper bound
        assert p50 is not None and 0.005 <= p50 <= 0.025
        assert p95 is not None and 0.75 <= p95 <= 1.0
    # the simulator draws latencies around 40 ms: its median, derived from what was sent
    assert 0.02 <= float(np.median(np.concatenate([g.latency_us for g in generated]))) / 1e6 <= 0.08
    lo, hi = _median_bounds(generated, case.histogram)
    assert sim_p50 is not None and lo <= sim_p50 <= hi, (lo, sim_p50, hi)

    # every series Prometheus holds is one vigie declares (the dashboard test relies on it)
    names = prom.names() - {"target_info"}
    declared = all_prometheus_names(case.histogram)
    assert names <= declared, names - declared
    assert {"wso2_api_requests_total", "vigie_subscriptions", "vigie_ingest_events_total"} <= names
    assert prom.value('count(target_info{job="vigie"})') == 1.0
