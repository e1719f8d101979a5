"""``vigie serve`` with ``inventory_source = "wso2"``: a real sidecar reads its inventory from
the spec-checking fake WSO2, refreshes it, and keeps the last good one when WSO2 fails."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CONFORMANCE, SidecarProcess, start_sidecar
from tests.support.fake_apim import FakeApi, FakeApim, FakeSub, generate_platform
from tests.support.policy_sidecar import cli_json
from tests.support.wso2_spec import AdminSpec, Spec

pytestmark = pytest.mark.slow


def wait(sp: SidecarProcess, ok: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert sp.proc.poll() is None, sp.log()
        st: dict[str, Any] = cli_json(sp, "status")
        if ok(st):
            return st
        time.sleep(0.3)
    raise AssertionError(f"{what} never happened:\n{sp.log()}")


def count(st: dict[str, Any], counter: str) -> int:
    return int(st.get("counters", {}).get(counter, 0))  # uint64: a string in JSON


def test_serve_reads_the_inventory_from_wso2_refreshes_it_and_survives_a_failure(
    tmp_path: Path,
) -> None:
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance is not here (outside the vigie workspace)")
    specs = [
        Spec(CONFORMANCE / "publisher-v4.yaml"),
        Spec(CONFORMANCE / "devportal-v3.yaml"),
        AdminSpec(CONFORMANCE / "admin-v4.yaml"),
    ]
    platform = generate_platform(apis=60, subscriptions=250, apps=40)
    fake = FakeApim(specs, platform, tenant="bank.example").start()
    secret = tmp_path / "wso2.secret"
    secret.write_text(fake.client_secret)
    secret.chmod(0o600)
    env = {
        "VIGIE_INVENTORY_SOURCE": "wso2",
        "VIGIE_INVENTORY_REFRESH_SECONDS": "1",
        "VIGIE_WSO2_URL": fake.url,
        "VIGIE_WSO2_TENANT": "bank.example",
        "VIGIE_WSO2_CLIENT_ID": fake.client_id,
        "VIGIE_WSO2_CLIENT_SECRET_FILE": str(secret),
    }
    sp = start_sidecar(tmp_path / "state", env=env)
    try:
        st = wait(sp, lambda st: count(st, "inventory_refreshed") >= 1, "a refresh")
        assert (st["apis"], st["subscriptions"]) == (60, 250)
        subs = cli_json(sp, "consumers", "--application", platform.apps[0].id)["subscriptions"]
        app = platform.apps[0]
        got = {(s["application"], s["api"], s["api_version"]) for s in subs}
        assert got == {(app.name, s.api.name, s.api.version) for s in platform.subs if s.app is app}
        # WSO2 gets a new API and a subscription to it: the next refresh brings them
        with fake.lock:
            api = FakeApi("9d1c4e1e-0000-4000-8000-000000000001", "Late", "1.0.0", "/late",
                          "PUBLISHED", ("mobile",))  # fmt: skip
            platform.apis.append(api)
            platform.subs.append(FakeSub("sub-late", platform.apps[1], api, "Gold"))
        st = wait(sp, lambda st: st["apis"] == 61 and st["subscriptions"] == 251, "the new API")
        assert fake.violations == []
        # WSO2 refuses the token from now on: refreshes fail, the last inventory stays
        with fake.lock:
            fake.tokens_valid_for = fake.rest_calls
        st = wait(sp, lambda st: count(st, "inventory_refresh_failed") >= 2, "failures")
        assert (st["apis"], st["subscriptions"]) == (61, 251)
        assert (
            "inventory refresh from WSO2 failed: GET /api/am/publisher/v4/apis?offset=0&limit=25: "
            "401 Unauthorized (Invalid Credentials" in sp.log()
        )
        assert "Traceback" not in sp.log()
        assert fake.client_secret not in sp.log()
    finally:
        sp.stop()
        fake.stop()
