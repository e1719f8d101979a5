"""Every behaviour class of DESIGN.md, on WSO2-format logs replayed through `vigie replay`.

Each class gets a scenario that must raise it and near-misses that must not (just under a
threshold, or outside the window), so a wrong rule fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.support.wso2log import App, LogWriter, at, ts
from vigie.cli.main import main


def replay(
    tmp: Path,
    logs: dict[str, LogWriter],
    inventory: dict[str, Any] | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    args = ["replay"]
    for channel, w in logs.items():
        args.append(f"{channel}={w.write(tmp / f'{channel}.log')}")
    if inventory is not None:
        inv = tmp / "inventory.json"
        inv.write_text(json.dumps(inventory))
        args += ["--inventory", str(inv)]
    if now:
        args += ["--now", now]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert isinstance(doc, dict)
    return doc


def classes_of(doc: dict[str, Any], app: App, api: str) -> list[str]:
    for s in doc["subscriptions"]:
        if s["application_id"] == app.id and s["api"] == api:
            return list(s["classes"])
    raise AssertionError(f"no subscription {app.name} x {api}")


def sub_of(doc: dict[str, Any], app: App, api: str) -> dict[str, Any]:
    for s in doc["subscriptions"]:
        if s["application_id"] == app.id and s["api"] == api:
            return dict(s)
    raise AssertionError(f"no subscription {app.name} x {api}")


def steady(
    w: LogWriter,
    app: App,
    api: str,
    start: float,
    hours: float,
    per_hour: int,
    resource: str = "/items",
    method: str = "POST",
) -> None:
    """Plain successful traffic: distinct POSTs, no repeats, no errors."""
    n = int(hours * per_hour)
    for k in range(n):
        w.response(
            at(hours=start + k * hours / max(n, 1)), app, api, resource=resource, method=method
        )


# ---------------------------------------------------------------------------------------------


def test_retry_storm_on_backend_errors(tmp_path: Path) -> None:
    w = LogWriter()
    storm, calm = App("storm"), App("calm")
    # 3 minutes of a request every 300 ms on the same resource, each failing with 503
    for k in range(600):
        w.response(
            at(hours=9, seconds=k * 0.3),
            storm,
            "Orders",
            resource="/orders/{id}",
            status=503,
            latency_ms=30,
        )
    # calm: the same failures but retried only every 5 s (outside the 2 s retry gap)
    for k in range(60):
        w.response(
            at(hours=9, seconds=k * 5),
            calm,
            "Orders",
            resource="/orders/{id}",
            status=503,
            latency_ms=30,
        )
    doc = replay(tmp_path, {"main": w})
    assert classes_of(doc, storm, "Orders") == ["retry_storm"]
    ev = sub_of(doc, storm, "Orders")["evidence"]["retry_storm"]
    assert ev["retries"] >= 30 and ev["share"] >= 0.5
    assert "retry_storm" not in classes_of(doc, calm, "Orders")


def test_retry_storm_on_throttled_faults_without_resource(tmp_path: Path) -> None:
    w = LogWriter()
    bot = App("bot")
    for k in range(50):  # throttled faults carry no resource: same API counts
        w.fault(at(hours=8, seconds=k * 0.5), bot, "Stock", error_code=900804, status=429)
    doc = replay(tmp_path, {"main": w})
    assert "retry_storm" in classes_of(doc, bot, "Stock")


def test_retry_storm_needs_thirty_retries_and_half_the_requests(tmp_path: Path) -> None:
    w = LogWriter()
    few, enough, diluted = App("few"), App("enough"), App("diluted")
    for k in range(30):  # 29 retries (the first failure is not a retry)
        w.response(at(hours=9, seconds=k), few, "Orders", status=500)
    for k in range(31):  # 30 retries: enough
        w.response(at(hours=9, seconds=k), enough, "Orders", status=500)
    for k in range(60):  # 60 successful requests first...
        w.response(at(hours=9, seconds=k), diluted, "Orders", resource=f"/r{k}", method="POST")
    for k in range(40):  # ...then 39 retries: at most 39 % of the window's requests
        w.response(at(hours=9, seconds=60 + k), diluted, "Orders", status=500)
    doc = replay(tmp_path, {"main": w})
    assert classes_of(doc, few, "Orders") == ["normal"]
    assert classes_of(doc, enough, "Orders") == ["retry_storm"]
    assert classes_of(doc, diluted, "Orders") == ["normal"]


def test_error_prone(tmp_path: Path) -> None:
    w = LogWriter()
    loop, fine, small = App("loop"), App("fine"), App("small")
    for k in range(200):  # 30 % of 4xx in 40 minutes
        status = 404 if k % 10 < 3 else 200
        w.response(at(hours=10, seconds=k * 12), loop, "Customers", status=status, method="POST")
    for k in range(200):  # 20 %, and 429s do not count
        status = 401 if k % 10 < 2 else (429 if k % 10 == 2 else 200)
        w.response(at(hours=10, seconds=k * 12), fine, "Customers", status=status, method="POST")
    for k in range(99):  # all 4xx but fewer than 100 requests in the hour
        w.response(at(hours=10, seconds=k * 30), small, "Customers", status=400, method="POST")
    doc = replay(tmp_path, {"main": w})
    assert classes_of(doc, loop, "Customers") == ["error_prone"]
    ev = sub_of(doc, loop, "Customers")["evidence"]["error_prone"]
    assert ev["requests"] >= 100 and 0.25 <= ev["share"] <= 0.35
    assert classes_of(doc, fine, "Customers") == ["normal"]
    assert classes_of(doc, small, "Customers") == ["normal"]


def test_redundant_reads(tmp_path: Path) -> None:
    w = LogWriter()
    poller, spaced, writer = App("poller"), App("spaced"), App("writer")
    for k in range(300):  # the same GET every 2 s
        w.response(at(hours=11, seconds=k * 2), poller, "Catalog", resource="/menu")
    for k in range(200):  # the same GET every 15 s: never within 10 s
        w.response(at(hours=11, seconds=k * 15), spaced, "Catalog", resource="/menu")
    for k in range(300):  # identical POSTs are not reads
        w.response(at(hours=11, seconds=k * 2), writer, "Catalog", resource="/menu", method="POST")
    doc = replay(tmp_path, {"main": w})
    assert classes_of(doc, poller, "Catalog") == ["redundant"]
    ev = sub_of(doc, poller, "Catalog")["evidence"]["redundant"]
    assert ev["share"] > 0.9
    assert classes_of(doc, spaced, "Catalog") == ["normal"]
    assert classes_of(doc, writer, "Catalog") == ["normal"]


def test_redundant_needs_a_successful_identical_read(tmp_path: Path) -> None:
    w = LogWriter()
    failing, varied = App("failing"), App("varied")
    for k in range(200):  # the same GET every 2 s, but failing: not successful reads
        w.response(at(hours=11, seconds=k * 2), failing, "Catalog", resource="/menu", status=500)
    for k in range(200):  # GET every 2 s on different resources
        w.response(at(hours=11, seconds=k * 2), varied, "Catalog", resource=f"/menu/{k}")
    doc = replay(tmp_path, {"main": w})
    assert "redundant" not in classes_of(doc, failing, "Catalog")
    assert classes_of(doc, varied, "Catalog") == ["normal"]


def test_throttle_hitter(tmp_path: Path) -> None:
    w = LogWriter()
    hitter, almost = App("hitter"), App("almost")
    for k in range(12):  # 12 throttled in 50 minutes, far apart (no retry storm)
        w.fault(at(hours=7, minutes=k * 4.5), hitter, "Pricing", error_code=900803)
    for k in range(9):  # 9 in an hour, then 9 the hour after: never 10 in one hour
        w.fault(at(hours=7, minutes=k * 6), almost, "Pricing", error_code=900804)
        w.fault(at(hours=8, minutes=5 + k * 6), almost, "Pricing", error_code=900804)
    for app in (hitter, almost):
        steady(w, app, "Pricing", start=6, hours=4, per_hour=20)
    doc = replay(tmp_path, {"main": w})
    assert classes_of(doc, hitter, "Pricing") == ["throttle_hitter"]
    assert sub_of(doc, hitter, "Pricing")["evidence"]["throttle_hitter"]["throttled"] >= 10
    assert classes_of(doc, almost, "Pricing") == ["normal"]


def test_wrong_channel_against_the_registered_channel(tmp_path: Path) -> None:
    sale, main_ = LogWriter(seed=1), LogWriter(seed=2)
    wrong, few = App("wrong"), App("few")
    for app in (wrong, few):
        steady(sale, app, "Orders", start=8, hours=2, per_hour=150)
    for k in range(15):
        main_.response(at(hours=8, minutes=k * 5), wrong, "Orders", method="POST")
    for k in range(9):  # fewer than 10 requests through the other channel
        main_.response(at(hours=8, minutes=k * 5), few, "Orders", method="POST")
    inventory = {
        "applications": [
            {"id": wrong.id, "name": wrong.name, "channel": "sale"},
            {"id": few.id, "name": few.name, "channel": "sale"},
        ]
    }
    doc = replay(tmp_path, {"sale": sale, "main": main_}, inventory)
    assert classes_of(doc, wrong, "Orders") == ["wrong_channel"]
    ev = sub_of(doc, wrong, "Orders")["evidence"]["wrong_channel"]
    assert ev["channel"] == "main" and ev["expected_channel"] == "sale"
    assert ev["requests"] == 15
    assert classes_of(doc, few, "Orders") == ["normal"]


def test_wrong_channel_without_registration(tmp_path: Path) -> None:
    main_, sale = LogWriter(seed=1), LogWriter(seed=2)
    stray, split = App("stray"), App("split")
    steady(main_, stray, "Stock", start=8, hours=2, per_hour=490)  # 980 through main
    for k in range(20):  # 2 % through sale
        sale.response(at(hours=8, minutes=k * 6), stray, "Stock", method="POST")
    steady(main_, split, "Stock", start=8, hours=2, per_hour=450)  # 900 through main
    for k in range(100):  # 10 %: no dominant channel at 95 %
        sale.response(at(hours=8, minutes=k * 1.2), split, "Stock", method="POST")
    doc = replay(tmp_path, {"main": main_, "sale": sale})
    assert classes_of(doc, stray, "Stock") == ["wrong_channel"]
    assert sub_of(doc, stray, "Stock")["evidence"]["wrong_channel"]["expected_channel"] == "main"
    assert classes_of(doc, split, "Stock") == ["normal"]


def test_growing_week_over_week(tmp_path: Path) -> None:
    w = LogWriter()
    grower, flat, small = App("grower"), App("flat"), App("small")
    for day in range(14):
        per_day = 100 if day < 7 else 200  # 700 then 1,400: x2 with >= 1,000
        for k in range(per_day):
            w.response(at(days=day, hours=8, seconds=k * 30), grower, "Search", method="POST")
        for k in range(200):
            w.response(at(days=day, hours=8, seconds=k * 30), flat, "Search", method="POST")
        for k in range(40 if day < 7 else 120):  # x3 but 840 < 1,000
            w.response(at(days=day, hours=9, seconds=k * 30), small, "Search", method="POST")
    doc = replay(tmp_path, {"main": w}, now=ts(at(days=13, hours=23)))
    assert classes_of(doc, grower, "Search") == ["growing"]
    ev = sub_of(doc, grower, "Search")["evidence"]["growing"]
    assert ev["last_7_days"] == 1400
    assert classes_of(doc, flat, "Search") == ["normal"]
    assert classes_of(doc, small, "Search") == ["normal"]
    api = next(a for a in doc["apis"] if a["api"] == "Search")
    # the API as a whole: 700 + 1,400 + 280 = 2,380, then 1,400 + 1,400 + 840 = 3,640 (x1.53)
    assert api["classes"] == ["growing"]


def test_dormant_and_retired(tmp_path: Path) -> None:
    w = LogWriter()
    active, old, unused = App("active"), App("old"), App("unused")
    w.response(at(days=0), old, "Legacy")  # 40 days before "now"
    w.response(at(days=30), active, "Orders")  # 10 days before "now"
    inventory = {
        "applications": [{"id": a.id, "name": a.name} for a in (active, old, unused)],
        "subscriptions": [
            {"application_id": unused.id, "api": "Orders", "api_version": "1.0.0", "tier": "Gold"},
        ],
        "apis": [
            {"name": "Orders", "version": "1.0.0"},
            {"name": "Ghost", "version": "2.0", "context": "/ghost/2.0"},
        ],
    }
    doc = replay(tmp_path, {"main": w}, inventory, now=ts(at(days=40)))
    assert classes_of(doc, unused, "Orders") == ["dormant"]
    assert sub_of(doc, unused, "Orders")["tier"] == "Gold"
    assert classes_of(doc, old, "Legacy") == ["dormant"]
    assert classes_of(doc, active, "Orders") == ["normal"]
    apis = {(a["api"], a["api_version"]): a["classes"] for a in doc["apis"]}
    assert apis[("Ghost", "2.0")] == ["retired"]
    assert apis[("Legacy", "1.0.0")] == ["retired"]
    assert apis[("Orders", "1.0.0")] == ["normal"]


def test_hold_time_and_episodes(tmp_path: Path) -> None:
    w = LogWriter()
    app = App("bursty")
    for day, hour in ((0, 10), (2, 10)):  # two error loops two days apart
        for k in range(150):
            w.response(
                at(days=day, hours=hour, seconds=k * 10),
                app,
                "Customers",
                status=404 if k % 2 else 200,
                method="POST",
            )
    doc_held = replay(tmp_path, {"main": w}, now=ts(at(days=3, hours=8)))  # 22 h later
    assert classes_of(doc_held, app, "Customers") == ["error_prone"]
    eps = [e for e in sub_of(doc_held, app, "Customers")["episodes"] if e["class"] == "error_prone"]
    assert len(eps) == 2  # two episodes: quiet for more than the 24 h hold between them
    assert eps[0]["first"].startswith("2026-03-02T10:") and eps[1]["first"].startswith(
        "2026-03-04T10:"
    )
    doc_gone = replay(tmp_path, {"main": w}, now=ts(at(days=3, hours=12)))  # 26 h later
    assert classes_of(doc_gone, app, "Customers") == ["normal"]


def test_conformance_samples_read_as_events(conformance: Path) -> None:
    result = CliRunner().invoke(
        main, ["replay", str(conformance / "apim_metrics_samples.log"), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    lines = [ln for ln in (conformance / "apim_metrics_samples.log").read_text().splitlines() if ln]
    assert doc["events"] == len(lines) == 2
    assert doc["rejected"] == 0
    names = {s["application"] for s in doc["subscriptions"]}
    assert names == {"DefaultApplication", "internal-key-app"}
