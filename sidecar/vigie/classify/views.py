"""What the state says about each subscription and API at a given "now": classes held, the
evidence behind each, and the episode history. Plain dataclasses, shared by the replay report,
the admin service and the CLI.

Two verdicts are corrected here, on reading, because the state cannot know what it has not
seen (``verdicts``, the one place of the rule):

- ``dormant`` (``retired`` for an API) needs ``dormant_seconds`` (``retired_seconds``) of
  observed traffic on the platform (since a live sidecar's first ingested batch):
  before that a subscription never seen is ``unknown``, not dormant, and nothing is proposed
  for it;
- the inventory's dates (``sources.inventory``: created, last used, as of when) count too
  (``judge_silence``): a subscription or API younger than the rule (it, its application or
  its API created less than ``dormant_seconds`` ago) and never seen is ``unknown``; one WSO2
  says was used less than that ago is not dormant; and before vigie has observed that long,
  one whose last use (or, never used, its creation) is at least that old by the inventory is
  ``dormant`` — when vigie has been observing since the inventory's ``as_of`` (up to
  ``INVENTORY_GAP_US`` before it) and has seen no request of it since;
- ``growing`` whose consumer had no request in the earlier week, or was first seen less than
  ``growing_min_previous_hours`` ago, is ``new``: its growth cannot be measured (it would be
  infinite).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vigie.classify import health
from vigie.classify.silence import Notes, RowDates, dated, dated_arrays, row_dates
from vigie.classify.silence import iso as iso
from vigie.sources.inventory import Dates
from vigie.state import layout as L
from vigie.state.engine import State
from vigie.state.thresholds import (
    API_CLASS_NAMES,
    API_HEALTH_CLASS_NAMES,
    CLASS_NAMES,
    HEALTH_CLASS_NAMES,
)
from vigie.wire import tenants

API_VIEW_CLASS_NAMES: Final = (*API_CLASS_NAMES, "new", "unknown")

# the figures that say the most about each class, for one-line summaries
HEADLINE: dict[str, tuple[str, ...]] = {
    "retry_storm": ("retries", "requests"),
    "error_prone": ("client_errors", "requests"),
    "redundant": ("repeated_reads", "successful_reads"),
    "throttle_hitter": ("throttled",),
    "wrong_channel": ("channel", "requests", "expected_channel"),
    "growing": ("last_7_days", "previous_7_days"),
    "dormant": ("days_without_requests",),
    "retired": ("days_without_requests",),
    "new": ("first_seen", "last_7_days"),
    "unknown": ("observed_days", "needed_days"),
    "traffic_anomaly": ("direction", "requests", "baseline_requests"),
    "degraded": ("cause", "p95_ms", "baseline_p95_ms", "backend_p95_ms", "server_error_share"),
    "backend_down": ("consecutive_failures", "connection_failures", "requests"),
}
# the subscription classes a view may hold besides "normal": the state's, then the verdicts
# corrected on reading
VIEW_CLASS_NAMES: Final = (*CLASS_NAMES, "new", "unknown")


def _health_evidence(
    state: State, class_name: str, ev: np.ndarray, last_true: int
) -> dict[str, Any]:
    """The figures of a health class (``vigie.state._baselines``) at the last time its rule
    held (``classify.health``)."""
    return health.evidence(state.thresholds, class_name, ev, iso(last_true))


def headline(class_name: str, figures: dict[str, Any]) -> str:
    """``retry_storm: retries=42 requests=50``"""
    parts = []
    for k in HEADLINE.get(class_name, ()):
        v = figures.get(k)
        parts.append(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}")
    return f"{class_name}: " + " ".join(parts)


@dataclass(slots=True)
class EpisodeView:
    class_name: str
    first_us: int
    last_us: int

    def to_json(self) -> dict[str, Any]:
        return {"class": self.class_name, "first": iso(self.first_us), "last": iso(self.last_us)}


@dataclass(slots=True)
class SubscriptionView:
    application_id: str
    application: str
    owner: str
    api: str
    api_version: str
    tier: str
    requests: int
    classes: list[str]
    evidence: dict[str, dict[str, Any]]
    episodes: list[EpisodeView]
    first_seen_us: int
    last_seen_us: int
    client_errors: int
    server_errors: int
    throttled: int
    channels: dict[str, int] = field(default_factory=dict)
    tenant: str = tenants.SUPER_TENANT  # the API's WSO2 tenant domain

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "application_id": self.application_id,
            "application": self.application,
            "api": self.api,
            "api_version": self.api_version,
            "requests": self.requests,
            "classes": self.classes,
            "evidence": self.evidence,
            "episodes": [e.to_json() for e in self.episodes],
            "owner": self.owner,
            "tier": self.tier,
            "first_seen": iso(self.first_seen_us),
            "last_seen": iso(self.last_seen_us),
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "throttled": self.throttled,
            "channels": self.channels,
        }


@dataclass(slots=True)
class ApiView:
    api: str
    api_version: str
    context: str
    requests: int
    classes: list[str]
    evidence: dict[str, dict[str, Any]]
    first_seen_us: int
    last_seen_us: int
    tenant: str = tenants.SUPER_TENANT  # WSO2 tenant domain
    api_id: str = ""  # WSO2's API UUID, when an event or the inventory said it

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "api": self.api,
            "api_id": self.api_id,
            "api_version": self.api_version,
            "requests": self.requests,
            "classes": self.classes,
            "evidence": self.evidence,
            "context": self.context,
            "first_seen": iso(self.first_seen_us),
            "last_seen": iso(self.last_seen_us),
        }


def _silence(now: int, last_seen: int) -> dict[str, Any]:
    return {
        "last_seen": iso(last_seen),
        "days_without_requests": round((now - last_seen) / 86_400e6, 2) if last_seen else None,
    }


def _windowed_evidence(state: State, c: int, ev: np.ndarray, last_true: int) -> dict[str, Any]:
    th = state.thresholds
    at = iso(last_true)
    if c == L.C_RETRY_STORM:
        return {
            "retries": int(ev[0]),
            "requests": int(ev[1]),
            "share": round(float(ev[2]), 4),
            "window_seconds": th.retry_window_seconds,
            "retry_gap_seconds": th.retry_gap_seconds,
            "at": at,
        }
    if c == L.C_ERROR_PRONE:
        return {
            "client_errors": int(ev[0]),
            "requests": int(ev[1]),
            "share": round(float(ev[2]), 4),
            "window_seconds": th.short_window_seconds,
            "at": at,
        }
    if c == L.C_REDUNDANT:
        return {
            "repeated_reads": int(ev[0]),
            "successful_reads": int(ev[1]),
            "share": round(float(ev[2]), 4),
            "requests": int(ev[3]),
            "repeat_gap_seconds": th.redundant_gap_seconds,
            "window_seconds": th.short_window_seconds,
            "at": at,
        }
    if c == L.C_THROTTLE_HITTER:
        return {
            "throttled": int(ev[0]),
            "requests": int(ev[1]),
            "window_seconds": th.short_window_seconds,
            "at": at,
        }
    if c == L.C_WRONG_CHANNEL:

        def chan(i: float) -> str:
            k = int(i)
            return state.channels[k] if 0 <= k < len(state.channels) else f"#{k}"

        return {
            "channel": chan(ev[0]),
            "requests": int(ev[1]),
            "share": round(float(ev[2]), 4),
            "expected_channel": chan(ev[3]),
            "window_days": L.DAY_SLOTS,
            "at": at,
        }
    return _growing_evidence(ev, at)


def _growing_evidence(ev: np.ndarray, at: str | None) -> dict[str, Any]:
    return {
        "last_7_days": int(ev[0]),
        "previous_7_days": round(float(ev[1]), 1),
        "previous_hours_observed": int(ev[2]),
        "ratio": round(float(ev[3]), 3) if np.isfinite(ev[3]) else None,
        "at": at,
    }


def observed_us(state: State, now: int) -> int:
    """How long vigie has observed this platform at ``now``: since a live sidecar first
    ingested (``observed_since_us``), else since the earliest event (a replay). An event dated
    far in the past never lengthens it."""
    start = state.observed_since_us or int(state.g[L.G_OBS_START])
    return max(0, now - start) if start else 0


@dataclass(slots=True)
class Verdicts:
    """Classes held at ``now`` once corrected for the evidence (rows in state order)."""

    held: npt.NDArray[np.bool_]  # (rows, VIEW_CLASS_NAMES) or (rows, API_VIEW_CLASS_NAMES)
    growth: npt.NDArray[np.float64]  # growing evidence evaluated at now
    observed_us: int
    # row -> the evidence of its dormant / retired / unknown verdict when the inventory's
    # dates decided it (``judge_silence``)
    dated: Notes | None = None


def _growth_rows(grow_now: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """The growing evidence a view shows: at now when the rule holds now, else its episode's."""
    return np.where((grow_now[:, 0] > 0)[:, None], grow_now, episode)


