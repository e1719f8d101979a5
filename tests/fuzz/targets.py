"""Fuzz targets: bytes -> a hostile gateway stream, or hostile WSO2 log lines.

Shared by ``python -m tests.fuzz`` (atheris, coverage-guided, ``make fuzz``) and by
``tests/test_fuzz_corpus.py``, which replays every file of ``tests/fuzz/corpus/`` in
``make test``. A target returns normally when vigie refused the input the way it should (a
``BatchRefused`` with a known cause, a rejected log line); anything else it raises is a finding.

Each input is read two ways, chosen by its first byte: as raw protobuf messages (garbage,
truncations: what a broken gateway might send), or through ``Cursor`` as a structured stream
whose every field may be bent: sequences, counts, dictionary bases and ids, column lengths,
huge strings, absurd values, time going backwards.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Final

import numpy as np
from google.protobuf.message import DecodeError

from vigie.errors import BatchRefused
from vigie.server.core import Sidecar
from vigie.settings import Settings
from vigie.sources import _wso2_fast
from vigie.sources.wso2_log import MARKER, PROPERTIES, LineParser, ReplayStats
from vigie.state.engine import Capacity, State
from vigie.v1 import admin_pb2 as apb
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.columns import COLUMNS, Events

# every cause a refusal may name; a new one is a finding until it is added here on purpose
BATCH_CAUSES: Final = frozenset(
    {
        "bad_sequence",
        "bad_count",
        "bad_dictionary_base",
        "dictionary_full",
        "string_too_long",
        "missing_column",
        "column_length",
        "unknown_dictionary_id",
        "bad_event_time",
        "bad_string",  # a dictionary string with U+001F (vigie.wire.tenants)
        "strings_full",
        "bad_hello",
        "bad_channel",
        "unexpected_hello",
        "too_many_streams",
        "hello_too_long",  # vigie.server.core.check_hello: each text field bounded
        "hello_bad_characters",  # and printable
    }
)
T_BASE: Final = 1_772_409_600_000_000  # 2026-03-02
SEPARATOR: Final = b"\xff\xfe\xfd"
READ_BACK_EVERY: Final = 32


class Cursor:
    """Reads typed values off the input; past its end every value is 0 (deterministic)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uint(self, nbytes: int) -> int:
        v = 0
        for _ in range(nbytes):
            v = (v << 8) | self.byte()
        return v

    def below(self, n: int) -> int:
        return self.uint(2) % n if n > 0 else 0

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def text(self) -> str:
        kind = self.byte() % 24
        if kind == 0:
            return "x" * (4090 + self.byte())  # at and past the 4,096-byte limit
        if kind == 1:
            return "é" * (2040 + self.byte())  # few characters, many bytes
        return self.take(self.byte() % 24).decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------
# the batch decoder + the stream service's batch path
# ---------------------------------------------------------------------------------------------


