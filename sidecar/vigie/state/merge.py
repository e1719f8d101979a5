"""The fleet view: several sidecars (one per gateway pod, two data centres) seen as one.

``merge_states`` adds states: every counter adds, every histogram adds, windows (rings of time
slots) are aligned on the same slots and added, first/last seen take the earliest/latest,
names are matched by their strings (each sidecar has its own ids), channels by name. The
windowed rules are then evaluated again on the merged windows at each subscription's latest
event, so a consumer spread over several pods is judged on all its traffic.

What does not merge exactly (and why): the per-minute request-rate histogram and the busiest
minute (each pod saw a part of each minute: they add per pod, an approximation); retries and
repeated reads whose two requests went to different pods (each pod's detector saw only one);
a windowed rule that held across pods only between two events of the subscription (the merged
view evaluates at the latest event). Everything else equals one sidecar that saw all traffic
(``tests/unit/state/test_merge.py``).

The health classes (``degraded``, ``backend_down``, ``traffic_anomaly``: ``_baselines``) are
carried, not recomputed: their baselines are not merged. Each sidecar of a fleet sees its own
share of the traffic, and its hour-of-week figures (a slot's p95 latency, 5xx share, the median
and MAD of its requests) do not add: a p95 of two shares is not the p95 of their sum. Each
sidecar judges its share against its own baselines, which has the shape of the whole (a surge,
a drop, a slow or dead backend show in every share the balancer sends). The merged view holds a
health class where any sidecar holds it (first raised: the earliest; last held: the latest;
the evidence of the latest), and every sidecar's closed episodes. Also carried: the WSO2 apiId
of each API (``State.api_uuid``) and ``observed_since_us`` (the earliest of the states'; 0
when none is set).

Callers: ``vigie consumers|status --admin A --admin B``, and the suggestions
(``merged = merge.merge_states(states)``, then the usual views; the CLI fetches the states
with ``vigie.cli.client.fetch_states``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from vigie.state import layout as L
from vigie.state import snapshot
from vigie.state._baseline_kernels import API_CLASS_NAMES, B_GEN, Q_LATE, SUB_CLASS_NAMES
from vigie.state.engine import MAX_EPISODES_PER_ROW, Capacity, Episode, State
from vigie.state.thresholds import Thresholds
from vigie.v1 import admin_pb2 as apb

CHUNK_BYTES: Final = 1 << 20
_ADDED_SUB: Final = list(range(L.S_REQ, L.S_REPEATS + 1))
_ADDED_API: Final = [
    L.A_REQ,
    L.A_2XX,
    L.A_3XX,
    L.A_4XX,
    L.A_5XX,
    L.A_THROTTLED,
    L.A_LAT_SUM_US,
    L.A_NOAPP,
]
_ADDED_G: Final = [
    L.G_EVENTS,
    L.G_SKIPPED_NO_API,
    L.G_NO_APP,
    L.G_LATE,
    L.G_ROUTE_OVERFLOW,
    L.G_RETRY_EVICT,
]


# ---------------------------------------------------------------------------------------------
# export / import (the ExportState RPC)
# ---------------------------------------------------------------------------------------------


def export_chunks(state: State) -> Iterator[apb.StateChunk]:
    """A (frozen) state as StateChunk messages: the snapshot's bytes, then nothing else."""
    data = snapshot.snapshot_bytes(state)
    th = json.dumps(state.thresholds.as_dict())
    for off in range(0, len(data), CHUNK_BYTES):
        chunk = apb.StateChunk(data=data[off : off + CHUNK_BYTES])
        if off == 0:
            chunk.thresholds_json = th
            chunk.total_bytes = len(data)
        yield chunk


def state_from_chunks(chunks: Iterable[apb.StateChunk]) -> State:
    """The state a sidecar exported (its own thresholds)."""
    parts: list[bytes] = []
    th_doc: dict[str, float] = {}
    for c in chunks:
        if c.thresholds_json:
            th_doc = json.loads(c.thresholds_json)
        parts.append(c.data)
    thresholds = Thresholds().replace(**th_doc)
    with tempfile.TemporaryDirectory(prefix="vigie-fleet-") as d:
        path = Path(d) / "state.npz"
        path.write_bytes(b"".join(parts))
        return snapshot.read_snapshot(path, thresholds, Capacity(memory_cap_bytes=1 << 40))