def _correct(
    held: np.ndarray,
    silent: int,
    growing: int,
    growth: np.ndarray,
    first_seen: np.ndarray,
    now: int,
    observed: int,
    silence_us: float,
    young_us: float,
) -> np.ndarray:
    """``held`` with the columns ``new`` and ``unknown`` appended and the silence and growth
    verdicts the evidence does not support moved there."""
    n = held.shape[0]
    out = np.zeros((n, held.shape[1] + 2), dtype=np.bool_)
    out[:, : held.shape[1]] = held
    unknown = held[:, silent] & (observed < silence_us)
    young = (first_seen > 0) & (now - first_seen < young_us)
    new = held[:, growing] & ((growth[:, 1] <= 0) | young)
    out[:, silent] &= ~unknown
    out[:, growing] &= ~new
    out[:, -2] = new
    out[:, -1] = unknown
    return out


def _obs_start(state: State) -> int:
    return state.observed_since_us or int(state.g[L.G_OBS_START])


def verdicts(state: State, now: int) -> Verdicts:
    """Subscription classes at ``now`` in ``VIEW_CLASS_NAMES`` order."""
    held, grow_now = state.held(now)
    n = held.shape[0]
    th = state.thresholds
    obs = observed_us(state, now)
    growth = _growth_rows(grow_now, state.cls_evid[:n, L.WINDOWED_CLASS_NAMES.index("growing")])
    out = _correct(held, CLASS_NAMES.index("dormant"), CLASS_NAMES.index("growing"), growth,
                   state.sub_i64[:n, L.S_FIRST_SEEN], now, obs, th.dormant_seconds * 1e6,
                   th.growing_min_previous_hours * 3600e6)  # fmt: skip
    out[state.sub_i64[:n, L.S_KEY] == 0] = False
    dates = state.inventory_dates
    notes: Notes | None = None
    if dates is not None and dates.subs:
        silent = CLASS_NAMES.index("dormant")
        s = state.sub_i64
        quiet = np.flatnonzero(held[:, silent] & (s[:n, L.S_KEY] != 0))
        api_row = s[quiet, L.S_API]
        ident = np.stack([s[quiet, L.S_APP], api_row, state.api_i64[api_row, L.A_NAME],
                          state.api_i64[api_row, L.A_VERSION]], axis=1)  # fmt: skip
        cache = row_dates(state, dates, state.interner.released)
        stale = cache.stale(quiet, ident)
        if stale.any():
            _look_up(state, dates, cache, quiet[stale], ident[stale])
        found, d = cache.get(quiet)
        rows = quiet[found]
        notes = dated_arrays(out, silent, rows, d[found], s[rows, L.S_LAST_SEEN], now,
                             _obs_start(state), obs, th.dormant_seconds * 1e6, dates.as_of_us,
                             "dormant")  # fmt: skip
    return Verdicts(out, grow_now, obs, notes)


