"""WSO2's ELK analytics log (``repository/logs/apim_metrics.log``) as event columns.

A metric line is ``... apimMetrics: apim:response, properties :{json}`` or ``apim:faulty``,
written by the ``ELKCounterMetric`` reporter (apim-analytics-publisher 1.0.8+, APIM 4.1+); every
other line is ignored. The JSON comes from a map, so key order means nothing. A metric line that
cannot be read is *rejected*: counted, and reported with its file and line number. Lines of the
publisher's ``LogCounterMetric`` reporter (``Metric Name: apim:response Metric Value: {k=v, ...}``,
a Java ``Map.toString()`` that cannot be split reliably: user agents hold ``", "``) are rejected
with a message naming the reporter to enable.

What WSO2 writes, read as WSO2 means it: since APIM 4.2 a fault line carries only the fault
schema (no method, resource, latencies or cache flag; its context is ``properties.apiContext``);
the response size is ``properties.responseSize``; the placeholder applications of
authentication faults (``UNKNOWN``) and of anonymous calls (``anonymous``) are no application
(the event counts for its API, never for a made-up subscription).

Files are streamed in chunks, each line bounded (``max_line_bytes``: a longer line is rejected
with its file:line and skipped without being held in memory); a gzipped file that ends early keeps
what was read and says where it ended (``ReplayStats.problems``). Several files (one per gateway
channel) are merged by event time so the windows see the traffic in the order it happened.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import orjson

from vigie.errors import InputError
from vigie.sources import _wso2_fast
from vigie.sources.timeline import Timeline
from vigie.wire import tenants
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
# the publisher's LogCounterMetric reporter: "Metric Name: apim:response Metric Value: {k=v, ...}"
LOG_COUNTER_MARKER: Final = b"Metric Name: apim:"
LOG_COUNTER_REASON: Final = (
    "a LogCounterMetric line (a Java Map.toString(), not JSON): vigie reads the ELK reporter's "
    'lines; enable it with [apim.analytics] type = "elk"'
)
CHUNK_LINES: Final = 32_768
DEFAULT_CHANNEL: Final = "default"
# a WSO2 analytics line is a few KiB at most (each string is capped at 4096 characters)
MAX_LINE_BYTES: Final = 1 << 20
# what WSO2 writes in applicationId when there is no application: authentication faults
# ("UNKNOWN", with the same in applicationName/Owner and keyType) and anonymous calls
PLACEHOLDER_APPLICATIONS: Final = frozenset({"UNKNOWN", "anonymous"})

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
    metric_lines: int = 0  # apimMetrics lines seen (read or rejected)
    log_counter_lines: int = 0  # LogCounterMetric lines (rejected)
    out_of_timeline: int = 0  # lines dated far from the lines around them (rejected)
    files: int = 0
    first_rejects: list[Rejected] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # files that could not be read whole
    max_reported: int = 5

    def reject(self, r: Rejected) -> None:
        self.rejected += 1
        if len(self.first_rejects) < self.max_reported:
            self.first_rejects.append(r)

    def closing_problems(self) -> list[str]:
        """What makes the replay incomplete, one sentence each (the CLI prints them and exits
        non-zero): files that ended early, and logs with no analytics line at all."""
        out = list(self.problems)
        if self.files and self.metric_lines == 0:
            files = f"{self.files} file" + ("s" if self.files != 1 else "")
            if self.log_counter_lines:
                out.append(
                    f"0 apimMetrics lines in {files}, but {self.log_counter_lines:,} "
                    "LogCounterMetric lines, which vigie does not read: enable the ELK reporter "
                    '([apim.analytics] type = "elk") and replay apim_metrics.log'
                )
            else:
                out.append(
                    f"0 apimMetrics lines in {files}: is [apim.analytics] enabled with "
                    'type = "elk" (the lines go to repository/logs/apim_metrics.log)?'
                )
        return out


def parse_source(spec: str) -> tuple[str, Path]:
    """``[CHANNEL=]PATH`` -> (channel, path)."""
    channel, sep, path = spec.partition("=")
    if not sep:
        return DEFAULT_CHANNEL, Path(spec)
    if not channel or not path:
        raise InputError(f"{spec!r}: expected [CHANNEL=]PATH")
    return channel, Path(path)


def check_readable(path: Path) -> None:
    """Refuse, with the reason in the user's words, a path that is not a readable file."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")


