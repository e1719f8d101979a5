"""Advice by WSO2's own throttle code: a real ``vigie serve`` with its Parquet store gets one
throttled consumer per code over a real gateway stream; each suggestion names the policy the
code points to, with a payload valid against WSO2's Admin API v4 spec (``admin-v4.yaml``).

| code | consumer | expected |
|---|---|---|
| 900803 | app-803 on Orders and Stock | one application policy (both subscriptions' sum) |
| 900804 | app-804 on Orders | a subscription policy, although its minutes fit Silver |
| 900807 | app-807 on Orders | a subscription policy with burst control |
| 900802 | app-802 on Catalog GET /items/{id} | an advanced policy for that resource |
| 900800 | app-800 on Maps | an advanced policy for the API |
| 900806 | app-806 on Orders | contact_owner naming the custom policy (CustomRule) |
| none   | app-old on Orders (throttled, no code) | as before: its tier fits, contact_owner |
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import CONFORMANCE, SidecarProcess, start_sidecar
from tests.support.policy_sidecar import cli_json
from tests.support.policy_traffic import HOUR, Record, steady
from tests.support.waiting import wait_for
from tests.support.wso2_spec import AdminSpec
from vigie.cli.main import main
from vigie.sources.probe import GatewayProbe

pytestmark = pytest.mark.slow

# two hours ending about now: the store keeps per-minute rollups for short_retention_days of
# wall time, so old event times would have only daily ones (see test_codes_from_the_days)
START = int(time.time() * 1e6) // HOUR * HOUR - 2 * HOUR


def hitter(app: str, code: int, api: str = "Orders", **extra: Any) -> list[Record]:
    """Two hours of steady traffic, one request a minute refused with ``code`` (0: a 429
    flagged throttled with no WSO2 code)."""
    out = steady(app, START, 120, 40, api, "Silver", name=f"App {app}", **extra)
    for m in range(120):
        out[m * 40].update(http_status=429, error_code=code, flags=1 | 4)
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    base = tmp_path_factory.mktemp("codes")
    sp: SidecarProcess = start_sidecar(base / "state", env={"VIGIE_DATA_FLUSH_SECONDS": "0.5"})
    try:
        records = (
            hitter("app-803", 900803)
            + hitter("app-803", 900803, api="Stock")
            + hitter("app-804", 900804)
            + hitter("app-807", 900807)
            + hitter("app-802", 900802, api="Catalog", resource="/items/{id}")
            # another consumer of the same resource, not throttled: the resource's peak
            # counts every consumer
            + steady("app-other", START, 120, 60, "Catalog", "Gold", resource="/items/{id}")
            + hitter("app-800", 900800, api="Maps")
            + hitter("app-806", 900806)
            + hitter("app-old", 0)
        )
        records.sort(key=lambda r: r["event_time_us"])
        with GatewayProbe(sp.telemetry, "gw-codes") as gw:
            for i in range(0, len(records), 4096):
                gw.send_records(records[i : i + 4096])
            assert gw.wait_for(lambda p: p.acked_events >= len(records), 120), gw.error

        def stored() -> bool:  # every applied event in the store's rollups
            data = cli_json(sp, "status")["data"]
            written = int(data.get("counters", {}).get("minute_rows_written", 0))
            return bool(written) and int(data.get("open_rows", 0)) == 0

        wait_for(stored, 120, "every applied event in the store's rollups")
        yield sp
    finally:
        sp.stop()


@pytest.fixture(scope="module")
def suggestions(served: SidecarProcess) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cli_json(served, "suggestions", "list", "--state", "proposed")[
        "suggestions"
    ]
    return items


def one(items: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    hits = [s for s in items if all(s.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (match, [(s["summary"], s.get("action")) for s in items])
    return hits[0]


def valid(spec: AdminSpec | None, s: dict[str, Any], schema: str) -> dict[str, Any]:
    req = s["wso2"]
    assert req is not None and req["schema"] == schema, s
    if spec is not None:
        assert spec.errors(schema, req["payload"]) == [], req
    return dict(req["payload"])


@pytest.fixture(scope="module")
def spec() -> AdminSpec | None:
    return AdminSpec(CONFORMANCE / "admin-v4.yaml") if CONFORMANCE.is_dir() else None


def test_each_throttle_code_gets_the_policy_it_names(
    suggestions: list[dict[str, Any]], spec: AdminSpec | None
) -> None:
    if spec is None:
        pytest.skip("../shared/conformance is not here: payloads not validated")
    # 900803: one application policy for the application (both its subscriptions), and no
    # subscription policy for either subscription
    app = one(suggestions, application_id="app-803")
    assert app["action"] == "application_policy" and app["concerns"] == "application"
    body = valid(spec, app, "ApplicationThrottlePolicy")
    assert body["defaultLimit"]["requestCount"]["requestCount"] >= 80  # 2 x 40/min
    assert "900803" in app["owner_note"] and "APPLICATION_LEVEL_LIMIT_EXCEEDED" in app["owner_note"]
    assert app["evidence"]["throttle_code"]["code"] == 900803
    assert {p["api"] for p in app["evidence"]["subscriptions"]} == {"Orders", "Stock"}
    # 900804: the subscription tier is the limit — a subscription policy, even though its
    # busiest minutes fit Silver (without the code vigie would say the limit is elsewhere)
    sub = one(suggestions, application_id="app-804")
    assert sub["action"] == "subscription_policy", sub
    valid(spec, sub, "SubscriptionThrottlePolicy")
    assert "900804 SUBSCRIPTION_LIMIT_EXCEEDED" in sub["owner_note"]
    # 900807: burst control
    burst = one(suggestions, application_id="app-807")
    assert burst["action"] == "subscription_policy"
    body = valid(spec, burst, "SubscriptionThrottlePolicy")
    assert body["rateLimitTimeUnit"] == "min" and body["rateLimitCount"] >= 40
    assert body["defaultLimit"]["requestCount"]["requestCount"] == 2000  # Silver kept
    assert "900807" in burst["owner_note"] and "SUBSCRIPTION_BURST" in burst["owner_note"]
    # 900802: the resource's advanced policy, sized from the resource's busiest minute with
    # every consumer (40 + 60 a minute), not the throttled consumer's alone
    res = one(suggestions, api="Catalog", action="advanced_policy")
    body = valid(spec, res, "AdvancedThrottlePolicy")
    assert res["evidence"]["resource"] == {"method": "GET", "resource": "/items/{id}"}
    assert res["evidence"]["sizing"]["per_minute"] >= 100, res["evidence"]
    assert body["defaultLimit"]["requestCount"]["requestCount"] >= 100
    assert "900802 RESOURCE_LIMIT_EXCEEDED" in res["owner_note"]
    # 900800: the API's advanced policy
    api = one(suggestions, api="Maps", action="advanced_policy")
    valid(spec, api, "AdvancedThrottlePolicy")
    assert "900800 API_LIMIT_EXCEEDED" in api["owner_note"]
    assert "API-level" in api["owner_note"]
    # 900806: the custom policy named, no tier change, no payload vigie cannot know
    custom = one(suggestions, application_id="app-806")
    assert custom["action"] == "contact_owner" and custom["wso2"] is None
    assert custom["evidence"]["wso2_policy_type"] == "CustomRule"
    assert "900806 CUSTOM_POLICY_LIMIT_EXCEEDED" in custom["owner_note"]
    assert custom["evidence"]["admin_path"] == "/api/am/admin/v4/throttling/policies/custom"
    # no code: the advice by tier, as before
    old = one(suggestions, application_id="app-old")
    assert old["action"] == "contact_owner" and "throttle_code" not in old["evidence"]


def test_the_advice_is_sized_above_what_was_refused(suggestions: list[dict[str, Any]]) -> None:
    """Every payload's limit is above the traffic its consumer sent, refused included."""
    for s in suggestions:
        if not s["wso2"] or s["class"] != "throttle_hitter":
            continue
        limit = s["wso2"]["payload"]["defaultLimit"]["requestCount"]["requestCount"]
        assert limit >= 40, s


def test_the_report_of_a_running_sidecar_lists_its_suggestions(
    served: SidecarProcess, suggestions: list[dict[str, Any]]
) -> None:
    """``vigie report --admin``: the rollups and the suggestions come from the sidecar."""
    day = time.strftime("%Y-%m-%d", time.gmtime(START / 1e6))
    end = time.strftime("%Y-%m-%d", time.gmtime(START / 1e6 + 2 * 86_400))
    res = CliRunner().invoke(
        main,
        ["report", "--from", day, "--to", end, "--format", "json", "--admin", served.admin,
         "--state-dir", str(served.state_dir)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    proposed = [s for s in doc["suggestions"] if s["state"] == "proposed"]
    assert {s["id"] for s in proposed} == {s["id"] for s in suggestions}
    assert all(s["decision"] == "awaiting review" for s in proposed)
    # those proposed before the store had the codes, withdrawn since, are shown as such
    assert all(s["decision"] == "withdrawn" for s in doc["suggestions"] if s not in proposed)
    # the owners the events named, through the suggestions (no inventory given)
    owners = {o["owner"]: o for o in doc["owners"]}
    assert owners["team-a"]["suggestions"] == len(
        [s for s in doc["suggestions"] if s.get("application_id")]
    )
