"""auth_failing alerts: one per client IP / application key holding it (api:auth_failing for
the APIs), with its evidence and the command to run; in the default alert classes."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from tests.support.policy_traffic import MINUTE, T0
from tests.unit.alerts.test_notifier import URL_A, FakeAlertmanager, ManualClock
from tests.unit.state.test_security import _feed
from vigie.alerts import AlertConfig, Notifier
from vigie.alerts._rules import security_alerts
from vigie.classify.security import ClientView
from vigie.directives.table import DirectiveTable
from vigie.policy.book import SuggestionBook
from vigie.settings.alerts import DEFAULT_ALERT_CLASSES, parse_classes
from vigie.state.engine import State
from vigie.state.thresholds import Thresholds

EV = {
    "failures_last_hour": 400,
    "failures_total": 410,
    "first": "2026-03-02T10:00:00.000Z",
    "last": "2026-03-02T10:20:00.000Z",
    "codes": ["900901", "900902"],
    "apis": ["Orders v1"],
    "distinct_apis": 1,
    "episode_first": "2026-03-02T10:05:00.000Z",
}


def _views() -> list[ClientView]:
    return [
        ClientView("ip", "203.0.113.7", ["auth_failing"], EV),
        ClientView("ip", "h:5f3a9c0e12ab77d4", ["auth_failing"], EV, hashed=True),
        ClientView("ip", "10.0.0.1", ["normal"], EV),
        ClientView("api", "Orders v1", ["auth_failing"], EV | {"distinct_client_ips": 2}),
    ]


def test_one_alert_per_failing_client_with_its_evidence() -> None:
    classes = parse_classes(DEFAULT_ALERT_CLASSES)
    assert "auth_failing" in classes and "api:auth_failing" not in classes
    out = security_alerts(_views(), classes)
    assert set(out) == {
        ("security", "auth_failing", "ip", "203.0.113.7"),
        ("security", "auth_failing", "ip", "h:5f3a9c0e12ab77d4"),
    }
    a = out[("security", "auth_failing", "ip", "203.0.113.7")]
    assert a.labels["alertname"] == "VigieAuthFailing"
    assert a.labels["client_ip"] == "203.0.113.7" and a.labels["severity"] == "warning"
    assert "failures_last_hour=400" in a.annotations["evidence"]
    assert "codes=900901,900902" in a.annotations["evidence"]
    assert a.annotations["command"] == "vigie clients --kind ip"
    hashed = out[("security", "auth_failing", "ip", "h:5f3a9c0e12ab77d4")]
    assert "look the address up" in hashed.annotations["summary"]


def test_api_level_alerts_when_asked() -> None:
    out = security_alerts(_views(), parse_classes("api:auth_failing"))
    assert list(out) == [("security", "auth_failing", "api", "Orders v1")]
    assert out[("security", "auth_failing", "api", "Orders v1")].labels["alertname"] == (
        "VigieApiAuthFailing"
    )


def test_through_the_notifier_it_fires_then_resolves_after_a_quiet_hour() -> None:
    clock = ManualClock()
    state = State(Thresholds().replace(auth_min_failures=50))
    src = SimpleNamespace(
        lock=threading.Lock(),
        state=state,
        directives=DirectiveTable(None, clock),
        policy=SimpleNamespace(book=SuggestionBook(None, clock)),
        data=None,
    )
    config = AlertConfig(
        urls=(URL_A,),
        classes=parse_classes(DEFAULT_ALERT_CLASSES),
        sources=frozenset({"episodes"}),
        resend_seconds=60.0,
        tenant="carbon.super",
    )
    am = FakeAlertmanager()
    n = Notifier(src, config, clock=clock, post=am)
    bad = [(T0 + k * 1_000_000, "203.0.113.7", "", "Orders", 401, 900901) for k in range(60)]
    ok = [(T0 + k * 1_000_000, "10.0.0.1", "app-a", "Orders", 200, 0) for k in range(60)]
    _feed(state, sorted(bad + ok))
    n.step()
    (fired,) = am.to(URL_A)
    assert fired["labels"]["alertname"] == "VigieAuthFailing"
    assert fired["labels"]["client_ip"] == "203.0.113.7"
    # an hour and more without a failure from it: the episode ends, the alert resolves
    _feed(state, [(T0 + 62 * MINUTE, "10.0.0.1", "app-a", "Orders", 200, 0)])
    clock.advance(5)
    n.step()
    resolved = am.posts[-1][1]
    assert [a["labels"] for a in resolved] == [fired["labels"]] and "endsAt" in resolved[0]
    assert [e.kind for e in state.security.episodes] == ["ip", "api"]
