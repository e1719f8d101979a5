"""`vigie serve` with the export on, as real processes: a dead backend costs nothing but counted
failures, and a bad OTEL_* variable stops the start with a message naming it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import VIGIE, free_port, start_sidecar
from tests.support.waiting import wait_for
from vigie.cli.client import AdminClient
from vigie.sources import simulator as sim
from vigie.v1 import admin_pb2 as apb


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_dead_backend_is_counted_and_ingestion_goes_on(tmp_path: Path, protocol: str) -> None:
    dead = free_port()  # nobody listens there
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
    }
    sc = start_sidecar(tmp_path / "state", env=env)
    try:
        stats = sim.run(sc.telemetry, tps=100.0, duration=2.0, platform=sim.build_platform(40, 6))
        sent = sum(s.events for s in stats.values())
        assert sent > 0 and not any(s.errors for s in stats.values())
        with AdminClient(sc.admin, sc.token) as client:

            def failed_twice() -> apb.Status | None:
                st = client.call(client.stub.GetStatus, apb.StatusRequest())
                failed = sum(v for k, v in st.counters.items() if k.startswith("export_failed:"))
                return st if failed >= 2 else None

            st = wait_for(failed_twice, 120, "two failed exports")
        assert st.events_applied == sent
    finally:
        code = sc.stop()
    assert code == 0, sc.log()
    assert "OTLP export failed" in sc.log()


def test_a_bad_otel_variable_stops_the_start_with_its_name(tmp_path: Path) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.run(
        [*VIGIE, "serve", "--listen", f"127.0.0.1:{free_port()}", "--admin-listen",
         f"127.0.0.1:{free_port()}", "--state-dir", str(tmp_path)],
        env=os.environ | env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "OTLP protocol 'http/json'" in proc.stderr
