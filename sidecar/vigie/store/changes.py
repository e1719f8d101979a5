"""Changes over time of what vigie concluded and enforced: classes raised and cleared on each
subscription and API, directives put, removed or expired.

The autopsy needs "which classes and directives were active then"; the state only knows now.
``ChangeTracker.poll`` compares what holds now with what held at its last call and returns the
differences as change records (kept in the store's ``changes`` table). Times are exact where
the state knows them: a windowed class is raised when its rule first held (``cls_first``) and
cleared when its hold time ran out (last time the rule held + hold); ``growing`` and
``dormant`` (evaluated when asked) change at the poll's "now". The health classes
(``degraded``, ``backend_down``, ``traffic_anomaly``) are raised when their rule first held and
cleared ``health_hold_seconds`` after it last held; their ``detail`` is the evidence at the
poll that saw them raised, in one line (``classify.views.headline``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
from google.protobuf import json_format

from vigie.classify import views
from vigie.state import layout as L
from vigie.state.engine import Episode, State
from vigie.state.thresholds import (
    API_CLASS_NAMES,
    API_HEALTH_CLASS_NAMES,
    CLASS_NAMES,
    HEALTH_CLASS_NAMES,
)
from vigie.v1 import directives_pb2 as dpb
from vigie.wire import tenants

Record = dict[str, Any]


class ChangeTracker:
    """Remembers what held at the last poll. Not thread-safe: poll under the state's lock."""

    def __init__(self) -> None:
        self._subs: dict[tuple[str, str, str], frozenset[str]] = {}
        self._apis: dict[tuple[str, str], frozenset[str]] = {}
        self._directives: dict[str, str] = {}
        # per subscription row, what the last poll saw there: its identity ids (application
        # id, API name id, API version id; -1: none) and its classes; the identity of the rows
        # that held some. A row seen the same again is not looked at (no strings, no sets):
        # at 25,000 subscriptions a poll, under the state's lock, was ~1 s of Python per row.
        self._row_ids = np.full((0, 3), -1, dtype=np.int64)
        self._row_mask = np.zeros((0, 0), dtype=np.bool_)
        self._row_ident: dict[int, tuple[str, str, str]] = {}
        self._released = -1  # the interner's released count then: ids may name other strings

    def _rows_seen(self, size: int, classes: int, released: int) -> bool:
        """Room for ``size`` rows; False (everything forgotten: a full poll) when the interner
        released strings or the classes changed since the last poll."""
        full = released != self._released or self._row_mask.shape[1] != classes
        if full:
            self._row_ids = np.full((0, 3), -1, dtype=np.int64)
            self._row_mask = np.zeros((0, classes), dtype=np.bool_)
            self._row_ident = {}
            self._released = released
        if size > len(self._row_ids):
            size = max(size, 2 * len(self._row_ids))
            ids = np.full((size, 3), -1, dtype=np.int64)
            ids[: len(self._row_ids)] = self._row_ids
            mask = np.zeros((size, classes), dtype=np.bool_)
            mask[: len(self._row_mask)] = self._row_mask
            self._row_ids, self._row_mask = ids, mask
        return not full

    def _sub_changes(
        self, state: State, held: np.ndarray, names: tuple[str, ...]
    ) -> tuple[
        dict[tuple[str, str, str], frozenset[str]],
        dict[tuple[str, str, str], frozenset[str]],
        dict[tuple[str, str, str], int],
    ]:
        """(the classes held now by identity, the classes held at the last poll by each
        identity that may have changed, the row of each of those still held): only the rows
        whose identity or classes moved since the last poll are looked at."""
        rows = state.sub_rows()
        s, a = state.sub_i64, state.api_i64
        api_row = s[rows, L.S_API]
        ids = np.stack([s[rows, L.S_APP], a[api_row, L.A_NAME], a[api_row, L.A_VERSION]], axis=1)
        masks = held[rows]
        size = max(int(rows.max()) + 1 if len(rows) else 0, len(self._row_ids))
        kept = self._rows_seen(size, held.shape[1], state.interner.released)
        current = self._subs if kept else {}
        before: dict[tuple[str, str, str], frozenset[str]] = {} if kept else dict(self._subs)
        empty: frozenset[str] = frozenset()

        def forget(row: int) -> None:
            ident = self._row_ident.pop(row, None)
            if ident is not None:
                before.setdefault(ident, current.get(ident, empty))
                current.pop(ident, None)

        alive = np.zeros(len(self._row_ids), dtype=np.bool_)
        alive[rows] = True
        for row in [r for r in self._row_ident if not alive[r]]:  # rows freed since
            forget(row)
        self._row_ids[~alive] = -1
        same = (self._row_ids[rows] == ids).all(axis=1) & (self._row_mask[rows] == masks).all(
            axis=1
        )
        moved = np.flatnonzero(~same)
        row_of: dict[tuple[str, str, str], int] = {}
        sets: dict[bytes, frozenset[str]] = {}  # a class mask -> its names (few distinct)
        string = state.string
        for i in moved.tolist():
            row = int(rows[i])
            forget(row)
            app, name, version = ids[i].tolist()
            ident = (string(app), string(name), string(version))
            row_of[ident] = row
            mask = masks[i]
            if mask.any():
                key = mask.tobytes()
                got = sets.get(key)
                if got is None:
                    got = sets[key] = frozenset(names[k] for k in np.flatnonzero(mask))
                before.setdefault(ident, current.get(ident, empty))
                current[ident] = got
                self._row_ident[row] = ident
        self._row_ids[rows[moved]] = ids[moved]
        self._row_mask[rows[moved]] = masks[moved]
        return current, before, row_of

    def poll_classes(self, state: State, now: int | None = None) -> list[Record]:
        now = state.now_us if now is None else now
        if now <= 0:
            return []
        out: list[Record] = []
        held, _ = state.held(now)
        held = np.hstack([held, state.baselines.sub_held(state, now)])
        names = (*CLASS_NAMES, *HEALTH_CLASS_NAMES)
        th = state.thresholds
        hold = int(th.hold_seconds * 1e6)
        health_hold = int(th.health_hold_seconds * 1e6)
        current, before_of, rowmap = self._sub_changes(state, held, names)
        for ident, before in before_of.items():
            after = current.get(ident, frozenset())
            if before == after:
                continue
            row = rowmap.get(ident, -1)
            for cname in sorted(after - before):
                at = now
                if row >= 0 and cname in L.WINDOWED_CLASS_NAMES and cname != "growing":
                    first = int(state.cls_first[row, L.WINDOWED_CLASS_NAMES.index(cname)])
                    at = first or now
                if row >= 0 and cname in HEALTH_CLASS_NAMES:
                    first, last, ev = state.baselines.sub_record(row)
                    rec = _class_record("raised", cname, ident, min(first or now, now))
                    rec["detail"] = _health_line(state, cname, ev, last)
                    out.append(rec)
                    continue
                out.append(_class_record("raised", cname, ident, min(at, now)))
            for cname in sorted(before - after):
                at = now
                if row >= 0 and cname in HEALTH_CLASS_NAMES:
                    last = state.baselines.sub_record(row)[1]
                    last = last or _closed(state.episodes.get(state._sub_identity(row)), cname)
                    at = min(now, last + health_hold) if last else now
                if row >= 0 and cname in L.WINDOWED_CLASS_NAMES and cname != "growing":
                    c = L.WINDOWED_CLASS_NAMES.index(cname)
                    ext = (
                        int(th.throttle_lookback_seconds * 1e6) if cname == "throttle_hitter" else 0
                    )
                    last = int(state.cls_last[row, c])
                    if last:
                        at = min(now, last + ext + hold)
                out.append(_class_record("cleared", cname, ident, at))
        self._subs = current
        api_held, _ = state.api_held(now)
        api_held = np.hstack([api_held, state.baselines.api_held(state, now)])
        api_names = (*API_CLASS_NAMES, *API_HEALTH_CLASS_NAMES)
        api_now: dict[tuple[str, str], frozenset[str]] = {}
        row_of: dict[tuple[str, str], int] = {}
        for row in range(state.n_api_rows):
            ident2 = (
                state.string(int(state.api_i64[row, L.A_NAME])),
                state.string(int(state.api_i64[row, L.A_VERSION])),
            )
            row_of[ident2] = row
            if api_held[row].any():
                api_now[ident2] = frozenset(api_names[i] for i in np.flatnonzero(api_held[row]))
        for ident2 in set(api_now) | set(self._apis):
            before = self._apis.get(ident2, frozenset())
            after = api_now.get(ident2, frozenset())
            row = row_of.get(ident2, -1)
            for cname in sorted(after - before):
                rec = _class_record("raised", cname, ("", *ident2), now, kind="api_class")
                if row >= 0 and cname in API_HEALTH_CLASS_NAMES:
                    first, last, ev = state.baselines.api_record(
                        row, API_HEALTH_CLASS_NAMES.index(cname)
                    )
                    rec["at_us"] = min(first or now, now)
                    rec["detail"] = _health_line(state, cname, ev, last)
                out.append(rec)
            for cname in sorted(before - after):
                at = now
                if row >= 0 and cname in API_HEALTH_CLASS_NAMES:
                    last = state.baselines.api_record(row, API_HEALTH_CLASS_NAMES.index(cname))[1]
                    key = (int(state.api_i64[row, L.A_NAME]), int(state.api_i64[row, L.A_VERSION]))
                    last = last or _closed(state.api_episodes.get(key), cname)
                    at = min(now, last + health_hold) if last else now
                out.append(_class_record("cleared", cname, ("", *ident2), at, kind="api_class"))
        self._apis = api_now
        return out

    def poll_directives(self, directives: Iterable[dpb.Directive], now_us: int) -> list[Record]:
        """Directives put (new or changed) and gone since the last poll, at ``now_us``."""
        current = {
            d.id: json.dumps(
                json_format.MessageToDict(d, preserving_proto_field_name=True), sort_keys=True
            )
            for d in directives
        }
        out: list[Record] = []
        for did, doc in sorted(current.items()):
            if self._directives.get(did) != doc:
                d = json.loads(doc)
                out.append(
                    {
                        "at_us": now_us,
                        "kind": "directive",
                        "event": "put",
                        "name": did,
                        "application_id": d.get("application_id", ""),
                        "api": d.get("api_name", ""),
                        "api_version": d.get("api_version", ""),
                        "detail": doc,
                    }
                )
        for did in sorted(set(self._directives) - set(current)):
            d = json.loads(self._directives[did])
            out.append(
                {
                    "at_us": now_us,
                    "kind": "directive",
                    "event": "removed",
                    "name": did,
                    "application_id": d.get("application_id", ""),
                    "api": d.get("api_name", ""),
                    "api_version": d.get("api_version", ""),
                    "detail": self._directives[did],
                }
            )
        self._directives = current
        return out


