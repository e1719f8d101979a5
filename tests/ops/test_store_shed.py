"""Rows a degraded data writer sheds are loud and dated: a real ``vigie serve`` whose store is
a real tmpfs too small for it (disk full) keeps its unwritten rows up to ``data_memory_cap``,
sheds per-minute rows past it; ``vigie status`` then says ``data: degraded (N events not stored
since ...)`` and ``--check`` exits 1; once the volume has room again (the tmpfs remounted
larger) the period of the shed rows is written to the store's changes, and ``vigie report`` and
``vigie autopsy`` over it print the "data incomplete" banner naming it. Needs root (mount)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.adversarial.common import T0, records, status
from tests.conftest import SidecarProcess, start_sidecar
from tests.support import cli_process
from tests.support.streams import StreamClient
from vigie.v1 import admin_pb2 as apb
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow

MINUTE = 60_000_000
EVENTS = 30_000  # one per minute: 30,000 minute rows (about 21 days), far over 1 MiB


def vigie(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return cli_process.vigie(*args, env=env, timeout=600)


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, check=False)  # fmt: skip
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")


def wait_for(
    sp: SidecarProcess, what: str, ok: Callable[[apb.Status], bool], timeout: float = 300.0
) -> None:
    deadline = time.monotonic() + timeout
    while not ok(status(sp)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen in {timeout:g} s: {status(sp).data}")
        time.sleep(0.2)


def test_shed_rows_make_status_degraded_and_reports_name_their_period(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mount_tmpfs(data, "16k")
    try:
        env = {
            "VIGIE_DATA_DIR": str(data),
            "VIGIE_DATA_MEMORY_CAP": "1MiB",
            "VIGIE_DATA_FLUSH_SECONDS": "0.2",
        }
        sp = start_sidecar(tmp_path / "s", env=env)
        try:
            c = StreamClient(sp.telemetry, gateway_id="gw-1")
            enc = StreamEncoder()
            try:
                for b in range(EVENTS // 1000):
                    recs = records(1000, start=T0 + b * 1000 * MINUTE)
                    for k, r in enumerate(recs):
                        r["event_time_us"] = T0 + (b * 1000 + k) * MINUTE
                    c.send(enc.batch_from_records(recs))
                assert c.wait_ack(EVENTS // 1000, timeout=300).events_applied == EVENTS
            finally:
                c.close()
            wait_for(
                sp,
                "minute rows shed",
                lambda st: st.data.counters.get("minute_rows_dropped", 0) > 0,
            )
            st = status(sp)
            assert st.events_applied == EVENTS  # the state has every event
            assert st.data.counters.get("rollup_events_dropped", 0) == 0
            assert re.fullmatch(
                r"degraded: ([\d,]+) events not stored; \1 minute rows not stored; .*No space "
                r"left on device.*",
                st.data.state,
            ), st.data.state  # one event per minute row
            args = ["status", "--state-dir", str(sp.state_dir), "--check"]
            out = vigie(*args, env={"VIGIE_ADMIN": sp.admin})
            assert out.returncode == 1, out.stdout + out.stderr
            line = " ".join(out.stdout.split())
            assert re.search(
                r"data: degraded \([\d,]+ events not stored; .* since 20\d\d-", line
            ), line
            subprocess.run(["mount", "-o", "remount,size=256m", str(data)], check=True)
            wait_for(
                sp,
                "the store written",
                lambda st: "No space" not in st.data.state and st.data.unwritten_rows == 0,
            )
            # written now: the rows kept, and the period of those shed
            st = status(sp)
            shed = st.data.counters["minute_events_dropped"]
            assert shed == st.data.counters["minute_rows_dropped"]
            assert 0 < shed < EVENTS
            print(f"store full: {shed:,} of {EVENTS:,} minute rows shed (1 MiB data_memory_cap)")
            lost = f"{shed:,} events not stored; {shed:,} minute rows not stored"
            assert st.data.state == f"degraded: {lost}"
        finally:
            assert sp.stop() == 0
        span = ["--from", "2026-03-01", "--to", "2026-04-01"]
        out = vigie("report", "--store", str(data), "--format", "json", *span)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["total"]["requests"] == EVENTS  # the daily rows are whole
        assert sum(p["events"] for p in doc["incomplete"]) == shed
        assert "data incomplete: " in " ".join(out.stderr.split())
        out = vigie("autopsy", "--store", str(data), *span)
        assert out.returncode == 0, out.stderr
        text = " ".join((out.stdout + out.stderr).split())
        assert f"data incomplete: {shed:,} events of this span were not stored" in text, text
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)
