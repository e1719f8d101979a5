"""Real ``vigie serve`` processes write rollups as traffic comes; ``status`` reports the data on
disk; ``report``, ``autopsy`` and ``consumers`` read one sidecar or a fleet of two."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import VIGIE, SidecarProcess, start_sidecar
from vigie.sources import simulator

pytestmark = pytest.mark.slow


def _vigie(*args: str) -> str:
    out = subprocess.run([*VIGIE, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[SidecarProcess]]:
    base = tmp_path_factory.mktemp("serve")
    env = {"VIGIE_DATA_FLUSH_SECONDS": "0.5"}
    pods = [start_sidecar(base / f"pod{i}", env=env) for i in range(2)]
    try:
        platform = simulator.build_platform(30, 6, 3)
        for pod in pods:
            stats = simulator.run(pod.telemetry, 400.0, 2.0, platform)
            assert all(not s.errors for s in stats.values()), stats
        yield pods
    finally:
        for pod in pods:
            pod.stop()


def _status(pod: SidecarProcess) -> dict[str, object]:
    doc: dict[str, object] = json.loads(
        _vigie("status", "--admin", pod.admin, "--state-dir", str(pod.state_dir), "--json")
    )
    return doc


def test_status_reports_the_data_on_disk(two: list[SidecarProcess]) -> None:
    pod = two[0]
    deadline = time.monotonic() + 60
    while True:
        st = _status(pod)
        data = st.get("data", {})
        assert isinstance(data, dict)
        if int(data.get("bytes", {}).get("daily", 0)) > 0:
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.5)
    assert data["backend"] == "parquet" and data["state"] == "ok"
    text = _vigie("status", "--admin", pod.admin, "--state-dir", str(pod.state_dir))
    assert "data: parquet ok" in text and "on disk" in text


def test_a_fleet_report_adds_both_sidecars(two: list[SidecarProcess]) -> None:
    events = []
    for pod in two:  # wait until each has written everything it applied
        deadline = time.monotonic() + 60
        while True:
            st = _status(pod)
            applied = int(str(st["events_applied"]))
            data = st["data"]
            assert isinstance(data, dict)
            written = int(data.get("counters", {}).get("minute_rows_written", 0))
            if written and int(data.get("open_rows", 0)) == 0:
                break
            assert time.monotonic() < deadline
            time.sleep(0.5)
        events.append(applied)
    today = datetime.now(UTC).date()
    frm, to = today.isoformat(), (today + timedelta(days=2)).isoformat()
    fleet = [
        "--admin",
        two[0].admin,
        "--admin",
        two[1].admin,
        "--state-dir",
        str(two[0].state_dir),
        "--state-dir",
        str(two[1].state_dir),
    ]
    time.sleep(1.5)  # two flush periods: every applied batch is in the store
    doc = json.loads(_vigie("report", *fleet, "--from", frm, "--to", to, "--format", "json"))
    one = [
        json.loads(
            _vigie(
                "report",
                "--admin",
                p.admin,
                "--state-dir",
                str(p.state_dir),
                "--from",
                frm,
                "--to",
                to,
                "--format",
                "json",
            )
        )
        for p in two
    ]
    assert doc["total"]["requests"] == sum(d["total"]["requests"] for d in one)
    assert doc["total"]["requests"] == sum(events)
    start = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    aut = json.loads(_vigie("autopsy", *fleet, "--from", start, "--to", end, "--format", "json"))
    assert aut["total"]["requests"] == sum(events)
    subs = json.loads(_vigie("consumers", *fleet, "--json"))["subscriptions"]
    assert sum(s["requests"] for s in subs) <= sum(events)
    assert len(subs) > 0
    page = _vigie("report", *fleet, "--from", frm, "--to", to, "--format", "html")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page


def test_the_parquet_files_are_readable_by_the_store_option(two: list[SidecarProcess]) -> None:
    pod = two[0]
    today = datetime.now(UTC).date()
    out = _vigie(
        "report",
        "--store",
        str(pod.state_dir),
        "--from",
        today.isoformat(),
        "--to",
        (today + timedelta(days=1)).isoformat(),
        "--format",
        "csv",
    )
    lines = out.splitlines()
    assert lines[0].startswith("section,at,api")
    assert any(line.startswith("consumers,") for line in lines)
    assert Path(pod.state_dir / "data" / "daily").is_dir()