def _look_up(
    state: State, dates: Dates, cache: RowDates, rows: np.ndarray, ident: np.ndarray
) -> None:
    """The inventory's dates of the subscriptions of ``rows`` (identity ids ``ident``: their
    application id, API row, ...), into ``cache``."""
    found = np.zeros(len(rows), dtype=np.bool_)
    d = np.zeros((len(rows), 3), dtype=np.int64)
    # API row -> its subscriptions' dates by application id
    by_row: dict[int, dict[str, tuple[int, int, int]]] = {}
    string = state.interner.string
    for i, (app, api_row) in enumerate(ident[:, :2].tolist()):
        of_api = by_row.get(api_row)
        if of_api is None:
            of_api = by_row[api_row] = dates.subs_by_api.get(state.api_identity(api_row)[:3], {})
        if of_api:
            got = of_api.get(string(app))
            if got is not None:
                found[i] = True
                d[i] = got
    cache.put(rows, ident, found, d)


def api_verdicts(state: State, now: int) -> Verdicts:
    """API classes at ``now`` in ``API_VIEW_CLASS_NAMES`` order."""
    held, grow_now = state.api_held(now)
    n = held.shape[0]
    th = state.thresholds
    obs = observed_us(state, now)
    growth = _growth_rows(grow_now, state.api_cls_evid[:n, 0])
    out = _correct(held, 0, 1, growth, state.api_i64[:n, L.A_FIRST_SEEN], now, obs,
                   th.retired_seconds * 1e6, th.growing_min_previous_hours * 3600e6)  # fmt: skip
    dates = state.inventory_dates
    notes: Notes | None = None
    if dates is not None and dates.apis:
        rows = []
        for row in np.flatnonzero(held[:, 0]).tolist():
            tenant, api, version, _ = state.api_identity(row)
            d = dates.apis.get((tenant, api, version))
            if d is not None:
                rows.append((row, (d[0], d[0], d[1]), int(state.api_i64[row, L.A_LAST_SEEN])))
        notes = dated(out, 0, rows, now, _obs_start(state), obs, th.retired_seconds * 1e6,
                       dates.as_of_us, "retired")  # fmt: skip
    return Verdicts(out, grow_now, obs, notes)


