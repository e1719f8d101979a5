"""The one query every store answers, and how answers add up.

Autopsies and reports are built from ``aggregate(AggQuery) -> list[AggRow]``: sums of the
measures and of the latency histogram over a time range, grouped by some keys. Every store
(Parquet + DuckDB, ClickHouse, a remote sidecar, a fleet of them) answers it the same way, so
the same question gets the same answer whatever holds the data, and several answers merge by
adding (``merge_rows``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from vigie.errors import VigieError
from vigie.state import layout as L
from vigie.store.rollup import MEASURES, TABLES
from vigie.wire import tenants

GROUPABLE: Final = (
    "time",
    "api",
    "api_version",
    "resource",
    "method",
    "application_id",
    "channel",
    "status",
    "error_code",
    "tenant",
)
FILTERS: Final = ("api", "api_version", "application", "channel", "resource", "tenant")


class QueryError(VigieError):
    """A query the stores cannot answer (bad table, key or range)."""

    exit_code = 2


class StoreUnavailable(VigieError):
    """The store cannot be read (ClickHouse down, files unreadable)."""

    exit_code = 3


@dataclass(frozen=True, slots=True)
class AggQuery:
    """Sums over ``[from_us, to_us)`` of one table, grouped by ``group_by``.

    ``"time"`` in ``group_by`` groups by time buckets of ``bucket_us`` (a multiple of a minute
    for the minute table, of a day for the daily table); its key is the bucket's start (us).
    Filters are exact matches; ``application`` matches the application id or its name.
    """

    table: str
    from_us: int
    to_us: int
    group_by: tuple[str, ...] = ()
    bucket_us: int = 0
    api: str = ""
    api_version: str = ""
    application: str = ""
    channel: str = ""
    resource: str = ""
    histogram: bool = True
    tenant: str = ""  # WSO2 tenant domain ("carbon.super": the super tenant)

    def validate(self) -> AggQuery:
        if self.table not in TABLES:
            raise QueryError(f"unknown table {self.table!r} (minute or daily)")
        if self.to_us <= self.from_us:
            raise QueryError("the end of the range must come after its start")
        for g in self.group_by:
            if g not in GROUPABLE:
                raise QueryError(f"cannot group by {g!r} (one of {', '.join(GROUPABLE)})")
        if self.table == "daily" and "status" in self.group_by:
            raise QueryError("the daily table has no HTTP status (use the minute table)")
        if "time" in self.group_by:
            unit = 60_000_000 if self.table == "minute" else L.DAY_US
            if self.bucket_us <= 0 or self.bucket_us % unit:
                raise QueryError(f"bucket_us must be a positive multiple of {unit}")
        return self

    def filters(self) -> dict[str, str]:
        out = {f: getattr(self, f) for f in FILTERS if getattr(self, f)}
        if "tenant" in out:
            out["tenant"] = tenants.display(out["tenant"])
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "from_us": self.from_us,
            "to_us": self.to_us,
            "group_by": list(self.group_by),
            "bucket_us": self.bucket_us,
            "histogram": self.histogram,
            **self.filters(),
        }

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> AggQuery:
        try:
            return AggQuery(
                table=str(doc["table"]),
                from_us=int(doc["from_us"]),
                to_us=int(doc["to_us"]),
                group_by=tuple(str(g) for g in doc.get("group_by", ())),
                bucket_us=int(doc.get("bucket_us", 0)),
                histogram=bool(doc.get("histogram", True)),
                **{f: str(doc.get(f, "")) for f in FILTERS},
            ).validate()
        except (KeyError, TypeError, ValueError) as exc:
            raise QueryError(f"malformed query: {exc}") from None


@dataclass(slots=True)
class AggRow:
    """One group: its key values (in ``group_by`` order), the measures, the histogram."""

    key: tuple[Any, ...]
    measures: list[int]
    hist: dict[int, int] = field(default_factory=dict)
    application_name: str = ""

    def get(self, measure: str) -> int:
        return self.measures[MEASURES.index(measure)]

    def add(self, other: AggRow) -> None:
        for i, v in enumerate(other.measures):
            self.measures[i] += v
        for b, c in other.hist.items():
            self.hist[b] = self.hist.get(b, 0) + c
        if other.application_name > self.application_name:
            self.application_name = other.application_name

    def to_json(self) -> dict[str, Any]:
        return {
            "key": list(self.key),
            "measures": dict(zip(MEASURES, self.measures, strict=True)),
            "hist": {str(b): c for b, c in sorted(self.hist.items())},
            "application_name": self.application_name,
        }

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> AggRow:
        m = doc["measures"]
        return AggRow(
            key=tuple(doc["key"]),
            measures=[int(m[k]) for k in MEASURES],
            hist={int(b): int(c) for b, c in doc["hist"].items()},
            application_name=str(doc.get("application_name", "")),
        )


class Store(Protocol):
    """What autopsies, reports and the fleet view need from a store."""

    def aggregate(self, q: AggQuery) -> list[AggRow]: ...

    def changes(self, from_us: int, to_us: int) -> list[dict[str, Any]]: ...

    def extent(self) -> tuple[int, int]: ...


def merge_rows(answers: Iterable[Sequence[AggRow]]) -> list[AggRow]:
    """Several answers to one query as one: rows with the same key add (counters and
    histograms), sorted by key."""
    out: dict[tuple[Any, ...], AggRow] = {}
    for rows in answers:
        for r in rows:
            cur = out.get(r.key)
            if cur is None:
                out[r.key] = AggRow(r.key, list(r.measures), dict(r.hist), r.application_name)
            else:
                cur.add(r)
    return [out[k] for k in sorted(out, key=_sort_key)]


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[int, Any], ...]:
    return tuple((0, v) if isinstance(v, int) else (1, str(v)) for v in key)


def finish(rows: Iterable[AggRow]) -> list[AggRow]:
    """Drop empty groups, sort by key: every store's answer goes through this."""
    return sorted((r for r in rows if r.measures[0] > 0), key=lambda r: _sort_key(r.key))


def bucket_seconds(b: int) -> tuple[float, float]:
    """(lower, upper) bound in seconds of latency histogram bucket ``b``."""
    if b <= 0:
        return 0.0, 0.0
    i = b - 1 + L.LAT_MIN_INDEX
    return 2.0 ** (i / 8), 2.0 ** ((i + 1) / 8)


def quantile(hist: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a latency histogram, in milliseconds (the geometric middle
    of the bucket it falls in: within 4.4 % of the true value); None when empty."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank and hist[b] > 0:
            lo, hi = bucket_seconds(b)
            return 0.0 if hi == 0 else math.sqrt(lo * hi) * 1000.0
    lo, hi = bucket_seconds(max(hist))
    return math.sqrt(lo * hi) * 1000.0


def with_range(q: AggQuery, from_us: int, to_us: int) -> AggQuery:
    return replace(q, from_us=from_us, to_us=to_us)
