"""Two tenants with an API of the same name and version stay apart in a real `vigie serve`: the
WSO2 lines of ``tests.support.tenants`` reach it as a gateway's stream (`vigie replay --to`,
the tenant in its own column), and every view keeps the tenants apart: `vigie consumers`,
`report` and `autopsy` (the sidecar's store) and `suggestions`, with and without --tenant, and
the export, as a real Prometheus receives it (``wso2_tenant``). The expected figures are the
naive counts of the lines written."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import VIGIE, SidecarProcess, start_sidecar
from tests.e2e.test_export_backends import (
    Backends,
    Prometheus,
    backends,
    start_prometheus,
    wait_for,
)
from tests.support.tenants import ACME, API, DAYS, VERSION, Expected, write_two_tenants
from tests.support.wso2log import SUPER, at

__all__ = ["backends"]  # the fixture, from the export's test

pytestmark = pytest.mark.slow


def _vigie(*args: str) -> Any:
    out = subprocess.run([*VIGIE, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout) if out.stdout.startswith("{") else out.stdout


@pytest.fixture(scope="module")
def served(
    backends: Backends, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SidecarProcess, Prometheus, Expected]]:
    tmp = tmp_path_factory.mktemp("tenants-serve")
    exp = write_two_tenants(tmp / "apim_metrics.log")
    prom = start_prometheus(backends.prometheus, tmp)
    sc = None
    try:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"{prom.url}/api/v1/otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "VIGIE_DATA_FLUSH_SECONDS": "0.5",
            # small batches: the sidecar observes from the first one (day 0), so that 40 days
            # of history make dormant subscriptions and a retired API
            "VIGIE_MAX_BATCH_EVENTS": "16",
            # the lines are of March 2026: keep their minutes for the autopsy
            "VIGIE_SHORT_RETENTION_DAYS": "3660",
            # the sidecar's own tenant, a resource attribute Prometheus promotes to the same
            # label: each series' own tenant must win
            "VIGIE_OTEL_TENANT": SUPER,
        }
        sc = start_sidecar(tmp / "state", env=env)
        _vigie("replay", str(tmp / "apim_metrics.log"), "--to", sc.telemetry, "--json")
        yield sc, prom, exp
    finally:
        if sc is not None:
            sc.stop()
        prom.process.stop()


def _admin(sc: SidecarProcess) -> tuple[str, ...]:
    return ("--admin", sc.admin, "--state-dir", str(sc.state_dir))


def _written(sc: SidecarProcess, total: int) -> bool:
    st = _vigie("status", *_admin(sc), "--json")
    data = st.get("data", {})
    return bool(
        int(st["events_applied"]) == total
        and int(data.get("counters", {}).get("minute_rows_written", 0))
        and int(data.get("open_rows", 0)) == 0
    )


def test_consumers_keep_two_tenants_apart(
    served: tuple[SidecarProcess, Prometheus, Expected],
) -> None:
    sc, _, exp = served
    total = sum(exp.requests.values())
    wait_for("every event applied and written", lambda: _written(sc, total), 90)
    doc = _vigie("consumers", *_admin(sc), "--json")
    got = {(s["tenant"], s["application"]): s["requests"] for s in doc["subscriptions"]}
    assert got == dict(exp.requests)
    assert {(s["api"], s["api_version"]) for s in doc["subscriptions"]} == {(API, VERSION)}
    for tenant in (SUPER, ACME):
        one = _vigie("consumers", *_admin(sc), "--json", "--tenant", tenant)
        assert {(s["tenant"], s["application"]): s["requests"] for s in one["subscriptions"]} == {
            k: n for k, n in exp.requests.items() if k[0] == tenant
        }
    table = _vigie("consumers", *_admin(sc), "--tenant", ACME)
    assert f"@{ACME}" in table and "Acme-App" in table and "Kiosk" not in table


def test_the_export_carries_the_tenant(
    served: tuple[SidecarProcess, Prometheus, Expected],
) -> None:
    _, prom, exp = served
    total = sum(exp.requests.values())

    def counted() -> float | None:
        v = prom.value("sum(wso2_api_requests_total)")
        return v if v == total else None

    wait_for(f"sum(wso2_api_requests_total) == {total}", counted, 90, prom.process)
    by_tenant = {
        (r["metric"]["wso2_tenant"], r["metric"]["wso2_api_name"]): float(r["value"][1])
        for r in prom.query("sum by (wso2_tenant, wso2_api_name) (wso2_api_requests_total)")
    }
    assert by_tenant == {(t, API): float(n) for t, n in exp.per_tenant().items()}
    throttled = {
        r["metric"]["wso2_tenant"]: float(r["value"][1])
        for r in prom.query("sum by (wso2_tenant) (wso2_api_throttled_total)")
    }
    assert throttled == {ACME: float(exp.throttled[ACME])}
    rows = prom.query(
        "sum by (wso2_tenant, wso2_application_name) (vigie_subscription_requests_total)"
    )
    # three subscriptions, all top-K members: "other" (its own tenant none: it sums any; its
    # label, the sidecar's) holds none
    other = [float(r["value"][1]) for r in rows if r["metric"]["wso2_application_name"] == "other"]
    assert sum(other) == 0
    subs = {
        (r["metric"]["wso2_tenant"], r["metric"]["wso2_application_name"]): float(r["value"][1])
        for r in rows
        if r["metric"]["wso2_application_name"] != "other"
    }
    assert subs == {k: float(n) for k, n in exp.requests.items()}


def test_report_and_autopsy_from_the_sidecars_store_keep_the_tenant(
    served: tuple[SidecarProcess, Prometheus, Expected],
) -> None:
    sc, _, exp = served
    total = sum(exp.requests.values())
    wait_for("every event applied and written", lambda: _written(sc, total), 90)
    span = ("--from", at().isoformat(), "--to", at(days=DAYS + 1).isoformat())
    both = _vigie("report", *span, *_admin(sc), "--format", "json")
    assert {a["tenant"]: a["requests"] for a in both["apis"]} == exp.per_tenant()
    for tenant in (SUPER, ACME):
        one = _vigie("report", *span, *_admin(sc), "--format", "json", "--tenant", tenant)
        assert [(a["tenant"], a["api"], a["requests"]) for a in one["apis"]] == [
            (tenant, API, exp.per_tenant()[tenant])
        ]
        assert one["total"]["throttled"] == exp.throttled[tenant]
    day0 = ("--from", at().isoformat(), "--to", at(hours=4).isoformat())
    acme = _vigie("autopsy", *day0, *_admin(sc), "--format", "json", "--tenant", ACME)
    assert acme["total"]["requests"] == exp.per_tenant()[ACME]
    assert {c["application_id"] for c in acme["consumers"]} == {exp.apps["Acme-App"].id}


def test_suggestions_keep_two_tenants_apart(
    served: tuple[SidecarProcess, Prometheus, Expected],
) -> None:
    sc, _, exp = served
    total = sum(exp.requests.values())
    wait_for("every event applied and written", lambda: _written(sc, total), 90)
    doc = _vigie("suggestions", "list", *_admin(sc), "--json")
    dormant = {
        (s["tenant"], s["application_id"])
        for s in doc["suggestions"]
        if s["class"] == "dormant" and s["concerns"] == "subscription"
    }
    assert dormant == {(SUPER, exp.apps["Shop"].id), (ACME, exp.apps["Acme-App"].id)}
    acme = _vigie("suggestions", "list", *_admin(sc), "--json", "--tenant", ACME, "--no-refresh")
    about_apis = [s for s in acme["suggestions"] if s["concerns"] in ("subscription", "api")]
    assert {s["tenant"] for s in about_apis} == {ACME}
    assert {(s["class"], s.get("application_id", "")) for s in about_apis} == {
        ("dormant", exp.apps["Acme-App"].id),
        ("retired", ""),
    }