def class_counts(state: State, now: int) -> dict[str, int]:
    """How many subscriptions hold each class of ``VIEW_CLASS_NAMES`` and
    ``HEALTH_CLASS_NAMES`` at ``now``, and ``normal`` (none)."""
    v = verdicts(state, now)
    rows = state.sub_rows()
    health = state.baselines.sub_held(state, now)[rows]
    counts = {name: int(v.held[rows, i].sum()) for i, name in enumerate(VIEW_CLASS_NAMES)}
    counts |= {name: int(health[:, i].sum()) for i, name in enumerate(HEALTH_CLASS_NAMES)}
    counts["normal"] = int((~(v.held[rows].any(axis=1) | health.any(axis=1))).sum())
    return counts


def _unknown(observed: int, needed_s: float, judged: str) -> dict[str, Any]:
    return {
        "judged": judged,
        "observed_days": round(observed / 86_400e6, 2),
        "needed_days": round(needed_s / 86_400, 2),
        "reason": f"vigie has not observed this platform long enough to call it {judged}",
    }


def _new(first_seen: int, growth: dict[str, Any]) -> dict[str, Any]:
    return {"first_seen": iso(first_seen)} | growth


def subscriptions(state: State, now: int | None = None) -> list[SubscriptionView]:
    """Every subscription the state holds, classes evaluated at ``now`` (default: latest)."""
    now = state.now_us if now is None else now
    v = verdicts(state, now)
    held, grow_evid = v.held, v.growth
    th = state.thresholds
    s = state.sub_i64
    health = state.baselines.sub_held(state, now)
    views: list[SubscriptionView] = []
    for row in state.sub_rows().tolist():
        app_gid = int(s[row, L.S_APP])
        api_row = int(s[row, L.S_API])
        name_gid, owner_gid = int(s[row, L.S_APP_NAME]), int(s[row, L.S_APP_OWNER])
        if app_gid in state.app_info:
            inv_name, inv_owner = state.app_info[app_gid]
            name_gid = name_gid or inv_name
            owner_gid = owner_gid or inv_owner
        api_name = int(state.api_i64[api_row, L.A_NAME])  # keyed by tenant
        api_ver = int(state.api_i64[api_row, L.A_VERSION])
        tenant, bare_name = tenants.split(state.string(api_name))
        classes: list[str] = []
        evidence: dict[str, dict[str, Any]] = {}
        for ci, cname in enumerate(VIEW_CLASS_NAMES):
            if not held[row, ci]:
                continue
            classes.append(cname)
            if cname in ("dormant", "unknown") and v.dated is not None and row in v.dated:
                evidence[cname] = v.dated[row]
                continue
            if cname == "dormant":
                evidence[cname] = _silence(now, int(s[row, L.S_LAST_SEEN]))
                continue
            if cname == "unknown":
                evidence[cname] = _unknown(v.observed_us, th.dormant_seconds, "dormant")
                continue
            c = L.WINDOWED_CLASS_NAMES.index("growing" if cname == "new" else cname)
            last_true = int(state.cls_last[row, c])
            if cname in ("growing", "new") and (last_true == 0 or grow_evid[row, 0] > 0):
                ev = _growing_evidence(grow_evid[row], iso(now))
            else:
                ev = _windowed_evidence(state, c, state.cls_evid[row, c], last_true)
            evidence[cname] = _new(int(s[row, L.S_FIRST_SEEN]), ev) if cname == "new" else ev
        episodes = [
            EpisodeView(e.class_name, e.first_us, e.last_us)
            for e in state.episodes.get((app_gid, api_name, api_ver), [])
        ]
        for c, cname in enumerate(L.WINDOWED_CLASS_NAMES):
            if state.cls_last[row, c] > 0:
                episodes.append(
                    EpisodeView(cname, int(state.cls_first[row, c]), int(state.cls_last[row, c]))
                )
        for c, cname in enumerate(HEALTH_CLASS_NAMES):
            first, last, figures = state.baselines.sub_record(row)
            if health[row, c]:
                classes.append(cname)
                evidence[cname] = _health_evidence(state, cname, figures, last)
            if last > 0 and health[row, c]:
                episodes.append(EpisodeView(cname, first, last))
        episodes.sort(key=lambda e: (e.first_us, e.class_name))
        channels = {
            state.channels[c]: int(s[row, L.S_CH_REQ + c])
            for c in range(len(state.channels))
            if s[row, L.S_CH_REQ + c]
        }
        views.append(
            SubscriptionView(
                application_id=state.string(app_gid),
                application=state.string(name_gid),
                owner=state.string(owner_gid),
                api=bare_name,
                api_version=state.string(api_ver),
                tier=state.string(int(s[row, L.S_TIER])),
                requests=int(s[row, L.S_REQ]),
                classes=classes or ["normal"],
                evidence=evidence,
                episodes=episodes,
                first_seen_us=int(s[row, L.S_FIRST_SEEN]),
                last_seen_us=int(s[row, L.S_LAST_SEEN]),
                client_errors=int(s[row, L.S_CLIENT_ERR]),
                server_errors=int(s[row, L.S_5XX]),
                throttled=int(s[row, L.S_THROTTLED]),
                channels=channels,
                tenant=tenant,
            )
        )
    views.sort(key=lambda v: (v.application_id, v.tenant, v.api, v.api_version))
    return views