def open_log(path: Path) -> IO[bytes]:
    check_readable(path)
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
        self.event_lines: list[int] = []  # the line number of each event

    def feed(self, line: bytes) -> None:
        self.line_no += 1
        m = line.find(MARKER)
        if m < 0:
            if LOG_COUNTER_MARKER in line:
                self.stats.log_counter_lines += 1
                self.stats.reject(Rejected(self.path, self.line_no, LOG_COUNTER_REASON))
            else:
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
        target = max(0, _int(d.get("targetResponseCode"), 0))  # -1: backend never reached
        if target > 65535:
            raise ValueError(f"targetResponseCode out of range: {target}")
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
        props = d.get("properties")
        if not isinstance(props, dict):
            props = {}
        app_id = _str(d.get("applicationId"))
        app_name = _str(d.get("applicationName"))
        app_owner = _str(d.get("applicationOwner"))
        if app_id in PLACEHOLDER_APPLICATIONS:
            app_id = app_name = app_owner = ""
        version = _str(d.get("apiVersion"))
        # a fault line (APIM 4.2+) has its context in properties only
        context = _str(d.get("apiContext")) or _str(props.get("apiContext"))
        response_bytes = _int(props.get("responseSize"), -1)
        if response_bytes < 0:
            response_bytes = -1
        elif response_bytes >= 2**63:
            raise ValueError(f"properties.responseSize out of range: {response_bytes}")
        resource = _str(d.get("apiResourceTemplate"))
        method = method_number(_str(d.get("apiMethod")))
        key_type = KEY_TYPES.get(_str(d.get("keyType")).upper(), 0)
        tenant = tenants.clean(_str(d.get("apiCreatorTenantDomain")))
        api_id = tenants.clean(_str(d.get("apiId")))
        client_ip = tenants.clean(_str(d.get("userIp")))
        api = tenants.keyed_name(tenant, tenants.clean(api))  # an API is tenant x name x version
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
        c["response_bytes"].append(response_bytes)
        c["key_type"].append(key_type)
        c["subscription_tier"].append(0)
        c["uri_hash"].append(0)
        c["flags"].append(flags)
        c["tenant"].append(intern(tenant))
        c["api_id"].append(intern(api_id))
        c["client_ip"].append(intern(client_ip))
        c["target_status"].append(target)
        self.event_lines.append(self.line_no)
        self.stats.events += 1

    def take(self, sort: bool = True) -> Events:
        """The events parsed since the last call, sorted by event time (else in line order)."""
        n = len(self.cols["event_time_us"])
        columns = {name: np.array(v, dtype=ENGINE_DTYPES[name]) for name, v in self.cols.items()}
        self._reset()
        ev = Events(columns, np.full(n, self.channel, dtype=np.uint8))
        if not sort:
            return ev
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


def _bounded_lines(f: IO[bytes], limit: int) -> Iterator[tuple[bytes | None, int]]:
    """``(line, bytes)`` for each line of ``f``; ``(None, bytes)`` for a line longer than
    ``limit``, which is read past in pieces and never held whole."""
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            n = len(line)
            while True:
                part = f.readline(1 << 20)
                n += len(part)
                if not part or part.endswith(b"\n"):
                    break
            yield None, n
        else:
            yield line, len(line)


# what a damaged file raises while it is read (a truncated or corrupt gzip stream, a read error)
_READ_ERRORS: Final = (EOFError, gzip.BadGzipFile, zlib.error, OSError)


