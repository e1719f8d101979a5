"""Replays the fuzz corpus (tests/fuzz/corpus/, grown by `make fuzz`) through the same targets:
every input is refused cleanly or accepted, never a crash; then a sample of hostile streams is
sent to a real `vigie serve` while a well-behaved gateway keeps streaming."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import SidecarProcess
from tests.e2e.test_server import records, status
from tests.fuzz.targets import CORPUS, LogTarget, StreamTarget
from tests.support.streams import StreamClient
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import StreamEncoder


def _files(name: str) -> list[Path]:
    return sorted(p for p in (CORPUS / name).iterdir() if p.is_file())


@pytest.fixture(scope="module")
def stream_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamTarget]:
    t = StreamTarget(tmp_path_factory.mktemp("fuzz-state"))
    yield t
    t.close()


def test_corpus_is_there() -> None:
    assert len(_files("decoder")) >= 20 and len(_files("wso2_log")) >= 20


def test_decoder_corpus_replays_without_a_crash(stream_target: StreamTarget) -> None:
    for path in _files("decoder"):
        stream_target.run(path.read_bytes())
    # the corpus exercises refusals: several distinct causes, each counted
    assert len(stream_target.refusals) >= 5, stream_target.refusals
    # and acceptances: the process state saw events
    assert stream_target.sc.state.counters()["events_applied"] > 0


def test_wso2_log_corpus_replays_without_a_crash() -> None:
    target = LogTarget()
    for path in _files("wso2_log"):
        target.run(path.read_bytes())
    assert target.state.counters()["events_applied"] > 0
    assert target.fast_chunks > 0, "the Arrow way was compared with the careful way"


def test_both_ways_agree_on_absurd_numbers() -> None:
    """The Arrow way wrapped an errorCode past int32 and a huge latency around int64 (silently
    different events from the careful way); a numeric timestamp past int64 crashed the careful
    way. The differential target (tests/fuzz/targets.py) now holds them to the same answer."""
    target = LogTarget()
    head = b"x apimMetrics: apim:response, properties :"
    lines = [
        head
        + b'{"requestTimestamp":"2026-03-02T10:00:00.000Z","apiName":"A","errorCode":2147483653}',
        head
        + b'{"requestTimestamp":"2026-03-02T10:00:01.000Z","apiName":"A",'
        + b'"responseLatency":4611686018427387904}',
        head + b'{"requestTimestamp":18446744074261836612,"apiName":"A"}',
    ]
    for line in lines:
        target.run(b"\x01" + line)
    assert target.fast_chunks == 1  # the latency line: same clamped value both ways
    assert target.state.counters()["events_applied"] == 1


def _hostile_messages(data: bytes) -> list[pb.GatewayMessage]:
    from tests.fuzz.targets import Cursor, _raw_messages, _structured_messages  # noqa: PLC0415

    return _raw_messages(data[1:]) if data[0] & 1 else _structured_messages(Cursor(data[1:]))


@pytest.mark.slow
def test_hostile_streams_end_alone_on_a_real_sidecar(sidecar: SidecarProcess) -> None:
    good = StreamClient(sidecar.telemetry, gateway_id="good-gateway")
    enc = StreamEncoder()
    sent = 0
    try:
        good.wait_for(lambda: bool(good.of_kind("welcome")))
        refused = 0
        for path in [p for p in _files("decoder") if p.name.startswith("seed-")][:24]:
            msgs = _hostile_messages(path.read_bytes())
            if not msgs or msgs[0].WhichOneof("kind") != "hello":
                continue
            bad = StreamClient(sidecar.telemetry, hello=msgs[0].hello)
            for m in msgs[1:]:
                bad.send_raw(m)
            bad.close()  # half-closes, waits for the sidecar's end of the stream
            assert bad.done.is_set()
            if bad.error is not None:
                code = bad.error.code()
                assert code in (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                ), f"{path.name}: {code} {bad.error.details()}"
                assert bad.error.details(), "a refusal says why"
                refused += 1
            # the good gateway carries on after every hostile stream
            good.send(enc.batch_from_records(records(10, app="good-app")))
            sent += 1
            assert good.wait_ack(sent).events_applied == 10 * sent
        assert refused >= 3
    finally:
        good.close()
    st = status(sidecar)
    refusals = {
        k: v for k, v in st.counters.items() if k.startswith(("batch_refused:", "stream_refused:"))
    }
    assert sum(refusals.values()) >= refused, refusals
    assert sidecar.proc.poll() is None, "the process carries on"


def test_error_code_past_int32_is_a_rejected_line() -> None:
    """Found by the fuzzer: such a line crashed the whole replay (OverflowError in take())."""
    from vigie.sources.wso2_log import LineParser, ReplayStats  # noqa: PLC0415
    from vigie.wire.columns import Interner  # noqa: PLC0415

    stats = ReplayStats()
    p = LineParser("x.log", 0, Interner(), stats)
    for line in (CORPUS / "wso2_log" / "crash-error-code-past-int32").read_bytes()[1:].splitlines():
        p.feed(line)
    assert len(p.take()) == 0 and stats.rejected == 2
    assert [r.reason for r in stats.first_rejects] == [
        "errorCode out of range: 2147483648",
        "errorCode out of range: -2147483649",
    ]


def test_decoded_columns_have_one_kernel_signature_whatever_columns_a_batch_carries() -> None:
    """Found by the fuzzer (a 20 s input): columns read straight from the wire were read-only
    arrays, typed apart by Numba from the writable defaults of absent columns, so every new mix
    of present/absent columns compiled the kernels again under the state lock. (Since issue 16
    the values columns are read-only views, absent ones read-only defaults: still one type.)"""
    import numba  # noqa: PLC0415

    from vigie.wire.columns import ENGINE_DTYPES, Interner, StreamDecoder  # noqa: PLC0415

    full = {
        "event_time_us": 1_772_409_600_000_000,
        "application_id": "a",
        "application_name": "a",
        "api_name": "Orders",
        "api_version": "v1",
        "http_status": 200,
        "http_method": 1,
        "error_code": 5,
        "latency_us": 10,
        "backend_latency_us": 5,
        "request_bytes": 1,
        "response_bytes": 2,
        "key_type": 1,
        "uri_hash": 3,
        "flags": 1,
    }
    bare = {
        k: full[k]
        for k in ("event_time_us", "application_id", "api_name", "api_version", "http_status")
    }
    enc = StreamEncoder()
    dec = StreamDecoder(Interner(), 0, 100, 100)
    a = dec.decode(enc.batch_from_records([full]))
    b = dec.decode(enc.batch_from_records([bare]))
    for name, dtype in ENGINE_DTYPES.items():
        assert a[name].dtype == dtype, name
        assert numba.typeof(a[name]) == numba.typeof(b[name]), name  # type: ignore[no-untyped-call]
