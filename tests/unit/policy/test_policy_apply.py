"""``vigie policies apply`` against a local server that checks every request against WSO2's
Admin REST API v4 spec and issues OAuth2 tokens (client credentials)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.conftest import CONFORMANCE, SidecarProcess
from tests.support.fake_wso2 import FakeWso2
from tests.support.policy_sidecar import cli, cli_json, serve
from tests.support.policy_traffic import END, HOUR, MINUTE, growing, throttle_hitter
from tests.support.wso2_spec import BASE, AdminSpec
from vigie.cli.main import main
from vigie.policy import apply as ap
from vigie.policy import wso2 as payloads
from vigie.sources.probe import GatewayProbe

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-Zq8-never-shown"


@pytest.fixture(scope="module")
def spec() -> AdminSpec:
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance is not here (outside the vigie workspace)")
    return AdminSpec(CONFORMANCE / "admin-v4.yaml")


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, spec: AdminSpec) -> Iterator[SidecarProcess]:
    sp = serve(tmp_path_factory.mktemp("apply") / "state")
    try:
        with GatewayProbe(sp.telemetry, "gw-apply") as gw:
            records = sorted(
                growing("app-grow", END)
                + throttle_hitter("app-gold", END - HOUR, per_minute=2500, minutes=12)
                + throttle_hitter("app-gold", END - HOUR, api="Stock"),
                key=lambda r: int(r["event_time_us"]),
            )
            for i in range(0, len(records), 10_000):
                gw.send_records(records[i : i + 10_000])
            assert gw.wait_for(lambda p: p.acked_events >= len(records), 60), gw.error
        # proposed only: a refresh in the middle of the stream may have proposed (and since
        # withdrawn) suggestions of a partial history
        doc = cli_json(sp, "suggestions", "list", "--state", "proposed")
        for s in doc["suggestions"]:
            if s["wso2"] is not None:
                cli(sp, "suggestions", "approve", s["id"], "--reason", "apply test")
        yield sp
    finally:
        sp.stop()


@pytest.fixture
def wso2(spec: AdminSpec) -> Iterator[FakeWso2]:
    fake = FakeWso2(spec, "vigie-ci", SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    p = tmp_path / "client.secret"
    p.write_text(SECRET + "\n")
    p.chmod(0o600)
    return p


def apply(sp: SidecarProcess, fake: FakeWso2, *args: str, env: dict[str, str] | None = None,
          code: int = 0) -> Result:  # fmt: skip
    res = CliRunner().invoke(
        main,
        ["policies", "apply", "--admin-url", fake.url + BASE, "--client-id", "vigie-ci",
         *args, "--admin", sp.admin, "--state-dir", str(sp.state_dir)],
        env=env or {},
    )  # fmt: skip
    assert res.exit_code == code, (res.output, res.exception)
    assert SECRET not in res.output  # never printed
    return res


def test_apply_sends_spec_valid_requests_with_a_client_credentials_token(
    sidecar: SidecarProcess, wso2: FakeWso2, secret_file: Path
) -> None:
    res = apply(sidecar, wso2, "--client-secret-file", str(secret_file), "--json")
    doc = json.loads(res.stdout)
    assert wso2.violations == []
    assert doc["failed"] == 0
    token_calls = [r for r in wso2.requests if r.path == "/oauth2/token"]
    assert len(token_calls) == 1  # one token for every request
    admin = [r for r in wso2.requests if r.path != "/oauth2/token"]
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in admin)
    schemas = {r["schema"] for r in doc["results"]}
    assert schemas == {
        "SubscriptionThrottlePolicy",
        "ApplicationThrottlePolicy",
        "AdvancedThrottlePolicy",
        "BlockingCondition",
    }
    kinds = {(r.method, r.path) for r in admin}
    assert ("POST", BASE + "/throttling/policies/subscription") in kinds
    assert ("POST", BASE + "/throttling/deny-policies") in kinds
    assert {"API:/legacy/v0", "APPLICATION:team-i:Idle"} <= set(wso2.denies)
    names = [p["policyName"] for p in wso2.policies[
        "/throttling/policies/subscription"].values()]  # fmt: skip
    assert "Vigie_4000PerMin" in names
    # recorded in the audit trail of each suggestion, without the secret
    listed = cli_json(sidecar, "suggestions", "list", "--no-refresh")
    applied = [s for s in listed["suggestions"] if s["wso2"] and s["state"] != "withdrawn"]
    for s in applied:
        trail = cli_json(sidecar, "suggestions", "show", s["id"])["audit"]
        assert trail[-1]["action"] == "applied", trail
        assert wso2.url in trail[-1]["details"]["target"]
        assert SECRET not in json.dumps(trail)
    assert SECRET not in sidecar.log()


def test_existing_policies_conflict_unless_updated(
    sidecar: SidecarProcess, wso2: FakeWso2, secret_file: Path
) -> None:
    apply(sidecar, wso2, "--client-secret-file", str(secret_file))
    again = apply(sidecar, wso2, "--client-secret-file", str(secret_file), "--json", code=4)
    doc = json.loads(again.stdout)
    statuses = {(r["schema"], r["status"], r["ok"]) for r in doc["results"]}
    assert ("SubscriptionThrottlePolicy", 409, False) in statuses
    assert ("BlockingCondition", 409, True) in statuses  # a deny policy that exists is fine
    assert "request(s) failed" in again.output
    upd = apply(sidecar, wso2, "--client-secret-file", str(secret_file), "--update-existing",
                "--json")  # fmt: skip
    results = json.loads(upd.stdout)["results"]
    puts = [r for r in results if r["method"] == "PUT"]
    assert puts and all(r["status"] == 200 for r in puts)
    assert wso2.violations == []


def test_dry_run_shows_the_requests_and_sends_nothing(
    sidecar: SidecarProcess, wso2: FakeWso2
) -> None:
    res = apply(sidecar, wso2, "--dry-run", env={"VIGIE_WSO2_CLIENT_SECRET": SECRET})
    assert wso2.requests == []
    out = res.stdout
    assert f"POST {wso2.url}/oauth2/token" in out
    assert f"POST {wso2.url}{BASE}/throttling/policies/subscription" in out
    assert "Authorization: Bearer <access token>" in out
    assert "secret from env VIGIE_WSO2_CLIENT_SECRET" in out
    assert '"conditionValue": "/legacy/v0"' in out
    doc = json.loads(apply(sidecar, wso2, "--dry-run", "--json",
                           env={"VIGIE_WSO2_CLIENT_SECRET": SECRET}).stdout)  # fmt: skip
    assert doc["dry_run"] is True and len(doc["requests"]) >= 3


def test_credentials_problems_are_clear_and_secret_free(
    sidecar: SidecarProcess, wso2: FakeWso2, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("wrong-secret-value\n")
    res = apply(sidecar, wso2, "--client-secret-file", str(wrong), code=4)
    assert "answered 401" in res.output and "vigie-ci" in res.output
    assert "wrong-secret-value" not in res.output
    missing = apply(sidecar, wso2, code=4)
    assert "no client secret: pass --client-secret-file FILE or set VIGIE_WSO2_CLIENT_SECRET" in (
        missing.output
    )
    ok = apply(sidecar, wso2, "--json", env={"VIGIE_WSO2_CLIENT_SECRET": SECRET})
    assert json.loads(ok.stdout)["results"]
    assert wso2.violations == []


def test_apply_refuses_a_bad_url(sidecar: SidecarProcess, wso2: FakeWso2) -> None:
    res = CliRunner().invoke(
        main,
        ["policies", "apply", "--admin-url", "apim:9443", "--client-id", "x", "--admin",
         sidecar.admin, "--state-dir", str(sidecar.state_dir)],
        env={"VIGIE_WSO2_CLIENT_SECRET": SECRET},
    )  # fmt: skip
    assert res.exit_code == 2 and "is not an http(s) URL" in res.output


def test_apictl_export_files(sidecar: SidecarProcess, tmp_path: Path, spec: AdminSpec) -> None:
    out = tmp_path / "apictl"
    res = cli(sidecar, "policies", "export", "--format", "apictl", "--out", str(out))
    files = sorted(p.name for p in out.iterdir())
    assert "subscription-Vigie_4000PerMin.json" in files
    for p in out.iterdir():
        doc: dict[str, Any] = json.loads(p.read_text())
        assert spec.errors("ExportThrottlePolicy", doc) == []
        schema = {"subscription policy": "SubscriptionThrottlePolicy",
                  "advanced policy": "AdvancedThrottlePolicy",
                  "application policy": "ApplicationThrottlePolicy"}[doc["subtype"]]  # fmt: skip
        assert spec.errors(schema, doc["data"]) == []
    assert "apictl import policy rate-limiting -f" in res.stdout
    assert MINUTE > 0


def test_a_policy_shared_by_several_suggestions_is_sent_once() -> None:
    gold = payloads.subscription_policy("Vigie_4000PerMin", 4000, "for app-a")
    deny = payloads.deny_api("/legacy/v0")
    batch = ap.distinct([("sg-a", gold), ("sg-d", deny), ("sg-b", gold)])
    assert [(p.suggestions, p.request) for p in batch] == [(["sg-a", "sg-b"], gold),
                                                           (["sg-d"], deny)]  # fmt: skip
    doc = ap.dry_run_json("https://apim:9443/api/am/admin/v4/", "https://apim:9443/t", batch)
    assert doc["requests"][0]["url"] == (
        "https://apim:9443/api/am/admin/v4/throttling/policies/subscription"
    )
    assert doc["requests"][0]["suggestions"] == ["sg-a", "sg-b"]


def test_the_token_endpoint_is_on_the_admin_host() -> None:
    url = ap.default_token_url("https://apim.example:9443/api/am/admin/v4")
    assert url == "https://apim.example:9443/oauth2/token"
    with pytest.raises(ValueError, match="is not an http"):
        ap.default_token_url("apim:9443")


def test_every_outcome_is_recorded_for_each_of_its_suggestions() -> None:
    gold = payloads.subscription_policy("Vigie_4000PerMin", 4000, "for app-a")
    deny = payloads.deny_api("/legacy/v0")

    class Api(ap.AdminApi):  # answers without a network: deny policies pass, others conflict
        def send(self, r: payloads.AdminRequest, update_existing: bool = False) -> ap.Outcome:
            ok = r.schema == payloads.BLOCKING_SCHEMA
            return ap.Outcome(r, r.method, "https://x" + r.path, 201 if ok else 409, "m", ok)

    seen: list[tuple[str, int]] = []
    api = Api("https://x", "https://x/oauth2/token", ap.Credentials("c", "s", "test"))
    batch = ap.distinct([("sg-a", gold), ("sg-b", gold), ("sg-d", deny)])
    done = ap.apply(api, batch, False, lambda sid, o: seen.append((sid, o.status)))
    assert seen == [("sg-a", 409), ("sg-b", 409), ("sg-d", 201)]
    assert done.failed == 1 and [r["suggestions"] for r in done.results] == [["sg-a", "sg-b"],
                                                                             ["sg-d"]]  # fmt: skip