def _chunks(
    path: Path,
    parser: LineParser,
    on_bytes: Callable[[int], None] | None,
    fast: bool = True,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_skew_us: int = 0,
) -> Iterator[Events]:
    """The file's events, a chunk of lines at a time (each chunk sorted by event time).

    Metric lines are gathered per chunk and parsed all at once (``_wso2_fast``); a chunk with
    anything unusual is read line by line by ``parser``, which reports each bad line. A file
    that cannot be read to its end keeps the events read before the damage, and the damage is
    told in ``stats.problems``.
    """
    stats = parser.stats
    stats.files += 1
    read = 0  # events of this file
    timeline = Timeline(max_skew_us) if max_skew_us else None
    with open_log(path) as f:
        size = 0
        numbers: list[int] = []
        lines: list[bytes] = []
        json_parts: list[bytes] = []
        faults: list[bool] = []

        held: list[tuple[Events, list[int]]] = []  # a chunk's last lines, judged with the next

        def flush(final: bool = False) -> Iterator[Events]:
            nonlocal read
            if on_bytes is not None:
                on_bytes(size)
            if not lines:
                if final and held and timeline is not None:
                    rest = _confine(*held.pop(), timeline, str(path), stats, final=True)
                    if len(rest):
                        read += len(rest)
                        yield rest
                return
            ev: Events | None = None
            if fast:
                try:
                    ev = _wso2_fast.parse_chunk(
                        json_parts,
                        np.array(faults, dtype=np.bool_),
                        parser.channel,
                        parser.interner,
                        sort=timeline is None,
                    )
                    stats.events += len(ev)
                    event_lines = numbers
                except _wso2_fast.Unusual:
                    ev = None
            if ev is None:
                stats.careful_chunks += 1
                for k, line in zip(numbers, lines, strict=True):
                    parser.line_no = k - 1
                    parser.feed(line)
                event_lines = parser.event_lines
                ev = parser.take(sort=timeline is None)
            if timeline is not None:
                event_lines = list(event_lines)
                if held:
                    before, before_lines = held.pop()
                    ev = Events.concat([before, ev])
                    event_lines = before_lines + event_lines
                m = timeline.judged(len(ev), final)
                if m < len(ev):  # judged with the next chunk, which they are neighbours of
                    held.append((ev.take(slice(m, None)), event_lines[m:]))
                ev = _confine(ev, event_lines, timeline, str(path), stats, final=final)
            if len(ev):
                read += len(ev)
                yield ev

        damage: Exception | None = None
        try:
            for line_no, (raw, nbytes) in enumerate(_bounded_lines(f, max_line_bytes), start=1):
                size += nbytes
                if raw is None:
                    stats.metric_lines += 1
                    stats.reject(
                        Rejected(str(path), line_no, f"line longer than {max_line_bytes:,} bytes")
                    )
                    continue
                line = raw
                m = line.find(MARKER)
                if m < 0:
                    if LOG_COUNTER_MARKER in line:
                        stats.log_counter_lines += 1
                        stats.reject(Rejected(str(path), line_no, LOG_COUNTER_REASON))
                    else:
                        stats.ignored_lines += 1
                    continue
                stats.metric_lines += 1
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
        except _READ_ERRORS as exc:
            damage = exc
        yield from flush(final=True)
    if damage is not None:
        ended = path.stat().st_size
        stats.problems.append(
            f"{path}: {read:,} events read, the file ended early at byte {ended:,} "
            f"({_reason(damage)})"
        )


def _confine(
    ev: Events,
    lines: Sequence[int],
    timeline: Timeline,
    path: str,
    stats: ReplayStats,
    final: bool = True,
) -> Events:
    """``ev`` (in line order) without the lines its timeline refuses, each rejected with its
    file:line (``ReplayStats.out_of_timeline``); sorted by event time."""
    ts = ev["event_time_us"]
    out = timeline.outliers(ts, final)  # the first len(out) lines judged, the rest context
    ev = ev.take(slice(0, len(out)))
    for i in np.flatnonzero(out).tolist():
        stats.events -= 1
        stats.out_of_timeline += 1
        stats.reject(
            Rejected(
                path,
                lines[i],
                f"requestTimestamp {_iso(int(ts[i]))} is far from the lines around it "
                f"(more than {timeline.max_skew_us / 1e6:g} s and their spread)",
            )
        )
    if out.any():
        ev = ev.take(np.flatnonzero(~out))
    return ev.take(np.argsort(ev["event_time_us"], kind="stable"))


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_logs(
    sources: Sequence[tuple[int, Path]],
    interner: Interner,
    stats: ReplayStats,
    on_bytes: Callable[[int], None] | None = None,
    fast: bool = True,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_skew_us: int = 0,
) -> Iterator[Events]:
    """Events of several logs, merged by event time, in batches (sorted within each batch).

    Each file is read in chunks; a batch holds every buffered event up to the smallest of the
    files' newest buffered times, so events of different files interleave as they happened
    (within a file, out-of-order lines inside a chunk are put in order). With ``max_skew_us``,
    a line far from the lines around it is rejected (``vigie.sources.timeline``).
    """
    iters = [
        _chunks(
            path,
            LineParser(str(path), ch, interner, stats),
            on_bytes,
            fast,
            max_line_bytes,
            max_skew_us,
        )
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


__all__ = [
    "LineParser",
    "Rejected",
    "ReplayStats",
    "check_readable",
    "parse_source",
    "read_logs",
]
