"""Nothing taken for good: 8 junk ``Hello.channel`` names no longer lock a real channel out (a
slot no open stream and no row uses is released when a new channel needs it, and the release
survives a restart); ``vigie status`` shows the slots, the directive hit tables and a gateway
whose clock (``Hello.clock_us``) is skewed, by name, with its refused events. Against real
``vigie serve`` processes."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from tests.adversarial.common import records, status
from tests.conftest import SidecarProcess, start_sidecar
from tests.support.streams import StreamClient
from vigie.cli import main
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow


def _connect(sp: SidecarProcess, channel: str, n_events: int = 0) -> StreamClient:
    """A stream on ``channel``, welcomed, with one batch of ``n_events`` acknowledged."""
    c = StreamClient(sp.telemetry, channel=channel, gateway_id=f"gw-{channel}")
    c.wait_for(lambda: bool(c.of_kind("welcome")))
    if n_events:
        c.send(StreamEncoder().batch_from_records(records(n_events, app=f"app-{channel}")))
        assert c.wait_ack(1).events_applied == n_events
    return c


def _slots(sp: SidecarProcess) -> list[tuple[str, int, bool]]:
    return [(s.name, s.streams, s.rows) for s in status(sp).channel_slots]


def _cli_status(sp: SidecarProcess) -> str:
    r = CliRunner().invoke(main, ["status", "--admin", sp.admin, "--state-dir", str(sp.state_dir)])
    assert r.exit_code == 0, r.output
    return " ".join(r.output.split())


def test_eight_junk_channels_then_a_real_one(tmp_path: Path) -> None:
    sp = start_sidecar(tmp_path / "s")
    try:
        junk = [_connect(sp, f"junk-{k}", n_events=10 if k == 7 else 0) for k in range(8)]
        # all 8 slots held by open streams: a ninth channel is refused, nothing released
        c = StreamClient(sp.telemetry, channel="main")
        assert c.done.wait(120) and c.error is not None
        assert c.error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "vigie tracks at most 8 channels" in str(c.error.details())
        st = status(sp)
        assert st.counters["stream_refused:bad_channel"] == 1
        assert "channels_released" not in st.counters
        assert st.channel_slots_max == 8 and len(st.channel_slots) == 8
        for j in junk:
            j.close()
        # the streams gone, the 7 slots no row uses are released; junk-7 keeps its rows' slot
        real = _connect(sp, "main", n_events=20)
        try:
            st = status(sp)
            assert st.counters["channels_released"] == 7
            assert _slots(sp) == [
                ("main", 1, True),
                *[("", 0, False)] * 6,
                ("junk-7", 0, True),
            ]
            out = _cli_status(sp)
            assert "channel slots: 2/8: main (1 streams, rows), junk-7 (0 streams, rows)" in out
            assert "directive hit tables: 0/1024 gateways" in out
        finally:
            real.close()
        assert sp.stop() == 0
        # the released slots stay free across a restart: 6 new channels fit next to the two
        sp = start_sidecar(tmp_path / "s")
        more = [_connect(sp, f"new-{k}") for k in range(6)]
        try:
            names = [s.name for s in status(sp).channel_slots]
            assert names == ["main", *[f"new-{k}" for k in range(6)], "junk-7"]
            st = status(sp)
            assert st.events_applied == 30 and st.subscriptions == 2
        finally:
            for m in more:
                m.close()
    finally:
        assert sp.stop() == 0


def test_a_skewed_gateway_is_named_in_status_with_its_refused_events(tmp_path: Path) -> None:
    sp = start_sidecar(tmp_path / "s")
    now = int(time.time() * 1e6)
    ahead = 900_000_000  # 15 minutes, over max_clock_skew_seconds (300)
    skewed = StreamClient(
        sp.telemetry,
        hello=pb.Hello(
            gateway_id="gw-fast", channel="main", protocol_version=1, clock_us=now + ahead
        ),
    )
    right = StreamClient(
        sp.telemetry,
        hello=pb.Hello(gateway_id="gw-right", channel="main", protocol_version=1, clock_us=now),
    )
    old = StreamClient(sp.telemetry, gateway_id="gw-old")  # an older handler: no clock
    try:
        # the skewed gateway dates its events by its clock: 30 ahead, refused; 10 now
        batch = records(30, app="fast", start=now + ahead) + records(10, app="fast", start=now)
        skewed.send(StreamEncoder().batch_from_records(batch))
        assert skewed.wait_ack(1).events_applied == 10
        right.send(StreamEncoder().batch_from_records(records(10, app="right", start=now)))
        assert right.wait_ack(1).events_applied == 10
        old.wait_for(lambda: bool(old.of_kind("welcome")))
        st = status(sp)
        gws = {g.gateway_id: g for g in st.gateways}
        assert gws["gw-fast"].clock_known and gws["gw-fast"].clock_skewed
        assert ahead - 60e6 < gws["gw-fast"].clock_skew_us <= ahead
        assert gws["gw-fast"].events_refused_future == 30
        assert gws["gw-right"].clock_known and not gws["gw-right"].clock_skewed
        assert abs(gws["gw-right"].clock_skew_us) < 60e6
        assert gws["gw-right"].events_refused_future == 0
        assert not gws["gw-old"].clock_known and not gws["gw-old"].clock_skewed
        assert st.counters["stream_clock_skewed"] == 1
        assert st.counters["event_refused:future"] == 30
        out = _cli_status(sp)
        assert "gateway gw-fast: its clock is +900 s off this sidecar's; 30 of its events " in out
        assert "refused as dated ahead (event_refused:future)" in out
        assert "gateway gw-right: its clock" not in out
        assert "gateway gw-fast: its clock is +900 s off this sidecar's" in sp.log()
    finally:
        for c in (skewed, right, old):
            c.close()
        assert sp.stop() == 0
