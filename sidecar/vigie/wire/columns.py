"""Event batches <-> numpy columns.

The gateway side (``StreamEncoder``: used by the simulator, the benchmarks and the test vectors)
and the sidecar side (``StreamDecoder``) of the columnar, dictionary-encoded ``EventBatch``
described in ``proto/vigie/v1/telemetry.proto``. Decoding does no per-event Python work: each
column is one ``np.frombuffer`` (a read-only view, no copy) and string ids become global ids
with one jitted pass per column; most of it needs no lock (``StreamDecoder``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from numba import njit

from vigie.errors import BatchRefused
from vigie.v1 import telemetry_pb2 as pb
from vigie.wire.tenants import KEY_SEPARATOR, keyed_names

MAX_STRING_BYTES: Final = 4096  # of one dictionary string (the total: setting max_string_bytes)
RELEASE_GRACE_S: Final = 60.0  # a released string id is not handed out again before this
MAX_EVENT_TIME_US: Final = 32_503_680_000_000_000  # 3000-01-01


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One per-event column of ``EventBatch``."""

    name: str
    wire_dtype: str  # little-endian numpy dtype on the wire
    dictionary: bool  # holds dictionary ids
    required: bool  # an empty column is refused (else it means "all default")
    default: int


COLUMNS: Final[tuple[ColumnSpec, ...]] = (
    ColumnSpec("event_time_us", "<i8", False, True, 0),
    ColumnSpec("application_id", "<u4", True, True, 0),
    ColumnSpec("application_name", "<u4", True, False, 0),
    ColumnSpec("application_owner", "<u4", True, False, 0),
    ColumnSpec("api_name", "<u4", True, True, 0),
    ColumnSpec("api_version", "<u4", True, True, 0),
    ColumnSpec("api_context", "<u4", True, False, 0),
    ColumnSpec("resource_template", "<u4", True, False, 0),
    ColumnSpec("http_method", "u1", False, False, 0),
    ColumnSpec("http_status", "<u2", False, True, 0),
    ColumnSpec("error_code", "<i4", False, False, 0),
    ColumnSpec("latency_us", "<u4", False, False, 0),
    ColumnSpec("backend_latency_us", "<u4", False, False, 0),
    ColumnSpec("request_bytes", "<i8", False, False, -1),
    ColumnSpec("response_bytes", "<i8", False, False, -1),
    ColumnSpec("key_type", "u1", False, False, 0),
    ColumnSpec("subscription_tier", "<u4", True, False, 0),
    ColumnSpec("uri_hash", "<u8", False, False, 0),
    ColumnSpec("flags", "u1", False, False, 0),
    # optional since the tenant columns (absent = zeros; tenant 0 = the stream's Hello.tenant)
    ColumnSpec("tenant", "<u4", True, False, 0),
    ColumnSpec("api_id", "<u4", True, False, 0),
    ColumnSpec("client_ip", "<u4", True, False, 0),
    ColumnSpec("target_status", "<u2", False, False, 0),
)
COLUMN_NAMES: Final = tuple(c.name for c in COLUMNS)
_WIDTHS: Final = {c.name: np.dtype(c.wire_dtype).itemsize for c in COLUMNS}
DICTIONARY_COLUMNS: Final = tuple(c.name for c in COLUMNS if c.dictionary)

# dtype of each column once inside the sidecar (dictionary ids become int32 global ids)
ENGINE_DTYPES: Final[Mapping[str, np.dtype[Any]]] = {
    c.name: np.dtype(np.int32) if c.dictionary else np.dtype(c.wire_dtype).newbyteorder("=")
    for c in COLUMNS
}

# the values columns whose wire dtype is the engine's (every one on a little-endian machine)
_NATIVE: Final = {c.name: np.dtype(c.wire_dtype) == ENGINE_DTYPES[c.name] for c in COLUMNS}

# HTTP method names <-> HttpMethod numbers
METHODS: Final[Mapping[str, int]] = {
    "GET": pb.HTTP_METHOD_GET,
    "HEAD": pb.HTTP_METHOD_HEAD,
    "POST": pb.HTTP_METHOD_POST,
    "PUT": pb.HTTP_METHOD_PUT,
    "DELETE": pb.HTTP_METHOD_DELETE,
    "PATCH": pb.HTTP_METHOD_PATCH,
    "OPTIONS": pb.HTTP_METHOD_OPTIONS,
}
METHOD_NAMES: Final[Mapping[int, str]] = {v: k for k, v in METHODS.items()} | {
    pb.HTTP_METHOD_OTHER: "OTHER",
    pb.HTTP_METHOD_UNSPECIFIED: "",
}
KEY_TYPES: Final[Mapping[str, int]] = {
    "PRODUCTION": pb.KEY_TYPE_PRODUCTION,
    "SANDBOX": pb.KEY_TYPE_SANDBOX,
}


