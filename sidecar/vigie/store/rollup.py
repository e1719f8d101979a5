"""Rollups: events -> per-minute rows (short-term) and per-day rows (long-term).

``Accumulator`` owns the arrays the jitted kernel folds events into; ``drain`` hands the rows
over as ``Rows`` (numpy arrays, gids resolved to strings) and starts again. Rows are *deltas*:
everything in the store is a sum, so a minute or a day written in several parts is the sum of
its parts, and merging stores (or sidecars) is adding.

Tables (the same columns in Parquet and ClickHouse):

  minute       minute_us, day, api, api_version, resource, method, application_id,
               application_name, channel, status, error_code, <measures>, lat_idx, lat_cnt
  daily        day_us, day, api, api_version, resource, method, application_id,
               application_name, channel, error_code, <measures>, lat_idx, lat_cnt
  sub_daily    day_us, day, api, api_version, application_id, application_name, channel,
               <measures>, lat_idx, lat_cnt
  sub_monthly  month_us, day, api, api_version, application_id, application_name, channel,
               error_code, <measures>, lat_idx, lat_cnt

``sub_daily`` is ``daily`` summed over resources, methods and error codes (per subscription,
i.e. application x API, and channel) and ``sub_monthly`` summed over resources and methods
by calendar month (``day`` is the month's first day): the same figures in far fewer rows,
for reports over months and years (``vigie.store.plan`` picks the smallest tables that
answer a query exactly).

``lat_idx``/``lat_cnt`` are a sparse latency histogram: bucket numbers of
``vigie.state.layout`` (0 = latency 0; b >= 1 = OTLP scale-3 exponential bucket
b - 1 + LAT_MIN_INDEX, in seconds) and their counts, by ascending bucket.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vigie.state import layout as L
from vigie.state.primitives import pow2_at_least
from vigie.store import _rollup_kernels as RK
from vigie.wire import tenants
from vigie.wire.columns import METHOD_NAMES, Events

I64 = npt.NDArray[np.int64]

MEASURES: Final = (
    "requests",
    "successes",
    "client_errors",
    "server_errors",
    "throttled",
    "latency_sum_us",
    "backend_latency_sum_us",
    "request_bytes",
    "response_bytes",
)
STRING_KEYS: Final = (
    "api",
    "api_version",
    "resource",
    "method",
    "application_id",
    "application_name",
    "channel",
    "tenant",  # WSO2 tenant domain of the API (not a kernel key: split from the keyed name)
)
MINUTE_KEYS: Final = ("minute_us", *STRING_KEYS, "status", "error_code")
DAILY_KEYS: Final = ("day_us", *STRING_KEYS, "error_code")
SUB_FIELDS: Final = (
    "api",
    "api_version",
    "application_id",
    "application_name",
    "channel",
    "tenant",
)
SUB_DAILY_KEYS: Final = ("day_us", *SUB_FIELDS)
SUB_MONTHLY_KEYS: Final = ("month_us", *SUB_FIELDS, "error_code")
TABLE_KEYS: Final = {
    "minute": MINUTE_KEYS,
    "daily": DAILY_KEYS,
    "sub_daily": SUB_DAILY_KEYS,
    "sub_monthly": SUB_MONTHLY_KEYS,
}
TIME_COLUMN: Final = {t: k[0] for t, k in TABLE_KEYS.items()}
ROLLUP_TABLES: Final = tuple(TABLE_KEYS)  # every table of rollup rows
MONTH_PARTITIONED: Final = frozenset({"sub_daily", "sub_monthly"})  # few rows a day
TABLES: Final = ("minute", "daily")  # what a query names (the others stand in for daily)

# kernel key field of each key column
_FIELD: Final = {
    "api": RK.K_API,
    "api_version": RK.K_VERSION,
    "resource": RK.K_RESOURCE,
    "method": RK.K_METHOD,
    "application_id": RK.K_APP,
    "application_name": RK.K_APP_NAME,
    "channel": RK.K_CHANNEL,
    "status": RK.K_STATUS,
    "error_code": RK.K_ERROR,
}


def month_start(t_us: I64) -> I64:
    """The start (us) of the calendar month (UTC) of each time."""
    days = (np.asarray(t_us, dtype=np.int64) // L.DAY_US).astype("datetime64[D]")
    first = days.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    out: I64 = first * L.DAY_US
    return out


@dataclass(slots=True)
class Rows:
    """Rows of one table: key columns, measures (n x 9), and the latency histograms, sparse:
    row i holds buckets ``hist_idx[hist_off[i]:hist_off[i+1]]`` with counts ``hist_cnt[...]``.

    String keys are held as codes into a small array of names (``names``): row i's API is
    ``names["api"][codes["api"][i]]``; ``keys`` gives every key column, strings as object
    arrays (made on demand: the Parquet writer uses the codes)."""

    table: str
    ints: dict[str, I64]  # the time column and the integer keys
    codes: dict[str, npt.NDArray[np.int32]]
    names: dict[str, npt.NDArray[np.object_]]
    measures: I64
    hist_off: I64
    hist_idx: npt.NDArray[np.int16]
    hist_cnt: I64
    _keys: dict[str, npt.NDArray[Any]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.measures)

    @property
    def keys(self) -> dict[str, npt.NDArray[Any]]:
        if self._keys is None:
            self._keys = {
                k: self.names[k][self.codes[k]] if k in self.codes else self.ints[k]
                for k in TABLE_KEYS[self.table]
            }
        return self._keys

    @property
    def nbytes(self) -> int:
        per_row = 8 * len(self.ints) + 4 * len(self.codes)
        return int(
            per_row * len(self)
            + self.measures.nbytes
            + self.hist_off.nbytes
            + self.hist_idx.nbytes
            + self.hist_cnt.nbytes
        )

    def dense_hist(self) -> I64:
        out = np.zeros((len(self), L.LAT_WIDTH), dtype=np.int64)
        rows = np.repeat(np.arange(len(self)), np.diff(self.hist_off))
        out[rows, self.hist_idx] = self.hist_cnt
        return out

    def day_of_rows(self) -> I64:
        """The partition of each row: its day, or its month's first day."""
        t = self.ints[TIME_COLUMN[self.table]]
        if self.table in MONTH_PARTITIONED:
            return month_start(t)
        return np.asarray(t - t % L.DAY_US, dtype=np.int64)

    def take(self, index: npt.NDArray[np.intp]) -> Rows:
        lens = np.diff(self.hist_off)[index]
        off = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lens, out=off[1:])
        pos = np.repeat(self.hist_off[:-1][index] - off[:-1], lens) + np.arange(int(off[-1]))
        return Rows(
            self.table,
            {k: v[index] for k, v in self.ints.items()},
            {k: v[index] for k, v in self.codes.items()},
            self.names,
            self.measures[index],
            off,
            self.hist_idx[pos],
            self.hist_cnt[pos],
        )

    def split_by_day(self) -> dict[int, Rows]:
        """The rows by partition (``day_of_rows``)."""
        days = self.day_of_rows()
        uniq = np.unique(days)
        if len(uniq) == 1:
            return {int(uniq[0]): self}
        return {int(d): self.take(np.flatnonzero(days == d)) for d in uniq.tolist()}