class StreamTarget:
    """One in-process ``Sidecar`` (the service's own objects, data store off) fed hostile
    streams: Hello, then batches and reports, as ``TelemetryService.Stream`` does."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self._tmp = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vigie-fuzz-")
            state_dir = Path(self._tmp.name)
        settings = Settings(
            state_dir=str(state_dir),
            data_store="off",
            max_batch_events=4096,
            max_dictionary_entries=4096,
            max_strings=20_000,
            memory_cap=4 << 20,
        )
        self.sc = Sidecar(settings)
        self.refusals: dict[str, int] = {}
        self._runs = 0

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def run(self, data: bytes) -> None:
        if not data:
            return
        msgs = _raw_messages(data[1:]) if data[0] & 1 else _structured_messages(Cursor(data[1:]))
        if msgs:
            self._stream(msgs)
        self._read_back()

    def _stream(self, msgs: list[pb.GatewayMessage]) -> None:
        sc = self.sc
        first = msgs[0]
        if first.WhichOneof("kind") != "hello":
            self._refused("no_hello")
            return
        before = _seen(sc)
        accepted = 0
        try:
            gs, dec = sc.open_stream(first.hello, "fuzz")
        except BatchRefused as exc:
            self._refused(exc.cause)
            return
        try:
            for m in msgs[1:]:
                kind = m.WhichOneof("kind")
                if kind == "batch":
                    ack = sc.apply_batch(gs, dec, m.batch)
                    accepted += m.batch.count
                    assert ack.events_applied == dec.events_applied
                elif kind == "report":
                    sc.record_report(gs, m.report)
                else:
                    raise BatchRefused("unexpected_hello", "a second Hello on the stream")
        except BatchRefused as exc:
            self._refused(exc.cause)
        finally:
            sc.close_stream(gs)
        after = _seen(sc)
        # every accepted event is applied once, a refused batch not at all
        assert after - before == accepted, (before, after, accepted)

    def _refused(self, cause: str) -> None:
        if cause != "no_hello" and cause not in BATCH_CAUSES:
            raise AssertionError(f"refusal with an unknown cause: {cause}")
        self.refusals[cause] = self.refusals.get(cause, 0) + 1

    def _read_back(self) -> None:
        """What the admin service reads must cope with whatever state the streams left (the
        full views every READ_BACK_EVERY inputs: they cost a hundred times a batch)."""
        sc = self.sc
        sc.status()
        self._runs += 1
        if self._runs % READ_BACK_EVERY == 0:
            sc.subscriptions(apb.ListSubscriptionsRequest())
            sc.apis(apb.ListApisRequest())
            with sc.lock:
                sc.compact_strings()


def _seen(sc: Sidecar) -> int:
    c = sc.state.counters()
    return c["events_applied"] + c["events_without_api"]


def _raw_messages(data: bytes) -> list[pb.GatewayMessage]:
    out = []
    for chunk in data.split(SEPARATOR)[:6]:
        try:
            out.append(pb.GatewayMessage.FromString(chunk))
        except DecodeError:
            return out  # grpc refuses what does not deserialize before vigie sees it
    return out


def _structured_messages(c: Cursor) -> list[pb.GatewayMessage]:
    hello = pb.Hello(gateway_id="fuzz-gw" if c.byte() % 16 else "", protocol_version=1)
    hello.channel = ("main", "sale", "", c.text())[c.byte() % 4]
    msgs = [pb.GatewayMessage(hello=hello)]
    seq, dict_size = 1, 1
    for _ in range(1 + c.byte() % 4):
        if c.byte() % 8 == 0:
            msgs.append(
                pb.GatewayMessage(report=pb.GatewayReport(offered=c.uint(8), sent=c.uint(4)))
            )
            continue
        batch, added = _batch(c, seq, dict_size)
        msgs.append(pb.GatewayMessage(batch=batch))
        seq += 1
        dict_size += added
    return msgs


def _batch(c: Cursor, seq: int, dict_size: int) -> tuple[pb.EventBatch, int]:
    bend = c.byte()
    n = 1 + c.byte() % 48
    if bend == 1:
        n = (0, 4097, 70_000)[c.byte() % 3]
    b = pb.EventBatch(
        sequence=seq if bend != 2 else c.uint(2),
        count=n,
        dictionary_base=dict_size if bend != 3 else c.uint(2),
    )
    additions = [c.text() for _ in range(c.byte() % 6)]
    if bend == 4:
        additions += [f"s{k}" for k in range(5000)]  # past the stream's dictionary limit
    b.dictionary_additions.extend(additions)
    size = dict_size + len(additions)
    rows = max(n, 0) if n <= 4096 else 1
    for spec in COLUMNS:
        mode = c.byte() % 16
        width = np.dtype(spec.wire_dtype).itemsize
        if mode == 0 and not spec.required:
            continue  # absent: every event takes the default
        if mode == 1:
            setattr(b, spec.name, c.take(c.byte()))  # a wrong length, most likely
            continue
        if spec.name == "event_time_us":
            deltas = np.array([c.uint(3) - (1 << 23) for _ in range(rows)], dtype=np.int64)
            base = T_BASE if mode != 2 else (c.uint(8) - (1 << 63))  # absurd, even negative
            col = base + deltas * (1_000_000 if mode == 3 else 1000)  # backwards too
            setattr(b, spec.name, col.astype("<i8").tobytes())
        elif spec.dictionary:
            top = size + (3 if mode == 4 else 0)  # an unknown id now and then
            ids = np.array([c.below(top) for _ in range(rows)], dtype="<u4")
            setattr(b, spec.name, ids.tobytes())
        else:
            setattr(b, spec.name, c.take(rows * width).ljust(rows * width, b"\x00"))
    return b, len(additions)


# ---------------------------------------------------------------------------------------------
# the WSO2 log parser
# ---------------------------------------------------------------------------------------------

_KEYS: Final = (
    "requestTimestamp",
    "apiName",
    "apiVersion",
    "apiContext",
    "apiResourceTemplate",
    "apiMethod",
    "applicationId",
    "applicationName",
    "applicationOwner",
    "keyType",
    "proxyResponseCode",
    "responseLatency",
    "backendLatency",
    "errorCode",
    "errorType",
    "responseCacheHit",
)
_PREFIX: Final = b"2026-03-02 10:00:00,000 [-] [pool-1]  INFO ELKCounterMetric apimMetrics: apim:"


class LogTarget:
    """``LineParser`` over hostile lines, then the kernels over what it accepted; and the
    chunk-at-once way (``_wso2_fast``, Arrow) over the same lines: when it does not hand the
    chunk to the careful way, it must give the same events."""

    def __init__(self) -> None:
        self.state = State(capacity=Capacity(memory_cap_bytes=4 << 20))
        self.fast_chunks = 0

    def run(self, data: bytes) -> None:
        if not data:
            return
        lines = data[1:].split(b"\n") if data[0] & 1 else _structured_lines(Cursor(data[1:]))
        stats = ReplayStats()
        parser = LineParser("fuzz.log", 0, self.state.interner, stats)
        for line in lines:
            parser.feed(line)
        assert stats.events + stats.rejected + stats.ignored_lines == len(lines)
        ev = parser.take()
        assert len(ev) == stats.events
        self._same_the_fast_way(lines, ev)
        if len(ev):
            times = ev["event_time_us"]
            assert bool(np.all(times[1:] >= times[:-1])), "take() sorts by event time"
            self.state.apply(ev)

    def _same_the_fast_way(self, lines: list[bytes], careful: Events) -> None:
        parts: list[bytes] = []
        faults: list[bool] = []
        for line in lines:  # framed as vigie.sources.wso2_log._chunks frames them
            m = line.find(MARKER)
            if m < 0:
                continue
            p = line.find(PROPERTIES, m)
            fault = line.startswith(b"faulty", m + len(MARKER))
            ok = p > 0 and (fault or line.startswith(b"response", m + len(MARKER)))
            parts.append(line[p + len(PROPERTIES) :].strip() if ok else b"")
            faults.append(fault)
        if not parts:
            return
        try:
            fast = _wso2_fast.parse_chunk(
                parts, np.array(faults, dtype=np.bool_), 0, self.state.interner
            )
        except _wso2_fast.Unusual:
            return  # the careful way reads this chunk: nothing to compare
        self.fast_chunks += 1
        assert len(fast) == len(careful), (len(fast), len(careful))
        for spec in COLUMNS:
            a, b = fast[spec.name], careful[spec.name]
            if spec.dictionary:
                a = np.array([self.state.string(int(g)) for g in a], dtype=object)
                b = np.array([self.state.string(int(g)) for g in b], dtype=object)
            assert bool(np.array_equal(a, b)), (spec.name, a, b)


def _value(c: Cursor, key: str) -> Any:
    kind = c.byte() % 12
    if kind == 0:
        return None
    if kind == 1:
        return c.uint(8) - (1 << 63)  # any int64
    if kind == 2:
        return (1 << 64) + c.uint(4)  # past int64
    if kind == 3:
        return [1, 2]
    if kind == 4:
        return c.byte() % 2 == 0
    if kind == 5:
        return float(c.uint(2)) / 7.0
    if kind == 6:
        return c.text()
    if kind == 7 and key == "requestTimestamp":
        y = 1 + c.uint(2) % 9999
        return f"{y:04d}-{1 + c.byte() % 12:02d}-02T10:00:{c.byte() % 60:02d}.{c.uint(2)}Z"
    # plausible values
    return {
        "requestTimestamp": f"2026-03-02T10:{c.byte() % 60:02d}:00.{c.byte() % 1000:03d}Z",
        "proxyResponseCode": (200, 404, 429, 503, 0, -1, 70000)[c.byte() % 7],
        "responseLatency": c.uint(2),
        "backendLatency": c.uint(2),
        "errorCode": (900806, 101503, 0, 2**31, -(2**31) - 1)[c.byte() % 5],
        "responseCacheHit": True,
    }.get(key, f"v{c.byte()}")


def _structured_lines(c: Cursor) -> list[bytes]:
    lines = []
    for _ in range(1 + c.byte() % 8):
        doc = {k: _value(c, k) for k in _KEYS if c.byte() % 8}
        kind = (b"response", b"faulty", b"other")[c.byte() % 3]
        body = json.dumps(doc).encode()
        cut = c.byte()
        if cut < 16:
            body = body[: len(body) * cut // 16]  # a truncated line
        lines.append(_PREFIX + kind + b", properties :" + body)
    return lines


TARGETS: Final = {"decoder": StreamTarget, "wso2_log": LogTarget}
CORPUS: Final = Path(__file__).parent / "corpus"


def make(name: str) -> Any:
    return TARGETS[name]()
