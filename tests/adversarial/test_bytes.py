"""Every table bounded, nothing half applied: strings are bounded in bytes as well as count
(``max_string_bytes``), so 120,000 unused 4 KiB dictionary strings neither grow the process nor
the snapshot; a batch that would go over the cap is refused whole before any of it is applied,
so the Acks and the refusals add up to what was offered (API rows are evicted instead:
test_api_flood.py). Against real ``vigie serve`` processes."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tests.adversarial.common import records, status
from tests.conftest import SidecarProcess, start_sidecar
from tests.support.streams import StreamClient
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow

STRING_CAP = 16 << 20
JUNK = 120_000
PER_BATCH = 1000


def _rss(sp: SidecarProcess) -> int:
    for line in Path(f"/proc/{sp.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _junk_batch(enc: StreamEncoder, first: int) -> pb.EventBatch:
    """One event and ``PER_BATCH`` dictionary strings of 4 KiB that no event uses."""
    for k in range(first, first + PER_BATCH):
        enc.intern(f"{k:08d}".ljust(4096, "x"))  # sent with the next batch, used by no event
    return enc.batch_from_records(records(1, app="junk-app", api="Junk"))


def _good(sp: SidecarProcess, app: str, n: int = 20) -> int:
    c = StreamClient(sp.telemetry, gateway_id=f"good-{app}")
    try:
        c.send(StreamEncoder().batch_from_records(records(n, app=app)))
        return int(c.wait_ack(1).events_applied)
    finally:
        c.close()


def _flood_stream(sp: SidecarProcess, first: int) -> tuple[int, int, bool]:
    """Junk batches on one stream from string ``first`` on, until one is refused or all
    ``JUNK`` strings were sent: (batches sent, events acknowledged, refused)."""
    c = StreamClient(sp.telemetry, gateway_id="junk")
    enc = StreamEncoder()
    sent = acked = 0
    try:
        while first + sent * PER_BATCH < JUNK:
            c.send(_junk_batch(enc, first + sent * PER_BATCH))
            sent += 1
            while not c.done.wait(0.01):  # the Ack, or the end of the stream
                acks = c.of_kind("ack")
                if acks and acks[-1].ack.sequence == sent:
                    acked = int(acks[-1].ack.events_applied)
                    break
            if c.done.is_set():
                assert c.error is not None
                assert c.error.code() == grpc.StatusCode.INVALID_ARGUMENT
                details = str(c.error.details())
                assert details.startswith("batch refused: ") and details.endswith(
                    f"(max_string_bytes {STRING_CAP}); reconnect to start a new dictionary"
                ), details
                return sent, acked, True
        return sent, acked, False
    finally:
        c.close()


def test_unused_4kib_strings_stay_under_max_string_bytes_and_out_of_the_snapshot(
    tmp_path: Path,
) -> None:
    env = {"VIGIE_MEMORY_CAP": "64MiB", "VIGIE_MAX_STRING_BYTES": str(STRING_CAP)}
    sp = start_sidecar(tmp_path / "s", env=env)
    try:
        assert _good(sp, "before") == 20
        base = _rss(sp)
        offered = acked = refused = peak_rss = 0
        while offered < JUNK // PER_BATCH:
            sent, got, was_refused = _flood_stream(sp, offered * PER_BATCH)
            offered += sent
            acked += got
            refused += was_refused
            assert status(sp).counters["string_bytes_held"] <= STRING_CAP
            peak_rss = max(peak_rss, _rss(sp))
        st = status(sp)
        # 470 MiB of strings in 120 batches: a stream holds 4 of them (16,384,000 bytes), its
        # 5th is refused, and the next stream's strings take the place of those it left
        per_stream = STRING_CAP // (PER_BATCH * 4096)
        assert refused == -(-(JUNK // PER_BATCH) // (per_stream + 1))
        assert st.counters["batch_refused:string_bytes_full"] == refused
        assert acked + refused == offered == JUNK // PER_BATCH  # one event per batch
        assert st.events_applied == 20 + acked
        print(f"RSS {base >> 20} MiB before, {peak_rss >> 20} MiB peak")  # the figures
        # the process grew by far less than what was sent (it was 1 GiB)
        assert peak_rss - base < 200 << 20, (base, peak_rss)
        assert _good(sp, "after") == 20
        assert sp.stop() == 0
        snap = (sp.state_dir / "state.npz").stat().st_size
        print(f"snapshot {snap:,} bytes")
        assert snap < STRING_CAP // 4, snap  # was 492 MB
        sp = start_sidecar(tmp_path / "s", env=env)
        st = status(sp)
        assert st.subscriptions == 3  # before, junk, after: restored
        assert st.counters["string_bytes_held"] < 1 << 20
    finally:
        assert sp.stop() == 0