def sparse(hist: I64) -> tuple[I64, npt.NDArray[np.int16], I64]:
    """A dense (rows x LAT_WIDTH) histogram as (offsets, bucket numbers, counts)."""
    r, c = np.nonzero(hist)
    off = np.zeros(len(hist) + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=len(hist)), out=off[1:])
    return off, c.astype(np.int16), hist[r, c].astype(np.int64)


@dataclass(slots=True)
class _Level:
    """Rows of one table before their gids become strings (kernel key layout)."""

    keys: I64  # (n, N_KEYS)
    vals: I64
    off: I64
    idx: npt.NDArray[np.int16]
    cnt: I64

    def coarser(self, drop: Sequence[int], time: Callable[[I64], I64]) -> _Level:
        """These rows summed over the key fields ``drop`` and with their time mapped."""
        keys = self.keys.copy()
        keys[:, list(drop)] = 0
        keys[:, RK.K_MINUTE] = time(keys[:, RK.K_MINUTE])
        gkeys, gvals, goff, gidx, gcnt, _ = RK.fold(keys, self.vals, self.off, self.idx, self.cnt)
        return _Level(gkeys, gvals, goff, gidx, gcnt)


def _same(t: I64) -> I64:
    return t


def _day_start(t: I64) -> I64:
    out: I64 = t - t % L.DAY_US
    return out