def _closed(episodes: list[Episode] | None, cname: str) -> int:
    """The last time the rule held in the latest closed episode of ``cname`` (0: none)."""
    return max((e.last_us for e in episodes or () if e.class_name == cname), default=0)


def _health_line(state: State, cname: str, ev: Any, last: int) -> str:
    """A health class's evidence in one line, e.g. ``backend_down: consecutive_failures=30
    connection_failures=30 requests=30``."""
    return views.headline(cname, views._health_evidence(state, cname, ev, last))


def _class_record(
    event: str, cname: str, ident: tuple[str, str, str], at: int, kind: str = "class"
) -> Record:
    return {
        "at_us": int(at),
        "kind": kind,
        "event": event,
        "name": cname,
        "application_id": ident[0],
        "api": tenants.split(ident[1])[1],  # the ident holds the keyed name
        "api_version": ident[2],
        "detail": "",
        "tenant": tenants.split(ident[1])[0] if ident[1] else "",
    }


def _sub_rows_by_identity(state: State) -> dict[tuple[str, str, str], int]:
    out = {}
    for row in state.sub_rows().tolist():
        api_row = int(state.sub_i64[row, L.S_API])
        out[
            (
                state.string(int(state.sub_i64[row, L.S_APP])),
                state.string(int(state.api_i64[api_row, L.A_NAME])),
                state.string(int(state.api_i64[api_row, L.A_VERSION])),
            )
        ] = row
    return out


