"""Real ``vigie serve`` processes write rollups as traffic comes; ``status`` reports the data on
disk; ``report``, ``autopsy`` and ``consumers`` read one sidecar or a fleet of two."""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import VIGIE, SidecarProcess, start_sidecar
from tests.support.waiting import wait_for
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

    def on_disk() -> dict[str, Any] | None:
        data = _status(pod).get("data", {})
        assert isinstance(data, dict)
        return data if int(data.get("bytes", {}).get("daily", 0)) > 0 else None

    data = wait_for(on_disk, 120, "daily rollups on disk")
    assert data["backend"] == "parquet" and data["state"] == "ok"
    text = _vigie("status", "--admin", pod.admin, "--state-dir", str(pod.state_dir))
    assert "data: parquet ok" in text and "on disk" in text


def test_a_fleet_report_adds_both_sidecars(two: list[SidecarProcess]) -> None:
    today = datetime.now(UTC).date()
    frm, to = today.isoformat(), (today + timedelta(days=2)).isoformat()

    def report(*where: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(
            _vigie("report", *where, "--from", frm, "--to", to, "--format", "json")
        )
        return doc

    def stored(pod: SidecarProcess, applied: int) -> dict[str, Any] | None:
        doc = report("--admin", pod.admin, "--state-dir", str(pod.state_dir))
        return doc if doc["total"]["requests"] == applied else None

    events, one = [], []
    for pod in two:  # the simulator is done: wait until each has stored everything it applied
        applied = int(str(_status(pod)["events_applied"]))
        what = f"the rollups of the {applied} events {pod.admin} applied"
        one.append(wait_for(functools.partial(stored, pod, applied), 120, what))
        events.append(applied)
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
    doc = report(*fleet)
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
