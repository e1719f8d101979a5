"""Suggestions from a state where every class holds: actions, sizing, directives, ids."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.policy_traffic import END, HOUR, MINUTE, feed, retry_storm, rich_state
from vigie.policy import wso2
from vigie.policy.suggest import Suggestion, suggest
from vigie.settings.policy import PolicyConfig
from vigie.state.engine import State


@pytest.fixture(scope="module")
def state() -> State:
    return rich_state()


@pytest.fixture(scope="module")
def found(state: State) -> list[Suggestion]:
    return suggest(state, END)


def one(found: list[Suggestion], **match: Any) -> Suggestion:
    hits = [s for s in found if all(getattr(s, k) == v for k, v in match.items())]
    assert len(hits) == 1, (match, [(s.class_name, s.application_id, s.api) for s in found])
    return hits[0]


def test_ids_are_unique_and_stable(state: State, found: list[Suggestion]) -> None:
    ids = [s.id for s in found]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("sg-") for i in ids)
    assert [s.id for s in suggest(state, END)] == ids  # recomputing finds the same ids


def test_growth_within_its_tier_gets_the_next_tier_up_and_a_forecast(
    found: list[Suggestion],
) -> None:
    """Never a limit below its tier (the old advice, a 250/min policy for a Bronze 1,000/min
    consumer, read as a downgrade of the fastest-growing customer)."""
    s = one(found, class_name="growing", application_id="app-grow")
    assert s.action == "subscription_tier"
    assert s.concerns == "subscription"
    rate = s.evidence["rate"]
    sizing = s.evidence["sizing"]
    # the last week runs at 40 requests an hour in bursts of 2 s: its busiest minutes hold 30
    assert rate["p99_per_minute"] == 30
    assert 3.5 < sizing["weekly_growth"] < 4.5
    size = sizing["suggested_per_minute"]
    assert size >= 30 * sizing["weekly_growth"] * 1.5
    assert size in (200, 250)  # a human number
    # Bronze (1,000/min) from 30/min at ~x4 a week: 7 x ln(1000/30) / ln(4) ~ 17.7 days
    assert s.evidence["forecast_days"] == 18 or s.evidence["forecast_days"] == 19
    assert s.summary.startswith(
        "name-app-grow on Delivery v1: move it from Bronze (1,000/min) to Silver (2,000/min)"
    )
    assert "reaches its tier limit (Bronze (1,000/min)) in" in s.summary
    assert s.evidence["next_tier"] == "Silver"
    assert "never proposes a limit below it" in s.owner_note
    assert s.wso2 is None and s.directive is None


def test_throttle_hitter_above_its_tier_gets_a_bigger_policy(found: list[Suggestion]) -> None:
    s = one(found, class_name="throttle_hitter", application_id="app-gold")
    assert s.action == "subscription_policy"
    assert s.wso2 is not None
    size = s.wso2.payload["defaultLimit"]["requestCount"]["requestCount"]
    assert size == 4000  # busiest minute 2,500 (only 12 minutes) x 1.5 = 3,750 -> 4,000
    assert size > 2000  # above Silver
    assert s.wso2.payload["policyName"] == "Vigie_4000PerMin"


def test_throttle_hitter_within_its_tier_is_told_where_to_look(found: list[Suggestion]) -> None:
    s = one(found, class_name="throttle_hitter", application_id="app-thr", api="Orders")
    assert s.action == "contact_owner"
    assert s.wso2 is None and s.directive is None
    assert "the limit is elsewhere" in s.owner_note
    # two subscriptions of the same application: one application policy for both
    app = one(found, action="application_policy", application_id="app-thr")
    assert app.concerns == "application"
    assert app.wso2 is not None and app.wso2.schema == wso2.APPLICATION_SCHEMA
    assert app.wso2.payload["defaultLimit"]["requestCount"]["requestCount"] == 120  # 2 x 40 x 1.5


def test_retry_storm_gets_a_temporary_limit_and_a_note(found: list[Suggestion]) -> None:
    s = one(found, class_name="retry_storm", application_id="app-retry")
    assert s.action == "temporary_limit"
    d = s.directive
    assert d is not None and d.action == "LIMIT"
    assert (d.application_id, d.api_name, d.api_version, d.channel) == ("app-retry", "Stock",
                                                                         "v1", "")  # fmt: skip
    assert d.limit_period_seconds == 60 and d.limit_requests == 2
    assert d.ttl_seconds == 3600
    assert "retries within 2,000 ms" in s.owner_note
    assert s.refused_share > 0.9  # the storm is almost all of its traffic
    assert s.wso2 is None


def test_redundant_reads_get_a_temporary_limit(found: list[Suggestion]) -> None:
    s = one(found, class_name="redundant", application_id="app-red")
    assert s.directive is not None and s.directive.ttl_seconds == 86_400
    assert "identical reads per minute" in s.owner_note
    # one every 5 s for 25 minutes: 299 repeats over the 60-minute window
    assert "299 of 300 successful GET/HEAD in 60 minutes" in s.owner_note
    assert "~5 identical reads per minute" in s.owner_note


def test_error_prone_only_contacts_the_owner(found: list[Suggestion]) -> None:
    s = one(found, class_name="error_prone")
    assert (s.action, s.directive, s.wso2) == ("contact_owner", None, None)
    assert "40% of its requests" in s.owner_note


def test_dormant_subscription_and_dormant_application(found: list[Suggestion]) -> None:
    sub = one(found, class_name="dormant", application_id="app-half")
    assert (sub.concerns, sub.action, sub.wso2) == ("subscription", "revoke", None)
    assert sub.directive is not None and sub.directive.action == "BLOCK"
    assert (sub.directive.api_name, sub.directive.api_version) == ("Legacy", "v0")
    app = one(found, class_name="dormant", application_id="app-idle")
    assert app.concerns == "application"
    assert app.wso2 is not None
    assert app.wso2.payload == {
        "conditionType": "APPLICATION",
        "conditionValue": "team-i:Idle",
        "conditionStatus": True,
    }
    assert app.directive is not None and app.directive.api_name == ""


def test_retired_api_gets_a_deny_policy_on_its_context(found: list[Suggestion]) -> None:
    s = one(found, class_name="retired", api="Legacy")
    assert s.wso2 is not None and s.wso2.payload["conditionValue"] == "/legacy/v0"
    unknown = one(found, class_name="retired", api="Orders", api_version="v2")
    assert unknown.wso2 is None and "context is unknown" in unknown.summary


def test_wrong_channel_blocks_that_channel_only(found: list[Suggestion]) -> None:
    s = one(found, class_name="wrong_channel")
    assert s.directive is not None
    assert (s.directive.application_id, s.directive.channel, s.directive.api_name) == (
        "app-wrong", "sale", "")  # fmt: skip
    assert s.refused_share == pytest.approx(20 / 320, abs=0.01)


def test_growing_api_gets_an_advanced_policy(found: list[Suggestion]) -> None:
    s = one(found, class_name="growing", concerns="api", api="Delivery")
    assert s.wso2 is not None and s.wso2.schema == wso2.ADVANCED_SCHEMA
    assert s.wso2.payload["policyName"].startswith("Vigie_Delivery_v1_")


def test_auto_approval_rules(state: State) -> None:
    config = PolicyConfig(auto_approve=("retry_storm", "dormant", "wrong_channel"),
                          allow_list=("app-idle",), auto_approve_max_share=0.10)  # fmt: skip
    by = {(s.class_name, s.application_id): s for s in suggest(state, END, config)}
    assert not by[("retry_storm", "app-retry")].auto_eligible
    assert "would refuse" in by[("retry_storm", "app-retry")].auto_approval
    assert by[("dormant", "app-half")].auto_eligible  # refuses nothing: no traffic
    assert not by[("dormant", "app-idle")].auto_eligible
    assert "allow-list" in by[("dormant", "app-idle")].auto_approval
    assert by[("wrong_channel", "app-wrong")].auto_eligible  # ~6 % <= 10 %
    assert by[("redundant", "app-red")].auto_approval == "not configured (auto_approve)"
    assert by[("error_prone", "app-err")].auto_approval == "not configured (auto_approve)"


def test_a_new_episode_is_a_new_suggestion() -> None:
    st = State()
    feed(st, retry_storm("a", END - 2 * 86_400 * 1_000_000))
    first = [s.id for s in suggest(st, None) if s.class_name == "retry_storm"]
    feed(st, retry_storm("a", END))  # two days later, after the hold time
    second = [s.id for s in suggest(st, None) if s.class_name == "retry_storm"]
    assert len(first) == len(second) == 1
    assert first != second


def test_json_names_what_it_concerns(found: list[Suggestion]) -> None:
    for s in found:
        doc = s.to_json()
        assert {"id", "class", "action", "evidence", "wso2", "directive"} <= set(doc)
        if s.concerns == "subscription":
            assert {"application_id", "api", "api_version"} <= set(doc)
        elif s.concerns == "api":
            assert {"api", "api_version"} <= set(doc) and "application_id" not in doc
        assert Suggestion.from_json(doc).to_json() == doc  # round-trips (persistence)
    assert MINUTE * 60 == HOUR