class Accumulator:
    """Per-minute rows being filled; not thread-safe (the data writer's thread owns it).

    ``words``/``rvals`` hold every row since the last drain; the hash tables ``rtab`` (rows)
    and ``htab`` (histogram entries) only those of the last minutes (``RK.evict``), the
    histogram entries of older rows wait in ``closed``.
    """

    words: I64
    rvals: I64
    rtab: I64
    htab: I64
    closed: I64

    def __init__(self, initial_rows: int = 4096) -> None:
        self.meta = np.zeros(RK.N_META, dtype=np.int64)
        self._initial = initial_rows
        self._alloc_rows(initial_rows)
        self._new_tables(initial_rows, 2 * initial_rows)
        self.closed = np.zeros((initial_rows, 2), dtype=np.int64)
        self.events = 0

    def _alloc_rows(self, rows: int) -> None:
        old_n = self.rows if hasattr(self, "words") else 0
        words = np.zeros((rows, RK.N_WORDS), dtype=np.int64)
        vals = np.zeros((rows, RK.N_VALS), dtype=np.int64)
        if old_n:
            words[:old_n] = self.words[:old_n]
            vals[:old_n] = self.rvals[:old_n]
        self.words, self.rvals = words, vals

    def _new_tables(self, rows: int, entries: int) -> None:
        """Empty tables with room for twice ``rows`` rows and ``entries`` entries."""
        self.rtab = np.zeros((pow2_at_least(max(64, 4 * rows)), 2), dtype=np.int64)
        self.htab = np.zeros((pow2_at_least(max(64, 4 * entries)), 2), dtype=np.int64)

    def _refresh_tables(self) -> None:
        """The tables are half full: take out the rows of old minutes, and size the tables
        for what stays (amortised: what stays has room to double before the next time)."""
        m = self.meta
        newest = int(m[RK.META_NEWEST])
        horizon = max(int(m[RK.META_HORIZON]), newest - RK.EVICT_SLACK_US if newest else 0)
        n = self.rows
        rows, entries = RK.count_active(self.words, n, self.htab, m, horizon)
        closing = int(m[RK.META_ENTRIES]) - entries
        need = int(m[RK.META_CLOSED]) + closing
        if need > len(self.closed):
            grown = np.zeros((pow2_at_least(need), 2), dtype=np.int64)
            grown[: int(m[RK.META_CLOSED])] = self.closed[: int(m[RK.META_CLOSED])]
            self.closed = grown
        old_htab = self.htab
        self._new_tables(rows, entries)
        RK.evict(self.words, n, horizon, self.rtab, old_htab, self.htab, self.closed, m)

    @staticmethod
    def row_bytes() -> int:
        """Bytes one open row costs (keys, measures, dense histogram, its table share)."""
        return 8 * (RK.N_KEYS + RK.N_MEASURES + L.LAT_WIDTH) + 2 * 2 * 8

    @property
    def rows(self) -> int:
        return int(self.meta[RK.META_ROWS])

    @property
    def skipped(self) -> int:
        return int(self.meta[RK.META_SKIPPED])

    def nbytes(self) -> int:
        return int(
            self.words.nbytes
            + self.rvals.nbytes
            + self.rtab.nbytes
            + self.htab.nbytes
            + self.closed.nbytes
        )

    def add(self, ev: Events) -> None:
        """Fold a batch of events (one kernel call; more only to grow)."""
        if len(ev) == 0:
            return
        c = ev.columns
        start = 0
        while True:
            stop, start = RK.accumulate(
                c["event_time_us"],
                c["api_name"],  # keyed names: an API is tenant x name x version
                c["api_version"],
                c["resource_template"],
                c["http_method"],
                c["application_id"],
                c["application_name"],
                ev.channel,
                c["http_status"],
                c["error_code"],
                c["flags"],
                c["latency_us"],
                c["backend_latency_us"],
                c["request_bytes"],
                c["response_bytes"],
                start,
                self.rtab,
                self.words,
                self.rvals,
                self.htab,
                self.meta,
            )
            if stop == RK.STOP_DONE:
                break
            if self.rows >= len(self.words):
                self._alloc_rows(2 * len(self.words))
            else:
                self._refresh_tables()
        self.events += len(ev)

    def drain(
        self,
        string: Callable[[int], str],
        channels: Sequence[str],
        subscriptions: bool = False,
    ) -> tuple[Rows, ...] | None:
        """The rows filled since the last drain as (minute rows, daily rows), and with
        ``subscriptions`` also (sub_daily rows, sub_monthly rows); empties itself."""
        n = self.rows
        if n == 0:
            return None
        keys = np.empty((n, RK.N_KEYS), dtype=np.int64)
        RK.unpack(self.words, n, keys)
        vals = self.rvals[:n, : RK.N_MEASURES].copy()
        m = self.meta
        off, idx, cnt = RK.hist_csr(self.htab, self.closed, int(m[RK.META_CLOSED]), self.rvals, n)
        dupes = bool(m[RK.META_DUPES])
        self.rvals[:n] = 0
        m[:] = np.where(np.arange(RK.N_META) == RK.META_SKIPPED, m, 0)
        if len(self.words) > 16 * max(n, self._initial):  # give a burst's memory back
            self._alloc_rows(max(self._initial, pow2_at_least(n)))
            self.closed = np.zeros((self._initial, 2), dtype=np.int64)
        self._new_tables(self._initial, 2 * self._initial)
        minute = _Level(keys, vals, off, idx, cnt)
        if dupes:  # rows made for evicted minutes: one row per key
            gkeys, gvals, goff, gidx, gcnt, _ = RK.fold(keys, vals, off, idx, cnt)
            minute = _Level(gkeys, gvals, goff, gidx, gcnt)
        levels = {"minute": minute}
        levels["daily"] = levels["minute"].coarser([RK.K_STATUS], _day_start)
        if subscriptions:
            sub = [RK.K_RESOURCE, RK.K_METHOD]
            levels["sub_daily"] = levels["daily"].coarser([*sub, RK.K_ERROR], _same)
            levels["sub_monthly"] = levels["daily"].coarser(sub, month_start)
        return tuple(_rows(t, lv, string, channels) for t, lv in levels.items())


