"""Every WSO2 payload vigie produces validates against WSO2's own Admin REST API v4 spec."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import CONFORMANCE
from tests.support.policy_traffic import END, rich_state
from tests.support.wso2_spec import AdminSpec
from vigie.policy import wso2
from vigie.policy.suggest import suggest


@pytest.fixture(scope="module")
def spec(conformance_dir: Path) -> AdminSpec:
    return AdminSpec(conformance_dir / "admin-v4.yaml")


@pytest.fixture(scope="module")
def conformance_dir() -> Path:
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance is not here (outside the vigie workspace)")
    return CONFORMANCE


def all_payloads() -> list[wso2.AdminRequest]:
    reqs = [s.wso2 for s in suggest(rich_state(), END) if s.wso2 is not None]
    reqs += [
        wso2.subscription_policy("Vigie_1PerMin", 1, "smallest"),
        wso2.subscription_policy(wso2.policy_name("x" * 80), 10**9, "d" * 5000),
        wso2.application_policy("Vigie_App_150000PerMin", 150_000, ""),
        wso2.advanced_policy(wso2.policy_name("Vigie", "Très-Long API/name", "v1.0.0"), 50, ""),
        wso2.deny_api("/pizzashack/1.0.0"),
        wso2.deny_application("admin", "DefaultApplication"),
    ]
    return reqs


PAYLOADS = all_payloads()


def test_every_schema_is_produced() -> None:
    assert {r.schema for r in PAYLOADS} == {
        "ApplicationThrottlePolicy",
        "SubscriptionThrottlePolicy",
        "AdvancedThrottlePolicy",
        "BlockingCondition",
    }


@pytest.mark.parametrize("req", PAYLOADS, ids=lambda r: f"{r.schema}-{r.policy_name or 'deny'}")
def test_payload_validates_against_the_spec(spec: AdminSpec, req: wso2.AdminRequest) -> None:
    assert spec.errors(req.schema, req.payload) == []
    wso2.check_discriminator(req)
    # the request goes where the spec takes that schema
    found = spec.operation(req.method, wso2.ADMIN_BASE + req.path)
    assert found is not None, req.path
    assert spec.body_schema(found[1]) == req.schema
    if req.schema in wso2.POLICY_SCHEMAS:
        assert re.fullmatch(r"[A-Za-z0-9_]{1,60}", req.payload["policyName"])


@pytest.mark.parametrize("req", [r for r in PAYLOADS if r.schema in wso2.APICTL_SUBTYPES],
                         ids=lambda r: r.policy_name)  # fmt: skip
def test_apictl_files_wrap_a_valid_policy(spec: AdminSpec, req: wso2.AdminRequest) -> None:
    doc = wso2.apictl_file(req, "v4.2.0")
    assert spec.errors("ExportThrottlePolicy", doc) == []
    assert doc["type"] == "throttling policy"
    assert (
        doc["subtype"]
        == {
            "SubscriptionThrottlePolicy": "subscription policy",
            "ApplicationThrottlePolicy": "application policy",
            "AdvancedThrottlePolicy": "advanced policy",
        }[req.schema]
    )
    assert spec.errors(req.schema, doc["data"]) == []
    assert wso2.apictl_file_name(req).endswith(".json")


def test_deny_policies_have_no_apictl_form() -> None:
    with pytest.raises(wso2.PayloadError, match="no apictl form"):
        wso2.apictl_file(wso2.deny_api("/a/1"))


def test_the_validator_catches_what_it_must(spec: AdminSpec) -> None:
    """The checks can fail: a wrong discriminator, a bad conditionType, a missing limit."""
    good = wso2.subscription_policy("Vigie_10PerMin", 10, "").payload
    assert spec.errors("SubscriptionThrottlePolicy", good | {"type": "ApplicationThrottlePolicy"})
    assert spec.errors("SubscriptionThrottlePolicy", {k: v for k, v in good.items()
                                                      if k != "defaultLimit"})  # fmt: skip
    bad_limit = good | {
        "defaultLimit": {
            "type": "REQUESTCOUNTLIMIT",
            "requestCount": {"timeUnit": "min", "requestCount": 1},
        }
    }
    assert any("unitTime" in e for e in spec.errors("SubscriptionThrottlePolicy", bad_limit))
    deny = wso2.deny_api("/a/1").payload
    assert spec.errors("BlockingCondition", deny | {"conditionType": "SUBSCRIPTION"})
    # the string deviation is allowed for API/APPLICATION/USER only, not for IP
    assert spec.errors("BlockingCondition", {"conditionType": "IP", "conditionValue": "1.2.3.4"})
    assert spec.errors("BlockingCondition", {"conditionType": "API", "conditionValue": 3})


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(wso2.PayloadError, match="must start with '/'"):
        wso2.deny_api("pizzashack/1.0.0")
    with pytest.raises(wso2.PayloadError, match="owner and name"):
        wso2.deny_application("", "App")
    with pytest.raises(wso2.PayloadError, match="must be positive"):
        wso2.request_count_limit(0)
    with pytest.raises(wso2.PayloadError, match=r"only \[A-Za-z0-9_\]"):
        wso2.subscription_policy("bad name", 5, "")