# ---------------------------------------------------------------------------------------------
# merging
# ---------------------------------------------------------------------------------------------


def merge_states(states: Sequence[State], thresholds: Thresholds | None = None) -> State:
    """One state holding the traffic of all ``states`` (they are not changed)."""
    if not states:
        raise ValueError("nothing to merge")
    th = thresholds or states[0].thresholds
    rows = sum(len(s.sub_rows()) for s in states)
    cap = Capacity(
        memory_cap_bytes=1 << 40,
        initial_subscriptions=max(64, rows),
        initial_apis=max(64, sum(s.n_api_rows for s in states)),
        max_apis=max(65_536, sum(s.n_api_rows for s in states) + 1),  # a merge never evicts
        max_routes=max(65_536, sum(s.n_route_rows for s in states) + 1),
        detector_entries=64,  # a merged state is read, never fed
    )
    merged = State(th, cap)
    for s in states:
        _add(merged, s)
    since = [s.observed_since_us for s in states if s.observed_since_us > 0]
    merged.observed_since_us = min(since, default=0)
    merged.evaluate_latest()
    return merged


def _align(ring: npt.NDArray[Any], cur: int, new: int, slots: int) -> None:
    """Move a ring's newest slot from ``cur`` to ``new``, emptying the slots it passes."""
    if cur <= 0 or new <= cur:
        return
    for j in range(1, min(new - cur, slots) + 1):
        ring[(cur + j) % slots] = 0


def _add_ring(
    dst: npt.NDArray[Any], dcur: int, src: npt.NDArray[Any], scur: int, slots: int
) -> int:
    """Add ring ``src`` (newest slot ``scur``) into ``dst`` (``dcur``); return the new cur."""
    if scur <= 0:
        return dcur
    new = max(dcur, scur)
    s = src.copy()
    _align(dst, dcur, new, slots)
    _align(s, scur, new, slots)
    dst += s
    return new