def method_number(name: str | None) -> int:
    if not name:
        return pb.HTTP_METHOD_UNSPECIFIED
    return METHODS.get(name.upper(), pb.HTTP_METHOD_OTHER)


@dataclass(slots=True)
class Events:
    """A batch of events as numpy columns inside the sidecar.

    String columns hold global ids of the sidecar's ``Interner`` (0 = absent). ``channel``
    is the index of the gateway channel in the interner of channels.
    """

    columns: dict[str, npt.NDArray[Any]]
    channel: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.channel)

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.columns[name]

    def take(self, index: npt.NDArray[np.intp] | slice) -> Events:
        """The events of ``index``; a read-only column stays read-only (the kernels are
        compiled for the columns' types, writable or not)."""
        cols = {
            k: v[index] if v.flags.writeable else _frozen(v[index]) for k, v in self.columns.items()
        }
        return Events(cols, self.channel[index])

    @staticmethod
    def concat(parts: Sequence[Events]) -> Events:
        if len(parts) == 1:
            return parts[0]
        cols = {name: np.concatenate([p.columns[name] for p in parts]) for name in COLUMN_NAMES}
        return Events(cols, np.concatenate([p.channel for p in parts]))

    @staticmethod
    def empty() -> Events:
        return Events(
            {n: np.empty(0, dtype=ENGINE_DTYPES[n]) for n in COLUMN_NAMES},
            np.empty(0, dtype=np.uint8),
        )


class Interner:
    """Strings <-> dense global ids, 0 being the empty string. Shared by all streams.

    Bounded by releasing: ``release`` forgets strings nothing refers to any more (the sidecar
    computes that, see ``Sidecar.compact_strings`` in vigie.server.core); their ids are handed out
    only after ``settle`` says every reader that could still hold them is done (the data writer
    resolves the ids it queued at its next flush). A released id reads as the empty string, and
    ``strings()`` keeps it as a hole (``""`` past index 0), so a snapshot restores the holes as
    free ids.

    ``bytes`` is the UTF-8 size of the strings held, what ``max_string_bytes`` bounds (the
    sidecar checks a batch's new strings against it before they are interned).
    """

    def __init__(self, strings: Sequence[str] = ("",)) -> None:
        if not strings or strings[0] != "":
            raise ValueError("an interner's first string must be the empty string")
        self._strings: list[str] = list(strings)
        self._ids: dict[str, int] = {}
        self._free: list[int] = []
        self._quarantine: list[tuple[int, float, list[int]]] = []
        for i, s in enumerate(self._strings):
            if i and not s:
                self._free.append(i)  # a hole left by release()
            else:
                self._ids[s] = i
        self._free.reverse()  # lowest ids first (pop() takes from the end)
        self.released = 0
        self.bytes = sum(len(s.encode()) for s in self._strings)

    def __len__(self) -> int:
        """Ids handed out so far, holes included: every global id is below it."""
        return len(self._strings)

    @property
    def live(self) -> int:
        """Strings held (the empty string included)."""
        return len(self._ids)

    @property
    def reusable(self) -> int:
        return len(self._free)

    def _add(self, s: str) -> int:
        if self._free:
            i = self._free.pop()
            self._strings[i] = s
        else:
            i = len(self._strings)
            self._strings.append(s)
        self._ids[s] = i
        self.bytes += len(s.encode())
        return i

    def intern(self, s: str) -> int:
        i = self._ids.get(s)
        if i is None:
            i = self._add(s)
        return i

    def intern_many(self, strings: Sequence[str]) -> npt.NDArray[np.int32]:
        ids = self._ids
        out = np.empty(len(strings), dtype=np.int32)
        for k, s in enumerate(strings):
            i = ids.get(s)
            if i is None:
                i = self._add(s)
            out[k] = i
        return out

    def lookup(self, s: str) -> int | None:
        return self._ids.get(s)

    def unknown(self, strings: Sequence[str]) -> tuple[int, int]:
        """How many of ``strings`` are not held yet, and their UTF-8 bytes (a string twice in
        ``strings`` counts twice): what interning them would add at most."""
        ids = self._ids
        new = [s for s in strings if s not in ids]
        return len(new), sum(len(s.encode()) for s in new)

    def string(self, i: int) -> str:
        return self._strings[i]

    def strings(self) -> list[str]:
        return list(self._strings)

    def release(self, ids: Sequence[int], epoch: int = 0, now: float = 0.0) -> int:
        """Forget the strings of ``ids`` (0 and holes are skipped); their ids become reusable
        once ``settle(e, t)`` is called with ``e >= epoch`` and ``t >= now + RELEASE_GRACE_S``.
        Returns how many were released."""
        out: list[int] = []
        for i in ids:
            s = self._strings[i]
            if i == 0 or not s:
                continue
            del self._ids[s]
            self._strings[i] = ""
            self.bytes -= len(s.encode())
            out.append(i)
        if out:
            self._quarantine.append((epoch, now, out))
            self.released += len(out)
        return len(out)

    def settle(self, epoch: int, now: float = float("inf")) -> int:
        """Ids released at ``epoch`` or before, and at least ``RELEASE_GRACE_S`` before
        ``now``, become reusable; returns how many. The epoch covers readers that queue ids
        (the data writer); the grace covers those that read a few ids outside the lock
        (an export's collection)."""
        keep: list[tuple[int, float, list[int]]] = []
        freed: list[int] = []
        for e, t, ids in self._quarantine:
            if e <= epoch and now - t >= RELEASE_GRACE_S:
                freed.extend(ids)
            else:
                keep.append((e, t, ids))
        self._quarantine = keep
        if freed:
            self._free.extend(sorted(freed, reverse=True))
        return len(freed)