def apis(state: State, now: int | None = None) -> list[ApiView]:
    now = state.now_us if now is None else now
    v = api_verdicts(state, now)
    held, grow_evid = v.held, v.growth
    a = state.api_i64
    health = state.baselines.api_held(state, now)
    out: list[ApiView] = []
    for row in state.api_rows().tolist():
        classes: list[str] = []
        evidence: dict[str, dict[str, Any]] = {}
        for c, cname in enumerate(API_HEALTH_CLASS_NAMES):
            if health[row, c]:
                _, last, figures = state.baselines.api_record(row, c)
                classes.append(cname)
                evidence[cname] = _health_evidence(state, cname, figures, last)
        if held[row, 0]:
            classes.append(API_CLASS_NAMES[0])
            evidence["retired"] = (v.dated and v.dated.get(row)) or _silence(
                now, int(a[row, L.A_LAST_SEEN])
            )
        if held[row, 1] or held[row, 2]:
            cname = API_CLASS_NAMES[1] if held[row, 1] else "new"
            classes.append(cname)
            last_true = int(state.api_cls_last[row, 0])
            ev = grow_evid[row] if grow_evid[row, 0] > 0 else state.api_cls_evid[row, 0]
            evidence[cname] = _growing_evidence(
                ev, iso(now) if grow_evid[row, 0] > 0 else iso(last_true)
            )
            if cname == "new":
                evidence[cname] = _new(int(a[row, L.A_FIRST_SEEN]), evidence[cname])
        if held[row, 3]:
            classes.append("unknown")
            evidence["unknown"] = (v.dated and v.dated.get(row)) or _unknown(
                v.observed_us, state.thresholds.retired_seconds, "retired"
            )
        tenant, name, version, api_id = state.api_identity(row)
        out.append(
            ApiView(
                api=name,
                api_version=version,
                context=state.string(int(a[row, L.A_CONTEXT])),
                requests=int(a[row, L.A_REQ]),
                classes=classes or ["normal"],
                evidence=evidence,
                first_seen_us=int(a[row, L.A_FIRST_SEEN]),
                last_seen_us=int(a[row, L.A_LAST_SEEN]),
                tenant=tenant,
                api_id=api_id,
            )
        )
    out.sort(key=lambda v: (v.tenant, v.api, v.api_version))
    return out