def _add(m: State, s: State) -> None:
    chan = np.array([m.channel_index(c) for c in s.channels] or [0], dtype=np.int64)
    gmap = m.interner.intern_many(s.interner.strings()).astype(np.int64)
    m._ensure_app_channel_size()
    for gid, (name, owner) in s.app_info.items():
        m.app_info[int(gmap[gid])] = (int(gmap[name]), int(gmap[owner]))
    reg = np.flatnonzero(s.app_channel[: len(s.interner)] >= 0)
    m.app_channel[gmap[reg]] = chan[s.app_channel[reg]]
    g, sg = m.g, s.g
    for f in _ADDED_G:
        g[f] += sg[f]
    g[L.G_NOW] = max(g[L.G_NOW], sg[L.G_NOW])
    if sg[L.G_OBS_START] and (g[L.G_OBS_START] == 0 or sg[L.G_OBS_START] < g[L.G_OBS_START]):
        g[L.G_OBS_START] = sg[L.G_OBS_START]
    m.evicted += s.evicted

    # APIs
    api_map = np.full(max(1, s.n_api_rows), -1, dtype=np.int64)
    for arow in range(s.n_api_rows):
        a = s.api_i64[arow]
        if a[L.A_KEY] == 0:
            continue
        mrow = m.ensure_api(
            s.string(int(a[L.A_NAME])),  # keyed by its tenant already
            s.string(int(a[L.A_VERSION])),
            pinned=bool(a[L.A_FLAGS] & L.ROW_PINNED),
            api_id=s.string(s.api_uuid.get(int(a[L.A_KEY]), 0)),
        )
        api_map[arow] = mrow
        d = m.api_i64[mrow]
        d[_ADDED_API] += a[_ADDED_API]
        d[L.A_FIRST_SEEN] = _min_seen(int(d[L.A_FIRST_SEEN]), int(a[L.A_FIRST_SEEN]))
        d[L.A_LAST_SEEN] = max(d[L.A_LAST_SEEN], a[L.A_LAST_SEEN])
        if a[L.A_CONTEXT]:
            d[L.A_CONTEXT] = gmap[a[L.A_CONTEXT]]
        m.api_hist[mrow] += s.api_hist[arow]
        d[L.A_HOUR_CUR] = _add_ring(
            m.api_hour[mrow],
            int(d[L.A_HOUR_CUR]),
            s.api_hour[arow],
            int(a[L.A_HOUR_CUR]),
            L.HOUR_SLOTS,
        )
        _union_class(
            m.api_cls_first,
            m.api_cls_last,
            m.api_cls_evid,
            mrow,
            s.api_cls_first,
            s.api_cls_last,
            s.api_cls_evid,
            arow,
            1,
        )
    for (name, ver), eps in s.api_episodes.items():
        _add_episodes(m.api_episodes[(int(gmap[name]), int(gmap[ver]))], eps)

    # subscriptions
    sub_map: list[tuple[int, int]] = []  # (merged row, row of s)
    for row in s.sub_rows().tolist():
        r = s.sub_i64[row]
        app = int(gmap[r[L.S_APP]])
        mapi = int(api_map[r[L.S_API]])
        mrow = m.subscription_row(app, mapi)
        sub_map.append((mrow, row))
        d = m.sub_i64[mrow]
        d[L.S_FLAGS] |= r[L.S_FLAGS]
        if r[L.S_LAST_SEEN] >= d[L.S_LAST_SEEN]:
            for f in (L.S_APP_NAME, L.S_APP_OWNER, L.S_TIER):
                if r[f]:
                    d[f] = gmap[r[f]]
            if r[L.S_KEY_TYPE]:
                d[L.S_KEY_TYPE] = r[L.S_KEY_TYPE]
        d[L.S_FIRST_SEEN] = _min_seen(int(d[L.S_FIRST_SEEN]), int(r[L.S_FIRST_SEEN]))
        d[L.S_LAST_SEEN] = max(d[L.S_LAST_SEEN], r[L.S_LAST_SEEN])
        d[_ADDED_SUB] += r[_ADDED_SUB]
        for f in (
            L.S_MAX_RPM,
            L.S_FAIL_START,
            L.S_FAIL_END,
            L.S_FAIL_NORES_START,
            L.S_FAIL_NORES_END,
            L.S_FAIL_MAX_END,
        ):
            d[f] = max(d[f], r[f])
        for c in range(len(s.channels)):
            d[L.S_CH_REQ + chan[c]] += r[L.S_CH_REQ + c]
            if r[L.S_CH_MASK] & (1 << c):
                d[L.S_CH_MASK] |= 1 << int(chan[c])
        m.sub_hist[mrow] += s.sub_hist[row]
        m.sub_rate[mrow] += s.sub_rate[row]
        d[L.S_SW_CUR] = _add_ring(
            m.sub_sw[mrow], int(d[L.S_SW_CUR]), s.sub_sw[row], int(r[L.S_SW_CUR]), L.SHORT_SLOTS
        )
        d[L.S_RW_CUR] = _add_ring(
            m.sub_rw[mrow], int(d[L.S_RW_CUR]), s.sub_rw[row], int(r[L.S_RW_CUR]), L.RETRY_SLOTS
        )
        d[L.S_HOUR_CUR] = _add_ring(
            m.sub_hour[mrow],
            int(d[L.S_HOUR_CUR]),
            s.sub_hour[row],
            int(r[L.S_HOUR_CUR]),
            L.HOUR_SLOTS,
        )
        day = np.zeros_like(m.sub_day[mrow])
        for c in range(len(s.channels)):
            day[:, chan[c]] = s.sub_day[row, :, c]
        d[L.S_DAY_CUR] = _add_ring(
            m.sub_day[mrow], int(d[L.S_DAY_CUR]), day, int(r[L.S_DAY_CUR]), L.DAY_SLOTS
        )
        d[L.S_SW_SUM : L.S_SW_SUM + L.N_SW] = m.sub_sw[mrow].sum(axis=0)
        d[L.S_RW_SUM : L.S_RW_SUM + L.N_RW] = m.sub_rw[mrow].sum(axis=0)
        d[L.S_SW_MASK] = _slot_bits(m.sub_sw[mrow])  # the kernel reads only these slots
        d[L.S_RW_MASK] = _slot_bits(m.sub_rw[mrow])
        d[L.S_DC_SUM : L.S_DC_SUM + L.MAX_CHANNELS] = m.sub_day[mrow].sum(axis=0)
        _union_class(
            m.cls_first,
            m.cls_last,
            m.cls_evid,
            mrow,
            s.cls_first,
            s.cls_last,
            s.cls_evid,
            row,
            L.N_WINDOWED_CLASSES,
        )
    for (app, name, ver), eps in s.episodes.items():
        _add_episodes(m.episodes[(int(gmap[app]), int(gmap[name]), int(gmap[ver]))], eps)
    _add_health(m, s, sub_map, api_map)

    # routes (API x resource x method x status x error code x channel x throttled); route 0
    # gathers what did not fit
    for rrow in range(s.n_route_rows):
        r = s.route_i64[rrow]
        if rrow == 0:
            mrow = 0
        else:
            mrow = m.route_row(
                int(api_map[r[L.R_API]]),
                int(gmap[r[L.R_RESOURCE]]),
                int(r[L.R_METHOD]),
                int(r[L.R_STATUS]),
                int(chan[r[L.R_CHANNEL]]),
                int(r[L.R_ERROR_CODE]),
                int(r[L.R_THROTTLED]),
            )
        d = m.route_i64[mrow]
        d[L.R_REQ] += r[L.R_REQ]
        d[L.R_LAT_SUM_US] += r[L.R_LAT_SUM_US]
        m.route_hist[mrow] += s.route_hist[rrow]