@njit(cache=True, nogil=True)
def map_ids(local_to_global: npt.NDArray[np.int32], ids: npt.NDArray[np.uint32]) -> Any:
    """``local_to_global[ids]`` in one pass (every id checked below the table's size first):
    numpy's fancy index first widens the ids to intp, a copy per column, and holds the GIL."""
    out = np.empty(len(ids), dtype=np.int32)
    for k in range(len(ids)):
        out[k] = local_to_global[ids[k]]
    return out


def _frozen(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    a.flags.writeable = False
    return a


@dataclass(slots=True)
class Checked:
    """A batch that passed every check that needs nothing shared (``StreamDecoder.check``):
    the values columns as read-only views of the message's bytes (no copy), the dictionary
    columns still stream ids, the strings it adds still to intern (``StreamDecoder.finish``)."""

    sequence: int
    count: int
    additions: Sequence[str]
    values: dict[str, npt.NDArray[Any]]  # read-only, the engine's dtypes
    ids: dict[str, npt.NDArray[np.uint32]]  # dictionary columns present, stream ids
    interned: bool = False  # its additions interned (``StreamDecoder.intern``)
    mapped: dict[str, npt.NDArray[np.int32]] = field(default_factory=dict)  # global ids

    @property
    def event_time_us(self) -> npt.NDArray[np.int64]:
        return self.values["event_time_us"]


class StreamDecoder:
    """The sidecar's view of one gateway stream: its dictionary and its batch sequence.

    ``tenant`` is the stream's ``Hello.tenant``: an event whose ``tenant`` column is 0 (or a
    batch without the column) belongs to it; empty, to the super tenant (``vigie.wire.tenants``).

    A batch is decoded in steps so that most of the work needs no lock: ``check`` validates it
    and views its columns (nothing shared is touched: call it outside the state lock);
    ``intern`` interns the strings it adds (under the lock; a batch adding none needs no
    lock); ``map`` maps its dictionary ids to global ids (no lock); ``finish`` completes it
    (the stream's tenant, API names keyed by tenant: under the lock) and does the steps not
    done yet. ``decode`` does them all. The values columns of the ``Events`` it returns are
    read-only views of the message's bytes, absent ones read-only defaults shared between
    batches; the dictionary columns and the channel are arrays of their own.
    """

    def __init__(
        self,
        interner: Interner,
        channel: int,
        max_batch_events: int,
        max_dictionary_entries: int,
        tenant: str = "",
    ) -> None:
        self._interner = interner
        self._channel = channel
        self._tenant = tenant
        self._max_events = max_batch_events
        self._max_dict = max_dictionary_entries
        self._local_to_global = np.zeros(1024, dtype=np.int32)
        self._dict_size = 1  # id 0 is the empty string
        self._defaults: dict[str, npt.NDArray[Any]] = {}  # absent values columns, read-only
        self.next_sequence = 1
        self.events_applied = 0

    @property
    def dictionary_size(self) -> int:
        return self._dict_size

    def referenced(self) -> npt.NDArray[np.int32]:
        """Global ids this stream's dictionary refers to (the gateway may send them again)."""
        return self._local_to_global[: self._dict_size]

    def decode(self, batch: pb.EventBatch) -> Events:
        """Validate ``batch`` and return its columns; raise ``BatchRefused`` naming the problem."""
        return self.finish(self.check(batch))

    def _default(self, spec: ColumnSpec, n: int) -> npt.NDArray[Any]:
        col = self._defaults.get(spec.name)
        if col is None or len(col) != n:
            col = _frozen(np.full(n, spec.default, dtype=ENGINE_DTYPES[spec.name]))
            self._defaults[spec.name] = col
        return col

    def check(self, batch: pb.EventBatch) -> Checked:
        """Validate ``batch`` against the stream (its sequence, its dictionary) and view its
        columns; ``BatchRefused`` naming the problem. Touches nothing: the stream moves on
        only at ``finish``."""
        n = batch.count
        if batch.sequence != self.next_sequence:
            raise BatchRefused(
                "bad_sequence",
                f"batch sequence {batch.sequence}, expected {self.next_sequence}",
            )
        if n == 0 or n > self._max_events:
            raise BatchRefused("bad_count", f"batch count {n} outside 1..{self._max_events}")
        if batch.dictionary_base != self._dict_size:
            raise BatchRefused(
                "bad_dictionary_base",
                f"dictionary_base {batch.dictionary_base}, the stream's dictionary holds "
                f"{self._dict_size} entries",
            )
        additions = batch.dictionary_additions
        new_size = self._dict_size + len(additions)
        if new_size > self._max_dict:
            raise BatchRefused(
                "dictionary_full",
                f"dictionary would hold {new_size} entries, more than {self._max_dict}; "
                "reconnect to start a new one",
            )
        for s in additions:
            if len(s) > MAX_STRING_BYTES or len(s.encode()) > MAX_STRING_BYTES:
                raise BatchRefused(
                    "string_too_long",
                    f"dictionary string of {len(s.encode())} bytes, more than {MAX_STRING_BYTES}",
                )
        if any(KEY_SEPARATOR in s for s in additions):
            raise BatchRefused(
                "bad_string",
                "dictionary string holds the control character U+001F (no WSO2 name does)",
            )
        values: dict[str, npt.NDArray[Any]] = {}
        ids: dict[str, npt.NDArray[np.uint32]] = {}
        for spec in COLUMNS:
            raw: bytes = getattr(batch, spec.name)
            if not raw:
                if spec.required:
                    raise BatchRefused("missing_column", f"column {spec.name} is missing")
                if not spec.dictionary:
                    values[spec.name] = self._default(spec, n)
                continue
            width = _WIDTHS[spec.name]
            if len(raw) != n * width:
                raise BatchRefused(
                    "column_length",
                    f"column {spec.name} holds {len(raw)} bytes, expected {n} x {width}",
                )
            # a read-only view of the message's bytes: no copy (Numba types read-only arrays
            # apart from writable ones, so absent columns are read-only too: one signature)
            col = np.frombuffer(raw, dtype=spec.wire_dtype)
            if spec.dictionary:
                top = int(col.max())
                if top >= new_size:
                    raise BatchRefused(
                        "unknown_dictionary_id",
                        f"column {spec.name} uses dictionary id {top}, the dictionary holds "
                        f"{new_size} entries",
                    )
                ids[spec.name] = col
            else:
                values[spec.name] = (
                    col if _NATIVE[spec.name] else _frozen(col.astype(ENGINE_DTYPES[spec.name]))
                )
        ts = values["event_time_us"]
        if int(ts.min()) <= 0 or int(ts.max()) >= MAX_EVENT_TIME_US:
            raise BatchRefused(
                "bad_event_time",
                "event_time_us must be microseconds since 1970, before the year 3000",
            )
        return Checked(batch.sequence, n, additions, values, ids)

    def intern(self, checked: Checked) -> None:
        """Intern the strings ``checked`` adds to the stream's dictionary (none: nothing to do);
        call under the lock that guards the interner."""
        self._in_turn(checked)
        additions = checked.additions
        if not additions or checked.interned:
            return
        new_size = self._dict_size + len(additions)
        if new_size > len(self._local_to_global):
            grown = np.zeros(max(new_size, 2 * len(self._local_to_global)), dtype=np.int32)
            grown[: self._dict_size] = self._local_to_global[: self._dict_size]
            self._local_to_global = grown
        self._local_to_global[self._dict_size : new_size] = self._interner.intern_many(additions)
        self._dict_size = new_size
        checked.interned = True

    def map(self, checked: Checked) -> None:
        """Map the dictionary columns of ``checked`` to global ids (its strings interned
        first): one pass per column over the stream's own table, which only this stream's
        ``intern`` changes and whose strings are never released while the stream is open
        (``referenced``), so no lock is needed."""
        self._in_turn(checked)
        if checked.additions and not checked.interned:
            raise RuntimeError("a batch's strings are interned before its ids are mapped")
        n = checked.count
        l2g = self._local_to_global
        for name in DICTIONARY_COLUMNS:
            raw = checked.ids.get(name)
            # an absent column is all id 0, the empty string: global id 0
            checked.mapped[name] = np.zeros(n, dtype=np.int32) if raw is None else map_ids(l2g, raw)

    def finish(self, checked: Checked) -> Events:
        """The events of a batch ``check`` passed: its strings interned and its ids mapped
        (``intern`` and ``map``, unless done already), the stream's tenant filled in and API
        names keyed by tenant; the stream moves on to the next batch. Call under the lock
        that guards the interner, in the order the batches were checked."""
        self.intern(checked)
        if not checked.mapped:
            self.map(checked)
        n = checked.count
        columns: dict[str, npt.NDArray[Any]] = checked.values | checked.mapped
        if self._tenant:
            tenant = columns["tenant"]
            tenant[tenant == 0] = self._interner.intern(self._tenant)
        # an API is tenant x name x version: the state and the rollups key it by its keyed name
        columns["api_name"] = keyed_names(self._interner, columns["tenant"], columns["api_name"])
        self.next_sequence += 1
        self.events_applied += n
        return Events(columns, np.full(n, self._channel, dtype=np.uint8))

    def _in_turn(self, checked: Checked) -> None:
        if checked.sequence != self.next_sequence:  # a batch finished twice, or one skipped
            raise BatchRefused(
                "bad_sequence",
                f"batch sequence {checked.sequence}, expected {self.next_sequence}",
            )


class StreamEncoder:
    """The gateway's side of a stream: dictionary-encodes strings and builds ``EventBatch``.

    Canonical order (shared with the Java handler through ``tests/vectors``): strings are added
    to the dictionary in the order they are first met, scanning events in order and, within an
    event, the dictionary columns in ``COLUMNS`` order.
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {"": 0}
        self._pending: list[str] = []
        self._base = 1
        self.sequence = 0

    def intern(self, s: str) -> int:
        i = self._ids.get(s)
        if i is None:
            i = len(self._ids)
            self._ids[s] = i
            self._pending.append(s)
        return i

    def batch(self, columns: Mapping[str, npt.ArrayLike], sent_at_us: int = 0) -> pb.EventBatch:
        """Build the next batch from columns (dictionary columns hold ids from ``intern``)."""
        n = len(np.asarray(columns["event_time_us"]))
        self.sequence += 1
        msg = pb.EventBatch(
            sequence=self.sequence,
            count=n,
            dictionary_base=self._base,
            dictionary_additions=self._pending,
            sent_at_us=sent_at_us,
        )
        self._base += len(self._pending)
        self._pending = []
        for spec in COLUMNS:
            if spec.name in columns:
                arr = np.ascontiguousarray(np.asarray(columns[spec.name]), dtype=spec.wire_dtype)
                if len(arr) != n:
                    raise ValueError(f"column {spec.name} has {len(arr)} values, expected {n}")
                setattr(msg, spec.name, arr.tobytes())
        return msg

    def batch_from_records(
        self, records: Sequence[Mapping[str, Any]], sent_at_us: int = 0
    ) -> pb.EventBatch:
        """Build a batch from records (dicts of column name -> str/int), canonical order.

        A column no record names is left out of the batch (the sidecar then uses its default),
        except the required ones.
        """
        values: dict[str, list[int]] = {s.name: [] for s in COLUMNS}
        for rec in records:
            for spec in COLUMNS:
                if spec.name not in rec:
                    values[spec.name].append(spec.default)
                elif spec.dictionary:
                    values[spec.name].append(self.intern(str(rec[spec.name])))
                else:
                    values[spec.name].append(int(rec[spec.name]))
        present = {s.name for s in COLUMNS if s.required or any(s.name in r for r in records)}
        return self.batch(
            {
                s.name: np.array(values[s.name], dtype=s.wire_dtype)
                for s in COLUMNS
                if s.name in present
            },
            sent_at_us=sent_at_us,
        )
