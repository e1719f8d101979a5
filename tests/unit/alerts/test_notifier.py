"""The notifier over a real state (traffic through the real wire path), a real directive table
and suggestion book, and a recording stand-in for Alertmanager's HTTP API: what starts, is
resent, resolves; failures counted and retried; nothing for a normal consumer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.policy_traffic import MINUTE, T0, feed, redundant, retry_storm, steady
from vigie.alerts import AlertConfig, Notifier, _notifier
from vigie.classify import views
from vigie.directives.table import DirectiveTable
from vigie.policy.book import Record, SuggestionBook
from vigie.policy.model import Suggestion
from vigie.settings.alerts import parse_classes
from vigie.state.engine import State
from vigie.state.thresholds import Thresholds
from vigie.v1 import directives_pb2 as dpb

URL_A, URL_B = "http://am-a:9093", "http://am-b:9093"


@dataclass
class ManualClock:
    wall_s: float = T0 / 1e6
    mono: float = 1000.0

    def wall(self) -> float:
        return self.wall_s

    def monotonic(self) -> float:
        return self.mono

    def advance(self, s: float) -> None:
        self.wall_s += s
        self.mono += s


@dataclass
class FakeAlertmanager:
    """Records each post; ``down`` URLs raise as an unreachable one does."""

    posts: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    down: set[str] = field(default_factory=set)

    def __call__(self, url: str, alerts: list[dict[str, Any]], timeout: float) -> None:
        if url in self.down:
            raise ConnectionRefusedError(f"{url}: connection refused")
        self.posts.append((url, alerts))

    def to(self, url: str) -> list[dict[str, Any]]:
        return [a for u, batch in self.posts if u == url for a in batch]


def make(
    sources: str = "episodes", urls: tuple[str, ...] = (URL_A,), resend: float = 60.0
) -> tuple[Notifier, SimpleNamespace, FakeAlertmanager, ManualClock]:
    clock = ManualClock()
    state = State(Thresholds().replace(hold_seconds=120))
    src = SimpleNamespace(
        lock=threading.Lock(),
        state=state,
        directives=DirectiveTable(None, clock),
        policy=SimpleNamespace(book=SuggestionBook(None, clock)),
        data=None,
    )
    config = AlertConfig(
        urls=urls,
        classes=parse_classes("retry_storm,error_prone,api:retired"),
        sources=frozenset(sources.split(",")),
        resend_seconds=resend,
        tenant="carbon.super",
    )
    am = FakeAlertmanager()
    return Notifier(src, config, clock=clock, post=am), src, am, clock


def storm_and_normal(state: State, start: int) -> None:
    feed(state, retry_storm("app-storm", start) + steady("app-ok", start, 3, 20, api="Stock"))


def test_a_retry_storm_fires_is_resent_resolves_and_the_normal_consumer_never_alerts() -> None:
    n, src, am, clock = make()
    storm_and_normal(src.state, T0)
    n.step()
    (fired,) = am.to(URL_A)
    assert fired["labels"] == {
        "alertname": "VigieRetryStorm",
        "class": "retry_storm",
        "application": "name-app-storm",
        "application_id": "app-storm",
        "api": "Stock",
        "api_version": "v1",
        "channel": "main",
        "tenant": "carbon.super",
        "severity": "warning",
    }
    ann = fired["annotations"]
    assert ann["summary"] == "retry_storm: application name-app-storm on Stock v1"
    assert ann["evidence"].startswith("retries=") and "requests=" in ann["evidence"]
    assert "\n" not in ann["evidence"]
    assert ann["owner"] == "team-a"
    assert ann["command"] == "vigie consumers --application app-storm --api Stock"
    assert fired["startsAt"].endswith("Z") and "endsAt" not in fired

    clock.advance(30)
    n.step()  # still active, not due again
    assert len(am.posts) == 1
    clock.advance(31)
    n.step()  # resend_seconds passed: posted again, same labels
    assert len(am.posts) == 2 and am.posts[1][1][0]["labels"] == fired["labels"]

    # the normal consumer goes on past the hold time: the storm's class ends
    feed(src.state, steady("app-ok", T0 + 3 * MINUTE, 10, 20, api="Stock"))
    clock.advance(5)
    n.step()
    resolved = am.posts[-1][1]
    assert [a["labels"] for a in resolved] == [fired["labels"]]
    assert resolved[0]["endsAt"] > resolved[0]["startsAt"]
    clock.advance(120)
    n.step()
    assert len(am.posts) == 3  # nothing more: resolved once
    assert all(a["labels"]["application_id"] == "app-storm" for a in am.to(URL_A))


def test_a_failing_alertmanager_is_counted_retried_and_does_not_hold_up_the_other() -> None:
    n, src, am, clock = make(urls=(URL_A, URL_B))
    am.down.add(URL_A)
    storm_and_normal(src.state, T0)
    n.step()  # never raises
    assert n.counters["alert_post_failures"] == 1
    assert len(am.to(URL_B)) == 1 and am.to(URL_A) == []
    clock.advance(1)
    n.step()  # URL_A waits out its pause (2 s after one failure)
    assert n.counters["alert_post_failures"] == 1
    am.down.clear()
    clock.advance(2)
    n.step()
    assert [a["labels"] for a in am.to(URL_A)] == [a["labels"] for a in am.to(URL_B)]
    assert len(am.to(URL_B)) == 1  # B was told already, and not due again


def test_a_resolution_is_kept_until_an_alertmanager_that_was_down_takes_it() -> None:
    n, src, am, clock = make()
    storm_and_normal(src.state, T0)
    n.step()
    am.down.add(URL_A)
    feed(src.state, steady("app-ok", T0 + 3 * MINUTE, 10, 20, api="Stock"))
    n.step()
    assert n.resolving and n.counters["alert_post_failures"] == 1
    am.down.clear()
    clock.advance(60)
    n.step()
    assert "endsAt" in am.to(URL_A)[-1] and not n.resolving


def test_an_enforced_directive_alerts_until_it_leaves_the_table_and_a_shadow_one_never() -> None:
    n, src, am, clock = make("directives")
    expires = int((clock.wall_s + 3600) * 1e6)
    src.directives.put(
        dpb.Directive(
            id="limit-shop",
            mode=dpb.DIRECTIVE_MODE_ENFORCE,
            action=dpb.DIRECTIVE_ACTION_LIMIT,
            application_id="app-shop",
            limit_requests=100,
            limit_period_seconds=60,
            expires_at_us=expires,
            reason="retry storm",
        )
    )
    src.directives.put(
        dpb.Directive(
            id="watch-x",
            mode=dpb.DIRECTIVE_MODE_SHADOW,
            action=dpb.DIRECTIVE_ACTION_BLOCK,
            application_id="app-x",
            expires_at_us=expires,
        )
    )
    n.step()
    (a,) = am.to(URL_A)
    assert a["labels"] == {
        "alertname": "VigieDirectiveEnforced",
        "directive": "limit-shop",
        "action": "limit",
        "application_id": "app-shop",
        "tenant": "carbon.super",
        "severity": "warning",
    }
    assert a["annotations"]["summary"].startswith("directive limit-shop enforces a limit to 100")
    assert a["annotations"]["command"] == "vigie audit --subject directive:limit-shop"
    src.directives.remove("limit-shop")
    n.step()
    assert "endsAt" in am.to(URL_A)[-1]


def test_a_suggestion_alerts_while_it_awaits_review() -> None:
    n, src, am, _clock = make("suggestions")
    s = Suggestion(
        id="s-1",
        class_name="retry_storm",
        concerns="subscription",
        action="limit",
        summary="limit app-storm on Stock",
        expected_effect="refuses 30 % of its requests",
        evidence={"retries": 42, "requests": 50},
        application_id="app-storm",
        api="Stock",
        api_version="v1",
        owner_note="team storm",
    )
    book = src.policy.book
    book.records["s-1"] = Record(s, "proposed", 1, 1)
    n.step()
    (a,) = am.to(URL_A)
    assert a["labels"]["alertname"] == "VigieSuggestion" and a["labels"]["suggestion"] == "s-1"
    assert a["annotations"]["evidence"] == "retries=42 requests=50"
    assert a["annotations"]["owner"] == "team storm"
    assert a["annotations"]["command"] == "vigie suggestions show s-1"
    book.records["s-1"].state = "rejected"
    n.step()
    assert "endsAt" in am.to(URL_A)[-1]


class FakeData:
    def __init__(self) -> None:
        self.state = "ok"
        self.counters = {"rollup_events_dropped": 5, "minute_rows_written": 10}

    def status(self) -> dict[str, Any]:
        return {"backend": "parquet", "state": self.state, "counters": dict(self.counters)}


def test_data_lost_alerts_while_loss_counters_grow_and_a_degraded_store_alerts() -> None:
    n, src, am, clock = make("data")
    src.data = FakeData()
    src.data.counters["rollup_events_dropped"] = 0
    n.step()  # nothing lost, nothing degraded
    assert am.posts == []
    src.data.counters["rollup_events_dropped"] = 9
    src.data.state = "degraded: disk full"
    clock.advance(1)
    n.step()
    got = {a["labels"]["alertname"]: a for a in am.to(URL_A)}
    assert set(got) == {"VigieDataLost", "VigieDataDegraded"}
    assert got["VigieDataLost"]["annotations"]["evidence"] == "rollup_events_dropped=9"
    assert got["VigieDataDegraded"]["annotations"]["evidence"] == "degraded: disk full"
    src.data.state = "ok"
    clock.advance(_notifier.DATA_QUIET_S + 1)
    n.step()
    ended = {a["labels"]["alertname"] for a in am.to(URL_A) if "endsAt" in a}
    assert ended == {"VigieDataLost", "VigieDataDegraded"}


def test_alerts_held_are_bounded_and_the_excess_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_notifier, "MAX_ALERTS", 1)
    n, src, _am, _clock = make()
    feed(src.state, retry_storm("app-1", T0) + retry_storm("app-2", T0))
    n.step()
    assert len(n.active) == 1 and n.counters["alerts_dropped"] == 1


def test_the_thread_does_the_work_and_tick_only_wakes_it() -> None:
    n, src, am, _clock = make()
    storm_and_normal(src.state, T0)
    done = threading.Event()
    real_step = n.step

    def step() -> None:
        real_step()
        done.set()

    n.step = step  # type: ignore[method-assign]
    n.start()
    try:
        n.tick()
        assert done.wait(60)
        assert len(am.to(URL_A)) == 1
    finally:
        n.stop()


def test_a_class_outside_alert_classes_does_not_alert() -> None:
    n, src, am, _clock = make()  # alert_classes: retry_storm, error_prone, api:retired
    feed(src.state, redundant("app-r", T0))
    assert any("redundant" in v.classes for v in views.subscriptions(src.state))
    n.step()
    assert am.posts == [] and n.active == {}