def _names(
    src: I64, name: str, string: Callable[[int], str], channels: Sequence[str]
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.object_]]:
    """(codes, names) of a column of gids (method numbers, channel indexes)."""
    uniq, inv = np.unique(src, return_inverse=True)
    if name == "method":
        names = [METHOD_NAMES.get(int(m), "OTHER") for m in uniq.tolist()]
    elif name == "channel":
        names = [channels[c] if 0 <= c < len(channels) else f"#{c}" for c in uniq.tolist()]
    else:
        names = [string(g) for g in uniq.tolist()]
    table = np.empty(len(names), dtype=object)
    table[:] = names
    return inv.reshape(-1).astype(np.int32), table


def _rows(table: str, lv: _Level, string: Callable[[int], str], channels: Sequence[str]) -> Rows:
    tkeys = TABLE_KEYS[table]
    ints: dict[str, I64] = {tkeys[0]: lv.keys[:, RK.K_MINUTE].copy()}
    codes: dict[str, npt.NDArray[np.int32]] = {}
    names: dict[str, npt.NDArray[np.object_]] = {}
    for name in tkeys[1:]:
        if name == "tenant":
            continue
        src = lv.keys[:, _FIELD[name]]
        if name in STRING_KEYS:
            codes[name], names[name] = _names(src, name, string, channels)
        else:
            ints[name] = src.copy()
    codes["tenant"], names["tenant"], codes["api"], names["api"] = _split_tenants(
        codes["api"], names["api"]
    )
    return Rows(table, ints, codes, names, lv.vals, lv.off, lv.idx, lv.cnt)


def _split_tenants(
    codes: npt.NDArray[np.int32], keyed: npt.NDArray[np.object_]
) -> tuple[
    npt.NDArray[np.int32], npt.NDArray[np.object_], npt.NDArray[np.int32], npt.NDArray[np.object_]
]:
    """(tenant codes, tenant names, API codes, API names) of rows whose API codes point to
    keyed names (``vigie.wire.tenants``)."""
    pairs = [tenants.split(str(k)) for k in keyed.tolist()]
    out: list[Any] = []
    for j in (0, 1):
        words = sorted({p[j] for p in pairs})
        pos = {w: i for i, w in enumerate(words)}
        lut = np.array([pos[p[j]] for p in pairs], dtype=np.int32)
        table = np.empty(len(words), dtype=object)
        table[:] = words
        out += [lut[codes] if len(lut) else codes.astype(np.int32), table]
    return out[0], out[1], out[2], out[3]
