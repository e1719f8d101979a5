"""The health family (``vigie.policy.families.health``): what vigie proposes for a backend
slowing down, a gateway slowing down, a dead backend, a consumer surging and one whose traffic
stopped — on a three-week scenario through the real wire path and state. Nothing that refuses
traffic comes without an operator: the only directive is a surge's LIMIT, never auto-approved."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.state.test_baseline_measures import scenario
from vigie.classify import views
from vigie.errors import ConfigError
from vigie.policy.suggest import Suggestion, suggest
from vigie.settings.policy import PolicyConfig
from vigie.state.engine import State

CONSUMERS = (
    ("app-pay", "Pay"),
    ("app-search", "Search"),
    ("app-surge", "Orders"),
    ("app-dead", "Dead"),
    ("app-gone", "Quiet"),
    ("app-calm", "Calm"),
)
INCIDENT: dict[str, dict[str, Any]] = {
    "Pay": {"backend_x": 4.0},
    "Search": {"gateway_ms": 60},
    "Orders": {"n": 200, "errors": 0.3},
    "Dead": {"down": True},
    "Quiet": {"n": 0},
}


@pytest.fixture(scope="module")
def health() -> tuple[State, int, list[Suggestion]]:
    state, now = scenario(CONSUMERS, INCIDENT, seed=11)
    return state, now, suggest(state, now)


def _of(out: list[Suggestion], cls: str, api: str, concerns: str) -> Suggestion:
    (s,) = [s for s in out if s.class_name == cls and s.api == api and s.concerns == concerns]
    return s


def test_each_health_class_gets_its_advice_and_only_the_surge_a_directive(
    health: tuple[State, int, list[Suggestion]],
) -> None:
    state, now, out = health
    pay = _of(out, "degraded", "Pay", "api")
    assert pay.action == "contact_owner" and pay.directive is None
    assert "backend slower" in pay.summary and "backend" in pay.owner_note
    search = _of(out, "degraded", "Search", "api")
    assert "gateway side slower" in search.summary and "mediation" in search.owner_note
    dead = _of(out, "backend_down", "Dead", "api")
    assert dead.action == "contact_owner" and dead.directive is None
    assert "page the backend's owner" in dead.summary and "suspension" in dead.owner_note
    assert dead.evidence["backend_down"]["consecutive_failures"] >= 20
    assert "degraded" in next(a for a in views.apis(state, now) if a.api == "Dead").classes
    assert not [s for s in out if s.api == "Dead" and s.class_name == "degraded"]  # said once
    gone = _of(out, "traffic_anomaly", "Quiet", "subscription")
    assert gone.action == "contact_owner" and gone.directive is None
    assert "dropped" in gone.summary and "credentials" in gone.owner_note
    assert _of(out, "traffic_anomaly", "Quiet", "api").action == "contact_owner"
    surge = _of(out, "traffic_anomaly", "Orders", "subscription")
    assert surge.action == "temporary_limit" and surge.directive is not None
    assert surge.directive.action == "LIMIT" and surge.directive.ttl_seconds == 3600
    ev = surge.evidence["traffic_anomaly"]
    # sized on the top of its usual band, per minute, x headroom: far below the surge
    assert surge.directive.limit_requests < ev["requests"] / 15
    assert surge.directive.limit_requests >= ev["baseline_requests"] / 15
    assert 0.5 < surge.refused_share < 1.0
    assert "5xx" in surge.owner_note  # its errors beside its usual share
    # its 30 % 5xx degrade the API (told as errors); the API's surge is answered by its
    # consumer's; nothing for the calm consumer
    orders = _of(out, "degraded", "Orders", "api")
    assert "5xx" in orders.summary and orders.directive is None
    assert not [s for s in out if s.api == "Orders" and s.class_name == "traffic_anomaly"
                and s.concerns == "api"]  # fmt: skip
    assert not [s for s in out if s.api == "Calm"]
    directives = [s for s in out if s.directive is not None]
    assert [s.class_name for s in directives if s.class_name in ("degraded", "backend_down")] == []


def test_a_surge_limit_is_never_auto_approved(
    health: tuple[State, int, list[Suggestion]],
) -> None:
    state, now, out = health
    surge = _of(out, "traffic_anomaly", "Orders", "subscription")
    assert not surge.auto_eligible and surge.auto_approval.startswith("not configured")
    with pytest.raises(ConfigError, match="'traffic_anomaly' cannot be auto-approved"):
        PolicyConfig(auto_approve=("traffic_anomaly",))
    # with every class that can be auto-approved configured, still not this one
    conf = PolicyConfig(auto_approve=("retry_storm", "redundant", "wrong_channel"))
    again = _of(suggest(state, now, conf), "traffic_anomaly", "Orders", "subscription")
    assert not again.auto_eligible


def test_the_ids_hold_over_the_episode(health: tuple[State, int, list[Suggestion]]) -> None:
    state, now, out = health
    later = suggest(state, now + 120_000_000)  # the classes still held, the figures older
    mine = {"degraded", "backend_down", "traffic_anomaly"}
    assert {s.id for s in out if s.class_name in mine} == {
        s.id for s in later if s.class_name in mine
    }
    assert len({s.id for s in out}) == len(out)