def _add_health(
    m: State, s: State, sub_map: list[tuple[int, int]], api_map: npt.NDArray[np.int64]
) -> None:
    """The health classes ``s`` holds, into ``m`` (see the module's docstring)."""
    mb, sb = m.baselines, s.baselines
    mb._fit(m)
    ma, sa = mb.arrays, sb.arrays
    mb.bg[Q_LATE] += sb.bg[Q_LATE]
    for mrow, row in sub_map:
        if row >= len(sa["bs_i64"]) or sa["bs_i64"][row, B_GEN] != s.sub_i64[row, L.S_GEN]:
            continue  # figures of a former owner of the row, or none yet
        if sa["bs_last"][row, 0] == 0:
            continue
        ma["bs_i64"][mrow, B_GEN] = m.sub_i64[mrow, L.S_GEN]  # the merged row's own
        _union_class(
            ma["bs_first"], ma["bs_last"], ma["bs_evid"], mrow,
            sa["bs_first"], sa["bs_last"], sa["bs_evid"], row, len(SUB_CLASS_NAMES),
        )  # fmt: skip
    for arow in range(min(s.n_api_rows, len(sa["ba_first"]))):
        mrow = int(api_map[arow])
        if mrow < 0:
            continue
        _union_class(
            ma["ba_first"], ma["ba_last"], ma["ba_evid"], mrow,
            sa["ba_first"], sa["ba_last"], sa["ba_evid"], arow, len(API_CLASS_NAMES),
        )  # fmt: skip


def _min_seen(a: int, b: int) -> int:
    if a == 0:
        return b
    if b == 0:
        return a
    return min(a, b)


def _union_class(
    df: npt.NDArray[np.int64],
    dl: npt.NDArray[np.int64],
    de: npt.NDArray[np.float64],
    drow: int,
    sf: npt.NDArray[np.int64],
    sl: npt.NDArray[np.int64],
    se: npt.NDArray[np.float64],
    srow: int,
    n: int,
) -> None:
    for c in range(n):
        if sl[srow, c] == 0:
            continue
        if dl[drow, c] == 0 or sl[srow, c] > dl[drow, c]:
            de[drow, c] = se[srow, c]
        df[drow, c] = _min_seen(int(df[drow, c]), int(sf[srow, c]))
        dl[drow, c] = max(dl[drow, c], sl[srow, c])


def _slot_bits(ring: npt.NDArray[Any]) -> int:
    """The bitmap of a ring's non-empty slots (``S_SW_MASK``, ``S_RW_MASK``)."""
    return sum(1 << int(k) for k in np.flatnonzero(ring.any(axis=1)))


def _add_episodes(dst: list[Episode], src: Iterable[Episode]) -> None:
    seen = {(e.class_name, e.first_us, e.last_us) for e in dst}
    dst.extend(
        Episode(e.class_name, e.first_us, e.last_us)
        for e in src
        if (e.class_name, e.first_us, e.last_us) not in seen
    )
    dst.sort(key=lambda e: (e.first_us, e.class_name))
    del dst[:-MAX_EPISODES_PER_ROW]
