"""Rollups: events -> per-minute rows (short-term) and per-day rows (long-term).

``Accumulator`` owns the arrays the jitted kernel folds events into; ``drain`` hands the rows
over as ``Rows`` (numpy arrays, gids resolved to strings) and starts again. Rows are *deltas*:
everything in the store is a sum, so a minute or a day written in several parts is the sum of
its parts, and merging stores (or sidecars) is adding.

Tables (the same columns in Parquet and ClickHouse):

  minute   minute_us, day, api, api_version, resource, method, application_id,
           application_name, channel, status, error_code, <measures>, lat_idx, lat_cnt
  daily    day_us, day, api, api_version, resource, method, application_id,
           application_name, channel, error_code, <measures>, lat_idx, lat_cnt

``lat_idx``/``lat_cnt`` are a sparse latency histogram: bucket numbers of
``vigie.state._layout`` (0 = latency 0; b >= 1 = OTLP scale-3 exponential bucket
b - 1 + LAT_MIN_INDEX, in seconds) and their counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vigie.state import _layout as L
from vigie.state.engine import _pow2_at_least
from vigie.store import _rollup_kernels as RK
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
)
MINUTE_KEYS: Final = ("minute_us", *STRING_KEYS, "status", "error_code")
DAILY_KEYS: Final = ("day_us", *STRING_KEYS, "error_code")
TIME_COLUMN: Final = {"minute": "minute_us", "daily": "day_us"}
TABLES: Final = ("minute", "daily")

# kernel key field of each string key
_GID_FIELDS: Final = {
    "api": RK.K_API,
    "api_version": RK.K_VERSION,
    "resource": RK.K_RESOURCE,
    "application_id": RK.K_APP,
    "application_name": RK.K_APP_NAME,
}
_DAILY_FIELDS: Final = [f for f in range(RK.N_KEYS) if f != RK.K_STATUS]


@dataclass(slots=True)
class Rows:
    """Rows of one table: key columns, measures (n x 9), and the latency histograms, sparse:
    row i holds buckets ``hist_idx[hist_off[i]:hist_off[i+1]]`` with counts ``hist_cnt[...]``."""

    table: str
    keys: dict[str, npt.NDArray[Any]]  # strings as object arrays, ints as int64
    measures: I64
    hist_off: I64
    hist_idx: npt.NDArray[np.int16]
    hist_cnt: I64

    def __len__(self) -> int:
        return len(self.measures)

    @property
    def nbytes(self) -> int:
        strings = sum(8 * len(v) for v in self.keys.values())
        return int(
            strings
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
        t = self.keys[TIME_COLUMN[self.table]]
        return np.asarray(t - t % L.DAY_US, dtype=np.int64)

    def take(self, index: npt.NDArray[np.intp]) -> Rows:
        lens = np.diff(self.hist_off)[index]
        off = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lens, out=off[1:])
        pos = np.repeat(self.hist_off[:-1][index] - off[:-1], lens) + np.arange(int(off[-1]))
        return Rows(
            self.table,
            {k: v[index] for k, v in self.keys.items()},
            self.measures[index],
            off,
            self.hist_idx[pos],
            self.hist_cnt[pos],
        )

    def split_by_day(self) -> dict[int, Rows]:
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


class Accumulator:
    """Per-minute rows being filled; not thread-safe (the data writer's thread owns it)."""

    rkeys: I64
    rvals: I64
    rhist: I64
    tkeys: I64
    tvals: I64

    def __init__(self, initial_rows: int = 4096) -> None:
        self.meta = np.zeros(4, dtype=np.int64)
        self._alloc(initial_rows)
        self.events = 0

    def _alloc(self, rows: int) -> None:
        old_n = int(self.meta[0]) if hasattr(self, "rkeys") else 0
        keys = np.zeros((rows, RK.N_KEYS), dtype=np.int64)
        vals = np.zeros((rows, RK.N_MEASURES), dtype=np.int64)
        hist = np.zeros((rows, L.LAT_WIDTH), dtype=np.int64)
        if old_n:
            keys[:old_n] = self.rkeys[:old_n]
            vals[:old_n] = self.rvals[:old_n]
            hist[:old_n] = self.rhist[:old_n]
        self.rkeys, self.rvals, self.rhist = keys, vals, hist
        size = _pow2_at_least(2 * rows)
        self.tkeys = np.zeros(size, dtype=np.int64)
        self.tvals = np.full(size, -1, dtype=np.int64)
        if old_n:
            RK.rebuild_table(self.tkeys, self.tvals, keys, old_n)

    @staticmethod
    def row_bytes() -> int:
        """Bytes one open row costs (keys, measures, dense histogram, its table share)."""
        return 8 * (RK.N_KEYS + RK.N_MEASURES + L.LAT_WIDTH) + 2 * 2 * 8

    @property
    def rows(self) -> int:
        return int(self.meta[0])

    @property
    def skipped(self) -> int:
        return int(self.meta[1])

    def nbytes(self) -> int:
        return int(self.rkeys.nbytes + self.rvals.nbytes + self.rhist.nbytes + self.tkeys.nbytes)

    def add(self, ev: Events) -> None:
        """Fold a batch of events (one kernel call; more only to grow)."""
        if len(ev) == 0:
            return
        c = ev.columns
        start = 0
        while True:
            stop, start = RK.accumulate(
                c["event_time_us"],
                c["api_name"],
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
                self.tkeys,
                self.tvals,
                self.rkeys,
                self.rvals,
                self.rhist,
                self.meta,
            )
            if stop == RK.STOP_DONE:
                break
            self._alloc(2 * len(self.rkeys))
        self.events += len(ev)

    def drain(
        self, string: Callable[[int], str], channels: Sequence[str]
    ) -> tuple[Rows, Rows] | None:
        """The rows filled since the last drain as (minute rows, daily rows); empties itself."""
        n = self.rows
        if n == 0:
            return None
        keys = self.rkeys[:n].copy()
        vals = self.rvals[:n].copy()
        hist = self.rhist[:n].copy()
        self.rkeys[:n] = 0
        self.rvals[:n] = 0
        self.rhist[:n] = 0
        self.tkeys[:] = 0
        self.tvals[:] = -1
        self.meta[0] = 0
        self.meta[2] = 0
        self.meta[3] = 0
        minute = _rows("minute", keys, vals, hist, string, channels)
        # daily rows: the same rows without the minute (as its day) and the status
        dkeys = keys[:, _DAILY_FIELDS].copy()
        dkeys[:, RK.K_MINUTE] -= dkeys[:, RK.K_MINUTE] % L.DAY_US
        uniq, inverse = np.unique(dkeys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        dvals = np.zeros((len(uniq), RK.N_MEASURES), dtype=np.int64)
        np.add.at(dvals, inverse, vals)
        dhist = np.zeros((len(uniq), L.LAT_WIDTH), dtype=np.int64)
        np.add.at(dhist, inverse, hist)
        full = np.zeros((len(uniq), RK.N_KEYS), dtype=np.int64)
        full[:, _DAILY_FIELDS] = uniq
        daily = _rows("daily", full, dvals, dhist, string, channels)
        return minute, daily


def _rows(
    table: str,
    keys: I64,
    vals: I64,
    hist: I64,
    string: Callable[[int], str],
    channels: Sequence[str],
) -> Rows:
    cols: dict[str, npt.NDArray[Any]] = {}
    if table == "minute":
        cols["minute_us"] = keys[:, RK.K_MINUTE].copy()
    else:
        cols["day_us"] = keys[:, RK.K_MINUTE].copy()
    for name in STRING_KEYS:
        if name == "method":
            src = keys[:, RK.K_METHOD]
            uniq, inv = np.unique(src, return_inverse=True)
            names = np.array([METHOD_NAMES.get(int(m), "OTHER") for m in uniq], dtype=object)
        elif name == "channel":
            src = keys[:, RK.K_CHANNEL]
            uniq, inv = np.unique(src, return_inverse=True)
            names = np.array(
                [channels[int(c)] if 0 <= c < len(channels) else f"#{c}" for c in uniq],
                dtype=object,
            )
        else:
            src = keys[:, _GID_FIELDS[name]]
            uniq, inv = np.unique(src, return_inverse=True)
            names = np.array([string(int(g)) for g in uniq], dtype=object)
        cols[name] = names[inv.reshape(-1)] if len(uniq) else np.empty(0, dtype=object)
    if table == "minute":
        cols["status"] = keys[:, RK.K_STATUS].copy()
    cols["error_code"] = keys[:, RK.K_ERROR].copy()
    return Rows(table, cols, vals, *sparse(hist))
