"""A 14-day ``vigie simulate --backfill-days`` into a real ``vigie serve`` whose data writer has
a queue of 8 batches: the backfill's streams say ``Hello.history``, so every batch of them (the
last hour too) waits for the writer instead of being dropped; afterwards the rollups hold every
event the sidecar acknowledged and ``vigie status`` says ``data: parquet ok``. (The same
batches on streams without the mark are dropped: tests/adversarial/test_backfill.py.)"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.adversarial.common import status
from tests.conftest import SidecarProcess, start_sidecar
from tests.support import cli_process

pytestmark = pytest.mark.slow

ENV = {"VIGIE_DATA_QUEUE_BATCHES": "8"}
LINE = re.compile(r"^(\w+): ([\d,]+) events in ([\d,]+) batches, ([\d,]+) acknowledged$")


def vigie(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return cli_process.vigie(*args, env=env, timeout=1800)


def simulate(sp: SidecarProcess) -> tuple[int, int]:
    """A 14-day backfill and no live traffic (``--tps 0``: what is stored is the backfill
    alone); (events sent, events acknowledged) over the four channels."""
    out = vigie(
        "simulate", "--target", sp.telemetry, "--backfill-days", "14", "--backfill-tps", "0.5",
        "--apps", "40", "--apis", "8", "--tps", "0", "--duration", "0.2",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    sent = acked = 0
    for line in out.stdout.splitlines():
        m = LINE.match(line.strip())
        if m:
            sent += int(m[2].replace(",", ""))
            acked += int(m[4].replace(",", ""))
    assert sent > 100_000, out.stdout
    return sent, acked


def stored(sp: SidecarProcess) -> int:
    """Requests in the daily and the per-minute rollups (they must agree)."""
    now = datetime.now(UTC)
    span = ["--from", (now - timedelta(days=16)).strftime("%Y-%m-%d")]
    span += ["--to", (now + timedelta(days=1)).strftime("%Y-%m-%d")]
    out = vigie("report", "--store", str(sp.state_dir / "data"), "--format", "json", *span)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["incomplete"] == []
    return int(doc["total"]["requests"])


def test_a_14_day_backfill_stores_every_event_it_was_acknowledged(tmp_path: Path) -> None:
    sp = start_sidecar(tmp_path / "s", env=ENV)
    try:
        sent, acked = simulate(sp)
        assert acked == sent
        st = status(sp)
        assert st.events_applied == acked
        assert st.counters["backfill_batches"] > 0
        assert "backfill_wait_timeouts" not in st.counters
        assert st.data.counters.get("rollup_events_dropped", 0) == 0
        assert st.data.state == "ok"
        out = vigie(
            "status", "--check", "--state-dir", str(sp.state_dir), env={"VIGIE_ADMIN": sp.admin}
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "data: parquet ok" in " ".join(out.stdout.split())
    finally:
        assert sp.stop() == 0  # the writer writes out what it holds
    in_store = stored(sp)
    print(f"14-day backfill: {sent:,} events sent, {acked:,} acknowledged, {in_store:,} stored")
    assert in_store == acked
