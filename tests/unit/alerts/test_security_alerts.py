"""auth_failing alerts: one per client IP / application key holding it (api:auth_failing for
the APIs), with its evidence and the command to run; in the default alert classes."""

from __future__ import annotations

from vigie.alerts._rules import security_alerts
from vigie.classify.security import ClientView
from vigie.settings.alerts import DEFAULT_ALERT_CLASSES, parse_classes

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
