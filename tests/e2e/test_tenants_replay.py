"""Two tenants with an API of the same name and version stay apart through `vigie replay` of
WSO2 analytics lines: in the subscriptions, the APIs and the suggestions it prints, and in the
store it writes, as `vigie report` and `vigie autopsy` read it with and without --tenant.
The expected figures are the naive counts of the lines written (``tests.support.tenants``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.tenants import ACME, API, DAYS, VERSION, Expected, write_two_tenants
from tests.support.wso2log import SUPER, at
from vigie.cli.main import main


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Expected, Path]:
    tmp = tmp_path_factory.mktemp("tenants")
    exp = write_two_tenants(tmp / "apim_metrics.log")
    store = tmp / "store"
    doc = _cli("replay", str(tmp / "apim_metrics.log"), "--json", "--store", str(store))
    return doc, exp, store


def test_subscriptions_and_apis_of_two_tenants_stay_apart(
    replayed: tuple[dict[str, Any], Expected, Path],
) -> None:
    doc, exp, _ = replayed
    assert doc["events"] == sum(exp.requests.values()) and doc["rejected"] == 0
    subs = {(s["tenant"], s["application"]): s for s in doc["subscriptions"]}
    assert {k: s["requests"] for k, s in subs.items()} == dict(exp.requests)
    assert all((s["api"], s["api_version"]) == (API, VERSION) for s in subs.values())
    # Shop and Acme-App called once, on day 0: dormant; Kiosk calls every day
    assert "dormant" in subs[(SUPER, "Shop")]["classes"]
    assert "dormant" in subs[(ACME, "Acme-App")]["classes"]
    assert "dormant" not in subs[(SUPER, "Kiosk")]["classes"]
    assert subs[(ACME, "Acme-App")]["throttled"] == exp.throttled[ACME]
    assert subs[(SUPER, "Shop")]["throttled"] == 0
    apis = {a["tenant"]: a for a in doc["apis"]}
    assert set(apis) == {SUPER, ACME}
    assert {t: a["requests"] for t, a in apis.items()} == exp.per_tenant()
    # the acme.com Orders saw nothing for 40 days: retired; the super tenant's is in use
    assert "retired" in apis[ACME]["classes"] and "retired" not in apis[SUPER]["classes"]
    assert apis[ACME]["context"] == f"/t/{ACME}/orders/{VERSION}"
    assert apis[ACME]["api_id"] and apis[SUPER]["api_id"]
    assert apis[ACME]["api_id"] != apis[SUPER]["api_id"]


def test_suggestions_name_their_tenant_and_stay_apart(
    replayed: tuple[dict[str, Any], Expected, Path],
) -> None:
    doc, exp, _ = replayed
    sug = doc["suggestions"]
    dormant = {
        (s["tenant"], s["application_id"]): s
        for s in sug
        if s["class"] == "dormant" and s["concerns"] == "subscription"
    }
    assert set(dormant) == {(SUPER, exp.apps["Shop"].id), (ACME, exp.apps["Acme-App"].id)}
    retired = [s for s in sug if s["class"] == "retired"]
    assert [(s["tenant"], s["api"], s["api_version"]) for s in retired] == [(ACME, API, VERSION)]
    assert len({s["id"] for s in sug}) == len(sug)


def test_the_store_keeps_the_tenant_for_report_and_autopsy(
    replayed: tuple[dict[str, Any], Expected, Path],
) -> None:
    _, exp, store = replayed
    span = ("--from", at().isoformat(), "--to", at(days=DAYS + 1).isoformat())
    both = _cli("report", *span, "--store", str(store), "--format", "json")
    assert {a["tenant"]: a["requests"] for a in both["apis"]} == exp.per_tenant()
    assert both["total"]["requests"] == sum(exp.requests.values())
    for tenant in (SUPER, ACME):
        one = _cli("report", *span, "--store", str(store), "--format", "json", "--tenant", tenant)
        assert [(a["tenant"], a["api"], a["requests"]) for a in one["apis"]] == [
            (tenant, API, exp.per_tenant()[tenant])
        ]
        assert one["total"]["requests"] == exp.per_tenant()[tenant]
        assert one["total"]["throttled"] == exp.throttled[tenant]
        assert one["filters"] == {"tenant": tenant}
    day0 = ("--from", at().isoformat(), "--to", at(hours=4).isoformat())
    acme = _cli("autopsy", *day0, "--store", str(store), "--format", "json", "--tenant", ACME)
    assert acme["total"]["requests"] == exp.per_tenant()[ACME]
    assert {c["application_id"] for c in acme["consumers"]} == {exp.apps["Acme-App"].id}
    assert {r["tenant"] for r in acme["resources"]} == {ACME}
    sup = _cli("autopsy", *day0, "--store", str(store), "--format", "json", "--tenant", SUPER)
    assert {c["application_id"] for c in sup["consumers"]} == {
        exp.apps["Shop"].id,
        exp.apps["Kiosk"].id,
    }
