"""Health episodes in the store's changes, the report and the autopsy: the change tracker (what
a sidecar with a data store runs) records ``traffic_anomaly``, ``degraded``/``backend_down``
raised when their rule first held, with their evidence in one line, and cleared
``health_hold_seconds`` after it last held; the report's episodes and the autopsy list them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.policy_traffic import MINUTE
from tests.unit.state.test_baselines import _feed
from tests.unit.state.test_health_state import TH, _dead_backend, _history
from vigie.reports import build
from vigie.state.engine import State
from vigie.store.changes import ChangeTracker, active_between
from vigie.store.parquet import ParquetStore


def _spans(records: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (s["name"], s["application_id"], s["api"]): s
        for s in active_between(records, 0, 1 << 62)
        if s["name"] in ("traffic_anomaly", "degraded", "backend_down")
    }


def test_health_episodes_are_recorded_with_their_evidence_and_listed(tmp_path: Path) -> None:
    state = State(TH)
    tracker = ChangeTracker()
    ev = _history("app-a", "Stock", surge=True)
    _feed(state, ev[: len(ev) // 2])
    assert not [r for r in tracker.poll_classes(state) if r["name"] != "growing"]
    _feed(state, ev[len(ev) // 2 :])
    end = ev[-1][0]
    _feed(state, _dead_backend("Orders", end + 1))
    raised = tracker.poll_classes(state)
    sub_first = state.baselines.sub_record(int(state.sub_rows()[0]))[0]
    # the surge ends, the backend answers again; 40 minutes later both have cleared
    tail = [(end + m * MINUTE, "app-a", "Stock", 200, 0, 10_000) for m in range(3, 45)]
    tail += [(end + m * MINUTE, "app-dead", "Orders", 200, 0, 10_000) for m in range(3, 45)]
    _feed(state, sorted(tail))
    cleared = tracker.poll_classes(state)
    records = raised + cleared
    spans = _spans(records)
    assert set(spans) == {
        ("traffic_anomaly", "app-a", "Stock"),
        ("traffic_anomaly", "", "Stock"),  # app-a is all of Stock's traffic: the API surges
        ("backend_down", "", "Orders"),
    }, records
    surge = spans[("traffic_anomaly", "app-a", "Stock")]
    assert surge["kind"] == "class"
    assert surge["from_us"] == sub_first  # when the rule first held, not the poll
    (episode,) = [
        e for k, eps in state.episodes.items() for e in eps if e.class_name == "traffic_anomaly"
    ]
    assert episode.first_us == sub_first
    assert surge["to_us"] == episode.last_us + int(TH.health_hold_seconds * 1e6) < state.now_us
    assert surge["detail"].startswith("traffic_anomaly: direction=surge requests=")
    down = spans[("backend_down", "", "Orders")]
    assert down["kind"] == "api_class" and down["to_us"] is not None
    assert down["detail"].startswith("backend_down: consecutive_failures=30")

    # the report's episodes and the autopsy read them from the store
    store = ParquetStore(tmp_path / "data")
    store.write_changes(records)
    scope = build.Scope(from_us=end - 60 * MINUTE, to_us=end + 60 * MINUTE)
    eps = {(e["name"], e["api"]): e for e in build.episodes(store, scope, {})}
    assert eps[("backend_down", "Orders")]["evidence"].startswith(
        "backend_down: consecutive_failures=30"
    )
    assert eps[("traffic_anomaly", "Stock")]["evidence"].startswith("traffic_anomaly: direction=")
    doc = build.autopsy(store, scope)
    names = {(a["name"], a["api"]) for a in doc["active"]}
    assert {("backend_down", "Orders"), ("traffic_anomaly", "Stock")} <= names
