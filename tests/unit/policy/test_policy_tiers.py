"""Advice by WSO2's own tiers and throttle codes: a growing consumer is never proposed a limit
below its tier; a throttled one is told which WSO2 code names which policy."""

from __future__ import annotations

from tests.support.policy_traffic import END, HOUR, feed, growing, throttle_hitter
from vigie.policy.families.tiers import THROTTLE_CODES, code_guide
from vigie.policy.suggest import suggest
from vigie.state.engine import State


def test_an_unlimited_growing_consumer_gets_capacity_not_a_limit() -> None:
    st = State()
    feed(st, growing("app-u", END, tier="Unlimited"))
    (s,) = [x for x in suggest(st, END) if x.application_id == "app-u"]
    assert (s.class_name, s.action, s.wso2) == ("growing", "contact_owner", None)
    assert "grows on Unlimited (unlimited)" in s.summary
    assert "plan the backend's capacity" in s.summary


def test_a_consumer_on_a_custom_tier_is_moved_up_among_the_configured_ones() -> None:
    from vigie.settings.policy import PolicyConfig, parse_tier_limits  # noqa: PLC0415

    st = State()
    feed(st, growing("app-g", END, tier="Tiny"))
    config = PolicyConfig(tiers=parse_tier_limits("Tiny=100/min,Small=500/min,Big=5000/min"))
    (s,) = [x for x in suggest(st, END, config) if x.application_id == "app-g"]
    size = s.evidence["sizing"]["suggested_per_minute"]
    assert size > 100  # above Tiny: Small holds it
    assert s.action == "subscription_tier" and s.evidence["next_tier"] == "Small"
    assert "move it from Tiny (100/min) to Small (500/min)" in s.summary


def test_the_owner_note_names_each_throttle_code_and_its_policy() -> None:
    st = State()
    feed(st, throttle_hitter("app-thr", END - 3 * HOUR))
    (s,) = [x for x in suggest(st, END) if x.application_id == "app-thr"]
    assert s.action == "contact_owner"
    assert code_guide() in s.owner_note
    assert "900803 APPLICATION_LEVEL_LIMIT_EXCEEDED → its application policy" in s.owner_note
    assert set(THROTTLE_CODES) == {900800, 900802, 900803, 900804, 900806, 900807}
