"""WSO2's ELK analytics log (``repository/logs/apim_metrics.log``) as event columns.

A metric line is ``... apimMetrics: apim:response, properties :{json}`` or ``apim:faulty``
(``ELKCounterMetric`` or the older ``LogCounterMetric`` reporter); every other line is ignored.
The JSON comes from a map, so key order means nothing. A metric line that cannot be read is
*rejected*: counted, and reported with its file and line number.

Files are streamed in chunks; several files (one per gateway channel) are merged by event time
so the windows see the traffic in the order it happened.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import orjson

from vigie.errors import InputError
from vigie.sources import _wso2_fast
from vigie.wire.columns import (
    COLUMNS,
    ENGINE_DTYPES,
    KEY_TYPES,
    MAX_EVENT_TIME_US,
    Events,
    Interner,
    method_number,
)

MARKER: Final = b"apimMetrics: apim:"
PROPERTIES: Final = b"properties :"
CHUNK_LINES: Final = 32_768
DEFAULT_CHANNEL: Final = "default"

FLAG_THROTTLED: Final = 1
FLAG_CACHE_HIT: Final = 2
FLAG_FAULT: Final = 4

# status when a fault event carries no proxyResponseCode
_FAULT_STATUS: Final = {"THROTTLED": 429, "AUTH": 401, "TARGET_CONNECTIVITY": 503}


@dataclass(frozen=True, slots=True)
class Rejected:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(slots=True)
class ReplayStats:
    events: int = 0
    rejected: int = 0
    ignored_lines: int = 0
    careful_chunks: int = 0  # chunks read line by line (something unusual in them)
    first_rejects: list[Rejected] = field(default_factory=list)
    max_reported: int = 5

    def reject(self, r: Rejected) -> None:
        self.rejected += 1
        if len(self.first_rejects) < self.max_reported:
            self.first_rejects.append(r)


def parse_source(spec: str) -> tuple[str, Path]:
    """``[CHANNEL=]PATH`` -> (channel, path)."""
    channel, sep, path = spec.partition("=")
    if not sep:
        return DEFAULT_CHANNEL, Path(spec)
    if not channel or not path:
        raise InputError(f"{spec!r}: expected [CHANNEL=]PATH")
    return channel, Path(path)


def open_log(path: Path) -> IO[bytes]:
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc


class _Timestamps:
    """ISO 8601 -> microseconds, memoising the whole-second part (most lines share it)."""

    def __init__(self) -> None:
        self._seconds: dict[str, int] = {}

    def __call__(self, s: str) -> int:
        # fast path: "YYYY-MM-DDTHH:MM:SS[.fff...]Z"
        if len(s) >= 20 and s[-1] == "Z" and s[10] == "T":
            head = s[:19]
            base = self._seconds.get(head)
            if base is None:
                base = int(datetime.fromisoformat(head + "+00:00").timestamp()) * 1_000_000
                self._seconds[head] = base
            frac = s[19:-1]
            if not frac:
                return base
            if frac[0] != "." or not frac[1:].isdigit():
                raise ValueError(f"bad fraction of a second in {s!r}")
            digits = (frac[1:] + "000000")[:6]
            return base + int(digits)
        dt = datetime.fromisoformat(s)
        if dt.tzinfo is None:
            raise ValueError(f"timestamp without a time zone: {s!r}")
        return int(dt.timestamp() * 1_000_000)


def _int(v: Any, default: int) -> int:
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        raise ValueError(f"expected a number, got {v!r}")
    return int(v)


class LineParser:
    """Turns metric lines into column lists; one per file (it keeps the line number)."""

    def __init__(self, path: str, channel: int, interner: Interner, stats: ReplayStats) -> None:
        self.path = path
        self.channel = channel
        self.interner = interner
        self.stats = stats
        self.line_no = 0
        self._ts = _Timestamps()
        self._reset()

    def _reset(self) -> None:
        self.cols: dict[str, list[int]] = {c.name: [] for c in COLUMNS}

    def feed(self, line: bytes) -> None:
        self.line_no += 1
        m = line.find(MARKER)
        if m < 0:
            self.stats.ignored_lines += 1
            return
        try:
            self._parse(line, m + len(MARKER))
        except (ValueError, TypeError, KeyError, OverflowError, orjson.JSONDecodeError) as exc:
            self.stats.reject(Rejected(self.path, self.line_no, _reason(exc)))

    def _parse(self, line: bytes, pos: int) -> None:
        if line.startswith(b"response", pos):
            fault = False
        elif line.startswith(b"faulty", pos):
            fault = True
        else:
            end = line.find(b",", pos)
            name = line[pos : end if end > 0 else pos + 20].decode(errors="replace")
            raise ValueError(f"unknown metric apim:{name}")
        p = line.find(PROPERTIES, pos)
        if p < 0:
            raise ValueError("no 'properties :' in the metric line")
        d = orjson.loads(line[p + len(PROPERTIES) :])
        if not isinstance(d, dict):
            raise ValueError("properties is not a JSON object")
        ts_raw = d.get("requestTimestamp")
        if isinstance(ts_raw, int | float) and not isinstance(ts_raw, bool):
            ts = int(ts_raw * 1000)  # epoch milliseconds, as some reporters write it
        elif isinstance(ts_raw, str):
            try:
                ts = self._ts(ts_raw)
            except ValueError as exc:
                raise ValueError(f"requestTimestamp {ts_raw!r} is not an ISO 8601 time") from exc
        else:
            raise ValueError("requestTimestamp missing")
        if ts <= 0:
            raise ValueError(f"requestTimestamp before 1970: {ts_raw}")
        if ts >= MAX_EVENT_TIME_US:  # the column is int64 microseconds; the stream's limit
            raise ValueError(f"requestTimestamp after the year 3000: {ts_raw}")
        api = d.get("apiName")
        if not isinstance(api, str) or not api:
            raise ValueError("apiName missing")
        error_type = d.get("errorType") or ""
        error_code = _int(d.get("errorCode"), 0)
        if not -(2**31) <= error_code < 2**31:  # the column is int32 (WSO2 codes are 6 digits)
            raise ValueError(f"errorCode out of range: {error_code}")
        status = _int(d.get("proxyResponseCode"), 0)
        if status <= 0 and fault:
            status = _FAULT_STATUS.get(str(error_type), 500)
        if not 0 <= status <= 65535:
            raise ValueError(f"proxyResponseCode out of range: {status}")
        latency_ms = _int(d.get("responseLatency"), 0)
        backend_ms = _int(d.get("backendLatency"), 0)
        flags = FLAG_FAULT if fault else 0
        if error_type == "THROTTLED" or 900800 <= error_code <= 900899:
            flags |= FLAG_THROTTLED
        if d.get("responseCacheHit") is True:
            flags |= FLAG_CACHE_HIT
        # read every value before appending any: a bad field must not leave the columns
        # of different lengths (every later event would be shifted)
        app_id = _str(d.get("applicationId"))
        app_name = _str(d.get("applicationName"))
        app_owner = _str(d.get("applicationOwner"))
        version = _str(d.get("apiVersion"))
        context = _str(d.get("apiContext"))
        resource = _str(d.get("apiResourceTemplate"))
        method = method_number(_str(d.get("apiMethod")))
        key_type = KEY_TYPES.get(_str(d.get("keyType")).upper(), 0)
        intern = self.interner.intern
        c = self.cols
        c["event_time_us"].append(ts)
        c["application_id"].append(intern(app_id))
        c["application_name"].append(intern(app_name))
        c["application_owner"].append(intern(app_owner))
        c["api_name"].append(intern(api))
        c["api_version"].append(intern(version))
        c["api_context"].append(intern(context))
        c["resource_template"].append(intern(resource))
        c["http_method"].append(method)
        c["http_status"].append(status)
        c["error_code"].append(error_code)
        c["latency_us"].append(_clamp_u32(latency_ms * 1000))
        c["backend_latency_us"].append(_clamp_u32(backend_ms * 1000))
        c["request_bytes"].append(-1)
        c["response_bytes"].append(-1)
        c["key_type"].append(key_type)
        c["subscription_tier"].append(0)
        c["uri_hash"].append(0)
        c["flags"].append(flags)
        self.stats.events += 1

    def take(self) -> Events:
        """The events parsed since the last call, sorted by event time."""
        n = len(self.cols["event_time_us"])
        columns = {name: np.array(v, dtype=ENGINE_DTYPES[name]) for name, v in self.cols.items()}
        self._reset()
        ev = Events(columns, np.full(n, self.channel, dtype=np.uint8))
        order = np.argsort(ev["event_time_us"], kind="stable")
        return ev.take(order)


def _str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v if len(v) <= 4096 else v[:4096]
    raise ValueError(f"expected a string, got {type(v).__name__}")


def _clamp_u32(v: int) -> int:
    if v < 0:
        return 0
    return min(v, 0xFFFFFFFF)


def _reason(exc: Exception) -> str:
    if isinstance(exc, orjson.JSONDecodeError):
        return f"broken JSON: {exc}"
    return str(exc) or type(exc).__name__


def _chunks(
    path: Path, parser: LineParser, on_bytes: Callable[[int], None] | None, fast: bool = True
) -> Iterator[Events]:
    """The file's events, a chunk of lines at a time (each chunk sorted by event time).

    Metric lines are gathered per chunk and parsed all at once (``_wso2_fast``); a chunk with
    anything unusual is read line by line by ``parser``, which reports each bad line.
    """
    stats = parser.stats
    with open_log(path) as f:
        size = 0
        numbers: list[int] = []
        lines: list[bytes] = []
        json_parts: list[bytes] = []
        faults: list[bool] = []

        def flush() -> Iterator[Events]:
            if on_bytes is not None:
                on_bytes(size)
            if not lines:
                return
            ev: Events | None = None
            if fast:
                try:
                    ev = _wso2_fast.parse_chunk(
                        json_parts,
                        np.array(faults, dtype=np.bool_),
                        parser.channel,
                        parser.interner,
                    )
                    stats.events += len(ev)
                except _wso2_fast.Unusual:
                    ev = None
            if ev is None:
                stats.careful_chunks += 1
                for k, line in zip(numbers, lines, strict=True):
                    parser.line_no = k - 1
                    parser.feed(line)
                ev = parser.take()
            if len(ev):
                yield ev

        for line_no, line in enumerate(f, start=1):
            size += len(line)
            m = line.find(MARKER)
            if m < 0:
                stats.ignored_lines += 1
            else:
                numbers.append(line_no)
                lines.append(line)
                p = line.find(PROPERTIES, m)
                fault = line.startswith(b"faulty", m + len(MARKER))
                ok = p > 0 and (fault or line.startswith(b"response", m + len(MARKER)))
                # a line the fast way cannot frame goes to the careful way with its chunk
                json_parts.append(line[p + len(PROPERTIES) :].strip() if ok else b"")
                faults.append(fault)
            if len(lines) >= CHUNK_LINES:
                yield from flush()
                numbers, lines, json_parts, faults = [], [], [], []
                size = 0
        yield from flush()


def read_logs(
    sources: Sequence[tuple[int, Path]],
    interner: Interner,
    stats: ReplayStats,
    on_bytes: Callable[[int], None] | None = None,
    fast: bool = True,
) -> Iterator[Events]:
    """Events of several logs, merged by event time, in batches (sorted within each batch).

    Each file is read in chunks; a batch holds every buffered event up to the smallest of the
    files' newest buffered times, so events of different files interleave as they happened
    (within a file, out-of-order lines inside a chunk are put in order).
    """
    iters = [
        _chunks(path, LineParser(str(path), ch, interner, stats), on_bytes, fast)
        for ch, path in sources
    ]
    if len(iters) == 1:
        yield from iters[0]
        return
    buffers: list[Events | None] = [next(it, None) for it in iters]
    while True:
        live = [b for b in buffers if b is not None]
        if not live:
            return
        watermark = min(int(b["event_time_us"][-1]) for b in live)
        parts: list[Events] = []
        for k, b in enumerate(buffers):
            if b is None:
                continue
            cut = int(np.searchsorted(b["event_time_us"], watermark, side="right"))
            if cut:
                parts.append(b.take(slice(0, cut)))
            rest = b.take(slice(cut, None))
            buffers[k] = rest if len(rest) else next(iters[k], None)
        merged = Events.concat(parts)
        yield merged.take(np.argsort(merged["event_time_us"], kind="stable"))


__all__ = ["LineParser", "Rejected", "ReplayStats", "parse_source", "read_logs"]
