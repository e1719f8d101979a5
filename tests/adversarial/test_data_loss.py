"""Data loss is loud: when the data writer cannot keep up and batches are dropped, ``vigie
status`` says ``data: degraded (N events not stored since ...)`` and ``--check`` exits 1; the
state itself (counters, classes) keeps every event."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from tests.adversarial.common import records, status
from tests.conftest import start_sidecar
from tests.support.streams import StreamClient
from tests.support.waiting import wait_for
from vigie.cli import main
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow


class StuckStore(ThreadingHTTPServer):
    """A stand-in for ClickHouse's HTTP interface that holds the first INSERT of rollup rows
    (the writer's write of the first batch it took) and answers everything else at once: the
    schema (CREATE, ALTER, SELECT: an empty answer) and the change records, which the writer's
    timed flush may send before it took that batch off the queue. The writer is stuck on that
    batch, nothing else is. The held INSERT is answered "200, chunked", then a byte of body
    every ``TRICKLE_S``, so that the writer's own HTTP timeout (60 s, which a loaded machine can
    spend before the test reads the status) never frees it: the writer stays stuck, however
    long the test takes, until ``close``."""

    TRICKLE_S = 2.0
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StoreRequest)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.writer_stuck = threading.Event()
        self.closed = threading.Event()
        self._held = False
        self._lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def hold(self, query: str) -> bool:
        """Whether ``query`` is the one to hold: the first INSERT of rollup rows."""
        rows = query.startswith("INSERT INTO") and ".changes " not in query
        with self._lock:
            if rows and not self._held:
                self._held = True
                return True
        return False

    def close(self) -> None:
        self.closed.set()
        self.shutdown()
        self.server_close()


class _StoreRequest(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StuckStore

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        qs = parse_qs(urlsplit(self.path).query)
        query = qs["query"][0] if "query" in qs else body.decode(errors="replace")
        if not self.server.hold(query):
            answer = b'{"data": []}' if "FORMAT JSONCompact" in query else b""
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            return
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        self.server.writer_stuck.set()
        try:
            while not self.server.closed.wait(self.server.TRICKLE_S):
                self.wfile.write(b"1\r\n \r\n")
                self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_dropped_rollups_make_status_say_degraded_and_check_fail(tmp_path: Path) -> None:
    store = StuckStore()
    sp = start_sidecar(
        tmp_path / "s",
        "--snapshot-interval",
        "1",
        env={
            "VIGIE_DATA_STORE": "clickhouse",
            "VIGIE_CLICKHOUSE_URL": store.url,
            "VIGIE_DATA_QUEUE_BATCHES": "1",
            "VIGIE_DATA_FLUSH_SECONDS": "0.1",
            "VIGIE_POLICY_REFRESH_SECONDS": "86400",
        },
    )
    try:
        # A refresh of the suggestions waits until the store holds every applied batch: it
        # asks the writer for a flush through the writer's queue, where that request takes the
        # one place. The background loop refreshes at its first turn, then every
        # policy_refresh_seconds (here a day): once that turn is over (its snapshot follows
        # the refresh), no flush request can come between the batches below.
        wait_for(
            lambda: status(sp).counters["snapshots_written"] >= 1,
            120,
            "the background loop's first turn (a refresh of the suggestions, then a snapshot)",
        )
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
