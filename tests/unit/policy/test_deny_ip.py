"""The deny-policy payloads of auth_failing: valid against WSO2's admin-v4.yaml (skipped
without it), absurd addresses refused in one line."""

from __future__ import annotations

import pytest

from tests.conftest import CONFORMANCE
from tests.support.wso2_spec import AdminSpec
from vigie.policy import wso2


@pytest.mark.parametrize(
    "req",
    [
        wso2.deny_ip("203.0.113.7"),
        wso2.deny_ip("2001:db8::1"),
        wso2.deny_ip_range("198.51.100.0", "198.51.100.255"),
    ],
    ids=["ipv4", "ipv6", "range"],
)
def test_payloads_validate_against_admin_v4(req: wso2.AdminRequest) -> None:
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance is not here (outside the vigie workspace)")
    spec = AdminSpec(CONFORMANCE / "admin-v4.yaml")
    assert spec.errors(req.schema, req.payload) == []
    wso2.check_discriminator(req)
    assert spec.operation(req.method, wso2.ADMIN_BASE + req.path) is not None


def test_absurd_addresses_are_refused_in_one_line() -> None:
    for bad in ("h:5f3a9c0e12ab77d4", "", "999.1.1.1", "10.0.0.1; rm -rf /"):
        with pytest.raises(wso2.PayloadError, match="is not an IP address") as exc:
            wso2.deny_ip(bad)
        assert "\n" not in str(exc.value)
    with pytest.raises(wso2.PayloadError, match="not an ordered range"):
        wso2.deny_ip_range("10.0.0.9", "10.0.0.1")
    with pytest.raises(wso2.PayloadError, match="not an ordered range"):
        wso2.deny_ip_range("10.0.0.1", "2001:db8::1")
    assert wso2.deny_ip(" 10.0.0.1".strip()).payload["conditionValue"] == {
        "fixedIp": "10.0.0.1",
        "invert": False,
    }
