"""A history over the gateway wire: WSO2's analytics logs streamed into live sidecars.

``forward`` is ``vigie replay --to``: it reads the logs as the local replay does (merged by event
time, ``read_logs``) and sends their events to every target as a handler configured with those
sidecar addresses would: each file is one gateway stream (``<gateway-id>-<n>``, its channel in
the Hello) on each target, batches dictionary-encoded in the canonical order, at most the
target's ``max_batch_events`` per batch, a fresh stream when the target's dictionary would
overflow. Pacing keeps event-time order across the streams: before the first event of another
file is sent, every batch already sent is acknowledged by every target (within one file the
stream itself keeps the order). ``slack_s`` relaxes it: events of the same ``slack_s`` slice of
event time go file by file, and the wait is once per slice.

A target that cannot be reached, or whose stream fails, is given up for the rest of the run:
the events it never acknowledged are counted dropped *for that target*, and the other targets
still get everything. Nothing is retried (a retry would apply twice what a failed stream had
applied but not acknowledged).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
import numpy as np
import numpy.typing as npt

from vigie import __version__
from vigie.errors import InputError
from vigie.sources.wso2_log import (
    MAX_LINE_BYTES,
    ReplayStats,
    check_readable,
    parse_source,
    read_logs,
)
from vigie.v1 import telemetry_pb2 as tpb
from vigie.v1 import telemetry_pb2_grpc as tpb_grpc
from vigie.wire import tenants
from vigie.wire.columns import COLUMNS, DICTIONARY_COLUMNS, Events, Interner, StreamEncoder

WELCOME_TIMEOUT_S: Final = 10.0
ACK_TIMEOUT_S: Final = 120.0  # a target that acknowledges nothing for this long is given up
_END: Final = None


def stream_credentials(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> grpc.ChannelCredentials | None:
    """TLS to the sidecars' gateway stream, as the handler's ``vigie.tls.*`` settings: the CA
    that signed their certificate, and this client's certificate and key for mTLS. None: no
    file given (plaintext)."""
    if ca_file is None and cert_file is None and key_file is None:
        return None
    if (cert_file is None) != (key_file is None):
        raise InputError("--cert-file and --key-file go together")
    if ca_file is None:
        raise InputError("--ca-file is needed with --cert-file (the sidecar's CA)")

    def read(path: Path | None, what: str) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise InputError(f"{what} {path}: {exc.strerror or exc}") from exc

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca_file, "--ca-file"),
        private_key=read(key_file, "--key-file"),
        certificate_chain=read(cert_file, "--cert-file"),
    )


def parse_targets(text: Sequence[str]) -> list[str]:
    """``--to`` values (each may hold several comma-separated addresses) -> the addresses, in
    order; an empty or a repeated address is refused (it would be sent everything twice)."""
    out: list[str] = []
    for value in text:
        for addr in value.split(","):
            addr = addr.strip()
            if not addr:
                raise InputError(f"--to {value!r}: empty address")
            if addr in out:
                raise InputError(f"--to: {addr} is given twice")
            out.append(addr)
    if not out:
        raise InputError("--to: no address")
    return out


class _Link:
    """One gateway stream to one target: sends batches, counts what the target acknowledges."""

    def __init__(self, chan: grpc.Channel, hello: tpb.Hello, cond: threading.Condition) -> None:
        self._cond = cond
        self._out: queue.Queue[tpb.GatewayMessage | None] = queue.Queue()
        self._hello = hello
        self.encoder = StreamEncoder()
        self.known: set[str] = {""}  # the strings of the stream's dictionary
        self.welcome: tpb.Welcome | None = None
        self.error: str | None = None
        self.closed = False
        self.acked = 0
        self._pending: dict[int, int] = {}  # sequence -> events, sent and not yet acknowledged
        self._call = tpb_grpc.TelemetryStub(chan).Stream(self._requests())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _requests(self) -> Iterator[tpb.GatewayMessage]:
        yield tpb.GatewayMessage(hello=self._hello)
        while (m := self._out.get()) is not _END:
            yield m

    def _run(self) -> None:
        try:
            for msg in self._call:
                kind = msg.WhichOneof("kind")
                with self._cond:
                    if kind == "welcome":
                        self.welcome = msg.welcome
                    elif kind == "ack":
                        for seq in [s for s in self._pending if s <= msg.ack.sequence]:
                            self.acked += self._pending.pop(seq)
                    self._cond.notify_all()
        except grpc.RpcError as exc:
            with self._cond:
                self.error = f"{exc.code().name}: {exc.details()}"
        finally:
            with self._cond:
                self.closed = True
                if self.error is None and self._pending:
                    self.error = "the stream ended before every batch was acknowledged"
                self._cond.notify_all()

    @property
    def up(self) -> bool:
        return self.welcome is not None and not self.closed and self.error is None

    @property
    def outstanding(self) -> int:
        return sum(self._pending.values())

    def send(self, batch: tpb.EventBatch) -> None:
        """Queue one batch (call with the condition held)."""
        self._pending[batch.sequence] = batch.count
        self._out.put(tpb.GatewayMessage(batch=batch))

    def finish(self) -> None:
        """End the stream (the target has acknowledged everything, or is given up)."""
        self._out.put(_END)

    def cancel(self) -> None:
        self._call.cancel()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@dataclass(slots=True)
class TargetStats:
    """What one target acknowledged and what it lost."""

    address: str
    sent: int = 0
    acked: int = 0
    dropped: int = 0
    streams: int = 0
    sidecar_id: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "sidecar_id": self.sidecar_id,
            "acked": self.acked,
            "dropped": self.dropped,
            "streams": self.streams,
            "error": self.error,
        }


class _Target:
    """Every stream of one address: one per file, opened at the start."""

    def __init__(
        self,
        address: str,
        hellos: Sequence[tpb.Hello],
        cond: threading.Condition,
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str = "",
    ) -> None:
        self.stats = TargetStats(address)
        self._cond = cond
        self._hellos = hellos
        if credentials is None:
            self._chan = grpc.insecure_channel(address)
        else:
            options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
            self._chan = grpc.secure_channel(address, credentials, options=options)
        self.links: list[_Link | None] = [None] * len(hellos)
        self.retired = 0  # events acknowledged on streams since rolled over
        self.given_up = False

    def open(self, k: int) -> _Link | None:
        """A fresh stream for file ``k`` (and its own dictionary), once it is welcomed."""
        link = _Link(self._chan, self._hellos[k], self._cond)
        deadline = time.monotonic() + WELCOME_TIMEOUT_S
        with self._cond:
            while link.welcome is None and not link.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    link.error = f"no Welcome within {WELCOME_TIMEOUT_S:g} s"
                    break
                self._cond.wait(left)
            if link.welcome is None:
                self.give_up(link.error or "the stream ended before its Welcome")
                link.cancel()
                return None
            self.stats.sidecar_id = link.welcome.sidecar_id
            self.stats.streams += 1
        self.links[k] = link
        return link

    def give_up(self, error: str) -> None:
        """Stop sending to this target (call with the condition held)."""
        if not self.given_up:
            self.given_up = True
            self.stats.error = error

    def acked(self) -> int:
        return self.retired + sum(lk.acked for lk in self.links if lk is not None)

    def close(self) -> None:
        for lk in self.links:
            if lk is not None:
                lk.finish()
        for lk in self.links:
            if lk is not None:
                lk.join(10.0)
                lk.cancel()
        self._chan.close()


@dataclass(slots=True)
class ForwardReport:
    stats: ReplayStats
    offered: int = 0
    targets: list[TargetStats] = field(default_factory=list)
    gateways: list[dict[str, str]] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return sum(t.dropped for t in self.targets)

    def to_json(self) -> dict[str, Any]:
        return {
            "offered": self.offered,
            "rejected": self.stats.rejected,
            "rejected_out_of_timeline": self.stats.out_of_timeline,
            "gateways": self.gateways,
            "targets": [t.to_json() for t in self.targets],
        }


class _Forwarder:
    def __init__(self, targets: list[_Target], cond: threading.Condition, strings: Interner):
        self.targets = targets
        self._cond = cond
        self._strings = strings
        self.offered = 0

    def send(self, k: int, ev: Events) -> None:
        """File ``k``'s events to every target still up (in batches each target accepts)."""
        self.offered += len(ev)
        # a gateway sends the API's name, its tenant in the tenant column (vigie.wire.tenants)
        bare = tenants.bare_names(self._strings, ev["api_name"])
        if bare is not ev["api_name"]:
            ev = Events(ev.columns | {"api_name": bare}, ev.channel)
        for t in self.targets:
            self._send_to(t, k, ev)

    def _send_to(self, t: _Target, k: int, ev: Events) -> None:
        start = 0
        while start < len(ev):
            link = t.links[k]
            if t.given_up or link is None:
                return  # the rest counts as dropped for this target
            assert link.welcome is not None
            n = max(1, link.welcome.max_batch_events)
            limit = link.welcome.max_dictionary_entries
            while True:
                part = ev.take(slice(start, start + n))
                fits = len(link.known) + len(_new_strings(part, self._strings, link.known))
                if not limit or fits <= limit or n == 1:
                    break
                if len(link.known) == 1:
                    n = max(1, n // 2)  # too many strings even for a fresh dictionary
                    continue
                break
            if limit and fits > limit:
                if len(link.known) > 1:
                    self._roll_over(t, k)  # a fresh stream starts a fresh dictionary
                    continue
                with self._cond:  # one event alone: the sidecar would refuse it
                    t.give_up(f"an event holds more strings than max_dictionary_entries {limit}")
                return
            batch = _encode(part, self._strings, link)
            with self._cond:
                if not link.up:
                    t.give_up(link.error or "the stream ended")
                    continue
                link.send(batch)
                t.stats.sent += len(part)
            start += len(part)

    def _roll_over(self, t: _Target, k: int) -> None:
        link = t.links[k]
        assert link is not None
        self.wait()
        if t.given_up:
            return
        link.finish()
        link.join(10.0)
        t.retired += link.acked
        t.links[k] = None
        t.open(k)

    def wait(self) -> None:
        """Until every target has acknowledged all it was sent (or is given up)."""
        with self._cond:
            for t in self.targets:
                deadline = time.monotonic() + ACK_TIMEOUT_S
                last = t.acked()
                for lk in t.links:
                    while lk is not None and lk.outstanding and not t.given_up:
                        if not lk.up:
                            t.give_up(lk.error or "the stream ended")
                            break
                        now = time.monotonic()
                        if t.acked() != last:
                            last, deadline = t.acked(), now + ACK_TIMEOUT_S
                        if now >= deadline:
                            t.give_up(f"nothing acknowledged for {ACK_TIMEOUT_S:g} s")
                            break
                        self._cond.wait(min(1.0, deadline - now))


def _new_strings(ev: Events, strings: Interner, known: set[str]) -> list[str]:
    """The strings of ``ev`` the stream's dictionary does not hold yet, in canonical order
    (events in order, within an event the dictionary columns in proto order)."""
    ids = np.stack([ev[c] for c in DICTIONARY_COLUMNS], axis=1).ravel()
    uniq, first = np.unique(ids, return_index=True)
    ordered = uniq[np.argsort(first, kind="stable")]
    return [s for i in ordered if (s := strings.string(int(i))) not in known]


def _encode(ev: Events, strings: Interner, link: _Link) -> tpb.EventBatch:
    """``ev`` (global string ids) as the stream's next batch (its own dictionary ids)."""
    enc = link.encoder
    for s in _new_strings(ev, strings, link.known):
        enc.intern(s)
        link.known.add(s)
    cols: dict[str, npt.NDArray[Any]] = {}
    for spec in COLUMNS:
        values = ev[spec.name]
        if spec.dictionary:
            uniq, inverse = np.unique(values, return_inverse=True)
            local = np.array([enc.intern(strings.string(int(i))) for i in uniq], dtype=np.uint32)
            values = local[inverse]
        cols[spec.name] = values
    return enc.batch(cols, sent_at_us=int(time.time() * 1e6))


def _slices(ev: Events, slack_us: int) -> Iterator[list[tuple[int, Events]]]:
    """``ev`` (sorted by event time, ``channel`` = file index) as slices of (file, events):
    every file's events of one slice go out before the next slice. With no slack a slice is a
    run of one file's events; else it is ``slack_us`` of event time, file by file."""
    times = ev["event_time_us"].astype(np.int64)
    key = ev.channel.astype(np.int64) if slack_us <= 0 else times // slack_us
    cuts = np.flatnonzero(np.diff(key)) + 1
    bounds = [0, *cuts.tolist(), len(ev)]
    for a, b in itertools.pairwise(bounds):
        part = ev.take(slice(a, b))
        out = []
        for k in np.unique(part.channel):
            out.append((int(k), part.take(np.flatnonzero(part.channel == k))))
        yield out


def forward(
    sources: Sequence[str],
    targets: Sequence[str],
    gateway_id: str = "replay",
    slack_s: float = 0.0,
    on_bytes: Callable[[int], None] | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    server_name: str = "",
    max_line_bytes: int = MAX_LINE_BYTES,
    max_skew_us: int = 0,
) -> ForwardReport:
    """Stream the logs named by ``[CHANNEL=]PATH`` specs to every address in ``targets``
    (over TLS with ``credentials``; ``server_name``: the name their certificates carry, when
    not the address's host). Lines are read as the local replay reads them: a line longer
    than ``max_line_bytes``, or dated more than ``max_skew_us`` (and its neighbours' spread)
    from the lines around it (``vigie.sources.timeline``; 0: not checked), is rejected with
    its file:line and counted (``ReplayStats``), never sent. The streams are marked
    ``Hello.history``: the sidecars make them wait for their data writers rather than drop."""
    if not gateway_id:
        raise InputError("--gateway-id: empty")
    if slack_s < 0:
        raise InputError("--slack: must not be negative")
    parsed = [parse_source(s) for s in sources]
    if len(parsed) > 255:
        raise InputError(f"{len(parsed)} files: at most 255 in one replay")
    for _, path in parsed:
        check_readable(path)
    hellos = [
        tpb.Hello(
            gateway_id=f"{gateway_id}-{n}",
            channel=channel,
            handler_version=f"vigie-replay {__version__}",
            protocol_version=1,
            history=True,
        )
        for n, (channel, _) in enumerate(parsed, start=1)
    ]
    report = ForwardReport(ReplayStats())
    report.gateways = [
        {"gateway_id": h.gateway_id, "channel": h.channel, "path": str(p)}
        for h, (_, p) in zip(hellos, parsed, strict=True)
    ]
    cond = threading.Condition()
    live = [_Target(a, hellos, cond, credentials, server_name) for a in targets]
    for t in live:
        for k in range(len(hellos)):
            if t.open(k) is None:
                break
    strings = Interner()
    fw = _Forwarder(live, cond, strings)
    resolved: list[tuple[int, Path]] = [(k, path) for k, (_, path) in enumerate(parsed)]
    try:
        last = -1
        lines = read_logs(
            resolved, strings, report.stats, on_bytes, max_line_bytes=max_line_bytes,
            max_skew_us=max_skew_us,
        )  # fmt: skip
        for ev in lines:
            for piece in _slices(ev, int(slack_s * 1e6)):
                if piece[0][0] != last or len(piece) > 1:
                    fw.wait()
                for k, part in piece:
                    fw.send(k, part)
                last = piece[-1][0]
        fw.wait()
    finally:
        for t in live:
            with cond:
                if not t.given_up and any(lk and lk.outstanding for lk in t.links):
                    t.give_up("interrupted")
            t.close()
    report.offered = fw.offered
    for t in live:
        t.stats.acked = t.acked()
        t.stats.dropped = report.offered - t.stats.acked
        report.targets.append(t.stats)
    return report


__all__ = ["ForwardReport", "TargetStats", "forward", "parse_targets", "stream_credentials"]