def scope_rows(
    state: State, application_id: str, api: str, api_version: str
) -> npt.NDArray[np.intp]:
    """The subscription rows in a directive's scope (an application, an API, a version of it,
    or all three; empty: any). A channel is not narrowed: the rows are an upper bound. A
    directive names no tenant (the gateway applies it to an API of that name in any tenant):
    every tenant's API of that name is in its scope."""
    n = state.n_sub_rows
    s = state.sub_i64[:n]
    mask = s[:, L.S_KEY] != 0
    wanted = [(application_id, s[:, L.S_APP])]
    if api:
        api_rows = state.api_i64[s[:, L.S_API], :]
        keyed = [
            g
            for g in np.unique(state.api_i64[: state.n_api_rows, L.A_NAME]).tolist()
            if tenants.split(state.string(g))[1] == api
        ]
        mask &= np.isin(api_rows[:, L.A_NAME], keyed)
        if api_version:
            wanted.append((api_version, api_rows[:, L.A_VERSION]))
    for value, column in wanted:
        if not value:
            continue
        gid = state.interner.lookup(value)
        if gid is None:
            return np.zeros(0, dtype=np.intp)
        mask &= column == gid
    return np.flatnonzero(mask)


def scope_requests(state: State, application_id: str, api: str, api_version: str) -> int:
    """Requests the state has counted, ever, in a directive's scope (``scope_rows``)."""
    rows = scope_rows(state, application_id, api, api_version)
    return int(state.sub_i64[rows, L.S_REQ].sum())


def scope_hours(
    state: State, application_id: str, api: str, api_version: str, hours: int
) -> npt.NDArray[np.int64]:
    """Requests per hour in the scope over the last ``hours`` hours of the state (oldest
    first, the current hour last), at most the 14 days the state keeps."""
    hours = min(hours, L.HOUR_SLOTS)
    cur = state.now_us // L.HOUR_US
    out = np.zeros(hours, dtype=np.int64)
    for row in scope_rows(state, application_id, api, api_version).tolist():
        row_cur = int(state.sub_i64[row, L.S_HOUR_CUR])
        for i, h in enumerate(range(cur - hours + 1, cur + 1)):
            if row_cur - L.HOUR_SLOTS < h <= row_cur:
                out[i] += int(state.sub_hour[row, h % L.HOUR_SLOTS])
    return out
