"""Bad input on the gateway stream: oversized messages refused by gRPC before they are parsed,
Hello fields bounded in length and charset, a message that is not UTF-8 refused with a clear
status, forged directive-hit reports kept out of ``ListDirectives``; each refusal counted, and
the other streams untouched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.adversarial.common import admin, records, status
from tests.conftest import SidecarProcess, start_sidecar
from tests.support.streams import StreamClient
from tests.support.waiting import RPC_S
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import directives_pb2 as dpb
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import StreamEncoder

pytestmark = pytest.mark.slow


def _refused(c: StreamClient) -> grpc.RpcError:
    assert c.done.wait(120), "the stream was not ended"
    assert c.error is not None
    return c.error


def _good_stream_still_works(sp: SidecarProcess, n: int = 30) -> None:
    good = StreamClient(sp.telemetry, gateway_id="good")
    try:
        good.send(StreamEncoder().batch_from_records(records(n, app="good-app")))
        assert good.wait_ack(1).events_applied == n
    finally:
        good.close()


def test_a_message_larger_than_max_batch_events_allows_is_refused_before_it_is_parsed(
    tmp_path: Path,
) -> None:
    sp = start_sidecar(tmp_path / "s", env={"VIGIE_MAX_BATCH_EVENTS": "16"})
    try:
        # 16 events x 1 KiB + 4 MiB headroom: a 6 MiB batch is over the limit
        limit = 16 * 1024 + (4 << 20)
        batch = StreamEncoder().batch_from_records(records(10))
        batch.dictionary_additions.append("x" * (6 << 20))
        size = pb.GatewayMessage(batch=batch).ByteSize()
        big = StreamClient(sp.telemetry, gateway_id="big")
        big.send(batch)
        err = _refused(big)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.details() == (
            f"batch refused: a message of {size:,} bytes, over the limit of {limit:,} "
            "(max_batch_events events of at most 1 KiB, and 4 MiB)"
        )
        # over twice the limit, gRPC refuses it before vigie sees it: counted as cancelled
        huge = StreamClient(sp.telemetry, gateway_id="huge")
        batch = StreamEncoder().batch_from_records(records(10))
        batch.dictionary_additions.append("x" * (10 << 20))
        huge.send(batch)
        assert _refused(huge).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        _good_stream_still_works(sp, 16)
        st = status(sp)
        assert st.events_applied == 16 and st.subscriptions == 1
        assert st.counters["batch_refused:message_too_large"] == 1
        assert st.counters["stream_cancelled"] == 1, dict(st.counters)
    finally:
        assert sp.stop() == 0


@pytest.mark.parametrize(
    ("hello", "cause", "message"),
    [
        (
            pb.Hello(gateway_id="gw\nINFO forged line", protocol_version=1),
            "hello_bad_characters",
            r"Hello.gateway_id holds control characters: gw\nINFO forged line",
        ),
        (
            pb.Hello(gateway_id="g" * 1_000_000, protocol_version=1),
            "hello_too_long",
            "Hello.gateway_id has 1000000 characters, at most 256",
        ),
        (
            pb.Hello(gateway_id="gw", region="\x1b[31mred", protocol_version=1),
            "hello_bad_characters",
            r"Hello.region holds control characters: \x1b[31mred",
        ),
    ],
)
def test_hello_fields_have_length_and_charset_limits(
    sidecar: SidecarProcess, hello: pb.Hello, cause: str, message: str
) -> None:
    c = StreamClient(sidecar.telemetry, hello=hello)
    err = _refused(c)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == message
    assert status(sidecar).counters[f"stream_refused:{cause}"] == 1
    assert "forged line" not in sidecar.log() and "g" * 300 not in sidecar.log()
    _good_stream_still_works(sidecar)


def test_a_hello_that_is_not_utf8_gets_a_clear_status_and_a_counter(
    sidecar: SidecarProcess,
) -> None:
    raw = pb.GatewayMessage(hello=pb.Hello(gateway_id="gwA", protocol_version=1))
    data = raw.SerializeToString().replace(b"gwA", b"gw\xff")

    def send() -> Iterator[bytes]:
        yield data

    with grpc.insecure_channel(sidecar.telemetry) as ch:
        call = ch.stream_stream(
            "/vigie.v1.Telemetry/Stream",
            request_serializer=lambda b: b,
            response_deserializer=pb.SidecarMessage.FromString,
        )(send())
        with pytest.raises(grpc.RpcError) as info:
            list(call)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid GatewayMessage" in str(info.value.details())
    assert "are all its strings UTF-8?" in str(info.value.details())
    assert status(sidecar).counters["stream_refused:undecodable"] == 1
    assert "Traceback" not in sidecar.log()
    _good_stream_still_works(sidecar)


def test_forged_directive_hits_are_not_kept(sidecar: SidecarProcess) -> None:
    stub, md = admin(sidecar)
    stub.PutDirective(
        apb.PutDirectiveRequest(
            directive=dpb.Directive(
                id="real",
                mode=dpb.DIRECTIVE_MODE_SHADOW,
                action=dpb.DIRECTIVE_ACTION_BLOCK,
                application_id="app-1",
                expires_at_us=int((time.time() + 3600) * 1e6),
            ),
            actor="test",
        ),
        metadata=md,
        timeout=RPC_S,
    )
    forged = [dpb.DirectiveHits(directive_id=f"forged-{k}", shadow_hits=1) for k in range(5000)]
    # (at most the 5 requests this gateway sent in the directive's scope: vigie.server.hits)
    real = dpb.DirectiveHits(directive_id="real", shadow_hits=5)
    c = StreamClient(sidecar.telemetry, gateway_id="forger")
    enc = StreamEncoder()
    try:
        c.wait_for(lambda: bool(c.of_kind("welcome")))
        c.send(enc.batch_from_records(records(5)))
        c.wait_ack(1)
        c.send_raw(pb.GatewayMessage(report=pb.GatewayReport(directive_hits=[*forged, real])))
        c.send(enc.batch_from_records(records(5)))
        c.wait_ack(2)  # the report, sent before, was read
        hits = stub.ListDirectives(apb.ListDirectivesRequest(), metadata=md, timeout=RPC_S).hits
        assert [(h.directive_id, h.shadow_hits) for h in hits] == [("real", 5)]
        assert status(sidecar).counters["directive_hits_unknown"] == 5000
    finally:
        c.close()
    # the gateway gone, its hits stay the directive's evidence; the directive gone, so are they
    c2 = StreamClient(sidecar.telemetry, gateway_id="other")
    try:
        c2.send(StreamEncoder().batch_from_records(records(5)))
        c2.wait_ack(1)
    finally:
        c2.close()
    hits = stub.ListDirectives(apb.ListDirectivesRequest(), metadata=md, timeout=RPC_S).hits
    assert [(h.directive_id, h.shadow_hits) for h in hits] == [("real", 5)]
    stub.RemoveDirective(
        apb.RemoveDirectiveRequest(directive_id="real", actor="test"), metadata=md, timeout=30
    )
    hits = stub.ListDirectives(apb.ListDirectivesRequest(), metadata=md, timeout=RPC_S).hits
    assert list(hits) == []


def test_requests_matching_no_api_are_shown_per_gateway_and_prefix(
    sidecar: SidecarProcess,
) -> None:
    # the handler counts them by path prefix (GatewayReport); the status shows them, a
    # prefix from a client's path with its control characters escaped
    c = StreamClient(sidecar.telemetry, gateway_id="gw-unmatched")
    enc = StreamEncoder()
    prefixes = [pb.UnmatchedPrefix(prefix="wp-admin", requests=40),
                pb.UnmatchedPrefix(prefix="x\x1b[2J", requests=2),
                pb.UnmatchedPrefix(prefix="*", requests=3)]  # fmt: skip
    try:
        c.wait_for(lambda: bool(c.of_kind("welcome")))
        c.send_raw(pb.GatewayMessage(report=pb.GatewayReport(
            unmatched_requests=45, unmatched_prefixes=prefixes)))  # fmt: skip
        c.send(enc.batch_from_records(records(3)))
        c.wait_ack(1)  # the report, sent before, was read
        (g,) = [g for g in status(sidecar).gateways if g.gateway_id == "gw-unmatched"]
        assert g.unmatched_requests == 45
        assert dict(g.unmatched_by_prefix) == {"wp-admin": 40, "x\\x1b[2J": 2, "*": 3}
    finally:
        c.close()