def active_between(records: Iterable[Record], from_us: int, to_us: int) -> list[dict[str, Any]]:
    """What was active at some moment of ``[from_us, to_us)``: one entry per class episode or
    directive, with when it started and ended (None = still active at the last record)."""
    open_: dict[tuple[str, str, str, str, str], Record] = {}
    spans: list[dict[str, Any]] = []
    for r in sorted(records, key=lambda r: int(r["at_us"])):
        ident = (
            r["kind"],
            r["name"],
            r["application_id"],
            tenants.keyed_name(r.get("tenant") or "", r["api"]),
            r["api_version"],
        )
        at = int(r["at_us"])
        if r["event"] in ("raised", "put"):
            if ident in open_ and r["event"] == "put":
                prev = open_.pop(ident)
                spans.append(_span(prev, at))
            open_.setdefault(ident, r)
        elif ident in open_:
            spans.append(_span(open_.pop(ident), at))
    spans += [_span(r, None) for r in open_.values()]
    out = [
        s for s in spans if s["from_us"] < to_us and (s["to_us"] is None or s["to_us"] > from_us)
    ]
    out.sort(key=lambda s: (s["kind"], s["name"], s["application_id"], s["api"], s["from_us"]))
    return out


def _span(r: Record, end: int | None) -> dict[str, Any]:
    return {
        "kind": r["kind"],
        "name": r["name"],
        "application_id": r["application_id"],
        "api": r["api"],
        "api_version": r["api_version"],
        "tenant": r.get("tenant") or "",
        "from_us": int(r["at_us"]),
        "to_us": end,
        "detail": r.get("detail", ""),
    }
