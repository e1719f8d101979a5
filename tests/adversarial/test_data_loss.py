"""Data loss is loud: when the data writer cannot keep up and batches are dropped, ``vigie
status`` says ``data: degraded (N events not stored since ...)`` and ``--check`` exits 1; the
state itself (counters, classes) keeps every event."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.adversarial.common import records, status
from tests.conftest import start_sidecar
from tests.support.streams import StreamClient
from vigie.cli import main
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow


class StuckStore:
    """An HTTP port where the first connection (the data writer's first write, which holds
    the first batch's rows) is held, and every later one gets a 500 at once: the writer is
    stuck, nothing else is. The held request is answered "200, chunked" and then sent one
    byte of body every ``TRICKLE_S``, so that the writer's HTTP timeout (60 s, which a loaded
    machine can spend before the test reads the status) never frees it: the writer stays
    stuck, however long the test takes, until ``close``."""

    TRICKLE_S = 2.0

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.writer_stuck = threading.Event()
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if not self.held:
                self.held.append(conn)
                threading.Thread(target=self._hold, args=(conn,), daemon=True).start()
                continue
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
            conn.close()

    def _hold(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            self.writer_stuck.set()
            while not self.closed.wait(self.TRICKLE_S):
                conn.sendall(b"1\r\n \r\n")
        except OSError:
            pass

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_dropped_rollups_make_status_say_degraded_and_check_fail(tmp_path: Path) -> None:
    store = StuckStore()
    sp = start_sidecar(
        tmp_path / "s",
        env={
            "VIGIE_DATA_STORE": "clickhouse",
            "VIGIE_CLICKHOUSE_URL": store.url,
            "VIGIE_DATA_QUEUE_BATCHES": "1",
            "VIGIE_DATA_FLUSH_SECONDS": "0.1",
        },
    )
    try:
        c = StreamClient(sp.telemetry)
        enc = StreamEncoder()
        now = int(time.time() * 1e6)  # live traffic: it never waits for the writer
        try:
            c.send(enc.batch_from_records(records(20, start=now)))
            c.wait_ack(1)
            assert store.writer_stuck.wait(120)  # the writer holds that batch, waiting
            for k in range(2, 12):  # the first of these fills the queue, 9 are dropped
                c.send(enc.batch_from_records(records(20, start=now + 10**6 * k)))
                c.wait_ack(k)
        finally:
            c.close()
        st = status(sp)
        assert "backfill_batches" not in st.counters
        assert st.events_applied == 220  # the state has every event
        # the writer holds the first batch; of the 10 after it, one fills the queue of 1 and
        # the other 9 (20 events each) are dropped, however long the test took
        dropped = st.data.counters["rollup_events_dropped"]
        assert dropped == 9 * 20, dropped
        assert st.data.state == f"degraded: {dropped} events not stored"
        args = ["status", "--admin", sp.admin, "--state-dir", str(sp.state_dir)]
        r = CliRunner().invoke(main, [*args, "--check"])
        assert r.exit_code == 1, r.output
        out = " ".join(r.output.split())
        # the writer's own trouble may follow by then ("; ..."): the drops come first, dated
        assert f"data: degraded ({dropped} events not stored" in out
        assert re.search(r"data: degraded \([^)]* since 20", out), out
        assert CliRunner().invoke(main, args).exit_code == 0  # without --check: a report
    finally:
        store.close()
        assert sp.stop() == 0


def test_status_check_passes_when_nothing_was_lost(tmp_path: Path) -> None:
    sp = start_sidecar(tmp_path / "s")
    try:
        assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700  # the state directory
        r = CliRunner().invoke(
            main, ["status", "--admin", sp.admin, "--state-dir", str(sp.state_dir), "--check"]
        )
        assert r.exit_code == 0, r.output
        assert "data: parquet ok" in " ".join(r.output.split())
    finally:
        assert sp.stop() == 0
