"""Day one with dates: ``vigie inventory fetch`` from the spec-checking fake WSO2 (the APIs'
``createdTime`` as the Publisher lists it), the operator's last-use dates added to the file, then
a real ``vigie serve --inventory`` with the README's auto-approve example and an hour of traffic
at wall-clock time. What the dates prove old is dormant / retired (proposed, pushed in SHADOW at
most, never ENFORCE without evidence); what they prove young is unknown; what they say nothing
of stays unknown, as without dates."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.adversarial.common import admin
from tests.conftest import CONFORMANCE, VIGIE, SidecarProcess, start_sidecar
from tests.support.fake_apim import FakeApim, generate_platform
from tests.support.policy_sidecar import cli_json
from tests.support.policy_traffic import DAY, MINUTE, steady
from tests.support.wso2_spec import AdminSpec, Spec
from vigie.sources.inventory import format_time
from vigie.sources.probe import GatewayProbe
from vigie.v1 import admin_pb2 as apb

pytestmark = pytest.mark.slow

NOW = int(time.time() * 1e6)


def _ms(us: int) -> str:
    return str(us // 1000)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SidecarProcess, Any]]:
    if not CONFORMANCE.is_dir():
        pytest.skip("../shared/conformance is not here (outside the vigie workspace)")
    root = tmp_path_factory.mktemp("dates")
    specs = [
        Spec(CONFORMANCE / "publisher-v4.yaml"),
        Spec(CONFORMANCE / "devportal-v3.yaml"),
        AdminSpec(CONFORMANCE / "admin-v4.yaml"),
    ]
    platform = generate_platform(apis=15, subscriptions=18, apps=6)
    # as WSO2 4.x lists them: epoch milliseconds as a string; Api001 is two days old,
    # Api002's date is not a time (left unknown, counted)
    created = {a.id: _ms(NOW - 400 * DAY) for a in platform.apis}
    created[platform.apis[1].id] = _ms(NOW - 2 * DAY)
    created[platform.apis[2].id] = "last spring"
    fake = FakeApim(specs, platform, created=created).start()
    secret = root / "wso2.secret"
    secret.write_text(fake.client_secret)
    inv_path = root / "inventory.json"
    res = subprocess.run(
        [*VIGIE, "inventory", "fetch", "--wso2", fake.url, "--client-id", fake.client_id,
         "--client-secret-file", str(secret), "--output", str(inv_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    fake.stop()
    assert res.returncode == 0, res.stderr
    assert "1 APIs with a createdTime that is no plausible time" in " ".join(res.stderr.split())
    assert fake.violations == []
    doc = json.loads(inv_path.read_text())
    # the operator adds what WSO2's REST APIs do not say: when each subscription was last used
    # (here: two of app-000's, and every subscription to Api005 — retired by its own date)
    app0 = platform.apps[0].id
    subs0 = [s for s in doc["subscriptions"] if s["application_id"] == app0]
    subs0[0]["last_used"] = format_time(NOW - 40 * DAY)
    subs0[1] |= {"created": format_time(NOW - 50 * DAY), "last_used": "never"}
    for a in doc["apis"]:
        if a["name"] == "Api005":
            a["last_used"] = format_time(NOW - 45 * DAY)
    inv_path.write_text(json.dumps(doc))
    env = {"VIGIE_AUTO_APPROVE": "retry_storm,dormant,retired",
           "VIGIE_AUTO_APPROVE_SHADOW_SECONDS": "2",
           "VIGIE_POLICY_REFRESH_SECONDS": "1"}  # fmt: skip
    sp = start_sidecar(root / "state", "--inventory", str(inv_path), env=env)
    try:
        with GatewayProbe(sp.telemetry, "gw-dates") as gw:
            # an hour of another consumer's traffic, up to now: vigie observes from now on
            records = steady("app-other", NOW - 60 * MINUTE, 60, 2, api="Other")
            gw.send_records(records)
            assert gw.wait_for(lambda p: p.acked_events >= len(records), 60), gw.error
        yield sp, (platform, doc, subs0)
    finally:
        sp.stop()


def _audit(sp: SidecarProcess) -> list[dict[str, Any]]:
    out = subprocess.run([*VIGIE, "audit", "--state-dir", str(sp.state_dir), "--json"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def _subs(sp: SidecarProcess) -> dict[tuple[str, str], dict[str, Any]]:
    doc = cli_json(sp, "consumers")
    return {(s["application_id"], s["api"]): s for s in doc["subscriptions"]}


def test_the_fetched_inventory_carries_the_apis_creation(
    served: tuple[SidecarProcess, Any],
) -> None:
    _, (_platform, doc, _) = served
    by = {a["name"]: a for a in doc["apis"]}
    assert by["Api000"]["created"] == format_time((NOW - 400 * DAY) // 1000 * 1000)
    assert by["Api001"]["created"] == format_time((NOW - 2 * DAY) // 1000 * 1000)
    assert "created" not in by["Api002"]  # "last spring" is no time
    assert "as_of" in doc


def test_what_the_dates_prove_old_is_dormant(served: tuple[SidecarProcess, Any]) -> None:
    sp, (_platform, _, subs0) = served
    subs = _subs(sp)
    old = subs[(subs0[0]["application_id"], subs0[0]["api"])]
    assert old["classes"] == ["dormant"]
    ev = old["evidence"]["dormant"]
    assert ev["source"] == "inventory" and ev["days_without_requests"] >= 40
    never = subs[(subs0[1]["application_id"], subs0[1]["api"])]
    if subs0[1]["api"] == "Api001":  # its API is two days old: it cannot be older
        assert never["classes"] == ["unknown"]
    else:
        assert never["classes"] == ["dormant"]
        assert "never_used_since_created" in never["evidence"]["dormant"]


def test_what_the_dates_prove_young_or_say_nothing_of_is_unknown(
    served: tuple[SidecarProcess, Any],
) -> None:
    sp, (_platform, _doc, subs0) = served
    subs = _subs(sp)
    dated = {(s["application_id"], s["api"]) for s in subs0[:2]}
    for key, s in subs.items():
        if key[0] == "app-other":
            assert s["classes"] == ["normal"]
            continue
        if key in dated:
            continue
        assert s["classes"] == ["unknown"], (key, s)
        reason = s["evidence"]["unknown"]["reason"]
        if key[1] == "Api001":
            assert "too young" in reason, s
        else:
            assert reason.startswith("vigie has not observed"), s
    stub, md = admin(sp)
    apis = {a.api: a for a in stub.ListApis(apb.ListApisRequest(), metadata=md).apis}
    assert list(apis["Api005"].classes) == ["retired"]
    assert list(apis["Api001"].classes) == ["unknown"]
    assert list(apis["Api000"].classes) == ["unknown"]


def test_dormant_by_date_is_proposed_but_never_enforced_without_evidence(
    served: tuple[SidecarProcess, Any],
) -> None:
    sp, (_, _, subs0) = served
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = cli_json(sp, "suggestions", "list")
        revocations = [s for s in doc["suggestions"] if s["class"] in ("dormant", "retired")]
        judged = [s for s in revocations if s["state"] == "pushed"]
        kept = [e for e in _audit(sp) if e.get("action") == "kept in shadow"]
        if judged and kept:
            break
        time.sleep(0.5)
    assert revocations, doc
    targets = {(s.get("application_id", ""), s.get("api", "")) for s in revocations}
    assert (subs0[0]["application_id"], subs0[0]["api"]) in targets
    # no unknown subscription is proposed for
    unknown = {k for k, s in _subs(sp).items() if s["classes"] == ["unknown"]}
    assert not (targets & unknown)
    # pushed in shadow by vigie-auto, kept there: no hit report is evidence
    st = cli_json(sp, "status")
    assert st["directives"], st
    assert all(d.get("mode") == "DIRECTIVE_MODE_SHADOW" for d in st["directives"]), st["directives"]
    assert kept and all(e["actor"] == "vigie-auto" for e in kept)
    assert any("no evidence to enforce on" in e.get("reason", "") for e in kept)
    # `vigie audit` shows the figures the decision was made on, not only --json
    text = subprocess.run([*VIGIE, "audit", "--state-dir", str(sp.state_dir)], capture_output=True,
                          text=True, timeout=120, env=os.environ | {"COLUMNS": "400"})  # fmt: skip
    assert "pushed -> pushed (shadow_hits=0, matched=0)" in text.stdout, text.stdout
