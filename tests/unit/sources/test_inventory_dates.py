"""The inventory's dates (created, last used, as of when) and the silence verdicts they
support (``vigie.classify.silence``), on a real ``State`` fed real events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.policy_traffic import DAY, HOUR, MINUTE, T0, feed, rec
from vigie.classify import views
from vigie.classify.silence import INVENTORY_GAP_US, judge_silence
from vigie.errors import InputError
from vigie.sources.inventory import (
    NEVER,
    Inventory,
    format_time,
    load_inventory,
    parse_time,
    to_json,
    write_inventory,
)
from vigie.state.engine import State

NOW = T0 + 60 * DAY
T = 30 * DAY  # dormant_seconds, in microseconds


def test_times_in_every_form_wso2_gives_them() -> None:
    assert parse_time("2026-01-01T00:00:00Z") == T0
    assert parse_time("2026-01-01T01:00:00+01:00") == T0
    assert parse_time("2026-01-01T00:00:00") == T0  # no offset: UTC
    assert parse_time("2026-01-01 00:00:00") == T0  # the Publisher's example form
    assert parse_time("2026-01-01 00:00:00.250") == T0 + 250_000
    assert parse_time(T0 // 1000) == T0  # epoch milliseconds
    assert parse_time(str(T0 // 1000)) == T0  # ... as a string, as the REST APIs list them
    for bad in ("yesterday", "", "2026-13-01", True, None, 1.5, "9" * 30, 1 << 60):
        assert parse_time(bad) is None, bad
    assert format_time(T0) == "2026-01-01T00:00:00Z"
    assert format_time(T0 + 250_000) == "2026-01-01T00:00:00.250Z"


def _file(tmp_path: Path, doc: dict[str, Any]) -> Path:
    p = tmp_path / "inventory.json"
    p.write_text(json.dumps(doc))
    return p


DOC: dict[str, Any] = {
    "as_of": "2026-03-01T00:00:00Z",
    "applications": [{"id": "a1", "created": "2025-01-01T00:00:00Z"}],
    "apis": [{"name": "Orders", "version": "v1", "created": 1_700_000_000_000,
              "last_used": "2026-02-01T00:00:00Z"}],
    "subscriptions": [
        {"application_id": "a1", "api": "Orders", "api_version": "v1",
         "created": "2025-06-01T00:00:00Z", "last_used": "never"},
    ],
}  # fmt: skip


def test_dates_are_read_written_and_read_again(tmp_path: Path) -> None:
    inv = load_inventory(_file(tmp_path, DOC))
    assert inv.as_of_us == parse_time("2026-03-01T00:00:00Z")
    assert inv.applications[0].created_us == parse_time("2025-01-01T00:00:00Z")
    assert inv.apis[0].created_us == 1_700_000_000_000_000
    assert inv.subscriptions[0].last_used_us == NEVER
    doc = to_json(inv)
    assert doc["as_of"] == "2026-03-01T00:00:00Z"
    assert doc["subscriptions"][0]["last_used"] == "never"
    out = tmp_path / "again.json"
    write_inventory(inv, out)
    assert load_inventory(out) == inv


def test_without_as_of_the_dates_are_as_of_the_file(tmp_path: Path) -> None:
    doc = {k: v for k, v in DOC.items() if k != "as_of"}
    p = _file(tmp_path, doc)
    assert load_inventory(p).as_of_us == int(p.stat().st_mtime * 1e6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"as_of": "soon"}, "'as_of' 'soon' is not a time between 2000 and now"),
        ({"as_of": "2999-01-01T00:00:00Z"}, "is not a time between 2000 and now"),
        ({"sub": {"created": "1999-12-31T00:00:00Z"}}, "'created' '1999-12-31T00:00:00Z' is not"),
        ({"sub": {"last_used": "2026-04-01T00:00:00Z"}}, "the inventory's as_of 2026-03-01"),
        ({"sub": {"last_used": "2025-01-01T00:00:00Z"}}, "'last_used' is before 'created'"),
        ({"sub": {"last_used": "recently"}}, 'ISO 8601 or epoch milliseconds or "never"'),
        ({"sub": {"created": "never"}}, "'created' 'never' is not a time"),
        ({"sub": {"created": -5}}, "'created' -5 is not between 2000"),
    ],
)
def test_an_absurd_date_is_refused_with_its_entry_named(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    doc = json.loads(json.dumps(DOC))
    doc |= {k: v for k, v in change.items() if k != "sub"}
    doc["subscriptions"][0] |= change.get("sub", {})
    with pytest.raises(InputError) as err:
        load_inventory(_file(tmp_path, doc))
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    if "sub" in change:
        assert "subscriptions[0]" in str(err.value)


# ---- the rule, case by case -----------------------------------------------------------------
def judge(
    dates: tuple[int, int, int],
    *,
    last_seen: int = 0,
    obs_start: int = NOW - HOUR,
    as_of: int = NOW - 2 * HOUR,
) -> str:
    verdict, _ = judge_silence(
        NOW, last_seen, obs_start, NOW - obs_start, T, dates, as_of, "dormant"
    )
    return verdict


def test_the_rule() -> None:
    d40, d2 = NOW - 40 * DAY, NOW - 2 * DAY
    # a last use 40 days ago, vigie observing since an hour after the inventory: dormant
    assert judge((0, 0, d40)) == "dormant"
    # never used since its creation 40 days ago: dormant; created 2 days ago: too young
    assert judge((d40, d40, NEVER)) == "dormant"
    assert judge((d2, d2, NEVER)) == "unknown"
    # created 40 days ago, nothing said of its use: nobody knows (the day-one bug otherwise)
    assert judge((d40, d40, 0)) == ""
    # "never" without a creation date says nothing of how long
    assert judge((0, 0, NEVER)) == ""
    # WSO2 saw it used 2 days ago: not dormant at all
    assert judge((0, 0, d2)) == "active"
    # its application (or API) is 2 days old: so is it, never seen: too young
    assert judge((0, d2, 0)) == "unknown"
    # too young even when vigie has observed for 60 days
    assert judge((0, d2, 0), obs_start=NOW - 60 * DAY) == "unknown"
    # vigie began observing more than INVENTORY_GAP_US after the inventory: nobody watched
    late = NOW - HOUR
    assert judge((0, 0, d40), obs_start=late, as_of=late - INVENTORY_GAP_US) == "dormant"
    assert judge((0, 0, d40), obs_start=late, as_of=late - INVENTORY_GAP_US - 1) == ""
    # a replay of older logs: created after its "now"
    verdict, ev = judge_silence(NOW, 0, NOW - DAY, DAY, T, (0, NOW + DAY, 0), NOW + 2 * DAY, "x")
    assert verdict == "unknown" and ev["reason"] == "created after this moment (inventory): not x"
    # vigie is not observing at all (no batch yet)
    assert judge((0, 0, d40), obs_start=0) == ""
    # vigie saw it (an older, backfilled request) after WSO2's last use: silence from then
    assert judge((0, 0, d40), last_seen=NOW - 10 * DAY) == ""
    assert judge((0, 0, NOW - 50 * DAY), last_seen=d40) == "dormant"


# ---- through the state and the views ----------------------------------------------------------
def _state(inv: Inventory, observed_days: float) -> State:
    st = State()
    inv.apply_to(st)
    # another consumer's traffic: vigie has observed the platform since then
    feed(st, [rec(NOW - int(observed_days * DAY), "app-other", "Other", "v1")])
    feed(st, [rec(NOW, "app-other", "Other", "v1")])
    return st


def _inventory(as_of: int) -> Inventory:
    from vigie.sources.inventory import Api, Application, Subscription  # noqa: PLC0415

    d = NOW - 40 * DAY
    return Inventory(
        applications=[Application("app-idle"), Application("app-new", created_us=NOW - DAY)],
        subscriptions=[
            Subscription("app-idle", "Orders", "v1", last_used_us=d),
            Subscription("app-idle", "Legacy", "v0", created_us=d, last_used_us=NEVER),
            Subscription("app-idle", "Fresh", "v1"),
            Subscription("app-new", "Orders", "v1"),
            Subscription("app-busy", "Orders", "v1", last_used_us=NOW - DAY),
            Subscription("app-plain", "Orders", "v1"),
        ],
        apis=[
            Api("Orders", "v1"),
            Api("Legacy", "v0", last_used_us=NOW - 45 * DAY),
            Api("Fresh", "v1", created_us=NOW - 3 * DAY),
        ],
        tenant="",
        as_of_us=as_of,
    )


def test_views_judge_with_the_dates_on_day_one() -> None:
    st = _state(_inventory(NOW - 10 * MINUTE), observed_days=0)
    subs = {(v.application_id, v.api): v for v in views.subscriptions(st, NOW)}
    assert subs[("app-idle", "Orders")].classes == ["dormant"]
    ev = subs[("app-idle", "Orders")].evidence["dormant"]
    assert ev["source"] == "inventory" and ev["days_without_requests"] == 40
    assert ev["last_used"] == views.iso(NOW - 40 * DAY)
    assert subs[("app-idle", "Legacy")].classes == ["dormant"]
    assert "never_used_since_created" in subs[("app-idle", "Legacy")].evidence["dormant"]
    # its API was created 3 days ago: the subscription cannot be older
    assert subs[("app-idle", "Fresh")].classes == ["unknown"]
    assert "too young" in subs[("app-idle", "Fresh")].evidence["unknown"]["reason"]
    assert subs[("app-new", "Orders")].classes == ["unknown"]  # its application: 1 day old
    assert subs[("app-busy", "Orders")].classes == ["normal"]  # WSO2 saw it used yesterday
    plain = subs[("app-plain", "Orders")]
    assert plain.classes == ["unknown"]  # no date: as without an inventory
    assert plain.evidence["unknown"]["reason"].startswith("vigie has not observed")
    apis = {v.api: v for v in views.apis(st, NOW)}
    assert apis["Legacy"].classes == ["retired"]
    assert apis["Legacy"].evidence["retired"]["source"] == "inventory"
    assert apis["Fresh"].classes == ["unknown"]
    assert apis["Orders"].classes == ["unknown"]
    counts = views.class_counts(st, NOW)
    assert (counts["dormant"], counts["unknown"], counts["normal"]) == (2, 3, 2)


def test_a_stale_inventory_is_no_evidence() -> None:
    # fetched two days before vigie began observing: nobody watched in between
    st = _state(_inventory(NOW - 2 * DAY), observed_days=0)
    subs = {(v.application_id, v.api): v for v in views.subscriptions(st, NOW)}
    assert subs[("app-idle", "Orders")].classes == ["unknown"]
    assert subs[("app-idle", "Legacy")].classes == ["unknown"]
    assert subs[("app-busy", "Orders")].classes == ["normal"]  # a recent use still counts


def test_after_a_month_of_observation_young_is_still_not_dormant() -> None:
    st = _state(_inventory(NOW - 40 * DAY), observed_days=35)
    subs = {(v.application_id, v.api): v for v in views.subscriptions(st, NOW)}
    assert subs[("app-plain", "Orders")].classes == ["dormant"]  # vigie's own evidence
    assert "source" not in subs[("app-plain", "Orders")].evidence["dormant"]
    assert subs[("app-new", "Orders")].classes == ["unknown"]  # created a day ago
    assert subs[("app-idle", "Fresh")].classes == ["unknown"]


def test_without_dates_nothing_changes() -> None:
    inv = _inventory(0)  # no as_of: no date is used
    assert inv.dates() is None
    st = _state(inv, observed_days=0)
    assert {tuple(v.classes) for v in views.subscriptions(st, NOW)} == {("unknown",), ("normal",)}


def test_the_rule_on_arrays_is_the_rule() -> None:
    """``dated`` (the views' vectorised rule) decides every combination as ``judge_silence``."""
    import itertools  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from vigie.classify.silence import dated  # noqa: PLC0415

    moments = (0, NOW - 50 * DAY, NOW - 40 * DAY, NOW - 10 * DAY, NOW - DAY)
    combos = [
        (c, b, u, s)
        for c, b, s in itertools.product(moments, moments, moments)
        for u in (*moments, NEVER)
        if b >= c
    ]
    for obs_start, as_of in ((NOW - HOUR, NOW - 2 * HOUR), (NOW - 35 * DAY, NOW - 2 * DAY),
                             (NOW - HOUR, NOW - 3 * DAY), (0, NOW)):  # fmt: skip
        observed = NOW - obs_start if obs_start else 0
        rows = [(i, (c, b, u), s) for i, (c, b, u, s) in enumerate(combos)]
        out = np.zeros((len(rows), 3), dtype=np.bool_)
        out[:, 0] = observed >= T  # the observation's verdicts: dormant, else unknown
        out[:, -1] = observed < T
        notes = dated(out, 0, rows, NOW, obs_start, observed, T, as_of, "dormant")
        for i, (c, b, u, s) in enumerate(combos):
            verdict, ev = judge_silence(NOW, s, obs_start, observed, T, (c, b, u), as_of, "dormant")
            want = {"": (observed >= T, observed < T), "active": (False, False),
                    "unknown": (False, True), "dormant": (True, False)}[verdict]  # fmt: skip
            assert (bool(out[i, 0]), bool(out[i, -1])) == want, (c, b, u, s, obs_start, verdict)
            assert (i in notes) == (verdict in ("unknown", "dormant")), (c, b, u, s)
            if i in notes:
                assert notes[i] == ev


def test_merged_tenants_keep_the_oldest_moment() -> None:
    a, b = _inventory(NOW - 2 * HOUR), _inventory(NOW - HOUR)
    assert Inventory.merged([a, b]).as_of_us == NOW - 2 * HOUR
    assert Inventory.merged([_inventory(0), b]).as_of_us == NOW - HOUR
    assert Inventory.merged([_inventory(0), _inventory(0)]).dates() is None
