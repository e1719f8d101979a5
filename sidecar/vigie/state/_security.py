"""The security class ``auth_failing``: authentication failures per client IP, per application
key and per API, in their own bounded table, evaluated once per batch (``State.apply`` calls
``Security.apply`` after the baselines).

An **authentication failure** is an event with a WSO2 authentication code (900900-900999), or
with no code, no application and HTTP status 401 or 403 (a gateway refusal recorded without
its code). The handler records them with application "none" (id 0) and their API from
``REST_API_CONTEXT``; the client IP column holds the address or ``h:`` + 16 hex digits of a
salted hash (``vigie.capture.client-ip``), 0 when it was not captured.

Three kinds of rows: ``ip`` (a client IP), ``app`` (an application key: an application id that
failed to authenticate, e.g. a revoked or unsubscribed key), ``api`` (every failure an API
received). Each keeps the failures of the last 60 minutes by minute of event time (a ring, a
window sliding by minutes, like the other windows), its totals, first and last failure, the
WSO2 codes seen and up to ``OTHER_SLOTS`` distinct APIs (``ip``/``app``) or client IPs
(``api``).

The rule: **>= ``auth_min_failures`` failures in the last hour**. The class holds from the
first batch the rule held until a quiet hour (no failure for ``QUIET_US``); then its episode
closes (kept in ``episodes``, the newest ``MAX_EPISODES``). At most ``max_tracked_clients``
rows of each kind are tracked: when a batch brings more, the coldest (oldest last failure)
are evicted first, and counted (``evicted``).

Memory: ~(60 x 12 + 16 x 8 + 80) bytes a row, so ~1 MB per 1,000 tracked clients.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vigie.state.codes import AUTHENTICATION_FIRST, AUTHENTICATION_LAST

__all__ = ["KINDS", "MINUTE_US", "QUIET_US", "Security", "SecurityEpisode", "auth_failures"]

MINUTE_US: Final = 60_000_000
WINDOW_MINUTES: Final = 60
QUIET_US: Final = 3_600 * 1_000_000  # an episode ends after an hour without a failure
OTHER_SLOTS: Final = 16  # distinct APIs (or client IPs) kept per row
MAX_EPISODES: Final = 10_000
KINDS: Final = ("ip", "app", "api")
K_IP, K_APP, K_API = 0, 1, 2
# code bits: 0..99 = 900900..900999, 100 = 401 without a code, 101 = 403 without a code
_BIT_401, _BIT_403 = 100, 101

# int64 fields of a row
F_KEY, F_KIND, F_TOTAL, F_FIRST, F_LAST, F_EP_START, F_EP_FAIL, F_EP_PEAK, F_N_OTHER = range(9)
N_FIELDS: Final = 9

I64 = npt.NDArray[np.int64]


def auth_failures(
    error_code: npt.NDArray[Any], http_status: npt.NDArray[Any], application_id: npt.NDArray[Any]
) -> npt.NDArray[np.bool_]:
    """Which events are authentication failures (see the module's docstring)."""
    code = error_code.astype(np.int64)
    by_code = (code >= AUTHENTICATION_FIRST) & (code <= AUTHENTICATION_LAST)
    status = http_status.astype(np.int64)
    bare = (code == 0) & (application_id == 0) & ((status == 401) | (status == 403))
    return np.asarray(by_code | bare)


def code_names(bits: npt.NDArray[np.uint64]) -> list[str]:
    """The codes of a row's two code words, as strings ("900901", "401")."""
    out: list[str] = []
    for b in range(102):
        if int(bits[b // 64]) >> (b % 64) & 1:
            out.append(str(AUTHENTICATION_FIRST + b) if b < 100 else ("401" if b == 100 else "403"))
    return out


@dataclass(frozen=True, slots=True)
class SecurityEpisode:
    """A closed ``auth_failing`` episode of one row."""

    kind: str
    key: int  # the client IP's / application's gid, or the API key ((name << 32) | version)
    first_us: int
    last_us: int
    failures: int  # in the episode
    peak: int  # the most failures in one hour window seen
    evicted: bool = False  # closed because the row was evicted, not by a quiet hour


class Security:
    """The ``auth_failing`` table. Not thread-safe: ``State``'s owner serialises it."""

    def __init__(self, rows: int = 64) -> None:
        self._reset(rows)

    def _reset(self, rows: int) -> None:
        self.index: dict[tuple[int, int], int] = {}  # (kind, key) -> row
        self.i64 = np.zeros((rows, N_FIELDS), dtype=np.int64)
        self.ring = np.zeros((rows, WINDOW_MINUTES), dtype=np.int32)
        self.ring_min = np.full((rows, WINDOW_MINUTES), -1, dtype=np.int64)
        self.codes = np.zeros((rows, 2), dtype=np.uint64)
        self.other = np.full((rows, OTHER_SLOTS), -1, dtype=np.int64)
        self.free: list[int] = list(range(rows - 1, -1, -1))
        self.used = np.zeros(rows, dtype=np.bool_)
        self.n_kind = [0, 0, 0]  # rows in use of each kind
        self._touched: list[int] = []  # rows the batch added failures to
        self.episodes: deque[SecurityEpisode] = deque(maxlen=MAX_EPISODES)
        self.evicted = 0
        self.failures = 0  # authentication failures seen
        self.late = 0  # failures older than the window when they arrived (totals only)
        self.now_us = 0

    # ---- ingest -------------------------------------------------------------------------
    def apply(self, columns: dict[str, npt.NDArray[Any]], min_failures: float, limit: int) -> None:
        """Count the batch's authentication failures, judge the rule, close quiet episodes."""
        t = columns["event_time_us"]
        if len(t):
            self.now_us = max(self.now_us, int(t.max()))
        app = columns["application_id"]
        mask = auth_failures(columns["error_code"], columns["http_status"], app)
        self._touched = []
        if mask.any():
            t = t[mask].astype(np.int64)
            code = columns["error_code"][mask].astype(np.int64)
            status = columns["http_status"][mask].astype(np.int64)
            bit = np.where(
                code > 0, code - AUTHENTICATION_FIRST, np.where(status == 401, _BIT_401, _BIT_403)
            )
            api = (columns["api_name"][mask].astype(np.int64) << 32) | columns["api_version"][
                mask
            ].astype(np.int64)
            ip = columns.get("client_ip")
            ip = ip[mask].astype(np.int64) if ip is not None else np.zeros(len(t), np.int64)
            self.failures += len(t)
            self._count(K_IP, ip, t, bit, api, limit)
            self._count(K_APP, app[mask].astype(np.int64), t, bit, api, limit)
            self._count(K_API, api, t, bit, ip, limit)
        self._judge(min_failures)

    def _count(self, kind: int, keys: I64, t: I64, bit: I64, other: I64, limit: int) -> None:
        """Add the failures of one kind of row: numpy over the events, Python once per key."""
        sel = keys != 0 if kind != K_API else np.ones(len(keys), dtype=np.bool_)
        if not sel.any():
            return
        keys, t, bit, other = keys[sel], t[sel], bit[sel], other[sel]
        uk, inv = np.unique(keys, return_inverse=True)
        tagged = [(kind, k) for k in uk.tolist()]
        new = [k for k in tagged if k not in self.index]
        self._make_room(kind, len(new), limit, keep=set(tagged))
        rows = np.empty(len(uk), dtype=np.intp)
        fresh_rows: list[int] = []
        fresh_keys: list[int] = []
        for j, k in enumerate(tagged):
            row = self.index.get(k)
            if row is None:
                if not self.free:  # more new keys than the limit in one batch: not counted
                    self.evicted += 1
                    rows[j] = -1
                    continue
                row = self.free.pop()
                self.index[k] = row
                fresh_rows.append(row)
                fresh_keys.append(k[1])
            rows[j] = row
        if fresh_rows:
            self._new_rows(kind, np.array(fresh_rows, dtype=np.intp), fresh_keys)
        kept = rows[inv] >= 0
        if not kept.all():
            keep_u = rows >= 0
            remap = np.cumsum(keep_u) - 1
            t, bit, other, inv = t[kept], bit[kept], other[kept], remap[inv[kept]]
            rows = rows[keep_u]
        if not len(rows):
            return
        i = self.i64
        counts = np.bincount(inv, minlength=len(rows)).astype(np.int64)
        lo = np.full(len(rows), np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(len(rows), np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(lo, inv, t)
        np.maximum.at(hi, inv, t)
        fresh = i[rows, F_TOTAL] == 0
        i[rows, F_FIRST] = np.where(fresh, lo, np.minimum(i[rows, F_FIRST], lo))
        i[rows, F_LAST] = np.where(fresh, hi, np.maximum(i[rows, F_LAST], hi))
        i[rows, F_TOTAL] += counts
        i[rows, F_EP_FAIL] += np.where(i[rows, F_EP_START] != 0, counts, 0)
        self._ring(rows[inv], t)
        words = (bit // 64).astype(np.intp)
        masks = np.left_shift(np.uint64(1), (bit % 64).astype(np.uint64))
        np.bitwise_or.at(self.codes, (rows[inv], words), masks)
        self._others(rows[inv], other)
        self._touched.extend(rows.tolist())

    def _ring(self, ev_row: npt.NDArray[np.intp], t: I64) -> None:
        """The per-minute ring of each row: a minute's slot is reset when a newer minute
        takes it; a failure older than the window counts in the totals only."""
        now_min = self.now_us // MINUTE_US
        m = t // MINUTE_US
        late = m <= now_min - WINDOW_MINUTES
        self.late += int(late.sum())
        if late.all():
            return
        ev_row, m = ev_row[~late], m[~late]
        base = now_min - WINDOW_MINUTES  # offsets 1..60
        code, n = np.unique(ev_row.astype(np.int64) * 64 + (m - base), return_counts=True)
        r, mm = code // 64, code % 64 + base
        s = mm % WINDOW_MINUTES
        stale = self.ring_min[r, s] != mm
        self.ring_min[r, s] = mm
        self.ring[r, s] = np.where(stale, 0, self.ring[r, s]) + n.astype(np.int32)

    def _others(self, ev_row: npt.NDArray[np.intp], other: I64) -> None:
        """Up to ``OTHER_SLOTS`` distinct APIs (client IPs) per row, then "more"."""
        keep = other != 0
        if not keep.any():
            return
        code = np.unique(np.stack([ev_row[keep].astype(np.int64), other[keep]], axis=1), axis=0)
        r, o = code[:, 0].astype(np.intp), code[:, 1]
        missing = ~(self.other[r] == o[:, None]).any(axis=1)
        r, o = r[missing], o[missing]
        if not len(r):
            return
        ur, first, cnt = np.unique(r, return_index=True, return_counts=True)
        rank = np.arange(len(r)) - np.repeat(first, cnt)
        n = self.i64[:, F_N_OTHER]
        pos = n[r] + rank
        place = pos < OTHER_SLOTS
        self.other[r[place], pos[place]] = o[place]
        self.i64[ur, F_N_OTHER] = np.minimum(n[ur] + cnt, OTHER_SLOTS + 1)

    def window(self, rows: npt.NDArray[np.intp] | None = None) -> I64:
        """Failures in the last hour (by minute, ending at ``now_us``) of ``rows`` (all)."""
        rmin = self.ring_min if rows is None else self.ring_min[rows]
        ring = self.ring if rows is None else self.ring[rows]
        fresh = rmin > self.now_us // MINUTE_US - WINDOW_MINUTES
        out: I64 = np.where(fresh, ring, 0).sum(axis=1).astype(np.int64)
        return out

    def _judge(self, min_failures: float) -> None:
        """A row not holding the class starts holding it when its window reaches the rule
        (only a row the batch touched can: the others' windows only shrink); a row holding it
        ends after a quiet hour. Numpy over the rows, Python only for the rows that change."""
        i = self.i64
        active = self.used & (i[:, F_EP_START] != 0)
        touched = np.unique(np.array(self._touched, dtype=np.intp))
        if len(touched):
            w = self.window(touched)
            was = active[touched]
            up = touched[was]
            i[up, F_EP_PEAK] = np.maximum(i[up, F_EP_PEAK], w[was])
            for row, n in zip(touched[~was].tolist(), w[~was].tolist(), strict=True):
                if n >= min_failures:
                    i[row, F_EP_START] = self._window_first(row)
                    i[row, F_EP_FAIL] = n
                    i[row, F_EP_PEAK] = n
        quiet = np.flatnonzero(active & (self.now_us - i[:, F_LAST] >= QUIET_US))
        for row in quiet.tolist():
            self._close(row, evicted=False)

    def _window_first(self, row: int) -> int:
        """The start (us) of the first minute of the window holding a failure."""
        m = self.ring_min[row]
        fresh = m[(m > self.now_us // MINUTE_US - WINDOW_MINUTES) & (self.ring[row] > 0)]
        first = int(fresh.min()) * MINUTE_US if len(fresh) else int(self.i64[row, F_LAST])
        return max(first, int(self.i64[row, F_FIRST]))

    def _close(self, row: int, evicted: bool) -> None:
        r = self.i64[row]
        self.episodes.append(
            SecurityEpisode(
                KINDS[int(r[F_KIND])],
                int(r[F_KEY]),
                int(r[F_EP_START]),
                int(r[F_LAST]),
                int(r[F_EP_FAIL]),
                int(r[F_EP_PEAK]),
                evicted,
            )
        )
        r[F_EP_START] = r[F_EP_FAIL] = r[F_EP_PEAK] = 0

    # ---- rows ---------------------------------------------------------------------------
    def used_rows(self) -> npt.NDArray[np.intp]:
        return np.flatnonzero(self.used)

    def _new_rows(self, kind: int, rows: npt.NDArray[np.intp], keys: list[int]) -> None:
        """Rows just taken from ``free`` (already in ``index``), emptied, for ``keys``."""
        self.i64[rows] = 0
        self.i64[rows, F_KEY] = keys
        self.i64[rows, F_KIND] = kind
        self.ring[rows] = 0
        self.ring_min[rows] = -1
        self.codes[rows] = 0
        self.other[rows] = -1
        self.used[rows] = True
        self.n_kind[kind] += len(rows)

    def _make_room(self, kind: int, n_new: int, limit: int, keep: set[tuple[int, int]]) -> None:
        """Room for ``n_new`` rows of ``kind`` within ``limit``: evict the coldest first."""
        if n_new == 0:
            return
        excess = self.n_kind[kind] + n_new - max(1, limit)
        if excess > 0:
            cand_mask = self.used & (self.i64[:, F_KIND] == kind)
            cand_mask[[self.index[k] for k in keep if k in self.index]] = False
            cand = np.flatnonzero(cand_mask)
            if len(cand):
                k_out = min(excess, len(cand))
                coldest = np.argpartition(self.i64[cand, F_LAST], k_out - 1)[:k_out]
                for row in cand[coldest].tolist():
                    if self.i64[row, F_EP_START]:
                        self._close(row, evicted=True)
                    del self.index[(kind, int(self.i64[row, F_KEY]))]
                    self.used[row] = False
                    self.n_kind[kind] -= 1
                    self.free.append(row)
                    self.evicted += 1
        need = min(n_new, max(1, limit)) - len(self.free)
        if need > 0:
            self._grow(len(self.i64) + max(need, len(self.i64)))

    def _grow(self, rows: int) -> None:
        old = len(self.i64)
        names = (
            ("i64", 0),
            ("ring", 0),
            ("ring_min", -1),
            ("codes", 0),
            ("other", -1),
            ("used", 0),
        )
        for name, fill in names:
            a = getattr(self, name)
            grown = np.full((rows, *a.shape[1:]), fill, dtype=a.dtype)
            grown[:old] = a
            setattr(self, name, grown)
        self.free.extend(range(rows - 1, old - 1, -1))

    # ---- reading ------------------------------------------------------------------------
    def held(self) -> list[int]:
        """Rows holding ``auth_failing`` now."""
        return np.flatnonzero(self.used & (self.i64[:, F_EP_START] != 0)).tolist()

    def record(self, row: int) -> dict[str, Any]:
        """The figures of a row (gids, not strings: ``vigie.classify.views`` names them)."""
        r = self.i64[row]
        n = int(r[F_N_OTHER])
        return {
            "kind": KINDS[int(r[F_KIND])],
            "key": int(r[F_KEY]),
            "held": bool(r[F_EP_START]),
            "failures_last_hour": int(self.window(np.array([row]))[0]),
            "failures_total": int(r[F_TOTAL]),
            "first_us": int(r[F_FIRST]),
            "last_us": int(r[F_LAST]),
            "episode_first_us": int(r[F_EP_START]),
            "episode_failures": int(r[F_EP_FAIL]),
            "episode_peak": int(r[F_EP_PEAK]),
            "codes": code_names(self.codes[row]),
            "others": [int(x) for x in self.other[row, : min(n, OTHER_SLOTS)]],
            "others_more": n > OTHER_SLOTS,
        }

    def mark_referenced(self, live: npt.NDArray[np.bool_]) -> None:
        """Set ``live`` at every interner id the table or its episodes refer to."""
        rows = self.used_rows()
        kind, key = self.i64[rows, F_KIND], self.i64[rows, F_KEY]
        other = self.other[rows]
        ids = [key[kind != K_API], other[kind == K_API].ravel()]
        apis = [key[kind == K_API], other[kind != K_API].ravel()]
        ep = np.array([(K_API if e.kind == "api" else K_IP, e.key) for e in self.episodes])
        if len(ep):
            ids.append(ep[ep[:, 0] != K_API, 1])
            apis.append(ep[ep[:, 0] == K_API, 1])
        for a in apis:
            a = a[a > 0]
            ids += [a >> 32, a & 0xFFFFFFFF]
        for a in ids:
            a = a[(a > 0) & (a < len(live))]
            live[a] = True

    def counts(self) -> dict[str, int]:
        """Rows holding the class, by kind."""
        out = dict.fromkeys(KINDS, 0)
        for r in self.held():
            out[KINDS[int(self.i64[r, F_KIND])]] += 1
        return out

    def counters(self) -> dict[str, int]:
        return {
            "auth_failures": self.failures,
            "auth_failures_late": self.late,
            "security_tracked_rows": len(self.index),
            "security_evicted_rows": self.evicted,
        }

    def copy(self) -> Security:
        new = copy.copy(self)
        for name in ("i64", "ring", "ring_min", "codes", "other", "used"):
            setattr(new, name, getattr(self, name).copy())
        new.n_kind = list(self.n_kind)
        new.index = dict(self.index)
        new.free = list(self.free)
        new.episodes = deque(self.episodes, maxlen=MAX_EPISODES)
        return new

    # ---- snapshot hook ------------------------------------------------------------------
    def used_arrays(self) -> dict[str, npt.NDArray[Any]]:
        rows = self.used_rows()
        scal = np.array([self.evicted, self.failures, self.late, self.now_us], dtype=np.int64)
        return {
            "sec_i64": self.i64[rows],
            "sec_ring": self.ring[rows],
            "sec_ring_min": self.ring_min[rows],
            "sec_codes": self.codes[rows],
            "sec_other": self.other[rows],
            "sec_scalars": scal,
        }

    def restore(self, arrays: dict[str, npt.NDArray[Any]]) -> bool:
        """From ``used_arrays``' arrays; False (and empty) when the snapshot has none."""
        names = ("sec_i64", "sec_ring", "sec_ring_min", "sec_codes", "sec_other", "sec_scalars")
        if any(name not in arrays for name in names):
            return False
        i64 = arrays["sec_i64"]
        n = len(i64)
        shapes = [(n, N_FIELDS), (n, WINDOW_MINUTES), (n, WINDOW_MINUTES), (n, 2)]
        if (
            [arrays[name].shape for name in names[:4]] != shapes
            or arrays["sec_other"].shape != (n, OTHER_SLOTS)
            or arrays["sec_scalars"].shape != (4,)
            or (n and not np.isin(i64[:, F_KIND], (K_IP, K_APP, K_API)).all())
        ):
            return False
        self._reset(max(64, n))
        self.i64[:n] = i64
        self.ring[:n] = arrays["sec_ring"]
        self.ring_min[:n] = arrays["sec_ring_min"]
        self.codes[:n] = arrays["sec_codes"]
        self.other[:n] = arrays["sec_other"]
        self.evicted, self.failures, self.late, self.now_us = (
            int(x) for x in arrays["sec_scalars"]
        )
        self.index = {(int(i64[r, F_KIND]), int(i64[r, F_KEY])): r for r in range(n)}
        if len(self.index) != n:  # two rows of one key: damaged
            self._reset(64)
            return False
        self.used[:n] = True
        self.n_kind = [int((i64[:, F_KIND] == k).sum()) for k in (K_IP, K_APP, K_API)]
        self.free = list(range(len(self.i64) - 1, n - 1, -1))
        return True
