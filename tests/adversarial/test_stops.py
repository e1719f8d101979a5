"""Stops are clean: SIGTERM at any moment exits 0 and the next start loads the state; a
damaged newest snapshot falls back to the older generation."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.adversarial.common import T0, records, status
from tests.conftest import start_sidecar
from tests.support.streams import StreamClient
from vigie.state import layout as L
from vigie.state import snapshot
from vigie.state.engine import Capacity, State
from vigie.state.thresholds import Thresholds
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow


def _send(telemetry: str, n: int, start: int) -> None:
    c = StreamClient(telemetry)
    try:
        c.send(StreamEncoder().batch_from_records(records(n, start=start)))
        assert c.wait_ack(1).events_applied == n
    finally:
        c.close()


def test_sigterm_at_random_moments_of_periodic_snapshots_exits_0_and_keeps_the_state(
    tmp_path: Path,
) -> None:
    state = tmp_path / "s"
    rng = random.Random(11)
    sent = 0
    for round_ in range(5):
        sp = start_sidecar(state, "--snapshot-interval", "1")
        try:
            assert status(sp).events_applied == sent  # the previous stop's state, loaded
            _send(sp.telemetry, 50, T0 + round_ * 10**9)
            sent += 50
            time.sleep(rng.uniform(0.0, 2.5))  # a random moment of the 1 s snapshot cycle
        finally:
            code = sp.stop()
        assert code == 0, sp.log()
        assert "Traceback" not in sp.log()
        assert not list(state.glob("*.tmp"))  # no writer left a temporary file behind
    assert sorted(p.name for p in state.glob("state.npz*")) == ["state.npz", "state.npz.1"]


def test_a_snapshot_with_out_of_range_ids_falls_back_to_the_older_generation(
    tmp_path: Path,
) -> None:
    state = tmp_path / "s"
    for n, start in ((400, T0), (100, T0 + 10**9)):
        sp = start_sidecar(state)
        try:
            _send(sp.telemetry, n, start)
        finally:
            assert sp.stop() == 0
    newest = state / "state.npz"
    with np.load(newest) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["sub_i64"][:, L.S_APP] = 10**6  # well formed, but no such string
    with newest.open("wb") as f:
        np.savez(f, **arrays)
    sp = start_sidecar(state)
    try:
        st = status(sp)
        assert st.events_applied == 400 and st.subscriptions == 1  # the older generation
        log = sp.log()
        assert "subscription application ids 1000000..1000000 outside" in log
        assert "restored 1 subscriptions and 1 APIs from" in log and "state.npz.1" in log
        assert len(list(state.glob("state.npz.unusable-*"))) == 1
    finally:
        assert sp.stop() == 0


def test_concurrent_snapshot_writers_take_turns(tmp_path: Path) -> None:
    """The stop path and the background loop may both write: each gets its own temporary
    file and the lock, and what is left is two complete generations."""
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(20):
                snapshot.write_snapshot(State(), tmp_path)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz", "state.npz.1"]
    for name in ("state.npz", "state.npz.1"):
        snapshot.read_snapshot(tmp_path / name, Thresholds(), Capacity())
    assert (tmp_path / "state.npz").stat().st_mode & 0o777 == 0o600
