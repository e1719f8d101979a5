"""The slow, obvious twins of the kernels: plain Python over dicts and lists.

``NaiveState`` is the twin of the ingest kernel (``vigie.state._kernels.apply_events``, with
its windows, rules and episodes; the row tables are its dicts), ``NaiveState.held`` of the
query-time reading (``State.held``: the hold rule, growing at now), ``latency_bucket`` and
``rate_bucket`` of the buckets (``vigie.state.primitives``), ``NaiveRollup`` of the rollup
kernel (``vigie.store._rollup_kernels``). Property tests compare each with its kernel
(tests/unit/state/test_kernels.py, tests/unit/store/test_rollup_kernel.py).

``NaiveState`` keeps every accepted event and recomputes each window by scanning, so it shares
nothing with the kernel's rings, running sums, hash tables or caches — only the documented
semantics:
* a window is the SLOTS slots ending with the newest slot the row has seen; an event of an older
  slot than that is counted all-time but not in the window;
* rules are evaluated after each event, on the row's windows; a rule holding at t extends the
  class's episode, or opens a new one when the rule had been quiet for longer than the hold;
* growing is evaluated when a row's hour moves on, on the 7 days ending with the finished hour.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vigie.state import layout as L

HOUR = L.HOUR_US
DAY = L.DAY_US


def latency_bucket(us: int) -> int:
    """OTLP: bucket i at scale 3 holds values in (2^(i/8), 2^((i+1)/8)]; value in seconds.
    Found by walking the boundaries, not by a logarithm."""
    if us <= 0:
        return 0
    v = us / 1e6
    i = L.LAT_MIN_INDEX - 1
    while i < L.LAT_MAX_INDEX and not v <= 2.0 ** ((i + 1) / 8):
        i += 1
    return min(max(i - L.LAT_MIN_INDEX + 1, 1), L.LAT_BUCKETS)


def rate_bucket(count: int) -> int:
    b = math.ceil(math.log2(count) * 4.0)  # index + 1 where index = ceil(log_b(count)) - 1
    return min(max(b, 0), L.RATE_BUCKETS - 1)


@dataclass
class Row:
    first_seen: int = 0
    last_seen: int = 0
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    hist: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    rate: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    max_rpm: int = 0
    # windows: lists of (slot, {field: 1/0}) accepted into the window
    short: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    short_cur: int = 0
    retry: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    retry_cur: int = 0
    hours: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    hour_cur: int = 0
    days: list[tuple[int, int]] = field(default_factory=list)  # (day, channel)
    day_cur: int = 0
    first_true: dict[int, int] = field(default_factory=dict)
    last_true: dict[int, int] = field(default_factory=dict)
    evidence: dict[int, tuple[float, ...]] = field(default_factory=dict)
    episodes: list[tuple[int, int, int]] = field(
        default_factory=list
    )  # closed (class, first, last)
    # every failure (request time, response time) the subscription had: all, without a
    # resource, per (resource, method); with bounded_retries, only the remembered ones
    fails: list[tuple[int, int]] = field(default_factory=list)
    fails_nores: list[tuple[int, int]] = field(default_factory=list)
    fails_by_res: dict[tuple[int, int], list[tuple[int, int]]] = field(default_factory=dict)
    reads: dict[Any, int] = field(default_factory=dict)


class NaiveState:
    def __init__(
        self,
        params: np.ndarray,
        app_channel: dict[int, int] | None = None,
        bounded_retries: bool = False,
    ) -> None:
        """``bounded_retries``: a late failure (request time before the remembered failures'
        windows and apart from them) is forgotten, as the kernel's bounded memory documents
        (vigie.state._tables.remember_failure); otherwise every failure is kept, the rule as
        written. The two agree when events come in request-time order."""
        self.bounded_retries = bounded_retries
        self.p = params
        self.subs: dict[tuple[int, int, int], Row] = {}
        self.apis: dict[tuple[int, int], Row] = {}
        # (api name, version, resource, method, status, error code, channel, throttled)
        self.routes: dict[tuple[int, ...], int] = defaultdict(int)
        self.app_channel = app_channel or {}
        self.now = 0
        self.obs_start = 0

    # ---- helpers ----
    def _ext(self, c: int) -> int:
        """throttle_hitter holds for its lookback after its last event, by its wording."""
        return int(self.p[L.P_THR_LOOKBACK_US]) if c == L.C_THROTTLE_HITTER else 0

    def _raise(self, row: Row, c: int, t: int, ev: tuple[float, ...]) -> None:
        ext = self._ext(c)
        hold = self.p[L.P_HOLD_US]
        if c not in row.last_true:
            row.first_true[c] = row.last_true[c] = t
        elif t - (row.last_true[c] + ext) > hold:
            row.episodes.append((c, row.first_true[c], row.last_true[c]))
            row.first_true[c] = row.last_true[c] = t
        else:
            row.first_true[c] = min(row.first_true[c], t)
            if t < row.last_true[c]:
                return
            row.last_true[c] = t
        row.evidence[c] = ev

    def _growing(self, row: Row, end: int) -> tuple[bool, tuple[float, ...]]:
        last7 = sum(v for h, v in row.hours.items() if end - 167 <= h <= end)
        prev7 = sum(v for h, v in row.hours.items() if end - 335 <= h <= end - 168)
        obs_h = self.obs_start // HOUR
        observed = max(0, (end - 168) - max(end - 335, obs_h) + 1)
        if observed < self.p[L.P_GROW_MIN_PREV_HOURS]:
            return False, ()
        ratio = last7 / prev7 if prev7 else math.inf
        ok = last7 >= self.p[L.P_GROW_MIN_REQ] and last7 >= self.p[L.P_GROW_RATIO] * prev7
        return ok, (last7, float(prev7), observed, ratio)

    def _hour_event(self, row: Row, t: int, kind: int) -> None:
        h = t // HOUR
        if h > row.hour_cur:
            if row.hour_cur > 0:
                ok, ev = self._growing(row, row.hour_cur)
                if ok:
                    self._raise(row, L.C_GROWING, (row.hour_cur + 1) * HOUR - 1, ev)
            row.hour_cur = h
            for k in [k for k in row.hours if k <= h - L.HOUR_SLOTS]:
                del row.hours[k]
        if h > row.hour_cur - L.HOUR_SLOTS:
            row.hours[h] += 1

    # ---- reading (State.held, State.api_held) ----
    def held(self, row: Row, now: int) -> set[int]:
        """The windowed classes (``C_*``) ``row`` holds at ``now``: an episode begun by now whose
        rule has been quiet for at most the hold (after the class's extension), or growing on
        the 7 days ending with now's hour."""
        out = {
            c
            for c, last in row.last_true.items()
            if row.first_true[c] <= now and now - (last + self._ext(c)) <= self.p[L.P_HOLD_US]
        }
        if row.hour_cur > 0 and self._growing(row, now // HOUR)[0]:
            out.add(L.C_GROWING)
        return out

    # ---- the kernel's job ----
    def apply(self, ev: dict[str, list[int]], channel: list[int]) -> None:
        p = self.p
        for i in range(len(ev["event_time_us"])):
            t = ev["event_time_us"][i]
            name, ver = ev["api_name"][i], ev["api_version"][i]
            if name == 0:
                continue
            app = ev["application_id"][i]
            st, ec = ev["http_status"][i], ev["error_code"][i]
            res, me = ev["resource_template"][i], ev["http_method"][i]
            lat, ch = ev["latency_us"][i], channel[i]
            throttled = bool(ev["flags"][i] & 1) or 900800 <= ec <= 900899
            is2, is3, is4, is5 = (
                (200 <= st < 300),
                (300 <= st < 400),
                (400 <= st < 500),
                (500 <= st < 600),
            )
            client_err = is4 and st != 429
            failure = is5 or throttled
            self.obs_start = t if self.obs_start == 0 else min(self.obs_start, t)
            self.now = max(self.now, t)
            api = self.apis.setdefault((name, ver), Row())
            api.first_seen = t if api.first_seen == 0 else min(api.first_seen, t)
            api.last_seen = max(api.last_seen, t)
            for name_, v in (
                ("req", 1),
                ("2xx", is2),
                ("3xx", is3),
                ("4xx", is4),
                ("5xx", is5),
                ("throttled", throttled),
            ):
                api.counts[name_] += int(v)
            api.hist[latency_bucket(lat)] += 1
            self._hour_event(api, t, 1)
            self.routes[(name, ver, res, me, st, ec, ch, int(throttled))] += 1
            if app == 0:
                continue
            row = self.subs.setdefault((app, name, ver), Row())
            row.first_seen = t if row.first_seen == 0 else min(row.first_seen, t)
            row.last_seen = max(row.last_seen, t)
            for name_, v in (
                ("req", 1),
                ("2xx", is2),
                ("3xx", is3),
                ("4xx", is4),
                ("5xx", is5),
                ("client_err", client_err),
                ("throttled", throttled),
            ):
                row.counts[name_] += int(v)
            row.counts[f"ch{ch}"] += 1
            row.hist[latency_bucket(lat)] += 1

            gap = p[L.P_RETRY_GAP_US]

            def within(fails: list[tuple[int, int]], t: int = t, gap: float = gap) -> bool:
                """The rule: after a failure, no later than gap after its response."""
                return any(s <= t <= e + gap for s, e in fails)

            if res == 0:
                is_retry = within(row.fails)
            else:
                is_retry = within(row.fails_by_res.get((res, me), [])) or within(row.fails_nores)
            if failure:
                f = (t, t + lat)
                lists = [row.fails, row.fails_nores if res == 0 else None]
                if res != 0:
                    lists[1] = row.fails_by_res.setdefault((res, me), [])
                for fl in lists:
                    assert fl is not None
                    if self.bounded_retries and fl:
                        lo = min(s for s, _ in fl)
                        hi = max(e for _, e in fl) + gap
                        if t > hi:  # a new piece: the old one is no longer remembered
                            fl.clear()
                        elif t + lat + gap < lo:  # late and apart: forgotten
                            continue
                    fl.append(f)
            is_read = (is2 or st == 304) and me in (1, 2)
            is_repeat = False
            if is_read:
                uh = ev["uri_hash"][i]
                rb = ev["response_bytes"][i]
                ident: Any = ("uri", uh) if uh else ("tpl", res, me, st, rb if rb >= 0 else None)
                prev_t = row.reads.get(ident)
                if prev_t is not None:
                    is_repeat = abs(t - prev_t) <= p[L.P_RED_GAP_US]
                    row.reads[ident] = max(prev_t, t)
                else:
                    row.reads[ident] = t
            row.counts["retries"] += int(is_retry)
            row.counts["repeats"] += int(is_repeat)

            # short window
            k = t // int(p[L.P_SW_SLOT_US])
            if k > row.short_cur:
                if row.short_cur > 0:
                    c = sum(e["req"] for s, e in row.short if s == row.short_cur)
                    if c > 0:
                        row.rate[rate_bucket(c)] += 1
                        row.max_rpm = max(row.max_rpm, c)
                row.short_cur = k
            if k > row.short_cur - L.SHORT_SLOTS:
                row.short.append(
                    (
                        k,
                        {
                            "req": 1,
                            "cerr": int(client_err),
                            "reads": int(is_read),
                            "reps": int(is_repeat),
                            "thr": int(throttled),
                        },
                    )
                )
            win = [e for s, e in row.short if s > row.short_cur - L.SHORT_SLOTS]
            q = sum(e["req"] for e in win)
            ce = sum(e["cerr"] for e in win)
            reads = sum(e["reads"] for e in win)
            reps = sum(e["reps"] for e in win)
            thr = sum(e["thr"] for e in win)
            # retry window
            k = t // int(p[L.P_RW_SLOT_US])
            row.retry_cur = max(row.retry_cur, k)
            if k > row.retry_cur - L.RETRY_SLOTS:
                row.retry.append((k, {"req": 1, "retry": int(is_retry)}))
            rwin = [e for s, e in row.retry if s > row.retry_cur - L.RETRY_SLOTS]
            rq = sum(e["req"] for e in rwin)
            rr = sum(e["retry"] for e in rwin)
            self._hour_event(row, t, 0)
            d = t // DAY
            row.day_cur = max(row.day_cur, d)
            if d > row.day_cur - L.DAY_SLOTS:
                row.days.append((d, ch))
            # rules
            if rr >= p[L.P_RETRY_MIN] and rr >= p[L.P_RETRY_SHARE] * rq:
                self._raise(row, L.C_RETRY_STORM, t, (rr, rq, rr / rq, 0.0))
            if q >= p[L.P_ERR_MIN_REQ] and ce >= p[L.P_ERR_SHARE] * q:
                self._raise(row, L.C_ERROR_PRONE, t, (ce, q, ce / q, 0.0))
            if q >= p[L.P_RED_MIN_REQ] and reads > 0 and reps >= p[L.P_RED_SHARE] * reads:
                self._raise(row, L.C_REDUNDANT, t, (reps, reads, reps / reads, q))
            if thr >= p[L.P_THR_MIN]:
                self._raise(row, L.C_THROTTLE_HITTER, t, (thr, q, thr / q, 0.0))
            wc = self._wrong_channel(row, self.app_channel.get(app, -1))
            if wc is not None:
                self._raise(row, L.C_WRONG_CHANNEL, t, wc)

    def _wrong_channel(self, row: Row, registered: int) -> tuple[float, ...] | None:
        p = self.p
        per: dict[int, int] = defaultdict(int)
        for d, ch in row.days:
            if d > row.day_cur - L.DAY_SLOTS:
                per[ch] += 1
        total = sum(per.values())
        if total == 0:
            return None
        expected = registered
        if expected < 0:
            top_c = max(sorted(per), key=lambda c: (per[c], -c))
            if per[top_c] < p[L.P_WC_DOMINANT_SHARE] * total:
                return None
            expected = top_c
        best, best_v = -1, 0
        for c in sorted(per):
            v = per[c]
            if c == expected or v < p[L.P_WC_MIN_REQ] or v < p[L.P_WC_MIN_SHARE] * total:
                continue
            if registered < 0 and v >= p[L.P_WC_MINOR_SHARE] * total:
                continue
            if v > best_v:
                best, best_v = c, v
        if best < 0:
            return None
        return (best, best_v, best_v / total, expected)


# ---------------------------------------------------------------------------------------------
# The rollup kernel's twin (vigie.store._rollup_kernels): a dict of minute rows
# ---------------------------------------------------------------------------------------------

# measure columns, in vigie.store.rollup.MEASURES order
REQUESTS, SUCCESSES, CLIENT_ERRORS, SERVER_ERRORS, THROTTLED = range(5)
LATENCY_SUM, BACKEND_LATENCY_SUM, REQUEST_BYTES, RESPONSE_BYTES = range(5, 9)
MINUTE = 60_000_000


def rollup_outcome(status: int, error_code: int, flags: int) -> int:
    """The measure an event counts in: throttled (WSO2 900800-900899 or vigie's flag; a bare
    429 is a 4xx), then server errors (5xx, or no HTTP status), client errors (4xx), successes."""
    if flags & 1 or 900800 <= error_code <= 900899:
        return THROTTLED
    if status >= 500 or status < 100:
        return SERVER_ERRORS
    if status >= 400:
        return CLIENT_ERRORS
    return SUCCESSES


@dataclass
class NaiveRollup:
    """Minute rows keyed by (minute start, API, version, resource, method, application id,
    application name, channel, status, error code): nine measures and a latency histogram
    (bucket -> count). No packing, no tables, no eviction: one dict entry per key."""

    measures: dict[tuple[int, ...], list[int]] = field(default_factory=dict)
    hist: dict[tuple[int, ...], dict[int, int]] = field(default_factory=dict)
    skipped: int = 0

    def add(self, ev: dict[str, list[int]], channel: list[int]) -> None:
        for i in range(len(ev["event_time_us"])):
            if ev["api_name"][i] == 0:
                self.skipped += 1
                continue
            t = ev["event_time_us"][i]
            st, ec = ev["http_status"][i], ev["error_code"][i]
            key = (
                t - t % MINUTE,
                ev["api_name"][i],
                ev["api_version"][i],
                ev["resource_template"][i],
                ev["http_method"][i],
                ev["application_id"][i],
                ev["application_name"][i],
                channel[i],
                st,
                ec,
            )
            m = self.measures.setdefault(key, [0] * 9)
            m[REQUESTS] += 1
            m[rollup_outcome(st, ec, ev["flags"][i])] += 1
            m[LATENCY_SUM] += ev["latency_us"][i]
            m[BACKEND_LATENCY_SUM] += ev["backend_latency_us"][i]
            m[REQUEST_BYTES] += max(0, ev["request_bytes"][i])
            m[RESPONSE_BYTES] += max(0, ev["response_bytes"][i])
            h = self.hist.setdefault(key, defaultdict(int))
            h[latency_bucket(ev["latency_us"][i])] += 1

    def daily(self) -> dict[tuple[int, ...], list[int]]:
        """The minute rows summed by day, without the status (the daily table's key)."""
        out: dict[tuple[int, ...], list[int]] = {}
        for key, m in self.measures.items():
            day = (key[0] - key[0] % DAY, *key[1:8], key[9])
            d = out.setdefault(day, [0] * 9)
            for k, v in enumerate(m):
                d[k] += v
        return out


# ---------------------------------------------------------------------------------------------
# the health classes (twin of vigie.state._baselines): events kept per minute and per hour in
# dicts, every window and baseline recomputed by lookups at each minute boundary
# ---------------------------------------------------------------------------------------------
HEALTH_RING = 15
HEALTH_WEEKS = 4
CONNECTION_FAILURES = (101503, 101504, 101505, 303001)


def health_bucket(latency_us: int) -> int:
    """The coarse latency bucket (four an octave from 1 ms), found by walking the edges."""
    b = 0
    while b < 63 and latency_us >= 1000 * 2.0 ** (b / 4):
        b += 1
    return b


def health_p95(hist: dict[int, int]) -> float:
    n = sum(hist.values())
    if n == 0:
        return math.nan
    acc = 0
    for b in sorted(hist):
        acc += hist[b]
        if acc >= 0.95 * n:
            return float(2.0 ** (b / 4))
    raise AssertionError("unreachable")


def lower_weighted_median(pairs: list[tuple[float, float]]) -> float:
    """The smallest value whose cumulative weight (ascending values) reaches half the total."""
    ordered = sorted(pairs)
    total = sum(w for _, w in ordered)
    acc = 0.0
    for v, w in ordered:
        acc += w
        if acc >= total / 2:
            return v
    return ordered[-1][0]


def health_count_stored(n: int) -> float:
    """An hour's requests as a subscription's table gives them back (a 2048 x log2(1 + n)
    code, rounded both ways)."""
    if n <= 0:
        return 0.0
    code = min(math.floor(2048 * math.log2(1 + n) + 0.5), 65535)
    return float(math.floor(2 ** (code / 2048) - 1 + 0.5))


def health_share_stored(share: float) -> float:
    """A 5xx share as a subscription's table gives it back (a 254 x sqrt(share) code)."""
    return (math.floor(254 * math.sqrt(share) + 0.5) / 254) ** 2


def naive_health(
    events: list[tuple[int, ...]], th: Any
) -> tuple[dict[tuple[Any, ...], list[tuple[int, int]]], dict[tuple[Any, ...], list[float]]]:
    """Episodes of the health classes for events (t, app, api, status, error_code, latency_us
    [, backend_latency_us]) in arrival order (app 0: none), with
    ``vigie.state.thresholds.Thresholds`` ``th``.

    Returns {(kind, key, class): [(first, last), ...]} (closed episodes, then the open one) and
    the figures of each open episode at its last holding, {(kind, key, class): figures}; kind
    is "sub" (key (app, api)) or "api" (key api)."""
    minute_us = 60_000_000
    per_min: dict[tuple[Any, ...], dict[int, list[int]]] = defaultdict(dict)  # row -> minute
    lat_min: dict[Any, dict[int, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    blat_min: dict[Any, dict[int, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    sums_min: dict[Any, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    hours: dict[tuple[Any, ...], dict[int, list[Any]]] = defaultdict(dict)  # row -> hour
    since: dict[tuple[Any, ...], int] = {}
    arrivals_min: dict[int, int] = defaultdict(int)  # arrivals during each current minute
    arrivals_hour: set[int] = set()
    run: dict[int, int] = defaultdict(int)
    peak: dict[int, int] = defaultdict(int)
    first: dict[tuple[Any, ...], int] = {}
    last: dict[tuple[Any, ...], int] = {}
    figures: dict[tuple[Any, ...], list[float]] = {}
    episodes: dict[tuple[Any, ...], list[tuple[int, int]]] = defaultdict(list)
    hold = th.health_hold_seconds * 1e6
    nan = math.nan

    def step(key: tuple[Any, ...], holds: bool, now: int, figs: list[float]) -> None:
        if holds:
            first.setdefault(key, now)
            last[key] = now
            figures[key] = figs
        elif key in first and now - last[key] >= hold:
            episodes[key].append((first.pop(key), last.pop(key)))
            figures.pop(key)

    def baseline(row: tuple[Any, ...], hour: int, field: int) -> list[tuple[float, float]]:
        """field 0 requests, 1 5xx share, 2 p95, 3 backend p95 (APIs); a subscription's as
        its compact table stores them."""
        slot, week = (hour + 72) % 168, (hour + 72) // 168
        out = []
        for w in range(week - HEALTH_WEEKS, week):
            h = w * 168 + slot - 72
            if h not in arrivals_hour or h < since[row]:
                continue
            cell = hours[row].get(h, [0, 0, {}, {}])
            if field == 0:
                value = float(cell[0])
                if row[0] == "sub":
                    value = health_count_stored(cell[0])
            elif field == 3:
                if sum(cell[3].values()) < 20:
                    continue
                value = health_p95(cell[3])
            elif cell[0] < 20:
                continue
            elif field == 1:
                value = cell[1] / cell[0]
                if row[0] == "sub":
                    value = health_share_stored(value)
            else:
                value = health_p95(cell[2])
            out.append((value, 0.5 ** ((week - w - 1) / th.baseline_halflife_weeks)))
        return out

    def window(row: tuple[Any, ...], m: int, n: int, k: int) -> float:
        return float(sum(per_min[row].get(x, [0, 0, 0])[k] for x in range(m - n, m)))

    def median_or_nan(pairs: list[tuple[float, float]]) -> float:
        return lower_weighted_median(pairs) if pairs else nan

    def anomaly(row: tuple[Any, ...], key: tuple[Any, ...], m: int, now: int) -> None:
        n = int(th.anomaly_window_seconds // 60)
        count = window(row, m, n, 0)
        hour = (m - 1) // 60
        pairs = baseline(row, hour, 0)
        holds, figs = False, [0.0] * 10
        if len(pairs) >= th.baseline_min_weeks and since[row] * 3600e6 <= now - n * minute_us:
            med = lower_weighted_median(pairs)
            mad = lower_weighted_median([(abs(v - med), w) for v, w in pairs])
            scale = n / 60
            mid = med * scale
            spread = max(mad * scale, th.anomaly_min_spread * mid, math.sqrt(mid))
            d = 0
            if count > mid + th.anomaly_k * spread and count >= th.anomaly_min_requests:
                d = 1
            elif count < mid - th.anomaly_k * spread and mid >= th.anomaly_min_requests:
                d = -1
            holds = d != 0
            figs = [count, mid, spread, float(d), float(len(pairs)), 0.0, 0.0, 0.0, 0.0, 0.0]
            if holds and row[0] == "sub":
                cell = hours[row].get(hour, [0, 0, {}, {}])
                figs[5] = window(row, m, n, 1) / count if count else nan
                figs[6] = median_or_nan(baseline(row, hour, 1))
                figs[7] = health_p95(cell[2]) if cell[0] >= 20 else nan
                figs[8] = median_or_nan(baseline(row, hour, 2))
        step(key, holds, now, figs)

    def evaluate(m: int) -> None:
        now = m * minute_us
        for row in sorted(r for r in since if r[0] == "sub"):
            anomaly(row, (*row, "traffic_anomaly"), m, now)
        for row in sorted(r for r in since if r[0] == "api"):
            api = row[1]
            dn = int(th.degraded_window_seconds // 60)
            req, err = window(row, m, dn, 0), window(row, m, dn, 1)
            holds, figs = False, [0.0] * 10
            if req >= th.degraded_min_requests and since[row] * 3600e6 <= now - dn * minute_us:
                hist: dict[int, int] = defaultdict(int)
                bhist: dict[int, int] = defaultdict(int)
                lsum = bsum = 0
                for x in range(m - dn, m):
                    for b, c in lat_min[api].get(x, {}).items():
                        hist[b] += c
                    for b, c in blat_min[api].get(x, {}).items():
                        bhist[b] += c
                    if x in sums_min[api]:
                        lsum += sums_min[api][x][0]
                        bsum += sums_min[api][x][1]
                figs = [health_p95(hist), 0.0, err / req, 0.0, req, 0.0, health_p95(bhist)]
                figs += [0.0, bsum / lsum if lsum else nan, 0.0]
                lat_pairs = baseline(row, (m - 1) // 60, 2)
                if len(lat_pairs) >= th.baseline_min_weeks:
                    figs[1] = lower_weighted_median(lat_pairs)
                    holds |= figs[0] >= th.degraded_latency_ratio * figs[1]
                back_pairs = baseline(row, (m - 1) // 60, 3)
                if len(back_pairs) >= th.baseline_min_weeks:
                    figs[7] = lower_weighted_median(back_pairs)
                    holds |= figs[6] >= th.degraded_latency_ratio * figs[7]
                share_pairs = baseline(row, (m - 1) // 60, 1)
                if len(share_pairs) >= th.baseline_min_weeks:
                    figs[3] = lower_weighted_median(share_pairs)
                    holds |= figs[2] >= th.degraded_error_share and (
                        figs[2] >= th.degraded_error_ratio * figs[3]
                    )
                figs[5] = float(len(share_pairs))
            step((*row, "degraded"), holds, now, figs)
            bn = int(th.backend_down_window_seconds // 60)
            req, conn = window(row, m, bn, 0), window(row, m, bn, 2)
            p = peak[api]
            peak[api] = run[api]
            holds = p >= th.backend_down_consecutive or (
                req >= th.backend_down_min_requests
                and req > 0
                and conn >= th.backend_down_share * req
            )
            figs = [float(p), conn, req, conn / req if req else 0.0] + [0.0] * 6
            step((*row, "backend_down"), holds, now, figs)
            anomaly(row, (*row, "traffic_anomaly"), m, now)

    cur = -1
    for ev in events:
        t, app, api, status, code, lat = ev[:6]
        back = ev[6] if len(ev) > 6 else 0
        m = t // minute_us
        if cur < 0:
            cur = m
        while cur < m:
            cur += 1
            if arrivals_min.get(cur - 1, 0) > 0:
                evaluate(cur)
        if cur - m >= HEALTH_RING:
            continue
        arrivals_min[cur] += 1
        arrivals_hour.add(cur // 60)
        same_hour = m // 60 == cur // 60
        rows = [("api", api)] + ([("sub", app, api)] if app else [])
        for row in rows:
            since.setdefault(row, (t - minute_us) // HOUR + 1)
            c = per_min[row].setdefault(m, [0, 0, 0])
            c[0] += 1
            c[1] += 500 <= status < 600
            c[2] += code in CONNECTION_FAILURES
            if same_hour:
                cell = hours[row].setdefault(m // 60, [0, 0, defaultdict(int), defaultdict(int)])
                cell[0] += 1
                cell[1] += 500 <= status < 600
                cell[2][health_bucket(lat)] += 1
                if back > 0:
                    cell[3][health_bucket(back)] += 1
        lat_min[api][m][health_bucket(lat)] = lat_min[api][m].get(health_bucket(lat), 0) + 1
        if back > 0:
            bb = health_bucket(back)
            blat_min[api][m][bb] = blat_min[api][m].get(bb, 0) + 1
            sums_min[api][m][0] += lat
            sums_min[api][m][1] += back
        if code in CONNECTION_FAILURES:
            run[api] += 1
            peak[api] = max(peak[api], run[api])
        else:
            run[api] = 0
    for key in first:
        episodes[key].append((first[key], last[key]))
    return dict(episodes), figures


# ---------------------------------------------------------------------------------------------
# auth_failing (vigie.state._security): every failure kept, every window recounted
# ---------------------------------------------------------------------------------------------
AUTH_QUIET = 3_600_000_000


def is_auth_failure(status: int, error_code: int, application: int) -> bool:
    """900900-900999, or no code, no application and 401/403."""
    if 900_900 <= error_code <= 900_999:
        return True
    return error_code == 0 and application == 0 and status in (401, 403)


def naive_auth_failing(
    batches: list[list[dict[str, int]]], min_failures: float
) -> tuple[dict[tuple[str, int], dict[str, Any]], list[tuple[str, int, int, int]]]:
    """The twin of ``Security.apply`` with no eviction: ``batches`` of events (``t``, ``ip``,
    ``app``, ``api`` (the API key), ``status``, ``code``). Returns the rows holding the class
    after the last batch ({(kind, key): figures}) and the closed episodes (kind, key, first,
    last), in closing order."""
    kept: dict[tuple[str, int], list[int]] = defaultdict(list)  # times counted in a window
    seen: dict[tuple[str, int], list[int]] = defaultdict(list)  # every failure
    codes: dict[tuple[str, int], set[str]] = defaultdict(set)
    others: dict[tuple[str, int], set[int]] = defaultdict(set)
    active: dict[tuple[str, int], int] = {}  # -> episode first
    closed: list[tuple[str, int, int, int]] = []
    now = 0
    for batch in batches:
        if batch:
            now = max(now, max(e["t"] for e in batch))
        now_min = now // MINUTE
        for e in batch:
            if not is_auth_failure(e["status"], e["code"], e["app"]):
                continue
            code = str(e["code"]) if e["code"] else str(e["status"])
            keys = [
                ("ip", e["ip"], e["api"]),
                ("app", e["app"], e["api"]),
                ("api", e["api"], e["ip"]),
            ]
            for kind, key, other in keys:
                if kind != "api" and key == 0:
                    continue
                k = (kind, key)
                seen[k].append(e["t"])
                codes[k].add(code)
                if other:
                    others[k].add(other)
                if e["t"] // MINUTE > now_min - 60:
                    kept[k].append(e["t"])
        for k in sorted(seen):
            window = [t for t in kept[k] if t // MINUTE > now_min - 60]
            if k in active:
                if now - max(seen[k]) >= AUTH_QUIET:
                    closed.append((*k, active.pop(k), max(seen[k])))
            elif len(window) >= min_failures:
                active[k] = max(min(window) // MINUTE * MINUTE, min(seen[k]))
    held = {}
    for k, first in active.items():
        window = [t for t in kept[k] if t // MINUTE > now // MINUTE - 60]
        held[k] = {
            "failures_last_hour": len(window),
            "failures_total": len(seen[k]),
            "first_us": min(seen[k]),
            "last_us": max(seen[k]),
            "episode_first_us": first,
            "codes": sorted(codes[k]),
            "n_others": len(others[k]),
        }
    return held, closed
