"""Evidence before verdicts: dormant and retired only after vigie observed long enough; growth
that cannot be measured is ``new``, not infinite. Over a real State fed through the wire path."""

from __future__ import annotations

from tests.support.policy_traffic import DAY, END, HOUR, feed, growing, rec, steady
from vigie.classify import views
from vigie.policy.suggest import suggest
from vigie.settings.policy import PolicyConfig
from vigie.state.engine import State


def inventory_state() -> State:
    st = State()
    st.register_application("app-idle", "Idle", "team-i")
    st.ensure_api("Legacy", "v0", "/legacy/v0")
    st.ensure_subscription("app-idle", "Legacy", "v0", "Gold")
    return st


def test_day_one_everything_never_seen_is_unknown_and_nothing_is_proposed() -> None:
    st = inventory_state()
    feed(st, steady("app-busy", END - HOUR, 60, 5))
    (idle,) = [v for v in views.subscriptions(st) if v.application_id == "app-idle"]
    assert idle.classes == ["unknown"]
    ev = idle.evidence["unknown"]
    assert (ev["judged"], ev["needed_days"]) == ("dormant", 30.0)
    assert ev["observed_days"] == round(59 / 60 / 24, 2)  # the hour of traffic
    legacy = [a for a in views.apis(st) if a.api == "Legacy"]
    assert legacy[0].classes == ["unknown"]
    assert legacy[0].evidence["unknown"]["judged"] == "retired"
    config = PolicyConfig(auto_approve=("retry_storm", "dormant", "retired"))
    found = suggest(st, None, config)
    assert [s for s in found if s.class_name in ("dormant", "retired")] == []
    counts = views.class_counts(st, st.now_us)
    assert (counts["unknown"], counts["dormant"]) == (1, 0)


def test_after_the_observation_period_what_was_never_seen_is_dormant() -> None:
    st = inventory_state()
    feed(st, [rec(END - 31 * DAY, "app-busy")])
    feed(st, steady("app-busy", END - HOUR, 60, 5))
    (idle,) = [v for v in views.subscriptions(st) if v.application_id == "app-idle"]
    assert idle.classes == ["dormant"]
    classes = {s.class_name for s in suggest(st, None, PolicyConfig())}
    assert {"dormant", "retired"} <= classes


def test_a_consumer_without_an_earlier_week_is_new_not_infinitely_growing() -> None:
    st = State()
    # the platform observed for 14 days (growth can be judged), one consumer arrives today
    feed(st, growing("app-grow", END))
    feed(st, steady("app-fresh", END - 3 * HOUR, 180, 20, api="Delivery"))
    subs = {v.application_id: v for v in views.subscriptions(st)}
    fresh = subs["app-fresh"]
    assert "growing" not in fresh.classes
    assert "new" in fresh.classes
    assert fresh.evidence["new"]["previous_7_days"] == 0
    assert fresh.evidence["new"]["first_seen"] is not None
    assert "growing" in subs["app-grow"].classes  # measured growth stays growing
    found = suggest(st, None, PolicyConfig())
    assert not [s for s in found if s.application_id == "app-fresh" and s.class_name == "growing"]
    assert [s for s in found if s.application_id == "app-grow" and s.class_name == "growing"]
