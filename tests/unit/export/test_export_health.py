"""The health classes in the export's class metrics, in process (the real Prometheus round
trip is ``tests/e2e/test_export_health.py``): a surging consumer and a dead backend are counted
on ``vigie.subscriptions`` / ``vigie.apis`` as the views count them, the surging consumer enters
the top-K by its class."""

from __future__ import annotations

from collections import Counter

from tests.support.policy_traffic import MINUTE
from tests.unit.export.test_export_series import FakeSidecar, _values, metric
from tests.unit.state.test_baselines import T0, _feed
from tests.unit.state.test_health_state import TH, _dead_backend, _history
from vigie.classify import views
from vigie.export import _catalogue as C
from vigie.export._builder import Builder
from vigie.export._collect import API_CLASSES, SUB_CLASSES, collect
from vigie.export._points import attrs_of
from vigie.export._series import BuildOptions
from vigie.state.engine import State
from vigie.state.thresholds import API_HEALTH_CLASS_NAMES, HEALTH_CLASS_NAMES


def test_the_health_classes_are_counted_as_the_views_count_them() -> None:
    state = State(TH)
    ev = _history("app-a", "Stock", surge=True)
    # a steady second consumer: one request a minute throughout
    quiet = [(T0 + m * MINUTE + 500, "app-b", "Stock", 200, 0, 10_000) for m in range(len(ev) // 2)]
    quiet = [q for q in quiet if q[0] <= ev[-1][0]]
    _feed(state, sorted(ev + quiet) + _dead_backend("Orders", ev[-1][0] + 1))
    sc = FakeSidecar(state)
    frame = collect(sc)
    assert set(HEALTH_CLASS_NAMES) <= set(SUB_CLASSES)
    assert set(API_HEALTH_CLASS_NAMES) <= set(API_CLASSES)
    assert frame.sub_held.shape[1] == len(SUB_CLASSES)

    batch = Builder(BuildOptions(top_k=1)).build(frame)
    subs = _values(metric(batch, C.SUBSCRIPTIONS), "vigie.class")
    want = Counter(c for v in views.subscriptions(state) for c in v.classes)
    assert {k: v for k, v in subs.items() if v} == dict(want)
    assert subs["traffic_anomaly"] == 1 and subs["normal"] >= 1
    apis = _values(metric(batch, C.APIS), "vigie.class")
    want_api = Counter(c for a in views.apis(state) for c in a.classes)
    assert {k: v for k, v in apis.items() if v} == dict(want_api)
    assert apis["backend_down"] == 1 and apis["degraded"] == 0
    assert set(apis) == {*API_CLASSES, "normal"}
    # top-K of 1: app-a is there by its anomaly, with its class series
    classes = metric(batch, C.SUB_CLASSES)
    held = {
        (a["wso2.application.id"], a["vigie.class"])
        for a, v in zip(attrs_of(classes), classes.values, strict=True)
        if v
    }
    assert ("app-a", "traffic_anomaly") in held
